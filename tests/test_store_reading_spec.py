"""The store's reading and bounce tables as a specification: the vectorizer store, reader
signals, followed authors, profiles, planned recommendations; the bounce log, processed keys,
counting windows and the status changes bounces cause. Each test opens a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.models import Paper, Subscriber, SubscriberStatus
from digest.store import (
    BounceDay,
    BounceEvent,
    BounceKind,
    DeliveryStatus,
    Origin,
    PlannedDelivery,
    PlannedRecommendation,
    SignalKind,
    Store,
    StoredProfile,
)

T0 = datetime(2026, 6, 12, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(hours=2)
V1 = b"\x01" * 8
V2 = b"\x02" * 8
ED = "2026-06-12"


def _person(store: Store, email: str = "ada@example.org", status: str = "active") -> int:
    store.add_subscribers_bulk([Subscriber(email, status=status)], T0, "test")
    found = store.get_subscriber(email)
    assert found is not None and found.id is not None
    return found.id


def _sent(store: Store, sub_id: int, email: str, edition: str, at: datetime) -> int:
    row = PlannedDelivery(sub_id, email, edition, DeliveryStatus.PENDING, ("p1",), f"<{edition}@t>")
    store.plan_deliveries([row], at)
    delivery = store.delivery(sub_id, edition)
    assert delivery is not None
    store.claim_delivery(delivery.id, at)
    store.mark_sent(delivery.id, sub_id, ["p1"], edition, "250 ok", at)
    return delivery.id


def _event(kind: BounceKind, key: str, at: datetime = T1, **fields: object) -> BounceEvent:
    return BounceEvent(kind, Origin.MAILBOX, key, at, **fields)  # type: ignore[arg-type]


# The vectorizer store


def test_before_the_first_fit_there_is_no_vectorizer(store: Store) -> None:
    assert store.latest_vectorizer() is None


def test_the_latest_fit_is_the_most_recently_fitted_one(store: Store) -> None:
    store.save_vectorizer(V2, b"later", 20, T2)
    store.save_vectorizer(V1, b"earlier", 10, T1)
    latest = store.latest_vectorizer()
    assert latest is not None
    assert (latest.version, latest.data, latest.papers, latest.fitted_at) == (V2, b"later", 20, T2)


def test_saving_the_same_version_again_replaces_it(store: Store) -> None:
    store.save_vectorizer(V1, b"first", 10, T1)
    store.save_vectorizer(V1, b"second", 11, T2)
    latest = store.latest_vectorizer()
    assert latest is not None and (latest.data, latest.papers) == (b"second", 11)


def test_vectors_are_read_back_per_fit_and_missing_papers_are_absent(store: Store) -> None:
    store.save_paper_vectors({"a": b"va1", "b": b"vb1"}, V1)
    store.save_paper_vectors({"a": b"va2"}, V2)
    assert store.paper_vectors(["a", "b", "c"], V1) == {"a": b"va1", "b": b"vb1"}
    assert store.paper_vectors(["a", "b"], V2) == {"a": b"va2"}
    assert store.paper_vectors([], V1) == {}


def test_a_repeated_id_in_a_vector_request_is_asked_once(store: Store) -> None:
    store.save_paper_vectors({"a": b"va"}, V1)
    assert store.paper_vectors(["a", "a", "a"], V1) == {"a": b"va"}


def test_saving_a_vector_again_under_the_same_fit_replaces_it(store: Store) -> None:
    store.save_paper_vectors({"a": b"old"}, V1)
    store.save_paper_vectors({"a": b"new"}, V1)
    store.save_paper_vectors({}, V1)
    assert store.paper_vectors(["a"], V1) == {"a": b"new"}


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.text(min_size=1, max_size=12), st.binary(max_size=64), max_size=8))
def test_any_vectors_round_trip_byte_for_byte(store: Store, vectors: dict[str, bytes]) -> None:
    store.save_paper_vectors(vectors, V1)
    assert store.paper_vectors(list(vectors), V1) == vectors


# Reader signals: one opinion per paper, the latest wins, a seed never overrides


def test_a_later_opinion_replaces_an_earlier_one(store: Store) -> None:
    ada = _person(store)
    store.record_signals(ada, ["p1"], SignalKind.MORE, T0, "email")
    store.record_signals(ada, ["p1"], SignalKind.LESS, T1, "web")
    (signal,) = store.reader_signals(ada)
    assert (signal.kind, signal.at, signal.source) == (SignalKind.LESS, T1, "web")


@pytest.mark.parametrize("said", [SignalKind.MORE, SignalKind.LESS])
def test_a_seed_never_overrides_more_or_less(store: Store, said: SignalKind) -> None:
    ada = _person(store)
    store.record_signals(ada, ["p1"], said, T0, "email")
    assert store.record_signals(ada, ["p1"], SignalKind.SEED, T1, "import") == 0
    assert store.signals_of([ada]) == {ada: {"p1": said}}


def test_more_or_less_overrides_a_seed(store: Store) -> None:
    ada = _person(store)
    store.record_signals(ada, ["p1"], SignalKind.SEED, T0, "import")
    store.record_signals(ada, ["p1"], SignalKind.LESS, T1, "web")
    assert store.signals_of([ada]) == {ada: {"p1": SignalKind.LESS}}


def test_recording_no_papers_changes_nothing_and_says_so(store: Store) -> None:
    ada = _person(store)
    assert store.record_signals(ada, [], SignalKind.MORE, T0, "web") == 0
    assert store.reader_signals(ada) == []


def test_a_paper_named_twice_in_one_call_is_one_signal(store: Store) -> None:
    ada = _person(store)
    assert store.record_signals(ada, ["p1", "p1", "p2"], SignalKind.SEED, T0, "x") == 2
    assert len(store.reader_signals(ada)) == 2


def test_signals_list_newest_first_with_the_stored_title_or_the_id(store: Store) -> None:
    ada = _person(store)
    store.upsert_papers("hf", [Paper("p1", "Attention Again")], T0)
    store.record_signals(ada, ["p1"], SignalKind.MORE, T0, "email")
    store.record_signals(ada, ["unknown"], SignalKind.LESS, T1, "email")
    listed = store.reader_signals(ada)
    assert [(s.paper_id, s.title) for s in listed] == [
        ("unknown", "unknown"),
        ("p1", "Attention Again"),
    ]


def test_undo_forgets_one_opinion_and_reports_whether_there_was_one(store: Store) -> None:
    ada = _person(store)
    store.record_signals(ada, ["p1", "p2"], SignalKind.MORE, T0, "email")
    assert store.remove_signal(ada, "p1") is True
    assert store.remove_signal(ada, "p1") is False
    assert store.signals_of([ada]) == {ada: {"p2": SignalKind.MORE}}


def test_signals_are_per_reader_and_readers_without_any_are_absent(store: Store) -> None:
    ada = _person(store)
    bob = _person(store, "bob@example.org")
    eve = _person(store, "eve@example.org")
    store.record_signals(ada, ["p1"], SignalKind.MORE, T0, "email")
    store.record_signals(bob, ["p1"], SignalKind.LESS, T0, "email")
    assert store.signals_of([ada, bob, eve]) == {
        ada: {"p1": SignalKind.MORE},
        bob: {"p1": SignalKind.LESS},
    }
    assert store.signals_of([]) == {}


# Followed authors


def test_author_names_are_tidied_and_a_repeat_is_ignored(store: Store) -> None:
    ada = _person(store)
    store.follow_authors(ada, ["  Yann   LeCun ", "Yann LeCun", "   ", "Ada Lovelace"], T0)
    assert store.followed_authors(ada) == ["Ada Lovelace", "Yann LeCun"]


def test_an_author_name_from_a_form_is_cut_to_200_characters(store: Store) -> None:
    ada = _person(store)
    store.follow_authors(ada, ["x" * 500], T0)
    assert store.followed_authors(ada) == ["x" * 200]


def test_unfollowing_takes_the_listed_name_and_an_unknown_name_changes_nothing(
    store: Store,
) -> None:
    ada = _person(store)
    store.follow_authors(ada, ["Ada Lovelace", "Alan Turing"], T0)
    store.unfollow_author(ada, "Nobody")
    store.unfollow_author(ada, "Alan Turing")
    assert store.followed_authors(ada) == ["Ada Lovelace"]


def test_followed_authors_of_a_batch_leave_out_readers_following_nobody(store: Store) -> None:
    ada = _person(store)
    bob = _person(store, "bob@example.org")
    store.follow_authors(ada, ["Z Last", "A First"], T0)
    assert store.followed_of([ada, bob]) == {ada: ["A First", "Z Last"]}


# Profiles and planned recommendations


def test_profiles_are_replaced_per_reader_with_their_fingerprint(store: Store) -> None:
    ada = _person(store)
    bob = _person(store, "bob@example.org")
    store.save_profiles({ada: StoredProfile(b"p-old", "f1")}, T0)
    store.save_profiles({ada: StoredProfile(b"p-new", "f2")}, T1)
    store.save_profiles({}, T2)
    assert store.reader_profiles([ada, bob]) == {ada: StoredProfile(b"p-new", "f2")}


def test_the_first_recommendation_plan_of_a_delivery_wins(store: Store) -> None:
    ada = _person(store)
    store.plan_deliveries(
        [PlannedDelivery(ada, "ada@example.org", ED, DeliveryStatus.PENDING, ("p1",), "<m@t>")],
        T0,
    )
    first = [PlannedRecommendation("p9", 0.123456, "like “p1”")]
    store.record_recommended({(ada, ED): first})
    store.record_recommended({(ada, ED): [PlannedRecommendation("p8", 0.9, "other")]})
    row = store.delivery(ada, ED)
    assert row is not None
    assert row.recommended == (PlannedRecommendation("p9", 0.1235, "like “p1”"),)


def test_a_delivery_planned_without_recommendations_has_none(store: Store) -> None:
    ada = _person(store)
    store.plan_deliveries(
        [PlannedDelivery(ada, "ada@example.org", ED, DeliveryStatus.PENDING, ("p1",), "<m@t>")],
        T0,
    )
    store.record_recommended({})
    row = store.delivery(ada, ED)
    assert row is not None and row.recommended == ()


def test_seeds_resolve_by_id_arxiv_id_or_doi_in_any_case_once_each(store: Store) -> None:
    store.upsert_papers(
        "hf",
        [
            Paper("2606.00001", "One", arxiv_id="2606.00001", doi="10.1/ABC"),
            Paper("hash-2", "Two", arxiv_id="2606.00002"),
        ],
        T0,
    )
    found = store.arxiv_and_doi_matches(["2606.00001", "2606.00002"], ["10.1/abc", "10.9/none"])
    assert found == ["2606.00001", "hash-2"]
    assert ("hash-2", "Two") in store.all_titles()


# Processed messages and the bounce log


def test_a_message_is_processed_once_the_second_reader_is_told_so(store: Store) -> None:
    assert store.is_processed("mbox:1") is False
    assert store.mark_processed("mbox:1", Origin.MAILBOX, T0, "hard", "counted") is True
    assert store.mark_processed("mbox:1", Origin.WEBHOOK, T1, "soft", "other") is False
    assert store.is_processed("mbox:1") is True


def test_bounce_event_texts_from_hostile_reports_are_cut_before_storing(store: Store) -> None:
    event = _event(
        BounceKind.HARD, "k" * 400, recipient="r" * 400, status="5.1.1" * 10,
        diagnostic="d" * 900, action="a" * 400,
    )  # fmt: skip
    store.record_bounce_event(event)
    (stored,) = store.bounce_events()
    assert (len(stored.recipient), len(stored.status), len(stored.diagnostic)) == (320, 20, 500)
    assert (len(stored.message_key), len(stored.action)) == (300, 300)


def test_the_bounce_log_reads_back_in_order_all_or_one_subscribers(store: Store) -> None:
    ada = _person(store)
    first = store.record_bounce_event(_event(BounceKind.SOFT, "a", subscriber_id=ada, edition=ED))
    second = store.record_bounce_event(_event(BounceKind.REFUSED, "b"))
    assert second > first
    assert [e.message_key for e in store.bounce_events()] == ["a", "b"]
    (mine,) = store.bounce_events(ada)
    assert (mine.kind, mine.origin, mine.edition, mine.at) == (
        BounceKind.SOFT,
        Origin.MAILBOX,
        ED,
        T1,
    )


def test_a_bounce_target_is_found_by_id_or_by_email_in_any_case(store: Store) -> None:
    ada = _person(store)
    by_email = store.bounce_target("ADA@Example.ORG")
    assert by_email is not None and by_email.id == ada
    assert store.bounce_target(ada) == by_email
    assert (by_email.status, by_email.bounces) == (SubscriberStatus.ACTIVE, 0)
    assert store.bounce_target("nobody@example.org") is None
    assert store.bounce_target(ada + 100) is None


def test_deliveries_are_found_by_token_message_id_and_latest_sent_address(store: Store) -> None:
    ada = _person(store)
    _sent(store, ada, "ada@example.org", "2026-06-11", T0)
    _sent(store, ada, "ada@example.org", ED, T1)
    by_token = store.delivery_of(ada, "2026-06-11")
    assert by_token is not None and by_token.status is DeliveryStatus.SENT
    by_id = store.delivery_by_message_id(f"<{ED}@t>")
    assert by_id is not None and by_id.edition == ED
    latest = store.latest_delivery_to("ADA@example.org")
    assert latest is not None and latest.edition == ED
    assert store.delivery_by_message_id("<none@t>") is None


def test_a_delivery_not_yet_sent_is_not_what_an_address_bounce_concerns(store: Store) -> None:
    ada = _person(store)
    store.plan_deliveries(
        [PlannedDelivery(ada, "ada@example.org", ED, DeliveryStatus.PENDING, ("p1",), "<m@t>")],
        T0,
    )
    assert store.latest_delivery_to("ada@example.org") is None


def test_a_hard_bounce_is_recorded_per_delivery_not_per_subscriber(store: Store) -> None:
    ada = _person(store)
    store.record_bounce_event(_event(BounceKind.HARD, "a", subscriber_id=ada, edition=ED))
    store.record_bounce_event(_event(BounceKind.SOFT, "b", subscriber_id=ada, edition="2026-06-13"))
    assert store.hard_bounce_recorded(ada, ED) is True
    assert store.hard_bounce_recorded(ada, "2026-06-13") is False


def test_soft_bounces_count_once_per_delivery_inside_the_window(store: Store) -> None:
    ada = _person(store)
    for key, edition, at in [
        ("a", ED, T1), ("b", ED, T2), ("c", "2026-06-13", T2), ("d", None, T2),
        ("e", "2026-06-01", T0 - timedelta(days=10)),
    ]:  # fmt: skip
        store.record_bounce_event(
            _event(BounceKind.SOFT, key, at, subscriber_id=ada, edition=edition)
        )
    store.record_bounce_event(_event(BounceKind.HARD, "f", T2, subscriber_id=ada, edition="x"))
    assert store.soft_bounces_since(ada, T0) == 3
    assert store.soft_bounces_since(ada, T0 - timedelta(days=30)) == 4
    assert store.soft_bounces_since(ada, T2 + timedelta(seconds=1)) == 0


def test_each_counted_hard_bounce_adds_one_and_returns_the_new_count(store: Store) -> None:
    ada = _person(store)
    assert [store.count_hard_bounce(ada) for _ in range(3)] == [1, 2, 3]
    target = store.bounce_target(ada)
    assert target is not None and target.bounces == 3
    assert store.count_hard_bounce(ada + 100) == 0


@pytest.mark.parametrize(
    ("before", "changed"),
    [("active", True), ("paused", True), ("pending", True), ("unsubscribed", False)],
)
def test_a_bounce_limit_stops_mailing_everyone_but_the_unsubscribed(
    store: Store, before: str, changed: bool
) -> None:
    ada = _person(store, status=before)
    assert store.set_bounced(ada, T1, "bounce", {"count": 3}) is changed
    expected = SubscriberStatus.BOUNCED if changed else SubscriberStatus(before)
    assert store.subscriber_status(ada) is expected


def test_bouncing_twice_changes_the_status_once(store: Store) -> None:
    ada = _person(store)
    assert store.set_bounced(ada, T1, "bounce", {}) is True
    assert store.set_bounced(ada, T2, "bounce", {}) is False
    assert store.set_bounced(ada + 100, T2, "bounce", {}) is False


@pytest.mark.parametrize("before", ["active", "paused", "pending", "bounced"])
def test_a_complaint_unsubscribes_at_once_whatever_the_status(store: Store, before: str) -> None:
    ada = _person(store, status=before)
    assert store.unsubscribe_reported(ada, T1, "complaint", {"report": "arf"}) is True
    assert store.subscriber_status(ada) is SubscriberStatus.UNSUBSCRIBED
    assert store.unsubscribe_reported(ada, T2, "complaint", {}) is False


# Per-day figures behind stats and alerts


def test_bounces_count_on_the_day_their_email_was_sent_once_per_delivery(store: Store) -> None:
    ada = _person(store)
    bob = _person(store, "bob@example.org")
    d1 = _sent(store, ada, "ada@example.org", ED, T0 - timedelta(days=1))
    _sent(store, bob, "bob@example.org", ED, T0)
    for key in ("a", "b"):  # two DSNs about the same delivery
        store.record_bounce_event(_event(BounceKind.HARD, key, T1, delivery_id=d1))
    store.record_bounce_event(_event(BounceKind.COMPLAINT, "c", T1, delivery_id=d1))
    store.record_bounce_event(_event(BounceKind.SOFT, "d", T1))  # unmatched: arrival day
    store.record_bounce_event(_event(BounceKind.UNSUBSCRIBE, "e", T1))
    days = store.bounce_days(7, T1)
    assert days == [
        BounceDay("2026-06-12", 1, 0, 1, 0, 1),
        BounceDay("2026-06-11", 1, 1, 0, 1, 0),
    ]
    assert (days[1].hard_rate, days[1].complaint_rate) == (1.0, 1.0)


def test_a_day_with_nothing_sent_has_no_rate(store: Store) -> None:
    store.record_bounce_event(_event(BounceKind.HARD, "a", T1))
    (day,) = store.bounce_days(3, T1)
    assert (day.sent, day.hard, day.hard_rate, day.complaint_rate) == (0, 1, None, None)


def test_days_older_than_the_window_are_left_out(store: Store) -> None:
    ada = _person(store)
    _sent(store, ada, "ada@example.org", "2026-05-01", T0 - timedelta(days=40))
    store.record_bounce_event(_event(BounceKind.HARD, "old", T0 - timedelta(days=40)))
    assert store.bounce_days(7, T1) == []
    assert [d.day for d in store.bounce_days(60, T1)] == ["2026-05-03"]


def test_a_counting_window_is_a_moment_whatever_zone_it_is_given_in(store: Store) -> None:
    ada = _person(store)
    store.record_bounce_event(_event(BounceKind.SOFT, "a", T1, subscriber_id=ada, edition=ED))
    paris = timezone(timedelta(hours=2))
    assert store.soft_bounces_since(ada, T1.astimezone(paris)) == 1
    assert store.soft_bounces_since(ada, (T1 + timedelta(seconds=1)).astimezone(paris)) == 0


def test_a_time_without_a_zone_is_refused_before_anything_is_stored(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.record_bounce_event(_event(BounceKind.HARD, "a", T1.replace(tzinfo=None)))
    with pytest.raises(ValueError, match="naive"):
        store.mark_processed("k", Origin.MAILBOX, T1.replace(tzinfo=None), "hard", "")
    assert store.bounce_events() == [] and store.is_processed("k") is False


def test_sends_and_bounces_are_dated_by_their_utc_day(store: Store) -> None:
    ada = _person(store)
    late = datetime(2026, 6, 12, 23, 30, tzinfo=timezone(timedelta(hours=-3)))  # 02:30 UTC
    _sent(store, ada, "ada@example.org", ED, late)
    assert [d.day for d in store.bounce_days(7, late)] == ["2026-06-13"]
