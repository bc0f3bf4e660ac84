"""Subscribers: validation with clear messages, status changes logged, CSV in and out."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest import subscribers as subs
from digest.cli import app
from digest.config import load_config, load_topics
from digest.errors import SubscriberError
from digest.models import Subscriber, Topic
from digest.store import Store

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
FAR = datetime(2999, 1, 1, tzinfo=UTC)
LATER = datetime(2026, 6, 13, 9, 0, tzinfo=UTC)
TOPICS = load_topics(load_config(env={}).topics_path)
SHOW_KEYS = {
    "email", "status", "queries", "topics", "cadence", "weekday", "hour", "tz", "max_papers",
    "deliveries", "papers_sent",
}  # fmt: skip


def add(store: Store, email: str = "Ada@Example.ORG", **kw: object) -> Subscriber:
    kw.setdefault("queries", ["diffusion"])
    return subs.add(store, TOPICS, Subscriber(email=email, **kw), NOW)  # type: ignore[arg-type]


def test_add_normalises_and_starts_pending(store: Store) -> None:
    sub = add(store, topics=["llm-agents"], tz="Europe/Paris", cadence="weekly", weekday="Friday")
    assert sub.email == "Ada@example.org"
    assert (sub.status, sub.weekday, sub.tz) == ("pending", "fri", "Europe/Paris")
    assert [e["event"] for e in store.subscriber_events(sub.id)] == ["created"]


def test_an_address_is_unique_whatever_its_case(store: Store) -> None:
    add(store)
    with pytest.raises(SubscriberError, match="already a subscriber"):
        add(store, "ada@EXAMPLE.org")
    assert store.count_subscribers() == {"pending": 1}


@pytest.mark.parametrize(
    ("email", "fields", "message"),
    [
        ("not-an-address", {}, "is not a valid email address"),
        ("ada@example.org\r\nBcc: x@example.com", {}, "cannot contain a line break"),
        ("a@example.org", {"tz": "Europe/Pari"}, "unknown time zone 'Europe/Pari'"),
        ("a@example.org", {"hour": 24}, "hour 24 is not between 0 and 23"),
        ("a@example.org", {"cadence": "hourly"}, "cadence 'hourly' is not daily or weekly"),
        ("a@example.org", {"weekday": "someday"}, "weekday 'someday' is not one of"),
        ("a@example.org", {"max_papers": 0}, "max papers 0 is not 1..100"),
        ("a@example.org", {"topics": ["nope"]}, "unknown topic 'nope' (known: autonomous"),
        ("a@example.org", {"queries": ["diffusion AND (video"]}, "at position 14"),
        ("a@example.org", {"queries": ["  "]}, "give at least one query or topic"),
    ],
)
def test_bad_input_is_one_clear_line_and_stores_nothing(
    store: Store, email: str, fields: dict, message: str
) -> None:
    with pytest.raises(SubscriberError) as info:
        add(store, email, **fields)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert store.count_subscribers() == {}


def test_edits_are_validated_and_logged_with_what_changed(store: Store) -> None:
    sub = add(store)
    subs.edit(store, TOPICS, "ada@example.org", {"hour": 7, "topics": ["robotics"]}, LATER)
    with pytest.raises(SubscriberError, match="unknown time zone"):
        subs.edit(store, TOPICS, "ada@example.org", {"tz": "Mars/Base"}, LATER)
    subs.edit(store, TOPICS, "ada@example.org", {"hour": 7}, LATER)  # no change, no event
    events = store.subscriber_events(sub.id)
    assert [e["event"] for e in events] == ["created", "edited"]
    assert events[1]["detail"]["hour"] == [8, 7]
    assert events[1]["at"] == LATER


def test_status_changes_follow_the_rules_and_are_logged(store: Store) -> None:
    add(store)
    with pytest.raises(SubscriberError, match="cannot go from pending to paused"):
        subs.set_status(store, "ada@example.org", "paused", LATER, "test")
    subs.set_status(store, "ada@example.org", "active", LATER, "confirmed")
    subs.set_status(
        store, "ada@example.org", "paused", LATER, "holiday", datetime(2026, 7, 1, tzinfo=UTC)
    )
    paused = subs.find(store, "ada@example.org")
    assert (paused.status, paused.paused_until) == ("paused", datetime(2026, 7, 1, tzinfo=UTC))
    subs.set_status(store, "ada@example.org", "unsubscribed", LATER, "one-click")
    events = store.subscriber_events(paused.id)
    assert [(e["event"], e["cause"]) for e in events][1:] == [
        ("active", "confirmed"),
        ("paused", "holiday"),
        ("unsubscribed", "one-click"),
    ]


def test_remove_erases_but_the_removal_is_logged(store: Store) -> None:
    sub = add(store)
    store.mark_papers_sent(sub.id, ["2606.00001"], "2026-06-12", NOW)
    subs.remove(store, "ada@example.org", LATER)
    assert store.get_subscriber("ada@example.org") is None
    assert store.sent_counts(sub.id) == (0, 0)
    assert [e["event"] for e in store.subscriber_events(sub.id)] == ["created", "removed"]


def test_csv_round_trip_and_import_is_idempotent(store: Store) -> None:
    add(store, queries=['"world model" OR title:reasoning', "author:hinton"], min_upvotes=3)
    add(store, "bob@example.org", topics=["robotics", "llm-agents"], cadence="weekly")
    text = subs.export_csv(store)
    with Store(Path(store.path).with_name("other.db")) as other:
        report = subs.import_csv(other, TOPICS, text, LATER)
        assert report.added == 2
        assert subs.export_csv(other) == text
        again = subs.import_csv(other, TOPICS, text, LATER)
        assert (again.added, again.existing) == (0, ["Ada@example.org", "bob@example.org"])


def test_a_bad_csv_imports_nothing_and_names_the_lines(store: Store) -> None:
    text = (
        "email,topics,tz\n"
        "good@example.org,robotics,UTC\n"
        "bad-address,robotics,UTC\n"
        "c@example.org,robotics,Nowhere/City\n"
        "good@example.org,robotics,UTC\n"
    )
    with pytest.raises(SubscriberError) as info:
        subs.import_csv(store, TOPICS, text, NOW)
    message = str(info.value)
    assert message.startswith("CSV import: nothing imported; line 3: 'bad-address'")
    assert "line 4: c@example.org: unknown time zone" in message
    assert "line 5: good@example.org appears twice" in message
    assert store.count_subscribers() == {}


def test_cli_show_json_has_the_contract_keys(tmp_path: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(
        app, ["subscribers", "add", "ada@example.org", "-t", "robotics", "--hour", "7", "--active"]
    )
    assert added.exit_code == 0, added.output
    shown = runner.invoke(app, ["subscribers", "show", "ada@example.org", "--json"])
    data = json.loads(shown.stdout)
    assert set(data) >= SHOW_KEYS
    assert (data["status"], data["hour"], data["topics"]) == ("active", 7, ["robotics"])
    assert (data["deliveries"], data["papers_sent"]) == (0, 0)


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["subscribers", "add", "x@example.org", "--tz", "Nowhere"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: x@example.org: unknown time zone 'Nowhere'; use an IANA name such as Europe/Paris"
    ]
    missing = runner.invoke(app, ["subscribers", "pause", "who@example.org"])
    assert missing.exit_code == 1 and "no such subscriber" in missing.stderr


def test_cli_import_export_remove(tmp_path: Path) -> None:
    runner = CliRunner()
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("email,queries\na@example.org,diffusion\nb@example.org,gan\n")
    result = runner.invoke(app, ["subscribers", "import", str(csv_path), "--active"])
    assert result.exit_code == 0 and "Imported 2; 0 already subscribed." in result.stdout
    exported = runner.invoke(app, ["subscribers", "export"])
    assert exported.stdout.splitlines()[1].startswith("a@example.org,active,diffusion")
    removed = runner.invoke(app, ["subscribers", "remove", "a@example.org", "--yes"])
    assert removed.exit_code == 0
    listed = runner.invoke(app, ["subscribers", "list", "--json"])
    assert [json.loads(x)["email"] for x in listed.stdout.splitlines()] == ["b@example.org"]


def test_topics_file_errors_name_the_topic(tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text("[x]\nquery = 'a'\nlabel = 'b'\n")
    with pytest.raises(Exception, match=r"\[x\]: unknown key 'label'"):
        load_topics(path)
    assert TOPICS["robotics"] == Topic("robotics", "Robotics", TOPICS["robotics"].query)


def test_an_import_cannot_bring_back_an_erased_address(store: Store) -> None:
    add(store)
    subs.erase(store, "ada@example.org", LATER)
    with pytest.raises(
        SubscriberError, match=r"line 2: Ada@example\.org unsubscribed and its data was erased"
    ):
        subs.import_csv(store, TOPICS, "email,topics\nAda@example.org,robotics\n", LATER)
    assert store.count_subscribers() == {}


def test_an_unsubscribed_person_is_not_resumed_by_the_operator(store: Store) -> None:
    add(store)
    subs.set_status(store, "ada@example.org", "unsubscribed", LATER, "one-click")
    with pytest.raises(SubscriberError, match="cannot go from unsubscribed to active"):
        subs.set_status(store, "ada@example.org", "active", LATER, "operator")


def test_csv_keeps_pipes_inside_queries_and_pauses(store: Store) -> None:
    add(store, queries=['"C|C++" compiler', "rust"], status="paused")
    store.update_subscriber(
        1, {"paused_until": datetime(2026, 7, 1, tzinfo=UTC)}, LATER, "paused", "t"
    )
    text = subs.export_csv(store)
    with Store(Path(store.path).with_name("copy.db")) as other:
        subs.import_csv(other, TOPICS, text, LATER)
        copy = other.get_subscriber("ada@example.org")
        assert copy.queries == ['"C|C++" compiler', "rust"]
        assert (copy.status, copy.paused_until) == ("paused", datetime(2026, 7, 1, tzinfo=UTC))


def test_an_operator_added_pending_subscriber_gets_a_confirmation(tmp_path: Path) -> None:
    import email as email_lib
    import email.policy

    runner = CliRunner()
    config = tmp_path / "c.toml"
    config.write_text(
        f'[outbox]\npath = "{tmp_path / "outbox"}"\n[web]\nbase_url = "https://d.example.org"\n'
    )
    env = {"DIGEST_SECRET": "s3cret-for-tests"}
    result = runner.invoke(
        app, ["subscribers", "add", "ada@example.org", "-t", "robotics", "-c", str(config)], env=env
    )
    assert result.exit_code == 0, result.output
    assert "Confirmation emails sent: 1." in result.stdout
    (sent,) = (tmp_path / "outbox" / "new").iterdir()
    msg = email_lib.message_from_bytes(sent.read_bytes(), policy=email.policy.default)
    assert msg["To"] == "ada@example.org"
    assert "https://d.example.org/c/" in msg.get_body(("plain",)).get_content()
    again = runner.invoke(
        app, ["subscribers", "invite", "ada@example.org", "-c", str(config)], env=env
    )
    assert again.exit_code == 0 and len(list((tmp_path / "outbox" / "new").iterdir())) == 2


def test_cli_add_and_import_take_internationalised_addresses_normalised(tmp_path: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(
        app, ["subscribers", "add", "user@M\u00fcnchen.de", "-t", "robotics", "--active"]
    )
    assert added.exit_code == 0, added.output
    same = runner.invoke(
        app, ["subscribers", "add", "user@xn--mnchen-3ya.de", "-t", "robotics", "--active"]
    )
    assert same.exit_code == 1 and "already a subscriber" in same.stderr
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("email,topics\nj\u00f6rg@example.org,robotics\n", encoding="utf-8")
    imported = runner.invoke(app, ["subscribers", "import", str(csv_path), "--active"])
    assert imported.exit_code == 0, imported.output
    listed = runner.invoke(app, ["subscribers", "list", "--json"])
    emails = [json.loads(line)["email"] for line in listed.stdout.splitlines()]
    assert emails == ["user@m\u00fcnchen.de", "j\u00f6rg@example.org"]


@pytest.mark.parametrize(
    ("queries", "message"),
    [
        ([f"word{n}" for n in range(subs.MAX_QUERIES + 1)],
         f"21 queries; at most {subs.MAX_QUERIES} queries per subscriber"),
        (["x" * 500], f"has 500 characters; at most {subs.MAX_QUERY_LENGTH} characters per query"),
    ],
)  # fmt: skip
def test_query_limits_hold_for_the_cli_and_an_import(
    store: Store, tmp_path: Path, queries: list[str], message: str
) -> None:
    runner = CliRunner()
    flags = [arg for q in queries for arg in ("-q", q)]
    result = runner.invoke(app, ["subscribers", "add", "ada@example.org", "--active", *flags])
    assert result.exit_code == 1 and message in result.stderr
    cell = subs.LIST_SEPARATOR.join(queries)
    with pytest.raises(SubscriberError, match=f"line 2: ada@example.org: .*{message}"):
        subs.import_csv(store, TOPICS, f"email,queries\nada@example.org,{cell}\n", NOW)
    assert store.count_subscribers() == {}


def test_csv_export_defuses_formulas_and_import_gives_back_the_same_values(store: Store) -> None:
    queries = ['=HYPERLINK("http://evil.example")', "-survey diffusion", "@SUM(1)"]
    add(store, "=cmd@example.org", queries=queries)
    add(store, "+1@example.org", queries=["'quoted", "+diffusion"])
    add(store, "plain@example.org", queries=["''twice", "\tdiffusion"])
    text = subs.export_csv(store)
    for line in text.splitlines()[1:]:
        for cell in next(csv.reader([line])):
            assert not cell.startswith(subs.CSV_FORMULA_STARTS), cell
    assert text.splitlines()[1].startswith("'=cmd@example.org,pending,\"'=HYPERLINK")
    with Store(Path(store.path).with_name("copy.db")) as other:
        subs.import_csv(other, TOPICS, text, LATER)
        assert subs.export_csv(other) == text
        copies = {s.email: s.queries for s in other.iter_subscribers()}
    assert copies == {
        "=cmd@example.org": queries,
        "+1@example.org": ["'quoted", "+diffusion"],
        "plain@example.org": ["''twice", "diffusion"],
    }


def test_a_hand_written_leading_quote_survives_an_import(store: Store) -> None:
    subs.import_csv(store, TOPICS, "email,queries\nada@example.org,'quoted words\n", NOW)
    assert subs.find(store, "ada@example.org").queries == ["'quoted words"]


def test_an_unsubscribe_survives_a_signup_the_purge_and_an_import(store: Store) -> None:
    sub = add(store, status="active")
    subs.set_status(store, "ada@example.org", "unsubscribed", NOW, "one-click")
    again, send = subs.signup(
        store, TOPICS, Subscriber("ada@example.org", topics=["robotics"]), NOW
    )
    assert send and again.status == "unsubscribed"
    assert store.purge_pending(FAR, LATER) == 0
    report = subs.import_csv(
        store, TOPICS, "email,status,topics\nada@example.org,active,robotics\n", LATER
    )
    assert report.existing == ["ada@example.org"]
    assert subs.find(store, "ada@example.org").status == "unsubscribed"
    events = [e["event"] for e in store.subscriber_events(sub.id)]
    assert events[-1] == subs.RESUBSCRIBE_REQUESTED and "unsubscribed" in events
    assert subs.confirm(store, sub.id, LATER).status == "active"


def test_an_erased_address_signed_up_again_is_made_active_only_by_its_owner(
    store: Store,
) -> None:
    add(store, status="active")
    subs.erase(store, "ada@example.org", NOW)
    pending, _ = subs.signup(store, TOPICS, Subscriber("ada@example.org", topics=["robotics"]), NOW)
    with pytest.raises(SubscriberError, match="only its owner can make it active"):
        subs.set_status(store, "ada@example.org", "active", LATER, "resumed by operator")
    assert store.purge_pending(FAR, LATER) == 1  # never confirmed: the row goes,
    assert store.is_suppressed(subs.suppression_hash("ada@example.org"))  # the hash stays
    with pytest.raises(SubscriberError, match="its data was erased"):
        subs.import_csv(store, TOPICS, "email,topics\nada@example.org,robotics\n", LATER)
    assert pending.status == "pending"


def test_oversized_numbers_and_time_zones_are_one_short_line(store: Store) -> None:
    with pytest.raises(SubscriberError) as info:
        add(store, "a@example.org", tz="Europe/" + "x" * 5000)
    assert "unknown time zone" in str(info.value) and len(str(info.value)) < 200
    with pytest.raises(SubscriberError, match=r"hour \(a number far out of range\) is not between"):
        add(store, "a@example.org", hour=10**5000)
    with pytest.raises(SubscriberError, match=r"line 2: hour '9999.*' is not a whole number"):
        subs.import_csv(store, TOPICS, "email,queries,hour\na@example.org,x," + "9" * 5000, NOW)


def test_removing_an_unsubscribed_address_keeps_it_from_being_imported_again(
    store: Store,
) -> None:
    add(store, status="active")
    subs.set_status(store, "ada@example.org", "unsubscribed", NOW, "one-click")
    subs.remove(store, "ada@example.org", LATER)
    assert store.get_subscriber("ada@example.org") is None
    with pytest.raises(SubscriberError, match="only its owner can subscribe it again"):
        subs.import_csv(
            store, TOPICS, "email,status,topics\nada@example.org,active,robotics\n", LATER
        )
    with pytest.raises(SubscriberError, match="only its owner can subscribe it again"):
        add(store, status="active")


def test_the_recommend_count_survives_export_and_import_and_allows_no_query(
    store: Store, tmp_path: Path
) -> None:
    add(store, "ada@example.org", queries=["diffusion"], recommend=0)
    add(store, "seedy@example.org", queries=[], recommend=5)  # recommendations alone
    add(store, "bob@example.org", queries=["agent"])
    text = subs.export_csv(store)
    assert text.splitlines()[0].endswith(",recommend")
    with Store(tmp_path / "copy.db") as copy:
        subs.import_csv(copy, TOPICS, text, NOW)
        found = {s.email: s.recommend for s in copy.iter_subscribers()}
    assert found == {"ada@example.org": 0, "seedy@example.org": 5, "bob@example.org": None}
    with pytest.raises(SubscriberError, match=r"recommend 51 is not 0\.\.50"):
        add(store, "many@example.org", queries=["x"], recommend=51)
    with pytest.raises(SubscriberError, match="give at least one query or topic"):
        add(store, "none@example.org", queries=[], recommend=0)
