"""The delivery state machine's specification (digest.send.deliver): every transition
(pending -> sending -> sent | failed | pending), every refusal (a subscriber who left, a
delivery claimed elsewhere), retries with backoff on an injected sleep and clock, possible
duplicates, and what a run reports. The transport is a test's own (the `Transport` protocol
allows one): it answers each message with the `Result` the test scripts, so each rule is
stated exactly; the SMTP replies behind those results are specified in test_wire_spec.py.
The database is a real SQLite file."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from digest.config import SmtpConfig
from digest.errors import ConfigError, StoreError
from digest.message import Outgoing, build_message, message_id_for
from digest.models import Subscriber
from digest.send import (
    Job,
    OutboxTransport,
    RateLimit,
    Result,
    Sender,
    SendStats,
    SmtpPool,
    make_transport,
    transport_for,
)
from digest.store import Delivery, DeliveryStatus, PlannedDelivery, Store
from tests.conftest import make_config
from tests.smtp_server import Recorder, start

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
EDITION = "2026-11-24"
SENDER = "Paper Digest <digest@example.org>"
OK = Result(True, "250 2.0.0 queued as X1")
GREYLISTED = Result(False, "451 4.7.1 greylisted", recipient=True)
RELAY_DOWN = Result(False, "connection problem: ConnectionRefusedError")
NO_USER = Result(False, "550 5.1.1 no such user", permanent=True, recipient=True)
LOST = Result(False, "timed out after the end of DATA (maybe accepted)", ambiguous=True)
DISK_FULL = Result(False, "outbox var/outbox: No space left on device", later=True)


class Scripted:
    """Answers each message with the next result scripted for its recipient (OK once the
    script is used up); an Exception in the script is raised instead."""

    def __init__(self, **scripts: list[Result | Exception]) -> None:
        self.scripts: dict[str, deque[Result | Exception]] = defaultdict(deque)
        for local, items in scripts.items():
            self.scripts[f"{local}@example.org"].extend(items)
        self.sent: list[str] = []
        self.closed = False

    async def send(self, message: Outgoing) -> Result:
        self.sent.append(message.recipient)
        queue = self.scripts[message.recipient]
        answer = queue.popleft() if queue else OK
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def close(self) -> None:
        self.closed = True


def config(**kw: Any) -> SmtpConfig:
    values: dict[str, Any] = {"rate_per_second": 0.0, "max_attempts": 4, "backoff": 1.0}
    values.update(kw)
    return SmtpConfig(**values)


class Sleeps:
    """The injected sleep: records what it was asked to wait, waits nothing."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def people(store: Store, *locals_: str, papers: int = 2) -> list[Job]:
    """Active subscribers `local@example.org`, one planned delivery each; their jobs."""
    subs = [Subscriber(f"{n}@example.org", status="active", queries=["x"]) for n in locals_]
    store.add_subscribers_bulk(subs, NOW, "test")
    rows = []
    for local in locals_:
        sub = store.get_subscriber(f"{local}@example.org")
        assert sub is not None and sub.id is not None
        ids = tuple(f"2611.{sub.id:03d}{k}" for k in range(papers))
        rows.append(PlannedDelivery(sub.id, sub.email, EDITION, DeliveryStatus.PENDING, ids,
                                    message_id_for(sub.id, EDITION, SENDER)))  # fmt: skip
    store.plan_deliveries(rows, NOW)
    return [job_of(store, r.subscriber_id) for r in rows]


def job_of(store: Store, sub_id: int) -> Job:
    """The job for a subscriber's delivery as the store has it now (attempts, flag)."""
    row = store.delivery(sub_id, EDITION)
    assert row is not None and row.message_id is not None
    message = build_message(
        sender=SENDER, to=row.email, subject="Papers", text="t", html=None,
        message_id=row.message_id, date=NOW,
    )  # fmt: skip
    return Job(row.id, sub_id, row.email, EDITION, row.papers, message, row.attempts,
               row.possible_duplicate)  # fmt: skip


