"""Planning, the first part of the daily job: who is due for which edition, and which papers
each of them gets, written as one delivery row per (subscriber, edition) before anything is
sent. Builds and sends nothing; sending works only from the rows written here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from digest.config import Config
from digest.edition import Cadence, Edition, daily_window, due_edition, weekly_window
from digest.match import MATCH_FIELDS, EditionMatchers
from digest.message import message_id_for
from digest.models import Subscriber, Topic
from digest.store import Store

BATCH = 250  # small pages keep the garbage collector's passes short
# What planning reads of a subscriber: matching's fields and the clock that makes them due.
PLAN_FIELDS = (*MATCH_FIELDS, "cadence", "weekday", "hour", "tz")


@dataclass
class PlanReport:
    """What planning decided, in numbers (and, for a dry run, who would get what)."""

    planned: int = 0
    no_matches: int = 0
    not_due: int = 0
    already: int = 0
    preview: list[tuple[str, str, list[str]]] = field(default_factory=list)


def run_matchers(
    store: Store,
    topics: Mapping[str, Topic],
    now: datetime,
    end: datetime,
    *,
    open_it: bool,
) -> EditionMatchers:
    """The run's editions, named by its date, with their windows fixed here, once: the daily
    edition's (opened and stored unless `open_it` is False, as in a dry run) ending at `end`,
    after this run collected, and the weekly edition's seven days up to it."""
    daily = daily_window(store, now.date(), end, open_it=open_it)
    windows = {Edition.daily(now.date()): daily, Edition.weekly(now.date()): weekly_window(daily)}
    return EditionMatchers(store, topics, now, windows)


def plan(
    config: Config,
    store: Store,
    matchers: EditionMatchers,
    now: datetime,
    written_at: datetime,
    *,
    dry_run: bool = False,
) -> PlanReport:
    """Decide, a batch of subscribers at a time, who is due now and which papers each gets;
    record it (unless dry). Already planned (subscriber, edition) pairs are left alone, so
    running twice plans nothing twice."""
    planner = _Planner(config, store, matchers, now, written_at, dry_run)
    batch: list[Subscriber] = []
    for sub in store.iter_subscribers(["active"], fields=PLAN_FIELDS):
        batch.append(sub)
        if len(batch) >= BATCH:
            planner.batch(batch)
            batch = []
    if batch:
        planner.batch(batch)
    return planner.report


@dataclass
class _Planner:
    config: Config
    store: Store
    matchers: EditionMatchers
    now: datetime
    written_at: datetime
    dry_run: bool
    report: PlanReport = field(default_factory=PlanReport)
    sent: dict[str, dict[int, set[str]]] = field(default_factory=dict)

    def batch(self, batch: Sequence[Subscriber]) -> None:
        todo = self._due(batch)
        rows: list[dict[str, Any]] = []
        for cadence in Cadence:
            group = [(s, e) for s, e in todo if e.cadence is cadence]
            if group:
                rows += self._match(Edition.of(cadence, self.now.date()), group)
        if rows:
            self.store.plan_deliveries(rows, self.written_at.isoformat())

    def _due(self, batch: Sequence[Subscriber]) -> list[tuple[Subscriber, Edition]]:
        """The batch's subscribers due now and not yet planned for their edition."""
        report = self.report
        due = [(s, e) for s in batch if (e := due_edition(s, self.now)) is not None]
        report.not_due += len(batch) - len(due)
        if not due:
            return []
        done = self.store.delivered_editions(
            [s.id or 0 for s, _ in due], sorted({e.name for _, e in due})
        )
        todo = [(s, e) for s, e in due if (s.id, e.name) not in done]
        report.already += len(due) - len(todo)
        return todo

    def _match(
        self, current: Edition, group: Sequence[tuple[Subscriber, Edition]]
    ) -> list[dict[str, Any]]:
        """One cadence's due subscribers against the run's edition of that cadence: the rows
        to write, each with the counts its email states (new papers, matches before the cap)."""
        matcher = self.matchers.of(current)
        ids = [p.id for p in matcher.papers]
        if current.name not in self.sent:  # one join for the edition, not one per batch
            self.sent[current.name] = self.store.sent_by_subscriber(ids)
        note = self.config.mail.no_matches == "note"
        rows = []
        found = matcher.for_subscribers([s for s, _ in group], self.sent[current.name])
        for (sub, edition), matches in zip(group, found, strict=True):
            papers = [m.paper.id for m in matches]
            self.report.no_matches += not papers
            if self.dry_run:
                titles = [m.paper.title for m in matches]
                self.report.preview.append((sub.email, edition.name, titles))
                continue
            status = "pending" if papers or note else "skipped"
            self.report.planned += status == "pending"
            rows.append(
                {
                    "subscriber_id": sub.id,
                    "email": sub.email,
                    "edition": edition.name,
                    "status": status,
                    "papers": papers,
                    "matched": matches.total,
                    "new_papers": len(ids),
                    "reply": None if papers else "no matching papers",
                    "message_id": message_id_for(
                        sub.id or 0, edition.name, self.config.mail.from_, self.config.secret
                    ),
                }
            )
        return rows
