"""The daily job in three parts that read top to bottom: plan (`digest.plan`: who gets which
papers, written before anything is sent), build (`digest.build`: one message per planned
delivery) and deliver (`digest.send`: the delivery state machine over one transport).

Planning writes one delivery row per (subscriber, edition) with the papers it will carry;
sending works only from those rows. So a second run the same day finds everything planned
and sent, and a run after a crash sends exactly what is left. The caller holds the run lock.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from digest import shards
from digest.ahead import BuiltAhead
from digest.bounces.process import BounceReport, bounces_after_run
from digest.build import Builder, confirmation_message
from digest.collect import SourceReport, collect_async
from digest.config import Config, SmtpConfig
from digest.errors import RenderError, SendError
from digest.match import EditionMatchers
from digest.message import Outgoing
from digest.models import Subscriber, Topic
from digest.ops import alerts, load_dkim, send_alerts
from digest.plan import PlanReport, plan, run_matchers
from digest.render import Renderer
from digest.send import Job, Outcome, Sender, SendStats, Transport, transport_for
from digest.store import Delivery, Store
from digest.tokens import Tokens

Progress = Callable[[str, str], None]  # (email, status) as each delivery ends
T = TypeVar("T")
SHARD_MIN = 2_000  # due deliveries below which more send processes cost more than they save


@dataclass
class RunReport:
    """What one run did, for the summary line, the exit status and the alerts."""

    edition: str
    collected: list[SourceReport] = field(default_factory=list)
    plan: PlanReport = field(default_factory=PlanReport)
    send: SendStats = field(default_factory=SendStats)
    recovered: int = 0
    resumed: list[str] = field(default_factory=list)
    purged: int = 0
    alerts: int = 0
    seconds: float = 0.0
    bounces: BounceReport | None = None  # the bounce mailbox, read when configured

    @property
    def source_errors(self) -> list[str]:
        """One line per source that failed."""
        return [r.error for r in self.collected if r.error]

    @property
    def items_skipped(self) -> int:
        """Malformed feed items left out by collect (each source reports its own count)."""
        return sum(r.skipped for r in self.collected)

    @property
    def skip_lines(self) -> list[str]:
        """One line per source that skipped items, with the first reasons."""
        return [
            f"{r.source}: {r.skipped} items skipped: {'; '.join(r.skip_reasons[:3])}".rstrip(": ")
            for r in self.collected
            if r.skipped
        ]

    @property
    def failed(self) -> bool:
        """Something did not work out and deserves exit 1: a source, a skipped item, a
        delivery failed or deferred, an error in one delivery."""
        s = self.send
        if self.bounces is not None and self.bounces.failed:
            return True  # the bounce mailbox could not be read to the end
        if self.plan.recommend_errors or self.plan.errors:
            return True  # recommendations left out, or someone not planned: the rest went out
        return bool(self.source_errors or self.items_skipped or s.failed or s.deferred or s.errors)

    def summary(self) -> str:
        """The one line cron mails: what happened, in numbers."""
        s = self.send
        parts = [
            f"edition {self.edition}",
            f"{s.sent} sent",
            f"{self.plan.planned} planned",
            f"{self.plan.no_matches} without matches",
            f"{self.plan.not_due} not due yet",
            f"{s.deferred} deferred",
            f"{s.failed} failed",
        ]
        if s.errors:
            parts.append(f"{s.errors} internal errors")
        if self.plan.errors:
            parts.append(f"{len(self.plan.errors)} subscribers not planned")
        if s.possible_duplicates:
            parts.append(f"{s.possible_duplicates} possible duplicates (crash or lost reply)")
        if self.source_errors:
            parts.append(f"{len(self.source_errors)} source errors")
        if self.items_skipped:
            parts.append(f"{self.items_skipped} items skipped")
        if self.plan.recommended or self.plan.recommend_errors:
            parts.append(f"{self.plan.recommended} with recommendations")
        if self.plan.recommend_errors:
            parts.append(f"recommendations: {self.plan.recommend_errors[0]}")
        if self.bounces is not None:
            parts.append(f"{len(self.bounces.outcomes)} bounce-mailbox messages")
        return "digest run: " + ", ".join(parts) + f" in {self.seconds:.1f}s"


class Pipeline:
    """One run of the daily job over its config, store and clock: plan, then build and
    deliver. No step leaves a result for the next: `run` hands the plan's matchers to the
    builder itself, and `send` or `build` alone take each edition as the store has it (a
    matcher only makes building faster; it never changes an email)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        topics: dict[str, Topic],
        now: datetime,
        *,
        transport: Transport | None = None,
        renderer: Renderer | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.store = store
        self.topics = topics
        self.now = now
        self.clock = clock or (lambda: now)
        self.sleep = sleep
        self.transport = transport
        self.renderer = renderer
        self.timings: dict[str, float] = {}  # seconds per stage; "render" is within "send"
        self._dkim = load_dkim(config)
        self._alone: Builder | None = None  # for `build` called on its own, row by row
        self.worker_peaks_mb: list[float] = []  # other processes' peak memory, if any
        self.builder_private_mb = 0.0  # a builder process's own memory (`digest.ahead`)
        self.builder_idle = (0, 0)  # its messages built in the idle class, of all it built
        self.shard_min = SHARD_MIN
        self.build_ahead = True  # build in a second process when `_ahead` says it pays

    def plan(self, dry_run: bool = False) -> PlanReport:
        """Open the run's editions (unless dry) and record who gets which papers."""
        return self._plan(dry_run)[0]

    def _plan(self, dry_run: bool) -> tuple[PlanReport, EditionMatchers]:
        # named by the run's date; its window ends now, after this run collected
        end = max(self.now, self.clock())
        matchers = run_matchers(self.store, self.topics, self.now, end, open_it=not dry_run)
        report = plan(self.config, self.store, matchers, self.now, self.clock(), dry_run=dry_run)
        return report, matchers

    def builder(
        self, matchers: EditionMatchers | None = None, collected: Sequence[SourceReport] = ()
    ) -> Builder:
        """A builder for this run's messages; without `matchers`, each edition's papers are
        read as the store has them."""
        if self.renderer is None:
            with suppress(RenderError):  # a broken template costs each delivery, not the run
                self.renderer = Renderer(self.config, self.topics)
        matchers = matchers or EditionMatchers(self.store, self.topics, self.now)
        return Builder(
            self.config, self.store, self.renderer, matchers, self.clock,
            dkim=self._dkim, collected=collected,
        )  # fmt: skip

    def build(self, row: Delivery, sub: Subscriber) -> Outgoing | None:
        """One planned delivery's message (None: nothing to send), as `digest send` builds it.

        Raises:
            RenderError, ConfigError, TokenError: our setup; SendError: the address.
        """
        if self._alone is None:
            self._alone = self.builder()
        return self._alone.build(row, sub)

    async def send(
        self,
        shard: tuple[int, int] | None = None,
        on_done: Progress | None = None,
        *,
        builder: Builder | None = None,
        transport: Transport | None = None,
        smtp: SmtpConfig | None = None,
    ) -> SendStats:
        """Build and deliver every due pending delivery (of one shard), with the configured
        concurrency and rate (or `smtp`'s: a shard's share); a transport is opened for it
        unless one is given."""
        builder = builder or self.builder()
        smtp = smtp or self.config.smtp
        ahead = BuiltAhead(builder, self.config.database.path) if self._ahead(shard) else None
        async with transport_for(self.config, transport or self.transport) as opened:
            hook = _job_hook(on_done) if on_done is not None else None
            sender = Sender(self.store, opened, smtp, self.clock, self.sleep, hook)

            async def stream() -> AsyncIterator[Job]:
                if ahead is not None:
                    async for job in ahead.jobs():
                        yield job
                    sender.stats.add(ahead.result.stats)
                    return
                for job in builder.jobs(shard, sender.stats):
                    yield job
                    await asyncio.sleep(0)  # let senders run while messages are being built

            concurrency = smtp.concurrency if self.config.smtp.host else 1
            try:
                return await sender.run(stream(), concurrency)
            finally:
                built = ahead.result.seconds if ahead is not None else builder.seconds
                self.timings["render"] = self.timings.get("render", 0.0) + built
                if ahead is not None and ahead.result.peak_mb:  # a builder process ran
                    self.worker_peaks_mb.append(ahead.result.peak_mb)
                    self.builder_private_mb = ahead.result.private_mb
                    self.builder_idle = (ahead.result.built_idle, ahead.result.built)

    def _ahead(self, shard: tuple[int, int] | None) -> bool:
        """Whether a second process builds this run's messages (`digest.ahead`): an SMTP run
        of at least `shard_min` due deliveries, not sharded, on a machine with a core to
        spare."""
        if not self.build_ahead or shard is not None or not self.config.smtp.host:
            return False
        return (os.cpu_count() or 1) >= 2 and self._many_due()

    def _many_due(self) -> bool:
        """Whether at least `shard_min` deliveries are due: below that, a second process
        (builder or send worker) costs more than it saves."""
        due = self.store.due_deliveries(self.clock(), None, limit=self.shard_min)
        return len(due) >= self.shard_min

    async def run(
        self,
        *,
        collect: bool = True,
        send: bool = True,
        dry_run: bool = False,
        shard: tuple[int, int] | None = None,
        on_done: Progress | None = None,
    ) -> RunReport:
        """The whole daily job. Dry runs collect nothing, record nothing and send nothing."""
        started = time.perf_counter()
        report = RunReport(edition=self.now.date().isoformat())
        lap = _Laps(self.timings)
        if not dry_run:
            self._housekeeping(report)
            if collect:
                # papers are stamped with the real time, even when catching up a past edition
                report.collected = await collect_async(self.config, self.store, self.clock())
        lap("collect")
        report.plan, matchers = self._plan(dry_run)
        lap("plan")
        if not dry_run:
            report.bounces = bounces_after_run(self.config, self.store, self.clock())
            with settled_heap():
                await self._deliver(report, matchers, send, shard, on_done)
        lap("send")
        report.seconds = time.perf_counter() - started
        return report

    def _housekeeping(self, report: RunReport) -> None:
        """Before collecting: recover what a crash left `sending`, resume expired pauses,
        purge never-confirmed signups."""
        report.recovered = self.store.recover_interrupted(self.clock())
        report.resumed = self.store.resume_expired_pauses(self.clock())
        cutoff = self.now - timedelta(days=self.config.web.purge_pending_days)
        report.purged = self.store.purge_pending(cutoff, self.now)

    async def _deliver(
        self,
        report: RunReport,
        matchers: EditionMatchers,
        send: bool,
        shard: tuple[int, int] | None,
        on_done: Progress | None,
    ) -> None:
        """Send what was planned, then alert the admin; one transport for both, opened and
        closed here (without sending, alerts open one only when there is one to send)."""
        if not send:
            report.alerts = await self._alert(report, self.transport)
            return
        workers = self._workers(shard)
        mine = shards.shard_config(self.config, workers, 0) if workers > 1 else self.config
        async with transport_for(mine, self.transport) as transport:
            builder = self.builder(matchers, report.collected)
            if workers > 1:
                report.send = await self.send_sharded(workers, on_done, builder, transport)
            else:
                report.send = await self.send(shard, on_done, builder=builder, transport=transport)
            report.alerts = await self._alert(report, transport)

    def _workers(self, shard: tuple[int, int] | None) -> int:
        """How many processes send this run: `[smtp] workers` for an SMTP run of at least
        `shard_min` due deliveries (fewer are not worth starting processes for), else one."""
        wanted = self.config.smtp.workers
        if wanted <= 1 or shard is not None or not self.config.smtp.host:
            return 1
        return wanted if self._many_due() else 1

    async def send_sharded(
        self,
        workers: int,
        on_done: Progress | None,
        builder: Builder,
        transport: Transport,
    ) -> SendStats:
        """Shard 1 sent here, shards 2..N by processes of their own (`digest.shards`), each
        with its share of the connections and rate; their outcomes summed."""
        works = [
            shards.ShardWork(
                config=shards.shard_config(self.config, workers, k - 1),
                topics=self.topics,
                now=self.now,
                shard=(k, workers),
                parent=os.getpid(),
                progress=on_done is not None,
            )
            for k in range(2, workers + 1)
        ]
        processes, channel = shards.start(_send_shard, works)
        mine = shards.split_smtp(self.config.smtp, workers, 0)
        own, others = await asyncio.gather(
            self.send((1, workers), on_done, builder=builder, transport=transport, smtp=mine),
            shards.collect(processes, channel, works, on_done),
        )
        for result in others:
            own.add(result.stats)
            self.timings["render"] = self.timings.get("render", 0.0) + result.build_seconds
            self.worker_peaks_mb.append(result.peak_mb)
        return own

    async def _alert(self, report: RunReport, transport: Transport | None) -> int:
        found = alerts(self.config, self.store, report.collected, report.send, self.now)
        return await send_alerts(self.config, self.store, found, self.clock(), transport)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on uvloop where it is installed: its sockets and pipes cost a sending
    process less CPU (bench/daily.py at 10,000 subscribers: 1.09 against 1.16 ms an email,
    727 against 700 emails a second)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _job_hook(on_done: Progress) -> Callable[[Job, Outcome], None]:
    """The sender's per-job hook for a run's (email, status) progress hook."""
    return lambda job, status: on_done(job.email, status)