def deliver(store: Store, transport: Scripted, job: Job, **kw: Any) -> tuple[str, Sender]:
    sleeps = kw.pop("sleep", Sleeps())
    sender = Sender(store, transport, config(**kw), lambda: NOW, sleep=sleeps)
    return asyncio.run(sender.deliver(job)), sender


def row(store: Store, job: Job) -> Delivery:
    found = store.delivery(job.subscriber_id, EDITION)
    assert found is not None
    return found


# ---------------------------------------------------------------- one delivery


def test_an_accepted_message_is_sent_with_its_papers_committed_before_deliver_returns(
    store: Store,
) -> None:
    (ada,) = people(store, "ada", papers=3)
    status, sender = deliver(store, Scripted(), ada)
    assert status == "sent"
    got = row(store, ada)
    assert (got.status, got.last_reply, got.attempts) == ("sent", OK.reply, 1)
    assert got.sent_at == NOW and not got.possible_duplicate
    assert store.sent_counts(ada.subscriber_id) == (1, 3)
    assert (sender.stats.sent, sender.stats.failures) == (1, [])


@pytest.mark.parametrize("status", ["paused", "unsubscribed", "bounced", "pending"])
def test_a_subscriber_who_is_not_active_is_skipped_unsent_with_the_reason(
    store: Store, status: str
) -> None:
    (ada,) = people(store, "ada")
    store.update_subscriber(ada.subscriber_id, {"status": status}, NOW, status, "t")
    transport = Scripted()
    result, sender = deliver(store, transport, ada)
    assert result == "skipped" and transport.sent == []
    got = row(store, ada)
    assert (got.status, got.last_reply) == ("skipped", f"subscriber is {status}")
    assert (sender.stats.skipped, sender.stats.sent) == (1, 0)
    assert store.sent_counts(ada.subscriber_id) == (0, 0)


def test_a_subscriber_deleted_after_planning_is_never_mailed(store: Store) -> None:
    (ada,) = people(store, "ada")
    store.delete_subscriber(ada.subscriber_id, NOW, "t")
    transport = Scripted()
    assert deliver(store, transport, ada)[0] == "skipped"
    assert transport.sent == []


def test_a_delivery_claimed_by_another_worker_is_taken_and_not_sent(store: Store) -> None:
    (ada,) = people(store, "ada")
    assert store.claim_delivery(ada.delivery_id, NOW)
    transport = Scripted()
    result, sender = deliver(store, transport, ada)
    assert result == "taken" and transport.sent == []
    assert row(store, ada).status == "sending" and row(store, ada).attempts == 1
    assert sender.stats == SendStats()


def test_a_permanent_refusal_fails_the_delivery_and_counts_one_bounce(store: Store) -> None:
    (ada,) = people(store, "ada")
    transport = Scripted(ada=[NO_USER])
    result, sender = deliver(store, transport, ada, bounce_limit=3)
    assert result == "failed" and transport.sent == ["ada@example.org"]
    got = row(store, ada)
    assert (got.status, got.last_reply, got.attempts) == ("failed", NO_USER.reply, 1)
    sub = store.get_subscriber("ada@example.org")
    assert sub is not None and (sub.status, sub.bounces) == ("active", 1)
    assert (sender.stats.failed, sender.stats.bounced, sender.stats.retried) == (1, 0, 0)
    assert sender.stats.failures == [f"ada@example.org: {NO_USER.reply}"]
    assert store.sent_counts(ada.subscriber_id) == (0, 0)


def test_the_refusal_that_reaches_bounce_limit_makes_the_subscriber_bounced(
    store: Store,
) -> None:
    (ada,) = people(store, "ada")
    result, sender = deliver(store, Scripted(ada=[NO_USER]), ada, bounce_limit=1)
    assert result == "failed" and sender.stats.bounced == 1
    sub = store.get_subscriber("ada@example.org")
    assert sub is not None and sub.status == "bounced"


