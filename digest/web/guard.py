"""What every response carries and what every form is held to: security headers and
rate limits. Starlette middleware, no routes."""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("digest.web")
ERROR_PAGE = (
    b"<!DOCTYPE html><html lang=en><meta charset=utf-8>"
    b'<meta name="viewport" content="width=device-width, initial-scale=1">'
    b'<link rel="stylesheet" href="/static/web.css"><title>Something went wrong</title>'
    b'<main><header><a class="brand" href="/">Home</a></header>'
    b"<h1>Something went wrong</h1><p>Our fault, not yours. Please try again later.</p>"
    b"</main></html>"
)


class SecurityHeaders:
    """Headers every page carries, error pages included; token pages are also never cached.

    It also answers an unexpected exception itself (a plain 500 page, logged in one line with
    its traceback): Starlette's own 500 is sent outside every middleware, without headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token_page = scope["path"].startswith(("/c/", "/u/", "/r/", "/manage/", "/w/", "/f/"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (
                        b"content-security-policy",
                        b"default-src 'none'; style-src 'self'; script-src 'self'; "
                        b"connect-src 'self'; img-src 'self' https:; form-action 'self'; "
                        b"frame-ancestors 'none'; base-uri 'none'",
                    ),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                if token_page:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
                started.append(True)
            await send(message)

        started: list[bool] = []
        try:
            await self.app(scope, receive, with_headers)
        except Exception:
            log.exception("%s %s failed", scope.get("method"), scope["path"][:200])
            if started:
                raise
            await with_headers(
                {"type": "http.response.start", "status": 500, "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(ERROR_PAGE)).encode()),
                ]}
            )  # fmt: skip
            await send({"type": "http.response.body", "body": ERROR_PAGE})


class RateLimiter:
    """Sliding-window counters kept in memory (one web process; see README for more)."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str, limit: int, window: float) -> bool:
        """Count one hit for `key` and say whether it is within `limit` per `window`
        seconds (a refused hit is not counted, so waiting is enough to get through)."""
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
