"""Running the sources concurrently and landing each one's papers in the store.

Knows no source's format. One source's failure is reported and isolated: the others still land,
and each source's batch commits in one transaction, so nothing is ever half-written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import httpx

from digest.config import Config, SourceConfig
from digest.errors import DigestError
from digest.models import FetchResult
from digest.sources import COLLECTORS, Body, Sleep
from digest.store import Store


@dataclass(frozen=True)
class SourceReport:
    """One line of `digest collect`'s summary."""

    source: str
    kind: str
    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    seconds: float = 0.0
    error: str | None = None
    note: str | None = None


Progress = Callable[[str, str], None]


def selected_sources(config: Config, only: str | None = None) -> list[SourceConfig]:
    if only:
        return [config.source(only)]
    return [s for s in config.sources if s.enabled]


async def _run_one(
    src: SourceConfig,
    client: httpx.AsyncClient,
    config: Config,
    store: Store,
    day: date,
    since: date | None,
    sleep: Sleep,
    gate: asyncio.Semaphore,
) -> tuple[SourceConfig, FetchResult | DigestError]:
    """Never raises: a source's failure is its result, so the others go on."""
    state = store.get_source_state(src.name)
    cached = None
    if state.last_url and since is None:
        cached = Body(url=state.last_url, etag=state.etag, last_modified=state.last_modified)
    try:
        async with gate:
            collector = COLLECTORS[src.kind]
            return src, await collector(src, client, config.collect, day, since, cached, sleep)
    except DigestError as ex:
        return src, ex
    except Exception as ex:  # a bug in one parser must not cost the other sources
        return src, DigestError(f"{src.name}: unexpected {type(ex).__name__}: {ex}")


async def collect_async(
    config: Config,
    store: Store,
    now: datetime,
    *,
    day: date | None = None,
    since: date | None = None,
    only: str | None = None,
    client: httpx.AsyncClient | None = None,
    sleep: Sleep = asyncio.sleep,
    progress: Progress | None = None,
) -> list[SourceReport]:
    """Fetch every selected source at once; store each batch as soon as it arrives."""
    sources = selected_sources(config, only)
    day = day or now.date()
    stamp = now.isoformat()
    own_client = client is None
    http = client or httpx.AsyncClient(follow_redirects=True, http2=False)
    gate = asyncio.Semaphore(max(1, config.collect.concurrency))
    started = {s.name: time.perf_counter() for s in sources}
    pending = [_run_one(s, http, config, store, day, since, sleep, gate) for s in sources]
    reports: dict[str, SourceReport] = {}
    try:
        for future in asyncio.as_completed(pending):
            src, result = await future
            report = _land(src, result, store, stamp, started[src.name])
            reports[src.name] = report
            if progress:
                progress(src.name, "failed" if report.error else "done")
    finally:
        if own_client:
            await http.aclose()
    return [reports[s.name] for s in sources]


def _land(
    src: SourceConfig, result: FetchResult | DigestError, store: Store, stamp: str, t0: float
) -> SourceReport:
    if isinstance(result, DigestError):
        message = str(result)
        if not message.startswith(f"{src.name}:"):
            message = f"{src.name}: {message}"
        store.record_source_failure(src.name, stamp, message)
        return SourceReport(src.name, src.kind, error=message, seconds=time.perf_counter() - t0)
    counts = store.upsert_papers(src.name, result.papers, stamp)
    store.record_source_success(
        src.name, stamp, len(result.papers), result.url, result.etag, result.last_modified
    )
    return SourceReport(
        src.name,
        src.kind,
        fetched=len(result.papers),
        new=counts.new,
        updated=counts.updated,
        unchanged=counts.unchanged,
        seconds=time.perf_counter() - t0,
        note=result.note,
    )


def collect(config: Config, store: Store, now: datetime, **kwargs: object) -> list[SourceReport]:
    """The synchronous entry point for the CLI and the daily job."""
    return asyncio.run(collect_async(config, store, now, **kwargs))  # type: ignore[arg-type]
