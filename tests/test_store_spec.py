"""The store's specification: every delivery transition and refusal, subscribers and their
history, erasure, editions. Each test opens a real SQLite file (the `store` fixture) and states
one rule the rest of the code relies on."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest.errors import StoreError
from digest.models import Paper, Subscriber, SubscriberStatus
from digest.store import (
    BounceEvent,
    BounceKind,
    Delivery,
    DeliveryStatus,
    EditionWindow,
    Failure,
    Origin,
    PlannedDelivery,
    SignalKind,
    Store,
)

T0 = datetime(2026, 6, 12, 8, 0, tzinfo=UTC)
T1 = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
T2 = datetime(2026, 6, 12, 10, 0, tzinfo=UTC)
EDITION = "2026-06-12"


def _people(store: Store, *emails: str) -> list[Subscriber]:
    store.add_subscribers_bulk([Subscriber(e, status="active") for e in emails], T0, "test")
    found = [store.get_subscriber(e) for e in emails]
    assert all(found)
    return [s for s in found if s is not None]


def _plan(store: Store, subs: Sequence[Subscriber], edition: str = EDITION) -> list[int]:
    rows = [
        PlannedDelivery(s.id or 0, s.email, edition, DeliveryStatus.PENDING,
                        ("2606.00001", "2606.00002"), f"<{s.id}.{edition}@t>")
        for s in subs
    ]  # fmt: skip
    store.plan_deliveries(rows, T0)
    return [r.id for r in store.due_deliveries(T0) if r.edition == edition]


def _status(store: Store, sub: Subscriber, edition: str = EDITION) -> str:
    row = store.delivery(sub.id or 0, edition)
    assert row is not None
    return row.status.value


# The delivery log: pending -> sending -> sent | pending (retry) | failed; skipped


def test_planning_twice_keeps_the_first_plan(store: Store) -> None:
    (ada,) = _people(store, "ada@example.org")
    _plan(store, [ada])
    again = [
        PlannedDelivery(
            ada.id or 0, ada.email, EDITION, DeliveryStatus.PENDING, ("other",), "<x@t>"
        )
    ]
    assert store.plan_deliveries(again, T1) == 0
    row = store.delivery(ada.id or 0, EDITION)
    assert row is not None and row.papers == ("2606.00001", "2606.00002")


def test_a_delivery_reads_back_as_a_typed_record_of_every_column(store: Store) -> None:
    (ada,) = _people(store, "ada@example.org")
    planned = PlannedDelivery(
        ada.id or 0, ada.email, EDITION, DeliveryStatus.SKIPPED, (), "<m@t>",
        matched=0, new_papers=12, reply="no matching papers",
    )  # fmt: skip
    assert store.plan_deliveries([planned], T0) == 1
    assert store.delivery(ada.id or 0, EDITION) == Delivery(
        id=1, subscriber_id=ada.id or 0, email=ada.email, edition=EDITION,
        status=DeliveryStatus.SKIPPED, papers=(), attempts=0, last_reply="no matching papers",
        message_id="<m@t>", possible_duplicate=False, created_at=T0, updated_at=T0,
        sent_at=None, next_attempt_at=None, matched=0, new_papers=12, recommended=(),
    )  # fmt: skip


def test_delivery_statuses_keep_their_text_in_sql(store: Store) -> None:
    (ada,) = _people(store, "ada@example.org")
    (delivery,) = _plan(store, [ada])
    store.claim_delivery(delivery, T1)
    (text,) = store.db.execute("select status from deliveries").fetchone()
    assert text == "sending" == DeliveryStatus.SENDING and _status(store, ada) == "sending"


def test_a_delivery_is_claimed_once_and_only_while_pending(store: Store) -> None:
    (ada,) = _people(store, "ada@example.org")
    (delivery,) = _plan(store, [ada])
    assert store.claim_delivery(delivery, T1) is True
    assert store.claim_delivery(delivery, T1) is False, "a second worker gets nothing"
    assert _status(store, ada) == "sending"
    assert store.due_deliveries(T2) == [], "a claimed delivery is not due"


def test_sent_records_the_papers_so_they_never_go_to_that_person_again(store: Store) -> None:
    ada, bob = _people(store, "ada@example.org", "bob@example.org")
    first, _ = _plan(store, [ada, bob])
    store.claim_delivery(first, T1)
    store.mark_sent(first, ada.id or 0, ["2606.00001", "2606.00002"], EDITION, "250 ok", T1)
    assert _status(store, ada) == "sent"
    assert store.claim_delivery(first, T2) is False, "a sent delivery is never claimed again"
    sent = store.sent_among([ada.id or 0, bob.id or 0], ["2606.00001", "2606.00003"])
    assert sent == {ada.id: {"2606.00001"}}
    assert store.sent_counts(ada.id or 0) == (1, 2)


def test_a_retry_waits_for_its_time_and_keeps_its_reply(store: Store) -> None:
    (ada,) = _people(store, "ada@example.org")
    (delivery,) = _plan(store, [ada])
    store.claim_delivery(delivery, T0)
    store.mark_retry(delivery, "451 try later", next_attempt_at=T2, now=T0)
    assert store.due_deliveries(T1) == []
    (due,) = store.due_deliveries(T2)
    assert (due.status, due.last_reply, due.attempts) == (
        DeliveryStatus.PENDING,
        "451 try later",
        1,
    )


def test_an_interrupted_send_comes_back_flagged_as_a_possible_duplicate(store: Store) -> None:
    ada, bob = _people(store, "ada@example.org", "bob@example.org")
    first, second = _plan(store, [ada, bob])
    store.claim_delivery(first, T1)
    assert store.recover_interrupted(T2) == 1
    (again, untouched) = store.due_deliveries(T2)
    assert (again.id, again.possible_duplicate) == (first, True)
    assert (untouched.id, untouched.possible_duplicate) == (second, False)


def test_recovery_of_one_shard_leaves_the_other_shards_sends_alone(store: Store) -> None:
    subs = _people(store, "a@example.org", "b@example.org", "c@example.org", "d@example.org")
    for delivery in _plan(store, subs):
        store.claim_delivery(delivery, T1)
    odd = [s for s in subs if (s.id or 0) % 2 == 0]  # shard 1/2 holds ids with id % 2 == 0
    assert store.recover_interrupted(T2, shard=(1, 2)) == len(odd)
    assert sorted(_status(store, s) for s in subs) == ["pending"] * 2 + ["sending"] * 2
    assert {s.email for s in subs if _status(store, s) == "pending"} == {s.email for s in odd}


def test_a_message_we_could_not_build_stays_due_for_the_next_run(store: Store) -> None:
    (ada,) = _people(store, "ada@example.org")
    (delivery,) = _plan(store, [ada])
    store.claim_delivery(delivery, T1)
    store.mark_unbuilt(delivery, "DKIM key does not load", T1)
    (due,) = store.due_deliveries(T1)
    assert (due.id, due.last_reply) == (delivery, "DKIM key does not load")


def test_a_skipped_delivery_is_never_due(store: Store) -> None:
    (ada,) = _people(store, "ada@example.org")
    (delivery,) = _plan(store, [ada])
    store.mark_skipped(delivery, "unsubscribed before the send", T1)
    assert store.due_deliveries(T2) == [] and _status(store, ada) == "skipped"


def test_a_failure_that_is_not_a_bounce_counts_no_bounce(store: Store) -> None:
    (ada,) = _people(store, "ada@example.org")
    (delivery,) = _plan(store, [ada])
    store.mark_failed(delivery, "554 policy", T1)
    sub = store.get_subscriber(ada.id or 0)
    assert sub is not None and (sub.bounces, sub.status) == (0, "active")
    assert _status(store, ada) == "failed"


def test_bounces_up_to_the_limit_make_the_subscriber_bounced_once(store: Store) -> None:
    (ada,) = _people(store, "ada@example.org")
    became = []
    for day in ("2026-06-10", "2026-06-11", "2026-06-12"):
        (delivery,) = _plan(store, [ada], edition=day)
        became.append(store.mark_bounced(delivery, ada.id or 0, "550 no user", T1, bounce_limit=2))
    assert became == [False, True, False], "the change happens once, at the limit"
    sub = store.get_subscriber(ada.id or 0)
    assert sub is not None and (sub.bounces, sub.status) == (3, "bounced")
    events = [e["event"] for e in store.subscriber_events(ada.id or 0)]
    assert events.count("bounced") == 1


def test_due_deliveries_page_through_in_id_order(store: Store) -> None:
    subs = _people(store, *(f"p{n}@example.org" for n in range(7)))
    planned = _plan(store, subs)
    seen: list[int] = []
    after = 0
    while page := store.due_deliveries(T1, after_id=after, limit=3):
        seen += [r.id for r in page]
        after = seen[-1]
    assert seen == sorted(planned)


def test_delivery_counts_and_recent_failures_read_the_log(store: Store) -> None:
    ada, bob, zoe = _people(store, "ada@example.org", "bob@example.org", "zoe@example.org")
    first, second, _ = _plan(store, [ada, bob, zoe])
    store.claim_delivery(first, T1)
    store.mark_sent(first, ada.id or 0, ["2606.00001"], EDITION, "250 ok", T1)
    store.mark_failed(second, "550 no such user", T1)
    assert store.delivery_counts() == {"sent": 1, "failed": 1, "pending": 1}
    assert store.recent_failures() == [Failure("bob@example.org", EDITION, "550 no such user", T1)]


def test_an_alert_is_remembered_so_it_is_sent_once_per_period(store: Store) -> None:
    assert store.alert_sent_since("source:hf", T0) is False
    store.record_alert("source:hf", "hf failed 3 runs in a row", T1)
    assert store.alert_sent_since("source:hf", T0) is True
    assert store.alert_sent_since("source:hf", T2) is False


# Subscribers, their history, erasure and suppression


def test_an_address_is_one_subscriber_whatever_its_case(store: Store) -> None:
    store.add_subscriber(Subscriber("Ada@Example.org"), T0, "test")
    with pytest.raises(StoreError, match=r"ada@example\.org: already a subscriber"):
        store.add_subscriber(Subscriber("ada@example.org"), T0, "test")
    found = store.get_subscriber("ADA@EXAMPLE.ORG")
    assert found is not None and found.email == "Ada@Example.org"


def test_every_change_is_an_event_saying_what_changed_from_what(store: Store) -> None:
    sub = store.add_subscriber(Subscriber("ada@example.org", max_papers=10), T0, "cli")
    store.update_subscriber(sub.id or 0, {"max_papers": 20}, T1, "edited", "web")
    store.update_subscriber(sub.id or 0, {"max_papers": 20}, T2, "edited", "web")
    events = store.subscriber_events(sub.id or 0)
    assert [(e["event"], e["cause"]) for e in events] == [("created", "cli"), ("edited", "web")]
    assert events[1]["detail"] == {"max_papers": [10, 20]}, "no change records nothing"


def test_updating_someone_who_is_not_there_is_an_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no subscriber with id 99"):
        store.update_subscriber(99, {"max_papers": 5}, T0, "edited", "test")


def test_subscribers_stream_in_id_order_filtered_by_status(store: Store) -> None:
    store.add_subscribers_bulk(
        [Subscriber(f"p{n}@example.org", status=("active", "paused")[n % 2]) for n in range(5)],
        T0,
        "test",
    )
    active = [s.email for s in store.iter_subscribers(["active"], batch=2)]
    assert active == ["p0@example.org", "p2@example.org", "p4@example.org"]
    assert store.count_subscribers() == {"active": 3, "paused": 2}


def test_an_expired_pause_ends_and_a_running_one_does_not(store: Store) -> None:
    store.add_subscribers_bulk(
        [Subscriber("ended@example.org", status="paused", paused_until=T1),
         Subscriber("later@example.org", status="paused", paused_until=T2)],
        T0,
        "test",
    )  # fmt: skip
    assert store.resume_expired_pauses(T1) == ["ended@example.org"]
    later = store.get_subscriber("later@example.org")
    assert later is not None and later.status == "paused"


def test_erasure_removes_the_person_and_keeps_only_a_suppression_hash(store: Store) -> None:
    (ada,) = _people(store, "ada@example.org")
    (delivery,) = _plan(store, [ada])
    store.claim_delivery(delivery, T1)
    store.mark_sent(delivery, ada.id or 0, ["2606.00001"], EDITION, "250 ok", T1)
    store.erase_subscriber(ada.id or 0, "hash-of-ada", T2, "delete my data")
    assert store.get_subscriber("ada@example.org") is None
    assert store.subscriber_events(ada.id or 0) == []
    assert store.delivery(ada.id or 0, EDITION) is None
    assert store.is_suppressed("hash-of-ada")
    store.lift_suppression("hash-of-ada")
    assert not store.is_suppressed("hash-of-ada")


def test_an_erased_subscribers_id_is_never_given_to_someone_else(store: Store) -> None:
    (ada,) = _people(store, "ada@example.org")
    store.erase_subscriber(ada.id or 0, "h", T1, "delete my data")
    (bob,) = _people(store, "bob@example.org")
    assert (bob.id or 0) > (ada.id or 0)


def test_the_purge_removes_only_unconfirmed_signups_older_than_the_cut(store: Store) -> None:
    store.add_subscribers_bulk(
        [Subscriber("old@example.org", status="pending"),
         Subscriber("gone@example.org", status="unsubscribed")],
        T0,
        "test",
    )  # fmt: skip
    store.add_subscribers_bulk([Subscriber("new@example.org", status="pending")], T2, "test")
    assert store.purge_pending(older_than=T1, now=T2) == 1
    assert store.get_subscriber("old@example.org") is None
    assert store.get_subscriber("new@example.org") is not None
    assert store.get_subscriber("gone@example.org") is not None, "an unsubscribe is kept"


# Editions and papers


def test_an_editions_window_is_fixed_when_first_opened_and_the_next_starts_there(
    store: Store,
) -> None:
    start = datetime(2026, 6, 10, tzinfo=UTC)
    first = store.open_edition("2026-06-11", T0, default_start=start)
    assert first == EditionWindow("2026-06-11", start, T0, T0)
    assert store.open_edition("2026-06-11", T2, default_start=T1) == first, "re-runs agree"
    assert store.get_edition("2026-06-11") == first
    second = store.open_edition("2026-06-12", T1, default_start=start)
    assert (second.window_start, second.window_end) == (T0, T1)


def test_papers_first_seen_in_a_window_are_that_windows_papers(store: Store) -> None:
    store.upsert_papers("hf", [Paper("2606.00001", "Early")], T0)
    store.upsert_papers("hf", [Paper("2606.00002", "Late")], T2)
    store.upsert_papers("arxiv", [Paper("2606.00001", "Early, again")], T2)
    assert store.papers_between(T0, T1) == [], "a window is (start, end]: T0 is before it"
    assert [p.id for p in store.papers_between(datetime(2026, 6, 12, tzinfo=UTC), T1)] == [
        "2606.00001"
    ]
    assert [p.id for p in store.papers_between(T1, T2)] == ["2606.00002"]


def test_a_source_failure_is_counted_until_a_success_resets_it(store: Store) -> None:
    store.record_source_failure("hf", T0, "HTTP 500")
    store.record_source_failure("hf", T1, "HTTP 500")
    assert store.get_source_state("hf").failures == 2
    store.record_source_success("hf", T2, 5, url="https://h", etag='"v1"', last_modified=None)
    state = store.get_source_state("hf")
    assert (state.failures, state.last_success, state.etag, state.last_fetched) == (
        0, T2, '"v1"', 5)  # fmt: skip
    assert state.last_error == "HTTP 500", "the last error stays readable after a success"


def test_a_store_opened_twice_on_one_file_sees_the_same_rows(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as one:
        one.add_subscriber(Subscriber("ada@example.org"), T0, "test")
    with Store(tmp_path / "a.db") as two:
        assert two.get_subscriber("ada@example.org") is not None


def test_a_lock_held_past_the_busy_timeout_is_one_storage_error(tmp_path: Path) -> None:
    """Another process in a long write transaction: our write waits, then says what happened
    in one line naming the file, instead of an unexplained "database is locked"."""
    with Store(tmp_path / "a.db") as holder, Store(tmp_path / "a.db", busy_timeout_ms=50) as late:
        holder.db.conn.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match=r"a\.db: database is locked: another process"):
            late.add_subscriber(Subscriber("ada@example.org"), T0, "test")
        holder.db.conn.execute("ROLLBACK")
        late.add_subscriber(Subscriber("ada@example.org"), T0, "test")


# Times: aware datetimes in and out; inside the file, the ISO text in UTC written before


def test_a_naive_time_is_refused_naming_the_argument_and_writes_nothing(store: Store) -> None:
    naive = datetime(2026, 6, 12, 9, 0)
    with pytest.raises(ValueError, match=r"^now: naive datetime"):
        store.add_subscriber(Subscriber("ada@example.org"), naive, "test")
    assert store.get_subscriber("ada@example.org") is None
    (ada,) = _people(store, "ada@example.org")
    (delivery,) = _plan(store, [ada])
    with pytest.raises(ValueError, match=r"^next_attempt_at: naive datetime"):
        store.mark_retry(delivery, "451 later", next_attempt_at=naive, now=T1)
    with pytest.raises(ValueError, match=r"^older_than: naive datetime"):
        store.purge_pending(older_than=naive, now=T1)
    with pytest.raises(ValueError, match=r"^paused_until: naive datetime"):
        store.update_subscriber(ada.id or 0, {"paused_until": naive}, T1, "paused", "t")
    (due,) = store.due_deliveries(T0)
    assert (due.last_reply, due.next_attempt_at) == (None, None), "the retry wrote nothing"


def test_an_aware_time_in_another_zone_is_stored_as_the_same_instant_in_utc(
    store: Store,
) -> None:
    paris = datetime(2026, 6, 12, 11, 0, 0, 250000, tzinfo=ZoneInfo("Europe/Paris"))
    sub = store.add_subscriber(Subscriber("ada@example.org"), paris, "test")
    (text,) = store.db.execute("select created_at from subscribers").fetchone()
    assert text == "2026-06-12T09:00:00.250000+00:00"
    assert sub.created_at == paris and sub.created_at is not None
    assert sub.created_at.tzinfo is UTC and sub.created_at.hour == 9


def test_every_records_times_read_back_as_written(store: Store) -> None:
    t = [datetime(2026, 6, 12, 9, 0, 0, n * 1000, tzinfo=UTC) for n in range(8)]
    later = t[3].astimezone(timezone(timedelta(hours=-5)))  # another zone, the same instant
    ada = store.add_subscriber(Subscriber("ada@example.org", status="active"), t[0], "test")
    paused = store.update_subscriber(ada.id or 0, {"paused_until": later}, t[1], "paused", "t")
    assert (paused.created_at, paused.updated_at, paused.paused_until) == (t[0], t[1], t[3])
    assert store.subscriber_events(ada.id or 0)[-1]["at"] == t[1]
    store.upsert_papers("hf", [Paper("2606.00001", "A", published=later)], t[0])
    store.upsert_papers("hf", [Paper("2606.00001", "A", upvotes=3)], t[2])
    paper = store.get_paper("2606.00001")
    assert paper is not None
    assert (paper.published, paper.first_seen, paper.updated_at) == (t[3], t[0], t[2])
    assert store.first_seen_bounds() == (t[0], t[0])
    assert store.window_stamp(t[0] - timedelta(seconds=1), t[0]) == (1, t[2])
    opened = store.open_edition(EDITION, t[4], default_start=t[1])
    assert store.get_edition(EDITION) == EditionWindow(EDITION, t[1], t[4], t[4]) == opened
    assert store.latest_edition_end(before="2026-06-13") == t[4]
    store.record_source_failure("hf", t[1], "HTTP 500")
    store.record_source_success("arxiv", t[2], 1, None, None, None)
    arxiv, hf = store.all_source_states()  # by name
    assert (hf.last_attempt, hf.last_error_at, hf.last_success) == (t[1], t[1], None)
    assert (arxiv.last_attempt, arxiv.last_success) == (t[2], t[2])
    store.record_signals(ada.id or 0, ["2606.00001"], SignalKind.MORE, t[5], "web")
    assert store.reader_signals(ada.id or 0)[0].at == t[5]
    store.save_vectorizer(b"12345678", b"data", 1, t[6])
    vectorizer = store.latest_vectorizer()
    assert vectorizer is not None and vectorizer.fitted_at == t[6]
    event = BounceEvent(BounceKind.SOFT, Origin.MAILBOX, "m1", at=later, subscriber_id=ada.id)
    store.record_bounce_event(event)
    assert store.bounce_events(ada.id)[0].at == t[3]


def test_a_deliverys_times_read_back_as_written(store: Store) -> None:
    t = [datetime(2026, 6, 12, 9, 0, 0, n * 1000, tzinfo=UTC) for n in range(4)]
    ada, bob = _people(store, "ada@example.org", "bob@example.org")
    rows = [
        PlannedDelivery(s.id or 0, s.email, EDITION, DeliveryStatus.PENDING, ("2606.00001",),
                        f"<{s.id}@t>")
        for s in (ada, bob)
    ]  # fmt: skip
    store.plan_deliveries(rows, t[0])
    first, second = (r.id for r in store.due_deliveries(t[0]))
    store.claim_delivery(first, t[1])
    store.mark_retry(first, "451 later", next_attempt_at=t[3], now=t[2])
    retried = store.delivery(ada.id or 0, EDITION)
    assert retried is not None
    assert (retried.created_at, retried.updated_at, retried.next_attempt_at) == (t[0], t[2], t[3])
    assert retried.sent_at is None
    store.claim_delivery(first, t[3])
    store.mark_sent(first, ada.id or 0, ["2606.00001"], EDITION, "250 ok", t[3])
    sent = store.delivery(ada.id or 0, EDITION)
    assert sent is not None and (sent.sent_at, sent.updated_at) == (t[3], t[3])
    assert store.sent_deliveries(ada.id or 0, 1)[0]["sent_at"] == t[3]
    store.mark_failed(second, "554 no", t[1])
    assert store.recent_failures() == [Failure("bob@example.org", EDITION, "554 no", t[1])]


def test_rows_written_before_times_were_typed_read_back_as_the_same_times(
    tmp_path: Path,
) -> None:
    old = "2026-06-12T09:00:00+00:00"
    micro = "2026-06-12T09:00:00.123456+00:00"
    with Store(tmp_path / "old.db") as store:
        db = store.db
        for email, paused in (("ada@example.org", micro), ("bob@example.org", "2026-07-01"),
                              ("cy@example.org", "after the summer")):  # fmt: skip
            db.execute(
                "insert into subscribers (email, status, queries, topics, cadence, weekday, hour,"
                " tz, max_papers, bounces, paused_until, created_at, updated_at) values"
                " (?, 'paused', '[]', '[\"robotics\"]', 'daily', 'mon', 8, 'UTC', 10, 0, ?, ?, ?)",
                [email, paused, old, micro],
            )
        db.execute(
            "insert into editions (name, window_start, window_end, opened_at) values (?, ?, ?, ?)",
            [EDITION, old, micro, micro],
        )
        for pid, published in (("hf", "2026-05-30T00:00:00.000Z"), ("arxiv", old),
                               ("odd", "sometime in May")):  # fmt: skip
            db.execute(
                "insert into papers (id, title, published, first_seen, updated_at)"
                " values (?, 't', ?, ?, ?)",
                [pid, published, old, micro],
            )
    with Store(tmp_path / "old.db") as store:
        ada, bob, cy = (store.get_subscriber(n) for n in (1, 2, 3))
        assert ada is not None and bob is not None and cy is not None
        assert ada.status is SubscriberStatus.PAUSED
        assert ada.created_at == datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
        assert ada.paused_until == ada.updated_at == datetime(2026, 6, 12, 9, 0, 0, 123456, UTC)
        assert bob.paused_until == datetime(2026, 7, 1, tzinfo=UTC), "a date is midnight UTC"
        assert cy.paused_until is None, "text that is no time: paused with no end, as before"
        assert store.get_edition(EDITION) == EditionWindow(
            EDITION, ada.created_at, ada.paused_until, ada.paused_until
        )
        hf, arxiv, odd = (store.get_paper(p) for p in ("hf", "arxiv", "odd"))
        assert hf is not None and arxiv is not None and odd is not None
        assert hf.published == datetime(2026, 5, 30, tzinfo=UTC), "HF's own text, Z and all"
        assert (arxiv.published, arxiv.first_seen, arxiv.updated_at) == (
            ada.created_at,
            ada.created_at,
            ada.paused_until,
        )
        assert odd.published is None, "a date no reader understood: undated, as before"
        store.update_subscriber(1, {"max_papers": 20}, T2, "edited", "test")
        (kept,) = store.db.execute("select paused_until from subscribers where id = 1").fetchone()
        assert kept == micro, "a time read and written again is the same text"


def test_a_store_closed_for_a_fork_is_whole_again_after_and_never_inside_a_transaction(
    store: Store,
) -> None:
    """`closed_while` (a process is forked inside it, digest/ahead.py): the file is let go for
    the block, and afterwards the same store reads and writes as before; closing in the middle
    of a transaction would lose it, so it is refused."""
    [ada] = _people(store, "ada@example.org")
    [delivery] = _plan(store, [ada])
    with store.closed_while(), pytest.raises(Exception, match="closed"):
        store.delivery_counts()
    assert store.claim_delivery(delivery, T1) and _status(store, ada) == "sending"
    with (
        store.write(),
        pytest.raises(StoreError, match="inside a transaction"),
        store.closed_while(),
    ):
        pass
    assert store.delivery_counts() == {"sending": 1}