@pytest.mark.parametrize("failures", [1, 2, 3])
def test_transient_failures_are_retried_in_the_run_with_doubling_jittered_backoff(
    store: Store, failures: int
) -> None:
    (ada,) = people(store, "ada")
    sleeps = Sleeps()
    transport = Scripted(ada=[RELAY_DOWN] * failures)
    result, sender = deliver(store, transport, ada, max_attempts=4, backoff=2.0, sleep=sleeps)
    assert result == "sent" and len(transport.sent) == failures + 1
    assert sender.stats.retried == failures and sender.stats.failures == []
    assert len(sleeps.waits) == failures
    for attempt, wait in enumerate(sleeps.waits):
        assert 2.0 * 2**attempt * 0.5 <= wait < 2.0 * 2**attempt * 1.5, (attempt, wait)
    got = row(store, ada)
    assert (got.status, got.attempts) == ("sent", failures + 1)


def test_the_last_transient_failure_defers_the_delivery_to_a_later_run(store: Store) -> None:
    (ada,) = people(store, "ada")
    sleeps = Sleeps()
    transport = Scripted(ada=[RELAY_DOWN] * 9)
    result, sender = deliver(
        store, transport, ada, max_attempts=3, retry_later_minutes=45, sleep=sleeps
    )
    assert result == "deferred" and len(transport.sent) == 3
    assert len(sleeps.waits) == 2, "no wait after the last try"
    got = row(store, ada)
    assert (got.status, got.attempts) == ("pending", 3)
    assert got.next_attempt_at == NOW + timedelta(minutes=45)
    assert (sender.stats.retried, sender.stats.deferred, sender.stats.failed) == (2, 1, 0)
    assert sender.stats.failures == [f"ada@example.org: will retry later: {RELAY_DOWN.reply}"]
    assert [d.id for d in store.due_deliveries(NOW)] == []
    later = NOW + timedelta(minutes=45)
    assert [d.id for d in store.due_deliveries(later)] == [ada.delivery_id]


@pytest.mark.parametrize("max_attempts", [0, 1])
def test_at_least_one_try_is_made_whatever_max_attempts_says(
    store: Store, max_attempts: int
) -> None:
    (ada,) = people(store, "ada")
    transport = Scripted(ada=[RELAY_DOWN])
    result, _ = deliver(store, transport, ada, max_attempts=max_attempts)
    assert result == "deferred" and len(transport.sent) == 1


def test_a_failure_no_retry_can_help_within_the_run_defers_at_once(store: Store) -> None:
    (ada,) = people(store, "ada")
    sleeps = Sleeps()
    transport = Scripted(ada=[DISK_FULL])
    result, sender = deliver(store, transport, ada, max_attempts=4, sleep=sleeps)
    assert result == "deferred" and len(transport.sent) == 1 and sleeps.waits == []
    assert row(store, ada).next_attempt_at == NOW + timedelta(minutes=30)
    assert sender.stats.retried == 0


def test_a_4xx_about_the_address_fails_within_the_run_once_give_up_after_is_reached(
    store: Store,
) -> None:
    (ada,) = people(store, "ada")
    transport = Scripted(ada=[GREYLISTED] * 9)
    result, sender = deliver(store, transport, ada, max_attempts=4, give_up_after=2)
    assert result == "failed" and len(transport.sent) == 2
    assert sender.stats.failures == [f"ada@example.org: gave up after 2: {GREYLISTED.reply}"]
    assert (sender.stats.retried, sender.stats.failed, sender.stats.bounced) == (1, 1, 0)
    sub = store.get_subscriber("ada@example.org")
    assert sub is not None and sub.bounces == 0, "a gave-up 4xx is no bounce"


