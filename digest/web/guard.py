"""What every response carries and what every form is held to: security headers and
rate limits. Starlette middleware, no routes."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


class SecurityHeaders:
    """Headers every page carries; token pages are also never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token_page = scope["path"].startswith(("/c/", "/u/", "/manage/"))

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (
                        b"content-security-policy",
                        b"default-src 'none'; style-src 'self'; form-action 'self'; "
                        b"frame-ancestors 'none'; base-uri 'none'",
                    ),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                if token_page:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class RateLimiter:
    """Sliding-window counters kept in memory (one web process; see README for more)."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str, limit: int, window: float) -> bool:
        now = time.monotonic()
        hits = self._hits[key]
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(self._hits) > 100_000:  # forget idle keys rather than grow without bound
            for idle in [k for k, v in self._hits.items() if not v]:
                del self._hits[idle]
        if len(hits) >= limit:
            return False
        hits.append(now)
        return True
