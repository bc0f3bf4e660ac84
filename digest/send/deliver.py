"""The delivery state machine over one transport, and what it did in a run (`SendStats`).

Decides nothing about who gets what. For each planned delivery: check the subscriber is still
active, claim it (pending -> sending, committed before SMTP starts), send, then record the
server's answer: sent (with its papers, in one transaction), retried with backoff (4xx, network),
or failed (5xx, counted as a bounce). A delivery left `sending` by a crash, or whose reply to
the end of DATA was lost (timeout, disconnect), is sent again and flagged and counted as a possible
duplicate; nothing else can be sent twice.

Only replies about the subscriber's own address or message count towards `give_up_after` and
bounces; a failure on our side (connection, login, MAIL FROM, the outbox's disk) leaves the
delivery pending however long it lasts, so the run after the fix sends it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from digest.config import SmtpConfig
from digest.errors import StoreError
from digest.message import Outgoing
from digest.models import SubscriberStatus
from digest.send.rate import RateLimit, Sleep
from digest.send.transport import Result, Transport
from digest.store import Store
from digest.store.deliveries import SentMark

Clock = Callable[[], datetime]


@dataclass
class SendStats:
    """What sending did in one run, by outcome, and one line per failure."""

    sent: int = 0
    skipped: int = 0
    retried: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    possible_duplicates: int = 0
    errors: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, other: SendStats) -> None:
        """Count another sender's outcomes in (a run sent by several processes)."""
        self.sent += other.sent
        self.skipped += other.skipped
        self.retried += other.retried
        self.deferred += other.deferred
        self.failed += other.failed
        self.bounced += other.bounced
        self.possible_duplicates += other.possible_duplicates
        self.errors += other.errors
        self.failures += other.failures


@dataclass(frozen=True)
class Job:
    """One planned delivery, with its message built."""

    delivery_id: int
    subscriber_id: int
    email: str
    edition: str
    paper_ids: tuple[str, ...]
    message: Outgoing
    attempts: int = 0
    possible_duplicate: bool = False


class Outcome(StrEnum):
    """How one delivery ended in this run: what `deliver` returns and `on_done` hears (a str
    enum, so progress lines and worker messages keep their text). `retried` is never final."""

    SENT = "sent"
    SKIPPED = "skipped"  # the subscriber left (or was removed) before the send
    TAKEN = "taken"  # another worker claimed it first
    FAILED = "failed"
    RETRIED = "retried"
    DEFERRED = "deferred"  # pending again, due in a later run


GROUP = 32  # deliveries claimed, and "sent" marks committed, per transaction in `run`
GROUP_SECONDS = 0.5  # the longest a mark waits for its group (slow, rate-limited runs)