def test_a_reply_lost_after_data_is_flagged_once_and_the_message_sent_again(
    store: Store,
) -> None:
    (ada,) = people(store, "ada")
    transport = Scripted(ada=[LOST, LOST])
    result, sender = deliver(store, transport, ada, max_attempts=4)
    assert result == "sent" and len(transport.sent) == 3
    assert sender.stats.possible_duplicates == 1
    assert row(store, ada).possible_duplicate


def test_a_resend_after_a_crash_counts_as_one_possible_duplicate_even_if_lost_again(
    store: Store,
) -> None:
    (ada,) = people(store, "ada")
    store.claim_delivery(ada.delivery_id, NOW)
    assert store.recover_interrupted(NOW) == 1
    resend = job_of(store, ada.subscriber_id)
    assert resend.possible_duplicate
    result, sender = deliver(store, Scripted(ada=[LOST]), resend)
    assert result == "sent" and sender.stats.possible_duplicates == 1


def test_a_refusal_before_the_end_of_data_flags_nothing(store: Store) -> None:
    (ada,) = people(store, "ada")
    _, sender = deliver(store, Scripted(ada=[RELAY_DOWN, GREYLISTED]), ada)
    assert sender.stats.possible_duplicates == 0 and not row(store, ada).possible_duplicate


def test_on_done_hears_each_final_status_once(store: Store) -> None:
    jobs = people(store, "ada", "bob", "cy")
    store.update_subscriber(jobs[2].subscriber_id, {"status": "paused"}, NOW,
                            "paused", "t")  # fmt: skip
    heard: list[tuple[str, str]] = []
    sender = Sender(store, Scripted(bob=[NO_USER]), config(), lambda: NOW, sleep=Sleeps(),
                    on_done=lambda job, status: heard.append((job.email, status)))  # fmt: skip
    for job in jobs:
        asyncio.run(sender.deliver(job))
    assert heard == [("ada@example.org", "sent"), ("bob@example.org", "failed"),
                     ("cy@example.org", "skipped")]  # fmt: skip


def test_every_timestamp_comes_from_the_injected_clock(store: Store) -> None:
    (ada, bob) = people(store, "ada", "bob")
    later = NOW + timedelta(hours=3)
    sender = Sender(store, Scripted(bob=[RELAY_DOWN]), config(max_attempts=1), lambda: later)
    asyncio.run(sender.deliver(ada))
    asyncio.run(sender.deliver(bob))
    assert row(store, ada).sent_at == later
    assert row(store, bob).updated_at == later
    assert row(store, bob).next_attempt_at == later + timedelta(minutes=30)


# ---------------------------------------------------------------- a run


async def stream(items: list[Job]) -> AsyncIterator[Job]:
    for item in items:
        yield item


def run(store: Store, transport: Scripted, jobs: list[Job], concurrency: int = 3,
        group: int = 32, **kw: Any) -> tuple[SendStats, dict[str, str]]:  # fmt: skip
    heard: dict[str, str] = {}
    sender = Sender(store, transport, config(**kw), lambda: NOW, sleep=Sleeps(), group=group,
                    on_done=lambda job, status: heard.__setitem__(job.email, status))  # fmt: skip
    stats = asyncio.run(asyncio.wait_for(sender.run(stream(jobs), concurrency), 20))
    return stats, heard


OUTCOMES: dict[str, list[Result | Exception]] = {
    "ok": [],
    "bounce": [NO_USER],
    "later": [RELAY_DOWN] * 9,
    "retry": [RELAY_DOWN],
}


@pytest.mark.parametrize("group", [1, 3, 32])
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_run_ends_each_delivery_the_same_whatever_the_group_and_concurrency(
    store: Store, group: int, concurrency: int
) -> None:
    names = [f"{kind}{n}" for kind in OUTCOMES for n in range(3)]
    jobs = people(store, *names)
    transport = Scripted(**{name: list(OUTCOMES[name[:-1]]) for name in names})
    stats, heard = run(store, transport, jobs, concurrency, group, max_attempts=2)
    expected = {"ok": "sent", "bounce": "failed", "later": "deferred", "retry": "sent"}
    assert heard == {f"{n}@example.org": expected[n[:-1]] for n in names}
    assert (stats.sent, stats.failed, stats.deferred, stats.retried) == (6, 3, 3, 6)
    rows = {r.email: r.status.value for r in (row(store, j) for j in jobs)}
    db = {"sent": "sent", "failed": "failed", "deferred": "pending"}
    assert rows == {email: db[status] for email, status in heard.items()}


