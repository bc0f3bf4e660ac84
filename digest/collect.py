"""Running the sources concurrently and landing each one's papers in the store.

Knows no source's format. Isolation is per source and per item: everything one source does,
fetching, parsing and storing its batch, runs under that source's guard, so its failure costs
that source only (recorded in source_state); a bad item was already skipped and counted by the
parser. A store that cannot be written at all (read-only, disk full) is not a source's fault:
it stops the collect with one StoreError naming the file, instead of failing every source.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import httpx

from digest.config import Config, SourceConfig
from digest.errors import DigestError, StoreError
from digest.models import SourceResult
from digest.sources import COLLECTORS, Body, Sleep, SourceRequest
from digest.sources.common import REASONS_KEPT
from digest.store import Store


@dataclass(frozen=True)
class SourceReport:
    """One line of `digest collect`'s summary. `skipped` items were lost (malformed, or over
    the per-source limit): a warning, and a failure for the exit code."""

    source: str
    kind: str
    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    seconds: float = 0.0
    error: str | None = None
    note: str | None = None
    skipped: int = 0
    skip_reasons: tuple[str, ...] = ()

    @property
    def warning(self) -> str | None:
        """`hf: 2 items skipped: item 3: ...`, or None when nothing was skipped."""
        if not self.skipped:
            return None
        plural = "s" if self.skipped != 1 else ""
        first = f": {self.skip_reasons[0]}" if self.skip_reasons else ""
        return f"{self.source}: {self.skipped} item{plural} skipped{first}"

    @property
    def ok(self) -> bool:
        """Whether the source landed whole: no error and nothing skipped (exit code 0)."""
        return self.error is None and not self.skipped


Progress = Callable[[str, str], None]
Fetched = tuple[SourceConfig, SourceResult | str, float]


def selected_sources(config: Config, only: str | None = None) -> list[SourceConfig]:
    """The sources a collect will run: `only` by name (even if disabled), else every enabled one.

    Raises:
        ConfigError: no source is called `only`.
    """
    if only:
        return [config.source(only)]
    return [s for s in config.sources if s.enabled]


async def _fetch_one(request: SourceRequest, gate: asyncio.Semaphore) -> Fetched:
    """Fetch and parse one source: its papers, or the one line saying why it failed."""
    t0 = time.perf_counter()
    try:
        async with gate:
            return request.source, await COLLECTORS[request.source.kind](request), t0
    except DigestError as ex:
        return request.source, str(ex), t0
    except Exception as ex:  # a bug in one parser must not cost the other sources
        return request.source, f"unexpected {type(ex).__name__}: {ex}", t0


def _request(
    src: SourceConfig,
    config: Config,
    store: Store,
    client: httpx.AsyncClient,
    day: date,
    since: date | None,
    sleep: Sleep,
) -> SourceRequest:
    """The request for one source; the validators of its last success make the GET
    conditional, except in a backfill, which must read every day whatever changed."""
    state = store.get_source_state(src.name)
    cached = None
    if state.last_url and since is None:
        cached = Body(url=state.last_url, etag=state.etag, last_modified=state.last_modified)
    return SourceRequest(src, config.collect, day, client, since, cached, sleep)


def _land_one(
    src: SourceConfig,
    outcome: SourceResult | str,
    store: Store,
    stamp: datetime,
    t0: float,
    limit: int,
) -> SourceReport:
    """Store one source's batch under that source's guard: anything raised while storing it
    costs this source only, and is recorded as its failure. A store that cannot be written at
    all (StoreError: read-only, disk full) is no source's fault and stops the collect."""
    if isinstance(outcome, str):
        message = outcome
    else:
        try:
            return _land(src, outcome, store, stamp, t0, limit)
        except StoreError:
            raise
        except DigestError as ex:
            message = str(ex)
        except Exception as ex:  # e.g. a value the store refused
            message = f"unexpected {type(ex).__name__}: {ex}"
    if not message.startswith(f"{src.name}:"):
        message = f"{src.name}: {message}"
    message = " ".join(message.split())[:1000]
    store.record_source_failure(src.name, stamp, message)
    return SourceReport(src.name, src.kind, error=message, seconds=time.perf_counter() - t0)


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
    """Fetch and parse every selected source at once, then store each batch.

    Storing waits until no fetch is in flight: SQLite writes run on this thread, and a large
    batch written while another source is still being read would count against that source's
    timeout. Every failure of a source is in the reports.

    Raises:
        StoreError: once, when the database cannot be written (no source's fault).
        ConfigError: `only` names no source.
    """
    sources = selected_sources(config, only)
    day = day or now.date()
    stamp = now
    own_client = client is None
    http = client or httpx.AsyncClient(follow_redirects=False, http2=False)
    gate = asyncio.Semaphore(max(1, config.collect.concurrency))
    pending: list[asyncio.Future[Fetched]] = []
    try:
        requests = [_request(s, config, store, http, day, since, sleep) for s in sources]
        pending = [asyncio.ensure_future(_fetch_one(r, gate)) for r in requests]
        fetched = await asyncio.gather(*pending)
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if own_client:
            await http.aclose()
    limit = config.collect.max_items
    reports: list[SourceReport] = []
    for src, outcome, t0 in fetched:
        report = _land_one(src, outcome, store, stamp, t0, limit)
        reports.append(report)
        if progress:
            progress(src.name, "failed" if report.error else "done")
    return reports


def _land(
    src: SourceConfig,
    result: SourceResult,
    store: Store,
    stamp: datetime,
    t0: float,
    limit: int,
) -> SourceReport:
    """Store one source's papers (at most `limit`; the rest counted as skipped) and its
    validators, and say what changed."""
    skipped = result.skipped
    reasons = list(result.skip_reasons)
    papers = result.papers
    if len(papers) > limit:
        cut = len(papers) - limit
        reasons = [f"{cut} over the limit of {limit:,} items per source", *reasons]
        skipped += cut
        papers = papers[:limit]
    counts = store.upsert_papers(src.name, papers, stamp)
    store.record_source_success(
        src.name, stamp, len(papers), result.url, result.etag, result.last_modified
    )
    return SourceReport(
        src.name,
        src.kind,
        fetched=len(papers),
        new=counts.new,
        updated=counts.updated,
        unchanged=counts.unchanged,
        seconds=time.perf_counter() - t0,
        note=result.note,
        skipped=skipped,
        skip_reasons=tuple(reasons[:REASONS_KEPT]),
    )


def collect(
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
    """The synchronous entry point for the CLI and the daily job; see `collect_async`.

    Raises:
        StoreError: the database cannot be written.
        ConfigError: `only` names no source.
    """
    return asyncio.run(
        collect_async(
            config,
            store,
            now,
            day=day,
            since=since,
            only=only,
            client=client,
            sleep=sleep,
            progress=progress,
        )
    )
