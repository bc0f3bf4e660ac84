"""Fetching a source's bytes: timeouts, retries with backoff, conditional GET, a size cap.

feedparser and json never see a URL: they get bytes this module read under these limits.
A `url` that is not http(s) is a local file (recordings for the demo and tests).

The cap holds on the bytes we keep, after decompression: bodies are read raw and inflated here,
never more than the cap, one known encoding at most (stacked encodings multiply). Redirects
are followed here too, so a redirect into a loopback, private or link-local address can be
refused before any connection is made to it.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import random
import socket
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from digest.config import CollectConfig
from digest.errors import SourceError

Sleep = Callable[[float], Awaitable[None]]
RETRY_STATUSES = {429, 500, 502, 503, 504}
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 10
# zlib window bits: +16 expects a gzip header, plain MAX_WBITS a zlib-wrapped deflate
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


@dataclass(frozen=True)
class Body:
    """The bytes of one response, with what we need to ask again politely next time."""

    url: str
    content: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    location: str = ""

    @property
    def final_url(self) -> str:
        """The document's own address after redirects: the base for its relative links."""
        return self.location or self.url


def is_local(url: str) -> bool:
    """A URL that is not http(s) names a local file (recordings for the demo and tests)."""
    return not url.startswith(("http://", "https://"))


def read_local(name: str, url: str, max_bytes: int) -> Body:
    """A local file's bytes under the same cap as a download.

    Raises:
        SourceError: the file is over the cap or cannot be read.
    """
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


class _Inflater:
    """Decompresses one encoding without ever producing more than `cap` bytes in total."""

    def __init__(self, encoding: str, cap: int) -> None:
        self.encoding = encoding
        self.cap = cap
        self.total = 0
        self.started = False
        self.inflater = zlib.decompressobj(_WBITS[encoding]) if encoding in _WBITS else None

    def feed(self, data: bytes) -> list[bytes]:
        """The decompressed chunks of `data`; stops producing once past the cap."""
        if self.inflater is None:
            self.total += len(data)
            return [data] if self.total <= self.cap else []
        out: list[bytes] = []
        pending = data
        while pending and not self.inflater.eof and self.total <= self.cap:
            try:
                # max_length: a 1 KB bomb is never inflated past the cap in memory
                chunk = self.inflater.decompress(pending, self.cap - self.total + 1)
            except zlib.error:
                # servers send "deflate" as raw deflate as often as the zlib format it means
                if self.encoding != "deflate" or self.started:
                    raise
                self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, no header
                self.started = True
                continue
            self.started = True
            self.total += len(chunk)
            out.append(chunk)
            pending = self.inflater.unconsumed_tail
        return out

    def finish(self) -> list[bytes]:
        """What the decompressor still holds once the body has ended, within the cap."""
        if self.inflater is None or self.total > self.cap:
            return []
        rest = self.inflater.flush(self.cap - self.total + 1)
        self.total += len(rest)
        return [rest]

    @property
    def over(self) -> bool:
        """Whether more than the cap came out: the body is refused."""
        return self.total > self.cap


def _encoding(name: str, url: str, response: httpx.Response) -> str:
    """The one content encoding we will undo ("identity" for none).

    Raises:
        SourceError: stacked encodings, or one other than gzip or deflate.
    """
    codings = [
        c.strip().lower()
        for c in response.headers.get_list("content-encoding", split_commas=True)
        if c.strip() and c.strip().lower() != "identity"
    ]
    if len(codings) > 1:
        raise SourceError(
            f"{name}: GET {url}: refused stacked Content-Encoding {', '.join(codings)} "
            "(each layer multiplies the size; we accept one of gzip or deflate)"
        )
    if codings and codings[0] not in _WBITS:
        raise SourceError(
            f"{name}: GET {url}: refused Content-Encoding {codings[0]!r} "
            "(we ask for and accept gzip or deflate only)"
        )
    return codings[0] if codings else "identity"