def test_a_run_skips_those_who_left_and_leaves_alone_those_taken_elsewhere(
    store: Store,
) -> None:
    jobs = people(store, "ada", "bob", "cy", "dee")
    store.update_subscriber(jobs[1].subscriber_id, {"status": "unsubscribed"},
                            NOW, "unsubscribed", "t")  # fmt: skip
    store.delete_subscriber(jobs[2].subscriber_id, NOW, "t")
    assert store.claim_delivery(jobs[3].delivery_id, NOW)
    transport = Scripted()
    stats, heard = run(store, transport, jobs)
    assert transport.sent == ["ada@example.org"]
    assert heard == {"ada@example.org": "sent", "bob@example.org": "skipped",
                     "cy@example.org": "taken", "dee@example.org": "taken"}  # fmt: skip
    assert (stats.sent, stats.skipped) == (1, 1)
    assert row(store, jobs[1]).last_reply == "subscriber is unsubscribed"
    assert row(store, jobs[3]).status == "sending"


def test_an_unexpected_error_costs_one_delivery_and_the_run_goes_on(store: Store) -> None:
    jobs = people(store, "ada", "bob", "cy")
    transport = Scripted(bob=[RuntimeError("template exploded")])
    stats, heard = run(store, transport, jobs, concurrency=1)
    assert (stats.sent, stats.errors) == (2, 1)
    assert stats.failures == ["bob@example.org: internal error: RuntimeError: template exploded"]
    assert "bob@example.org" not in heard
    assert row(store, jobs[1]).status == "sending", "recovered as a possible duplicate next run"
    assert store.recover_interrupted(NOW) == 1


def test_a_failing_database_stops_the_run_instead_of_hanging_it(store: Store) -> None:
    jobs = people(store, *(f"p{n}" for n in range(40)))
    transport = Scripted(p1=[StoreError("database is locked")])
    with pytest.raises(StoreError, match="locked"):
        run(store, transport, jobs, concurrency=2, group=5)
    assert len(transport.sent) < 40


def test_the_marks_of_a_run_are_all_committed_when_it_returns(store: Store) -> None:
    jobs = people(store, *(f"p{n}" for n in range(7)))
    stats, _ = run(store, Scripted(), jobs, concurrency=2, group=32)
    assert stats.sent == 7
    assert {row(store, j).status.value for j in jobs} == {"sent"}
    assert all(store.sent_counts(j.subscriber_id) == (1, 2) for j in jobs)


def test_an_empty_run_sends_nothing_and_reports_nothing(store: Store) -> None:
    stats, heard = run(store, Scripted(), [])
    assert (stats, heard) == (SendStats(), {})


# ---------------------------------------------------------------- the rate limit


@pytest.mark.parametrize("per_second", [0.0, -5.0])
def test_a_rate_of_zero_or_less_means_unlimited(per_second: float) -> None:
    sleeps = Sleeps()

    async def go() -> None:
        limit = RateLimit(per_second, sleeps)
        for _ in range(50):
            await limit.wait()

    asyncio.run(go())
    assert sleeps.waits == []


def test_the_first_message_never_waits_and_the_next_waits_its_interval() -> None:
    sleeps = Sleeps()

    async def go() -> None:
        limit = RateLimit(1.0, sleeps)
        await limit.wait()
        assert sleeps.waits == []
        await limit.wait()

    asyncio.run(go())
    assert len(sleeps.waits) == 1 and 0.5 < sleeps.waits[0] <= 1.0


