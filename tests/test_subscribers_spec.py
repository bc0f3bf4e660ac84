"""Specification of digest/subscribers.py: every status move allowed and refused, each field's
bounds, query limits, address normalisation, suppression after erasure, and the CSV rules.

Complements tests/test_subscribers.py and tests/test_cli_spec.py (which cover the CLI and the
common paths); every test runs on a real SQLite file through the `store` fixture.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from digest import subscribers as subs
from digest.errors import SubscriberError
from digest.models import SUBSCRIBER_STATUSES, Subscriber, Topic
from digest.store import SignalKind, Store

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 6, 13, 9, 0, tzinfo=UTC)
TOPICS = {
    "robotics": Topic("robotics", "Robotics", "robot"),
    "agents": Topic("agents", "Agents", "agent"),
}
ADA = "ada@example.org"

# The promise, written out by hand (not read from the code): which moves set_status allows.
ALLOWED = {
    ("pending", "pending"), ("pending", "active"), ("pending", "bounced"),
    ("pending", "unsubscribed"),
    ("active", "active"), ("active", "paused"), ("active", "bounced"),
    ("active", "unsubscribed"),
    ("paused", "active"), ("paused", "paused"), ("paused", "bounced"),
    ("paused", "unsubscribed"),
    ("bounced", "pending"), ("bounced", "active"),
    ("bounced", "bounced"), ("bounced", "unsubscribed"),
    ("unsubscribed", "unsubscribed"),
}  # fmt: skip
MOVES = [(a, b) for a in SUBSCRIBER_STATUSES for b in SUBSCRIBER_STATUSES]


def add(store: Store, email: str = ADA, **kw: Any) -> Subscriber:
    kw.setdefault("queries", ["diffusion"])
    return subs.add(store, TOPICS, Subscriber(email=email, **kw), NOW)


def events(store: Store, sub: Subscriber) -> list[str]:
    return [e["event"] for e in store.subscriber_events(sub.id or 0)]


# ------------------------------------------------------------------ status transitions


@pytest.mark.parametrize(("start", "target"), [(a, b) for a, b in ALLOWED if a != b])
def test_an_allowed_status_move_is_made_and_logged_with_its_cause(
    store: Store, start: str, target: str
) -> None:
    sub = add(store, status=start)
    moved = subs.set_status(store, ADA, target, LATER, "spec")
    assert moved.status == target == subs.find(store, ADA).status
    last = store.subscriber_events(sub.id or 0)[-1]
    assert (last["event"], last["cause"], last["at"]) == (target, "spec", LATER)


@pytest.mark.parametrize("status", SUBSCRIBER_STATUSES)
def test_a_move_to_the_same_status_is_allowed_and_logs_nothing(store: Store, status: str) -> None:
    """A repeated one-click unsubscribe or bounce report must not fail nor fill the history."""
    sub = add(store, status=status)
    assert subs.set_status(store, ADA, status, LATER, "again").status == status
    assert events(store, sub) == ["created"]


@pytest.mark.parametrize(("start", "target"), [m for m in MOVES if m not in ALLOWED])
def test_a_refused_status_move_names_both_states_and_changes_nothing(
    store: Store, start: str, target: str
) -> None:
    """Above all: no operator move brings an unsubscribed person back (only their own opt-in)."""
    sub = add(store, status=start)
    before = events(store, sub)
    with pytest.raises(SubscriberError, match=f"cannot go from {start} to {target}"):
        subs.set_status(store, ADA, target, LATER, "spec")
    assert subs.find(store, ADA).status == start
    assert events(store, sub) == before


def test_making_someone_active_clears_their_bounce_count(store: Store) -> None:
    """Else the next single failure would stop them again."""
    sub = add(store, status="bounced")
    store.update_subscriber(sub.id or 0, {"bounces": 5}, NOW, "bounced", "spec")
    assert subs.set_status(store, ADA, "active", LATER, "fixed").bounces == 0


def test_a_pause_records_its_end_and_leaving_the_pause_clears_it(store: Store) -> None:
    add(store, status="active")
    paused = subs.set_status(store, ADA, "paused", NOW, "holiday", datetime(2026, 7, 1, tzinfo=UTC))
    assert paused.paused_until == datetime(2026, 7, 1, tzinfo=UTC)
    assert subs.set_status(store, ADA, "active", LATER, "back").paused_until is None


def test_set_status_on_an_unknown_address_says_so(store: Store) -> None:
    with pytest.raises(SubscriberError, match="no such subscriber"):
        subs.set_status(store, "nobody@example.org", "active", NOW, "spec")


# ------------------------------------------------------------------ signup and confirm


def test_signup_of_a_new_address_starts_double_opt_in(store: Store) -> None:
    sub, send = subs.signup(store, TOPICS, Subscriber("New@Example.ORG", topics=["agents"]), NOW)
    assert send and sub.status == "pending" and sub.email == "New@example.org"


@pytest.mark.parametrize("status", ["active", "paused"])
def test_signup_leaves_an_active_or_paused_subscriber_alone(store: Store, status: str) -> None:
    """A stranger typing their address must not change what they receive."""
    before = add(store, status=status, topics=["robotics"])
    sub, send = subs.signup(store, TOPICS, Subscriber(ADA, queries=["other"]), LATER)
    assert not send
    after = subs.find(store, ADA)
    assert (after.status, after.queries, after.topics) == (status, ["diffusion"], ["robotics"])
    assert events(store, sub) == events(store, before) == ["created"]


@pytest.mark.parametrize("status", ["pending", "bounced"])
def test_signup_of_a_pending_or_bounced_address_restarts_opt_in_with_new_preferences(
    store: Store, status: str
) -> None:
    add(store, status=status)
    sub, send = subs.signup(store, TOPICS, Subscriber(ADA, topics=["agents"], hour=6), LATER)
    assert send and sub.status == "pending"
    assert (sub.queries, sub.topics, sub.hour) == ([], ["agents"], 6)


def test_confirm_makes_a_pending_subscriber_active_and_twice_is_harmless(store: Store) -> None:
    sub = add(store)
    assert subs.confirm(store, sub.id or 0, LATER).status == "active"
    assert subs.confirm(store, sub.id or 0, LATER).status == "active"
    assert events(store, sub).count("active") == 1


def test_confirm_of_a_paused_subscriber_does_not_resume_them(store: Store) -> None:
    sub = add(store, status="paused")
    assert subs.confirm(store, sub.id or 0, LATER).status == "paused"


def test_an_old_link_confirmed_after_an_unsubscribe_is_refused(store: Store) -> None:
    sub = add(store)
    subs.set_status(store, ADA, "unsubscribed", NOW, "one-click")
    with pytest.raises(SubscriberError, match="unsubscribed after this link was sent"):
        subs.confirm(store, sub.id or 0, LATER)
    assert subs.find(store, ADA).status == "unsubscribed"


def test_coming_back_after_an_unsubscribe_clears_bounces_and_pause(store: Store) -> None:
    sub = add(store, status="paused")
    until = datetime(2026, 9, 1, tzinfo=UTC)
    store.update_subscriber(
        sub.id or 0, {"bounces": 2, "paused_until": until}, NOW, "paused", "spec"
    )
    subs.set_status(store, ADA, "unsubscribed", NOW, "one-click")
    subs.signup(store, TOPICS, Subscriber(ADA, topics=["robotics"]), NOW)
    assert subs.asked_to_come_back(store, sub.id or 0)
    back = subs.confirm(store, sub.id or 0, LATER)
    assert (back.status, back.bounces, back.paused_until) == ("active", 0, None)
    assert back.topics == ["robotics"], "the preferences of the new signup apply"


def test_a_request_to_come_back_is_void_once_they_unsubscribe_again(store: Store) -> None:
    sub = add(store, status="active")
    subs.set_status(store, ADA, "unsubscribed", NOW, "one-click")
    subs.signup(store, TOPICS, Subscriber(ADA, topics=["robotics"]), NOW)
    store.record_event(sub.id or 0, ADA, LATER, "unsubscribed", "again")
    assert not subs.asked_to_come_back(store, sub.id or 0)


def test_confirm_of_a_subscriber_that_is_gone_is_refused(store: Store) -> None:
    with pytest.raises(SubscriberError, match="no longer exists"):
        subs.confirm(store, 999, NOW)


# ------------------------------------------------------------------ erasure and suppression


def test_erasure_forgets_the_row_and_refuses_add_in_any_case(store: Store) -> None:
    add(store, status="active")
    subs.erase(store, ADA, NOW)
    assert store.get_subscriber(ADA) is None
    assert store.count_subscribers() == {}
    with pytest.raises(SubscriberError, match="its data was erased"):
        add(store, "ADA@EXAMPLE.ORG", status="active")


def test_the_suppression_hash_ignores_case_and_spacing_and_hides_the_address() -> None:
    one = subs.suppression_hash(ADA)
    assert one == subs.suppression_hash("  ADA@Example.org ")
    assert one != subs.suppression_hash("bob@example.org")
    assert "ada" not in one and len(one) == 64


def test_the_owner_confirming_a_new_signup_lifts_the_suppression(store: Store) -> None:
    add(store, status="active")
    subs.erase(store, ADA, NOW)
    sub, send = subs.signup(store, TOPICS, Subscriber(ADA, topics=["robotics"]), NOW)
    assert send and sub.status == "pending"
    subs.confirm(store, sub.id or 0, LATER)
    assert not store.is_suppressed(subs.suppression_hash(ADA))
    subs.remove(store, ADA, LATER)  # an active one is deleted, leaving no hash behind
    assert add(store, status="active").status == "active"


def test_removing_a_subscriber_who_never_unsubscribed_leaves_no_suppression(
    store: Store,
) -> None:
    add(store, status="active")
    subs.remove(store, ADA, NOW)
    assert not store.is_suppressed(subs.suppression_hash(ADA))


def test_erase_of_an_unknown_address_says_so_and_suppresses_nothing(store: Store) -> None:
    with pytest.raises(SubscriberError, match="no such subscriber"):
        subs.erase(store, "nobody@example.org", NOW)
    assert not store.is_suppressed(subs.suppression_hash("nobody@example.org"))


# ------------------------------------------------------------------ validation of each field


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        ("hour", 0, 0), ("hour", 23, 23),
        ("max_papers", 1, 1), ("max_papers", subs.MAX_PAPERS_LIMIT, subs.MAX_PAPERS_LIMIT),
        ("min_upvotes", 0, 0), ("min_upvotes", None, None),
        ("recommend", 0, 0), ("recommend", subs.MAX_RECOMMEND, subs.MAX_RECOMMEND),
        ("weekday", "SUNDAY", "sun"), ("weekday", " Tue ", "tue"),
        ("cadence", "weekly", "weekly"),
        ("tz", "America/Argentina/Buenos_Aires", "America/Argentina/Buenos_Aires"),
    ],
)  # fmt: skip
def test_each_field_accepts_its_bounds_and_stores_them_tidied(
    store: Store, field: str, value: Any, stored: Any
) -> None:
    add(store, **{field: value})
    assert getattr(subs.find(store, ADA), field) == stored


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("status", "deleted", "status 'deleted' is not one of"),
        ("cadence", "Daily", "cadence 'Daily' is not daily or weekly"),
        ("weekday", "", "weekday '' is not one of mon, tue"),
        ("hour", -1, "hour -1 is not between 0 and 23"),
        ("max_papers", subs.MAX_PAPERS_LIMIT + 1, "max papers 101 is not 1..100"),
        ("min_upvotes", -1, "min upvotes cannot be negative"),
        ("recommend", -1, r"recommend -1 is not 0\.\.50"),
        ("tz", "", "unknown time zone ''"),
        ("tz", "../../etc/passwd", "unknown time zone"),
        ("tz", "Europe", "unknown time zone 'Europe'"),
        ("tz", "x" * (subs.MAX_TZ_LENGTH + 1), "unknown time zone"),
    ],
)
def test_each_field_refuses_a_value_out_of_bounds_in_one_line(
    store: Store, field: str, value: Any, message: str
) -> None:
    with pytest.raises(SubscriberError, match=message) as info:
        add(store, **{field: value})
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{ADA}: ")
    assert store.count_subscribers() == {}


def test_repeated_and_blank_queries_and_topics_are_dropped_keeping_order(store: Store) -> None:
    sub = add(store, queries=[" b ", "a", "b", ""], topics=["agents", " robotics", "agents"])
    assert (sub.queries, sub.topics) == (["b", "a"], ["agents", "robotics"])


def test_topics_alone_or_recommendations_alone_are_enough(store: Store) -> None:
    assert add(store, queries=[], topics=["robotics"]).topics == ["robotics"]
    assert add(store, "bob@example.org", queries=[], recommend=1).recommend == 1


# ------------------------------------------------------------------ query limits


def test_the_query_limits_are_inclusive(store: Store) -> None:
    queries = [f"w{n}" for n in range(subs.MAX_QUERIES - 1)] + ["x" * subs.MAX_QUERY_LENGTH]
    assert len(add(store, queries=queries).queries) == subs.MAX_QUERIES


def test_the_query_limit_counts_distinct_queries(store: Store) -> None:
    queries = [f"w{n}" for n in range(subs.MAX_QUERIES)] + ["w0", "  "]
    assert len(add(store, queries=queries).queries) == subs.MAX_QUERIES


def test_an_oversized_query_is_refused_for_its_size_before_it_is_parsed(store: Store) -> None:
    """A form cannot make us parse an arbitrarily long text."""
    bad = "(" * (subs.MAX_QUERY_LENGTH + 1)
    with pytest.raises(SubscriberError, match="201 characters; at most 200") as info:
        add(store, queries=[bad])
    assert "position" not in str(info.value) and len(str(info.value)) < 200


def test_an_edit_is_held_to_the_same_query_limits(store: Store) -> None:
    add(store)
    many = [f"w{n}" for n in range(subs.MAX_QUERIES + 1)]
    with pytest.raises(SubscriberError, match="at most 20 queries"):
        subs.edit(store, TOPICS, ADA, {"queries": many}, LATER)
    assert subs.find(store, ADA).queries == ["diffusion"]


# ------------------------------------------------------------------ addresses


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("  ada@EXAMPLE.org  ", "ada@example.org"),
        ("Ada.Lovelace@Example.Org", "Ada.Lovelace@example.org"),
        ("ada@xn--bcher-kva.example", "ada@bücher.example"),
        ("ada@BÜCHER.example", "ada@bücher.example"),
    ],
)
def test_addresses_are_stored_with_the_domain_lowercased_and_in_unicode(
    store: Store, given: str, stored: str
) -> None:
    assert add(store, given).email == stored


def test_one_address_in_any_case_or_idna_form_is_one_subscriber(store: Store) -> None:
    add(store, "ada@bücher.example")
    assert subs.find(store, "ADA@XN--BCHER-KVA.EXAMPLE").email == "ada@bücher.example"
    with pytest.raises(SubscriberError, match="already a subscriber"):
        add(store, "ada@xn--bcher-kva.example")


@pytest.mark.parametrize("raw", ["ada@example.org\n", "\rada@example.org", "a\r\nb@example.org"])
def test_a_line_break_anywhere_in_an_address_is_refused(raw: str) -> None:
    with pytest.raises(SubscriberError, match="cannot contain a line break"):
        subs.normalize_email(raw)


@pytest.mark.parametrize("raw", ["", "ada", "ada@", "@example.org", "ada@@example.org"])
def test_an_address_without_a_usable_form_is_refused(raw: str) -> None:
    with pytest.raises(SubscriberError, match="is not a valid email address"):
        subs.normalize_email(raw)


# ------------------------------------------------------------------ edit


@pytest.mark.parametrize("field", ["status", "email", "bounces", "id"])
def test_edit_refuses_fields_that_have_their_own_path(store: Store, field: str) -> None:
    """Status moves go through set_status (with its rules); an address is a new subscriber."""
    add(store)
    with pytest.raises(SubscriberError, match=f"cannot edit '{field}' this way"):
        subs.edit(store, TOPICS, ADA, {field: "active"}, LATER)
    assert subs.find(store, ADA).status == "pending"


def test_edit_stores_the_tidied_values(store: Store) -> None:
    add(store)
    edited = subs.edit(store, TOPICS, ADA, {"weekday": "Friday", "queries": ["a", "a"]}, LATER)
    assert (edited.weekday, edited.queries) == ("fri", ["a"])


# ------------------------------------------------------------------ CSV


def test_an_import_without_an_email_column_or_with_an_unknown_one_is_refused(
    store: Store,
) -> None:
    with pytest.raises(SubscriberError, match="header with an email column"):
        subs.import_csv(store, TOPICS, "address,topics\nada@example.org,robotics\n", NOW)
    with pytest.raises(SubscriberError, match="unknown column 'colour'"):
        subs.import_csv(store, TOPICS, "email,colour\nada@example.org,red\n", NOW)
    with pytest.raises(SubscriberError, match="header with an email column"):
        subs.import_csv(store, TOPICS, "", NOW)
    assert store.count_subscribers() == {}


def test_an_import_uses_the_default_status_unless_a_row_gives_one(store: Store) -> None:
    text = "email,status,topics\na@example.org,,robotics\nb@example.org,paused,robotics\n"
    report = subs.import_csv(store, TOPICS, text, NOW, default_status="active")
    assert report.added == 2
    assert {s.email: s.status for s in store.iter_subscribers()} == {
        "a@example.org": "active",
        "b@example.org": "paused",
    }


def test_missing_cells_take_the_documented_defaults(store: Store) -> None:
    subs.import_csv(store, TOPICS, "email,topics\nada@example.org,robotics\n", NOW)
    sub = subs.find(store, ADA)
    assert (sub.status, sub.cadence, sub.weekday, sub.hour, sub.tz, sub.max_papers) == (
        "pending", "daily", "mon", 8, "UTC", 10,
    )  # fmt: skip
    assert (sub.min_upvotes, sub.recommend, sub.paused_until) == (None, None, None)


@pytest.mark.parametrize("cell", ["8.5", "-1", "eight", "\u0663", "1234567890"])
def test_an_import_refuses_a_number_that_is_not_plain_ascii_digits(store: Store, cell: str) -> None:
    text = f"email,topics,hour\nada@example.org,robotics,{cell}\n"
    with pytest.raises(SubscriberError, match=r"line 2: hour .* is not a whole number"):
        subs.import_csv(store, TOPICS, text, NOW)
    assert store.count_subscribers() == {}


def test_an_import_reports_at_most_three_faults_and_counts_the_rest(store: Store) -> None:
    rows = "".join(f"bad{n},robotics\n" for n in range(5))
    with pytest.raises(SubscriberError) as info:
        subs.import_csv(store, TOPICS, "email,topics\n" + rows, NOW)
    message = str(info.value)
    assert message.count("line ") == 3 and message.endswith("(and 2 more)")
    assert "\n" not in message


def test_an_address_repeated_in_another_case_is_a_duplicate_in_the_file(store: Store) -> None:
    text = "email,topics\nada@example.org,robotics\nADA@example.org,robotics\n"
    with pytest.raises(SubscriberError, match=r"line 3: ADA@example\.org appears twice"):
        subs.import_csv(store, TOPICS, text, NOW)


def test_an_import_does_not_change_an_existing_subscriber(store: Store) -> None:
    add(store, status="active", hour=7)
    text = "email,status,topics,hour\nada@example.org,paused,robotics,20\n"
    report = subs.import_csv(store, TOPICS, text, LATER)
    assert (report.added, report.existing) == (0, [ADA])
    sub = subs.find(store, ADA)
    assert (sub.status, sub.hour, sub.topics) == ("active", 7, [])


def test_export_with_statuses_writes_only_those(store: Store) -> None:
    add(store, "a@example.org", status="active")
    add(store, "p@example.org", status="paused")
    add(store, "u@example.org", status="unsubscribed")
    lines = subs.export_csv(store, ["active", "paused"]).splitlines()
    assert lines[0] == ",".join(subs.CSV_COLUMNS)
    assert sorted(line.split(",")[0] for line in lines[1:]) == ["a@example.org", "p@example.org"]


@pytest.mark.parametrize("cell", ["=1", "+1", "-1", "@x", "\tx", "\rx", "'x", "''x", "x", ""])
def test_restore_cell_undoes_defuse_cell_exactly(cell: str) -> None:
    defused = subs.defuse_cell(cell)
    assert not defused.startswith(subs.CSV_FORMULA_STARTS)
    assert subs.restore_cell(defused) == cell


# ------------------------------------------------------------------ what an email may repeat


def test_a_confirmation_repeats_topic_names_and_counts_queries_but_never_their_text() -> None:
    """Anyone can type an address into the form: the email must not carry a stranger's text."""
    sub = Subscriber(ADA, queries=["buy pills at evil.example", "x"], topics=["robotics"])
    shown = subs.for_confirmation(sub)
    assert shown.queries == []
    assert shown.topics == ["robotics", "2 search queries of your own"]
    one = subs.for_confirmation(Subscriber(ADA, queries=["x"]))
    assert one.topics == ["1 search query of your own"]
    assert subs.for_confirmation(Subscriber(ADA, topics=["agents"])).topics == ["agents"]


def test_feedback_on_an_unknown_paper_is_refused_and_records_nothing(store: Store) -> None:
    sub = add(store)
    with pytest.raises(SubscriberError, match="no such paper"):
        subs.record_feedback(store, ADA, "2606.99999", SignalKind.MORE, NOW, "web")
    assert store.reader_signals(sub.id or 0) == []
    with pytest.raises(SubscriberError, match="no such subscriber"):
        subs.record_feedback(store, "nobody@example.org", "x", SignalKind.MORE, NOW, "web")


def test_find_tolerates_case_and_spacing_but_not_a_bad_address(store: Store) -> None:
    add(store)
    assert subs.find(store, "  ADA@example.ORG ").email == ADA
    with pytest.raises(SubscriberError, match="is not a valid email address"):
        subs.find(store, "not an address")