async def _read_capped(name: str, url: str, response: httpx.Response, cap: int) -> bytes:
    """The body, decompressed as it arrives; stops as soon as the cap is passed."""
    encoding = _encoding(name, url, response)
    inflater = _Inflater(encoding, cap)
    chunks: list[bytes] = []
    received = 0
    try:
        async for raw in response.aiter_raw():
            received += len(raw)
            if received > cap:  # compressed bytes count too: a slow endless body ends here
                raise SourceError(
                    f"{name}: GET {url} sent more than {cap:,} bytes; "
                    "stopped reading (raise [collect].max_bytes if this is expected)"
                )
            chunks.extend(inflater.feed(raw))
            if inflater.over:
                break
        else:
            chunks.extend(inflater.finish())
        if inflater.over:
            raise SourceError(
                f"{name}: GET {url}: body over {cap:,} bytes after decompression "
                f"({encoding}); stopped reading (raise [collect].max_bytes if this is expected)"
            )
    except zlib.error as ex:
        raise SourceError(f"{name}: GET {url}: the {encoding} body is corrupt: {ex}") from ex
    return b"".join(chunks)


def address_range(host: str) -> str:
    """loopback, link-local, private (any other non-global address) or public."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        name = host.lower().rstrip(".")
        return "loopback" if name == "localhost" or name.endswith(".localhost") else "public"
    # ::ffff:127.0.0.1 is loopback in disguise
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    return "public" if ip.is_global else "private"


async def _host_range(host: str) -> str:
    """The range a host is in; a name is resolved first, and is as internal as its worst address
    (a name that does not resolve fails at connection anyway)."""
    kind = address_range(host)
    if kind != "public" or _is_ip(host):
        return kind
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:  # unresolvable: the connection fails anyway, with a clearer message
        return "public"
    kinds = {address_range(str(info[4][0])) for info in infos}
    return next((k for k in ("link-local", "private", "loopback") if k in kinds), "public")


def _is_ip(host: str) -> bool:
    """Whether the host is a literal address (IPv6 in brackets or not), needing no lookup."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


async def _redirect_target(name: str, current: httpx.URL, location: str, allowed: str) -> httpx.URL:
    """Where a redirect leads, if we may go: http(s) only, and never into a loopback, private or
    link-local range other than the configured URL's own (a feed must not reach internal pages)."""
    target = current.join(location)
    if target.scheme not in ("http", "https") or not target.host:
        raise SourceError(f"{name}: GET {current} redirects to {str(target)[:200]}: not http(s)")
    kind = await _host_range(target.host)
    if kind != "public" and kind != allowed:
        raise SourceError(
            f"{name}: GET {current} redirects to {target.host} ({kind} address); refused: "
            "a feed may not lead into an internal network (configure that URL directly if meant)"
        )
    return target


async def _get_once(
    client: httpx.AsyncClient,
    name: str,
    url: str,
    headers: dict[str, str],
    settings: CollectConfig,
    timeout: float,
) -> tuple[httpx.Response, bytes]:
    """One GET with its redirects, under one deadline for the whole exchange (httpx's
    timeout is per read: a server trickling bytes would never trip it).

    Raises:
        SourceError: a refused redirect, too many redirects, or a body over the cap.
        TimeoutError: the deadline passed (the caller retries).
        httpx.TransportError: the network failed (the caller retries).
    """
    async with asyncio.timeout(timeout):
        current = httpx.URL(url)
        allowed: str | None = None  # the configured URL's range, looked up at the first redirect
        for _ in range(MAX_REDIRECTS + 1):
            # redirects by hand, so every hop is checked before we connect to it
            async with client.stream(
                "GET", current, headers=headers, timeout=timeout, follow_redirects=False
            ) as response:
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUSES and location:
                    allowed = allowed or await _host_range(httpx.URL(url).host)
                    current = await _redirect_target(name, current, location, allowed)
                    continue
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > settings.max_bytes:
                    raise SourceError(
                        f"{name}: GET {current} announces {int(declared):,} bytes, over the "
                        f"{settings.max_bytes:,}-byte cap; refused without reading it"
                    )
                return response, await _read_capped(
                    name, str(current), response, settings.max_bytes
                )
        raise SourceError(f"{name}: GET {url} redirected more than {MAX_REDIRECTS} times")