def test_the_sender_paces_its_messages_with_the_configured_rate(store: Store) -> None:
    jobs = people(store, "ada", "bob", "cy")
    sleeps = Sleeps()
    sender = Sender(store, Scripted(), config(rate_per_second=1.0), lambda: NOW, sleep=sleeps)

    async def go() -> None:
        for job in jobs:
            await sender.deliver(job)

    asyncio.run(go())
    # the injected sleep lets no time pass: the third message's slot is 2 s after the first's
    assert len(sleeps.waits) == 2
    assert 0.5 < sleeps.waits[0] <= 1.0 and 1.5 < sleeps.waits[1] <= 2.0


# ---------------------------------------------------------------- which transport


def test_a_configured_smtp_host_means_the_pool_else_the_outbox(tmp_path: Path) -> None:
    with_host = make_config(tmp_path, [], smtp={"host": "mail.example.org"})
    assert isinstance(make_transport(with_host), SmtpPool)
    outbox = make_config(tmp_path, [], outbox={"path": str(tmp_path / "box")})
    made = make_transport(outbox)
    assert isinstance(made, OutboxTransport) and made.path == tmp_path / "box"
    assert {p.name for p in (tmp_path / "box").iterdir()} == {"tmp", "new", "cur"}


def test_an_unusable_outbox_is_refused_when_the_transport_is_made(tmp_path: Path) -> None:
    (tmp_path / "box").write_text("a file")
    config_ = make_config(tmp_path, [], outbox={"path": str(tmp_path / "box")})
    with pytest.raises(ConfigError, match=r"\[outbox\]\.path"):
        make_transport(config_)


def test_a_given_transport_is_used_and_left_open_for_its_owner(tmp_path: Path) -> None:
    given = Scripted()

    async def go() -> None:
        async with transport_for(make_config(tmp_path, []), given) as used:
            assert used is given

    asyncio.run(go())
    assert not given.closed


def test_a_made_transport_is_closed_even_when_the_block_fails(tmp_path: Path) -> None:
    recorder = QuitCounter()
    server = start(recorder)
    smtp = {"host": "127.0.0.1", "port": server.port, "security": "none", "timeout": 5.0}
    message = build_message(sender=SENDER, to="a@example.org", subject="s", text="t",
                            html=None, message_id="<q@x>", date=NOW)  # fmt: skip

    async def go() -> None:
        async with transport_for(make_config(tmp_path, [], smtp=smtp)) as used:
            assert (await used.send(message)).ok
            raise RuntimeError("the job failed")

    try:
        with pytest.raises(RuntimeError):
            asyncio.run(go())
    finally:
        server.stop()
    assert recorder.quits == 1 and len(recorder.received) == 1


class QuitCounter(Recorder):
    """Counts the QUITs it was sent: a closed pool says goodbye on its connection."""

    quits = 0

    async def handle_QUIT(self, server: object, session: object, envelope: object) -> str:
        self.quits += 1
        return "221 Bye"


def test_outbox_files_are_named_by_message_id_and_the_reply_names_the_file(
    tmp_path: Path,
) -> None:
    outbox = OutboxTransport(tmp_path / "box")

    def one(message_id: str) -> Outgoing:
        return build_message(sender=SENDER, to="a@example.org", subject="s", text="t",
                             html=None, message_id=message_id, date=NOW)  # fmt: skip

    async def go() -> list[Result]:
        return [await outbox.send(one(m)) for m in ("<1@x>", "<2@x>", "<1@x>")]

    results = asyncio.run(go())
    files = sorted((tmp_path / "box" / "new").iterdir())
    assert len(files) == 2 and all(r.ok for r in results)
    assert results[0].reply == results[2].reply != results[1].reply
    written = Path(results[1].reply.removeprefix("250 written to "))
    assert written in files and written.read_bytes() == one("<2@x>").data
    assert list((tmp_path / "box" / "tmp").iterdir()) == []
