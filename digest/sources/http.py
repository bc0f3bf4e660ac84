"""Fetching a source's bytes: timeouts, retries with backoff, conditional GET, a size cap.

feedparser and json never see a URL: they get bytes this module read under these limits.
A `url` that is not http(s) is a local file (recordings for the demo and tests).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from digest.config import CollectConfig
from digest.errors import SourceError

Sleep = Callable[[float], Awaitable[None]]
RETRY_STATUSES = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Body:
    """The bytes of one response, with what we need to ask again politely next time."""

    url: str
    content: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False


def is_local(url: str) -> bool:
    return not url.startswith(("http://", "https://"))


def read_local(name: str, url: str, max_bytes: int) -> Body:
    path = Path(url)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceError(
                f"{name}: {url} is {size:,} bytes, over the {max_bytes:,}-byte cap "
                "(raise [collect].max_bytes if this is expected)"
            )
        return Body(url=url, content=path.read_bytes())
    except OSError as ex:
        raise SourceError(f"{name}: cannot read {url}: {ex.strerror or ex}") from ex


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


async def _get_once(
    client: httpx.AsyncClient,
    name: str,
    url: str,
    headers: dict[str, str],
    settings: CollectConfig,
    timeout: float,
) -> tuple[httpx.Response, bytes]:
    async with asyncio.timeout(timeout):
        async with client.stream("GET", url, headers=headers, timeout=timeout) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > settings.max_bytes:
                raise SourceError(
                    f"{name}: GET {url} announces {int(declared):,} bytes, over the "
                    f"{settings.max_bytes:,}-byte cap; refused without reading it"
                )
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > settings.max_bytes:
                    raise SourceError(
                        f"{name}: GET {url} sent more than {settings.max_bytes:,} bytes; "
                        "stopped reading (raise [collect].max_bytes if this is expected)"
                    )
                chunks.append(chunk)
            return response, b"".join(chunks)


async def fetch(
    client: httpx.AsyncClient,
    name: str,
    url: str,
    settings: CollectConfig,
    *,
    params: dict[str, str] | None = None,
    cached: Body | None = None,
    timeout: float | None = None,
    sleep: Sleep = asyncio.sleep,
) -> Body:
    """GET with retries on 429 (honouring Retry-After), 5xx and network errors.

    `cached` holds the validators of the last success; they are sent only for the same URL,
    since an If-Modified-Since meant for another day's URL could wrongly answer 304.

    Raises SourceError naming the source, the URL and what to check; never returns a failure.
    """
    if is_local(url):
        return read_local(name, url, settings.max_bytes)
    full_url = str(httpx.URL(url, params=params)) if params else url
    headers = {"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"}
    etag = last_modified = None
    if cached is not None and cached.url == full_url:
        etag, last_modified = cached.etag, cached.last_modified
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
    limit = timeout or settings.timeout
    attempts = settings.retries + 1
    problem = ""
    for attempt in range(attempts):
        delay = settings.backoff * (2**attempt) * (0.5 + random.random())
        try:
            response, content = await _get_once(client, name, full_url, headers, settings, limit)
        except TimeoutError:
            problem = f"timed out after {limit:g}s"
        except httpx.TransportError as ex:
            problem = f"network error: {type(ex).__name__}: {ex}".rstrip(": ")
        else:
            status = response.status_code
            if status == 304:
                return Body(url=full_url, not_modified=True, etag=etag, last_modified=last_modified)
            if 200 <= status < 300:
                return Body(
                    url=full_url,
                    content=content,
                    content_type=response.headers.get("content-type", ""),
                    etag=response.headers.get("etag"),
                    last_modified=response.headers.get("last-modified"),
                )
            problem = f"HTTP {status} {response.reason_phrase}".strip()
            if status not in RETRY_STATUSES:
                raise SourceError(f"{name}: GET {full_url} failed: {problem}; check the source URL")
            wait = retry_after_seconds(response.headers.get("retry-after"))
            if wait is not None:
                if wait > settings.max_retry_after:
                    raise SourceError(
                        f"{name}: GET {full_url} failed: {problem}, server asks to retry after "
                        f"{wait:.0f}s (over the {settings.max_retry_after:g}s we wait); try later"
                    )
                delay = wait
        if attempt + 1 < attempts:
            await sleep(delay)
    raise SourceError(f"{name}: GET {full_url} failed after {attempts} attempts: {problem}")