def _success(
    url: str, response: httpx.Response, content: bytes, etag: str | None, modified: str | None
) -> Body | None:
    """The Body of a 2xx or 304 answer (a 304 keeps the validators we sent), else None."""
    status = response.status_code
    if status == 304:
        return Body(url=url, not_modified=True, etag=etag, last_modified=modified)
    if not 200 <= status < 300:
        return None
    return Body(
        url=url,
        location=str(response.url),
        content=content,
        content_type=response.headers.get("content-type", ""),
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
    )


def _retry_delay(
    name: str, url: str, response: httpx.Response, settings: CollectConfig, delay: float
) -> tuple[str, float]:
    """What went wrong with a failed answer, and how long to wait before asking again.

    Raises:
        SourceError: the status is not worth retrying, or the server asks us to wait longer
            than we are willing to.
    """
    status = response.status_code
    problem = f"HTTP {status} {response.reason_phrase}".strip()
    if status not in RETRY_STATUSES:
        raise SourceError(f"{name}: GET {url} failed: {problem}; check the source URL")
    wait = retry_after_seconds(response.headers.get("retry-after"))
    if wait is None:
        return problem, delay
    if wait > settings.max_retry_after:
        raise SourceError(
            f"{name}: GET {url} failed: {problem}, server asks to retry after "
            f"{wait:.0f}s (over the {settings.max_retry_after:g}s we wait); try later"
        )
    return problem, wait


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
    """GET with retries on 429 (honouring Retry-After), 5xx and network errors; never returns
    a failure.

    `cached` holds the validators of the last success; they are sent only for the same URL,
    since an If-Modified-Since meant for another day's URL could wrongly answer 304.

    Raises:
        SourceError: naming the source, the URL and what to check (a 4xx, retries exhausted,
            the size cap, a refused redirect or encoding...).
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
        # exponential backoff with jitter: runs started by cron at :05 do not retry in step
        delay = settings.backoff * (2**attempt) * (0.5 + random.random())
        try:
            response, content = await _get_once(client, name, full_url, headers, settings, limit)
        except TimeoutError:
            problem = f"timed out after {limit:g}s"
        except httpx.TransportError as ex:
            problem = f"network error: {type(ex).__name__}: {ex}".rstrip(": ")
        else:
            body = _success(full_url, response, content, etag, last_modified)
            if body is not None:
                return body
            problem, delay = _retry_delay(name, full_url, response, settings, delay)
        if attempt + 1 < attempts:
            await sleep(delay)
    raise SourceError(f"{name}: GET {full_url} failed after {attempts} attempts: {problem}")


def fetch_small(
    url: str,
    *,
    max_bytes: int = 64 * 1024,
    timeout: float = 10.0,
    user_agent: str = CollectConfig.user_agent,
    transport: httpx.BaseTransport | None = None,
) -> bytes:
    """One GET of a small document for the web app (an SNS signing certificate, an SNS
    subscription confirmation): the caller has checked the URL; no redirects followed, no
    content encoding accepted, at most `max_bytes` read, `timeout` seconds in all (checked
    between reads, each read bounded by it too). Synchronous: run it in a thread.

    Raises:
        SourceError: naming the URL and what failed (a status, the cap, the time, the network).
    """
    deadline = time.monotonic() + timeout
    headers = {"User-Agent": user_agent, "Accept-Encoding": "identity"}
    try:
        with (
            httpx.Client(transport=transport, timeout=timeout, follow_redirects=False) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise SourceError(f"GET {url[:200]}: HTTP {response.status_code}")
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise SourceError(f"GET {url[:200]}: refused Content-Encoding {encoding!r}")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > max_bytes:
                    raise SourceError(f"GET {url[:200]}: body over {max_bytes:,} bytes")
                if time.monotonic() > deadline:
                    raise SourceError(f"GET {url[:200]}: took more than {timeout:g}s")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as ex:
        raise SourceError(f"GET {url[:200]} failed: {type(ex).__name__}: {ex}") from ex
