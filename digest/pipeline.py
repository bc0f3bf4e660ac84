"""The daily job: collect -> plan (match) -> render -> send, under a lock, idempotent per edition.

Planning writes one delivery row per (subscriber, edition) with the papers it will carry,
before anything is sent; sending works only from those rows. So a second run the same day
finds everything planned and sent, and a run after a crash sends exactly what is left.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from digest.collect import SourceReport, collect_async
from digest.config import Config
from digest.errors import ConfigError, RenderError, SendError, StoreError, TokenError
from digest.match import Edition, Matcher, edition_for, edition_papers, weekly_edition
from digest.message import Dkim, Outgoing, build_message, message_id_for
from digest.models import Subscriber, Topic
from digest.ops import alerts, load_dkim, send_alerts
from digest.render import RenderedEmail, Renderer
from digest.schedule import due_edition, edition_day
from digest.send import Job, Sender, SendStats, Transport, make_transport
from digest.store import Store
from digest.tokens import Tokens, subscriber_links

BATCH = 1000
# Failures of our own setup while building a message: the delivery waits for the fix.
OURS = (ConfigError, TokenError, RenderError)


@dataclass
class PlanReport:
    planned: int = 0
    no_matches: int = 0
    not_due: int = 0
    already: int = 0
    preview: list[tuple[str, str, list[str]]] = field(default_factory=list)


@dataclass
class RunReport:
    edition: str
    collected: list[SourceReport] = field(default_factory=list)
    plan: PlanReport = field(default_factory=PlanReport)
    send: SendStats = field(default_factory=SendStats)
    recovered: int = 0
    resumed: list[str] = field(default_factory=list)
    purged: int = 0
    alerts: int = 0
    seconds: float = 0.0

    @property
    def source_errors(self) -> list[str]:
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
        if s.possible_duplicates:
            parts.append(f"{s.possible_duplicates} possible duplicates (crash or lost reply)")
        if self.source_errors:
            parts.append(f"{len(self.source_errors)} source errors")
        if self.items_skipped:
            parts.append(f"{self.items_skipped} items skipped")
        return "digest run: " + ", ".join(parts) + f" in {self.seconds:.1f}s"


def digest_message(
    config: Config,
    sub: Subscriber,
    rendered: RenderedEmail,
    links: dict[str, str],
    message_id: str,
    now: datetime,
    dkim: Dkim | None = None,
) -> Outgoing:
    """A digest as it goes out: the list headers (RFC 2369/8058) and the subscriber's links."""
    mail = config.mail
    return build_message(
        sender=mail.from_,
        to=sub.email,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=message_id,
        date=now,
        list_id=mail.list_id,
        unsubscribe_url=links["unsubscribe"],
        unsubscribe_mailto=mail.unsubscribe_mailto or None,
        reply_to=mail.reply_to or None,
        dkim=dkim,
    )


def nothing_new_cause(reports: Sequence[SourceReport], day: date) -> str | None:
    failed = [r.source for r in reports if r.error]
    if failed:
        return f"a source failed today ({', '.join(failed)}); tomorrow's email will catch up"
    if day.weekday() >= 5:
        return "arXiv announces no new papers on weekends"
    if reports and all(r.fetched == 0 for r in reports):
        return "the sources listed nothing new today (an arXiv holiday?)"
    return None