def _send_shard(work: shards.ShardWork, events: shards.Events) -> shards.ShardResult:
    """A send worker's whole life (in its own process): its store, its pipeline, its shard."""
    with Store(work.config.database.path) as store:
        pipeline = Pipeline(
            work.config, store, work.topics, work.now, clock=lambda: datetime.now(UTC)
        )
        stats = run_async(pipeline.send(work.shard, events.done))
    return shards.ShardResult(stats, pipeline.timings.get("render", 0.0), shards.peak_mb())


@contextmanager
def settled_heap() -> Iterator[None]:
    """For the sending stage. What planning built (matchers, rank tables, the edition's index)
    lives until the run ends, so it is frozen out of the collector's sight, and full passes
    are made rarer. A 10,000-subscriber run spent ~0.95 s of its ~11 s of CPU in the
    collector, and 0.3-0.4 s with this. Both are undone on the way out."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(before[0], 10, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


class _Laps:
    """Adds the seconds since the last lap to a stage's timing."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.mark = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self.mark
        self.mark = now


async def send_confirmation(
    config: Config,
    renderer: Renderer,
    tokens: Tokens,
    sub: Subscriber,
    now: datetime,
    transport: Transport | None = None,
) -> None:
    """The double opt-in email, built by `digest.build` and sent at once.

    Raises:
        SendError: the server refused it (or the address cannot be mailed).
        TokenError, RenderError: our setup (secret, templates).
    """
    message = confirmation_message(config, renderer, tokens, sub, now)
    async with transport_for(config, transport) as opened:
        result = await opened.send(message)
    if not result.ok:
        raise SendError(f"confirmation to {sub.email} not sent: {result.reply}")