class Sender:
    """Drives deliveries through the state machine over one transport.

    In `run`, the delivery log is written in group commits: `group` deliveries are claimed in
    one transaction before any of them is sent, and "sent" marks are committed `group` at a
    time (or once the oldest has waited GROUP_SECONDS). So a SIGKILL leaves at most
    2 x group + 2 x concurrency deliveries `sending` (a group being queued, the queue, those
    on the wire, the uncommitted marks), all resent and flagged by the next run, and at most
    group + concurrency of them had really been accepted (the uncommitted marks, and the
    messages whose end of DATA had gone out)."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        config: SmtpConfig,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        on_done: Callable[[Job, Outcome], None] | None = None,
        group: int = GROUP,
    ) -> None:
        self.store = store
        self.transport = transport
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.rate = RateLimit(config.rate_per_second, sleep)
        self.stats = SendStats()
        self.on_done = on_done
        self.group = max(1, group)
        self._claimed: set[int] = set()  # claimed by a group claim, not yet sent
        self._marks: list[SentMark] = []  # accepted, not yet committed
        self._oldest_mark = 0.0  # time.monotonic() of the first uncommitted mark
        self._grouped = False  # inside `run`: marks wait for their group

    def flush(self) -> None:
        """Commit the buffered "sent" marks in one transaction. Should it fail, those stay
        `sending`, and the next run resends them as possible duplicates.

        Raises:
            StoreError: the database failed."""
        marks, self._marks = self._marks, []
        if marks:
            self.store.mark_sent_many(marks)

    def _mark_sent(self, job: Job, reply: str, now: datetime) -> None:
        if not self._marks:
            self._oldest_mark = time.monotonic()
        self._marks.append(
            (job.delivery_id, job.subscriber_id, job.paper_ids, job.edition, reply, now)
        )
        if (
            not self._grouped
            or len(self._marks) >= self.group
            or time.monotonic() - self._oldest_mark >= GROUP_SECONDS
        ):
            self.flush()

    def _now(self) -> datetime:
        return self.clock()

    async def deliver(self, job: Job) -> Outcome:
        """Take one delivery to its end for this run; returns the final status."""
        status = await self._deliver(job)
        if self.on_done:
            self.on_done(job, status)
        return status

    async def _deliver(self, job: Job) -> Outcome:
        """pending -> sending -> sent | failed | pending (retry now, or in a later run)."""
        attempts = job.attempts
        flagged = job.possible_duplicate
        tries = max(1, self.config.max_attempts)
        for attempt in range(tries):
            if attempt == 0 and job.delivery_id in self._claimed:
                self._claimed.discard(job.delivery_id)  # claimed with its group
            else:
                current = self.store.subscriber_status(job.subscriber_id)
                if current is not SubscriberStatus.ACTIVE:
                    self.store.mark_skipped(
                        job.delivery_id, f"subscriber is {current}", self._now()
                    )
                    self.stats.skipped += 1
                    return Outcome.SKIPPED
                if not self.store.claim_delivery(job.delivery_id, self._now()):
                    return Outcome.TAKEN
            attempts += 1
            if job.possible_duplicate and attempt == 0:
                self.stats.possible_duplicates += 1
            await self.rate.wait()
            result = await self.transport.send(job.message)
            now = self._now()
            if result.ok:
                self._mark_sent(job, result.reply, now)
                self.stats.sent += 1
                return Outcome.SENT
            if result.ambiguous and not flagged:
                flagged = True
                self.stats.possible_duplicates += 1
                self.store.flag_possible_duplicate(job.delivery_id, now)
            final = self._failed(job, result, attempts, now)
            if final is None:
                final = self._retry(job, result, now, last=result.later or attempt + 1 >= tries)
            if final is not Outcome.RETRIED:
                return final
            self.stats.retried += 1
            await self.sleep(self.config.backoff * (2**attempt) * (0.5 + random.random()))
        return Outcome.DEFERRED

    def _failed(self, job: Job, result: Result, attempts: int, now: datetime) -> Outcome | None:
        """A 5xx about the address or message ends the delivery as failed (a bounce), and so
        do `give_up_after` 4xx replies about it; anything else is not final (None)."""
        if result.permanent:
            became = self.store.mark_bounced(
                job.delivery_id, job.subscriber_id, result.reply, now, self.config.bounce_limit
            )
            self.stats.failed += 1
            self.stats.bounced += became
            self.stats.failures.append(f"{job.email}: {result.reply}")
            return Outcome.FAILED
        if result.recipient and attempts >= self.config.give_up_after:
            self.store.mark_failed(job.delivery_id, result.reply, now)
            self.stats.failed += 1
            self.stats.failures.append(f"{job.email}: gave up after {attempts}: {result.reply}")
            return Outcome.FAILED
        return None

    def _retry(self, job: Job, result: Result, now: datetime, *, last: bool) -> Outcome:
        """Back to pending: due again at once ("retried", in this run), or on the last try
        after `retry_later_minutes` ("deferred", for a later run)."""
        wait = timedelta(minutes=self.config.retry_later_minutes) if last else timedelta(0)
        self.store.mark_retry(job.delivery_id, result.reply, self.clock() + wait, now)
        if not last:
            return Outcome.RETRIED
        self.stats.deferred += 1
        self.stats.failures.append(f"{job.email}: will retry later: {result.reply}")
        return Outcome.DEFERRED

    async def run(self, jobs: AsyncIterator[Job], concurrency: int) -> SendStats:
        """Send from an async stream of jobs with `concurrency` senders at once, claiming and
        marking in group commits (see the class)."""
        queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=max(1, concurrency))

        async def worker() -> None:
            while (job := await queue.get()) is not None:
                try:
                    await self.deliver(job)
                except StoreError:
                    raise  # the database is unusable: stop; claimed ones are recovered next run
                except Exception as ex:  # one bad delivery must not stall the others
                    self.stats.errors += 1
                    self.stats.failures.append(
                        f"{job.email}: internal error: {type(ex).__name__}: {ex}"
                    )

        workers = [asyncio.create_task(worker()) for _ in range(max(1, concurrency))]

        async def produce() -> None:
            group: list[Job] = []
            async for job in jobs:
                group.append(job)
                if len(group) >= self.group:
                    await self._hand_over(group, queue)
                    group = []
            await self._hand_over(group, queue)
            for _ in workers:
                await queue.put(None)

        # gathered together: a worker stopped by a StoreError cannot leave the producer
        # waiting forever on a full queue
        tasks = [asyncio.create_task(produce()), *workers]
        self._grouped = True
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._grouped = False
            self.flush()
        return self.stats

    async def _hand_over(self, group: list[Job], queue: asyncio.Queue[Job | None]) -> None:
        """Claim a group in one transaction, then queue what was claimed for the senders."""
        if not group:
            return
        claimed, gone = self.store.claim_deliveries([j.delivery_id for j in group], self._now())
        self._claimed |= claimed
        for job in group:
            if job.delivery_id in claimed:
                await queue.put(job)
                continue
            status = Outcome.SKIPPED if job.delivery_id in gone else Outcome.TAKEN
            self.stats.skipped += status is Outcome.SKIPPED
            if self.on_done:
                self.on_done(job, status)