class Pipeline:
    """One run's shared state: config, store, clock, the edition's matchers and renderer."""

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
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.store = store
        self.topics = topics
        self.now = now
        self.clock = clock or (lambda: now)
        self.sleep = sleep
        self.transport = transport
        self.renderer = renderer
        self.collected: list[SourceReport] = []
        self.timings: dict[str, float] = {}  # seconds per stage; "render" is within "send"
        self._matchers: dict[str, Matcher] = {}
        self._daily: Edition | None = None
        self._tokens: Tokens | None = None
        self._dkim = load_dkim(config)
        # Counts an email states, as planned by this run (rows keep them once the store can):
        # each edition's new papers, and matches before the cap where the cap cut.
        self.planned_new: dict[str, int] = {}
        self.capped: dict[tuple[int, str], int] = {}

    # plan ----------------------------------------------------------------------

    def daily(self, open_it: bool) -> Edition:
        if self._daily is None:
            # named by the run's date; its window ends now, after this run collected
            end = max(self.now, self.clock())
            self._daily = edition_for(self.store, self.now.date(), end, open_it=open_it)
        return self._daily

    def matcher(self, cadence: str) -> Matcher:
        if cadence not in self._matchers:
            edition = self._daily or self.daily(open_it=False)
            if cadence == "weekly":
                edition = weekly_edition(edition, self.now.date())
            papers = edition_papers(self.store, edition)
            self._matchers[cadence] = Matcher(papers, self.topics, self.now)
        return self._matchers[cadence]

    def plan(self, dry_run: bool = False) -> PlanReport:
        """Decide, in batches, who is due and which papers they get; record it (unless dry)."""
        report = PlanReport()
        self.daily(open_it=not dry_run)
        batch: list[Subscriber] = []
        for sub in self.store.iter_subscribers(["active"]):
            batch.append(sub)
            if len(batch) >= BATCH:
                self._plan_batch(batch, report, dry_run)
                batch = []
        if batch:
            self._plan_batch(batch, report, dry_run)
        return report

    def _plan_batch(self, batch: list[Subscriber], report: PlanReport, dry_run: bool) -> None:
        due = [(sub, key) for sub in batch if (key := due_edition(sub, self.now)) is not None]
        report.not_due += len(batch) - len(due)
        if not due:
            return
        done = self.store.delivered_editions(
            [s.id or 0 for s, _ in due], sorted({k for _, k in due})
        )
        todo = [(s, k) for s, k in due if (s.id, k) not in done]
        report.already += len(due) - len(todo)
        rows = []
        note = self.config.mail.no_matches == "note"
        for cadence in ("daily", "weekly"):
            group = [(s, k) for s, k in todo if s.cadence == cadence]
            if not group:
                continue
            matcher = self.matcher(cadence)
            ids = [p.id for p in matcher.papers]
            sent = self.store.sent_among([s.id or 0 for s, _ in group], ids)
            for sub, key in group:
                matches = matcher.for_subscriber(sub, sent.get(sub.id or 0, ()))
                papers = [m.paper.id for m in matches]
                self.planned_new[key] = len(ids)
                if matches.total > len(papers):
                    self.capped[(sub.id or 0, key)] = matches.total
                if not papers:
                    report.no_matches += 1
                if dry_run:
                    report.preview.append((sub.email, key, [m.paper.title for m in matches]))
                    continue
                status = "pending" if papers or note else "skipped"
                rows.append(
                    {
                        "subscriber_id": sub.id,
                        "email": sub.email,
                        "edition": key,
                        "status": status,
                        "papers": papers,
                        "matched": matches.total,
                        "new_papers": len(ids),
                        "reply": None if papers else "no matching papers",
                        "message_id": message_id_for(sub.id or 0, key, self.config.mail.from_),
                    }
                )
                report.planned += status == "pending"
        if rows:
            self.store.plan_deliveries(rows, self.clock().isoformat())

    # send ----------------------------------------------------------------------

    def tokens(self) -> Tokens:
        if self._tokens is None:
            self._tokens = Tokens(self.config.secret, self.config.old_secrets)
        return self._tokens

    def _renderer(self) -> Renderer:
        if self.renderer is None:
            self.renderer = Renderer(self.config, self.topics)
        return self.renderer

    def _matches_for(self, sub: Subscriber, paper_ids: Sequence[str]) -> tuple[list, int]:
        matcher = self.matcher(sub.cadence)
        if not matcher.has(paper_ids):
            # a delivery deferred from an earlier edition: index just its papers
            matcher = Matcher(self.store.papers_by_id(paper_ids), self.topics, self.now)
        return matcher.matches_for(sub, paper_ids), len(self.matcher(sub.cadence).papers)

    def build(self, row: dict[str, Any], sub: Subscriber) -> Outgoing | None:
        """Render and build one planned delivery's message (None: nothing to send)."""
        renderer = self._renderer()
        links = subscriber_links(self.tokens(), self.config.web.base_url, sub.id or 0, sub.email)
        day = edition_day(row["edition"])
        # The delivery's own edition's numbers, never today's: unknown ones are not stated.
        new = row.get("new_papers")
        new = self.planned_new.get(row["edition"]) if new is None else new
        if row["papers"]:
            matches, _ = self._matches_for(sub, row["papers"])
            matched = row.get("matched") or self.capped.get((sub.id or 0, row["edition"]))
            if matched is None and row["edition"] in self.planned_new:
                matched = len(row["papers"])  # planned by this run: the cap did not cut
            rendered: RenderedEmail | None = renderer.digest(
                sub, matches, row["edition"], day, new, links, matched=matched
            )
        else:
            cause = nothing_new_cause(self.collected, day)
            rendered = renderer.nothing_new(sub, row["edition"], day, new, cause, links)
            if rendered is None:
                return None
        return digest_message(
            self.config, sub, rendered, links, row["message_id"], self.clock(), self._dkim
        )

    def jobs(
        self, shard: tuple[int, int] | None = None, stats: SendStats | None = None
    ) -> Iterator[Job]:
        """Every due pending delivery, built into a message, streamed a page at a time.

        Building is guarded per delivery: a failure of our setup (secret, DKIM key, templates)
        leaves that delivery pending for the next run; anything else costs that one delivery
        (failed, no bounce). Both are counted in `stats` and named in its failures."""
        stats = stats if stats is not None else SendStats()
        last = 0
        now = self.clock().isoformat()
        while True:
            rows = self.store.due_deliveries(now, shard, after_id=last)
            if not rows:
                return
            last = rows[-1]["id"]
            people = self.store.subscribers_by_id([r["subscriber_id"] for r in rows])
            for row in rows:
                sub = people.get(row["subscriber_id"])
                if sub is None or sub.status != "active":
                    status = sub.status if sub else "removed"
                    self.store.mark_skipped(row["id"], f"subscriber is {status}", now)
                    continue
                started = time.perf_counter()
                try:
                    message = self.build(row, sub)
                except StoreError:
                    raise
                except OURS as ex:
                    reason = f"not built, kept for the next run: {ex}"
                    self.store.mark_unbuilt(row["id"], reason, now)
                    stats.deferred += 1
                    stats.failures.append(f"{sub.email}: {reason}")
                    continue
                except Exception as ex:  # one broken email must not stop everyone else's
                    detail = str(ex) if isinstance(ex, SendError) else f"{type(ex).__name__}: {ex}"
                    reason = f"not built: {detail}"
                    self.store.mark_failed(row["id"], sub.id or 0, reason, now, None)
                    stats.failed += 1
                    stats.failures.append(f"{sub.email}: {reason}")
                    continue
                self.timings["render"] = self.timings.get("render", 0.0) + (
                    time.perf_counter() - started
                )
                if message is None:
                    self.store.mark_skipped(row["id"], "no matching papers", now)
                    continue
                yield Job(
                    row["id"],
                    row["subscriber_id"],
                    row["email"],
                    row["edition"],
                    tuple(row["papers"]),
                    message,
                    row["attempts"],
                    bool(row["possible_duplicate"]),
                )

    async def send(
        self,
        shard: tuple[int, int] | None = None,
        on_done: Callable[[Job, str], None] | None = None,
    ) -> SendStats:
        transport = self.transport or make_transport(self.config)
        sender = Sender(self.store, transport, self.config.smtp, self.clock, self.sleep, on_done)

        async def stream() -> AsyncIterator[Job]:
            for job in self.jobs(shard, sender.stats):
                yield job
                await asyncio.sleep(0)  # let senders run while messages are being built

        try:
            concurrency = self.config.smtp.concurrency if self.config.smtp.host else 1
            return await sender.run(stream(), concurrency)
        finally:
            if self.transport is None:
                await transport.close()

    async def run(
        self,
        *,
        collect: bool = True,
        send: bool = True,
        dry_run: bool = False,
        shard: tuple[int, int] | None = None,
        on_done: Callable[[Job, str], None] | None = None,
    ) -> RunReport:
        """The whole daily job. Dry runs collect nothing, record nothing and send nothing."""
        started = time.perf_counter()
        report = RunReport(edition=self.now.date().isoformat())
        mark = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - mark
            mark = now

        if not dry_run:
            report.recovered = self.store.recover_interrupted(self.clock().isoformat())
            report.resumed = self.store.resume_expired_pauses(self.clock().isoformat())
            cutoff = self.now - timedelta(days=self.config.web.purge_pending_days)
            report.purged = self.store.purge_pending(cutoff.isoformat(), self.now.isoformat())
            if collect:
                # papers are stamped with the real time, even when catching up a past edition
                self.collected = await collect_async(self.config, self.store, self.clock())
                report.collected = self.collected
        lap("collect")
        report.plan = self.plan(dry_run=dry_run)
        lap("plan")
        if not dry_run and send:
            report.send = await self.send(shard, on_done)
        lap("send")
        if not dry_run:
            found = alerts(self.config, self.store, report.collected, report.send, self.now)
            report.alerts = await send_alerts(
                self.config, self.store, found, self.clock(), self.transport
            )
        report.seconds = time.perf_counter() - started
        return report


async def send_confirmation(
    config: Config,
    renderer: Renderer,
    tokens: Tokens,
    sub: Subscriber,
    now: datetime,
    transport: Transport | None = None,
) -> None:
    """The double opt-in email: one link, valid [web].confirm_hours. SendError if refused."""
    token = tokens.make("confirm", sub.id or 0, sub.email)
    url = f"{config.web.base_url.rstrip('/')}/c/{token}"
    rendered = renderer.confirm(sub.email, url, sub.topics, sub.queries)
    mail = config.mail
    message = build_message(
        sender=mail.from_,
        to=sub.email,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=f"<confirm.{sub.id}.{secrets.token_hex(6)}@{mail.list_id}>",
        date=now,
        reply_to=mail.reply_to or None,
    )
    own = transport is None
    transport = transport or make_transport(config)
    try:
        result = await transport.send(message)
    finally:
        if own:
            await transport.close()
    if not result.ok:
        raise SendError(f"confirmation to {sub.email} not sent: {result.reply}")
