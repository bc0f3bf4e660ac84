"""Bounces wired to subscribers (issue 14): `digest bounces` reads the Maildir, the policy
changes the right subscribers and nothing else, each message once; per-day health and alerts.

The first test runs a real private Postfix (tests/postfix.py) as the relay: it says 250 to
every message, then sends real DSNs for the ones it cannot deliver to the VERP sender, whose
Maildir `digest bounces` (the real command) reads. The others write report messages into a
Maildir themselves, from the recorded samples of tests/data/bounces/.
"""

from __future__ import annotations

import imaplib
import json
import os
import smtplib
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest.bounces.classify import Mailboxes, classify
from digest.bounces.health import bounce_alerts, bounce_rows, bounce_stats, bounce_stats_json
from digest.bounces.mailbox import Imap, ImapSecurity, ImapSettings
from digest.bounces.policy import Action, Policy, apply
from digest.bounces.process import apply_webhook, bounces_after_run, process_mailbox
from digest.bounces.verp import envelope_sender, make_token
from digest.bounces.webhooks import parse_postmark
from digest.cli import app
from digest.config import load_config
from digest.message import message_id_for
from digest.models import Subscriber
from digest.store import BounceKind, DeliveryStatus, Origin, PlannedDelivery, Store
from tests.postfix import (
    BOUNCE_ADDRESS,
    FULL_DOMAIN,
    REJECTING_DOMAIN,
    running_postfix,
    wait_until,
)
from tests.smtp_server import Recorder
from tests.test_bounces import imap_server  # noqa: F401  (a fixture: pymap over STARTTLS)

SAMPLES = Path(__file__).parent / "data" / "bounces"
SECRET = "wired-bounces-test-secret-0123456789abcdef"  # not the samples' secret
FROM = "Paper Digest <digest@digest.test>"
UNSUBSCRIBE = "unsubscribe@digest.test"
DAY1, DAY2 = "2026-09-23", "2026-09-24"
runner = CliRunner()

# The recorded Postfix DSN and what it names, replaced to make the reports each test needs.
DSN_TOKEN = b"7-20260924-rubkvh5uxsfbedvh"
DSN_RECIPIENT = b"alice@bounce.example.com"
DSN_MESSAGE_ID = b"<2026-09-24.7@digest.test>"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def dsn(
    recipient: str, token: str | None, message_id: str = "<none@digest.test>", status: str = ""
) -> bytes:
    """The real Postfix DSN, about `recipient`, sent back to `bounces+token@` (or to the bare
    bounce address when `token` is None)."""
    raw = sample("postfix_dsn_hard_5.1.1.eml")
    if token is None:
        raw = raw.replace(b"bounces+" + DSN_TOKEN + b"@", b"bounces@")
    else:
        raw = raw.replace(DSN_TOKEN, token.encode())
    raw = raw.replace(DSN_RECIPIENT, recipient.encode())
    raw = raw.replace(DSN_MESSAGE_ID, message_id.encode())
    if status:
        raw = raw.replace(b"Status: 5.1.1", f"Status: {status}".encode())
    return raw


@dataclass
class World:
    """A database with subscribers and sent deliveries, a Maildir, and a config naming both."""

    tmp: Path
    store: Store
    maildir: Path
    config: Path
    now: datetime

    def subscriber(self, email: str, status: str = "active") -> int:
        sub = self.store.add_subscriber(Subscriber(email, status=status), self.at(), "test")
        assert sub.id is not None
        return sub.id

    def at(self, days: float = 0) -> datetime:
        return self.now + timedelta(days=days)

    def sent(self, sid: int, edition: str, days: float = 0) -> str:
        """A delivery of `edition` to the subscriber, accepted by the relay; its Message-ID."""
        sub = self.store.get_subscriber(sid)
        assert sub is not None
        message_id = message_id_for(sid, edition, FROM)
        row = PlannedDelivery(sid, sub.email, edition, DeliveryStatus.PENDING, (), message_id)
        self.store.plan_deliveries([row], self.at(days))
        delivery = self.store.delivery(sid, edition)
        assert delivery is not None
        self.store.mark_sent(delivery.id, sid, [], edition, "250 ok", self.at(days))
        return message_id

    def token(self, sid: int, edition: str) -> str:
        return make_token(SECRET, sid, edition)

    def drop(self, name: str, data: bytes) -> None:
        """A message delivered into the bounce Maildir."""
        (self.maildir / "tmp" / name).write_bytes(data)
        os.rename(self.maildir / "tmp" / name, self.maildir / "new" / name)

    def bounces(self, *args: str) -> tuple[int, list[dict[str, object]], str]:
        """`digest bounces --json` on this world: exit code, one object per message, stderr."""
        result = runner.invoke(app, ["bounces", "--json", "--config", str(self.config), *args])
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        return result.exit_code, lines, result.stderr

    def state(self, sid: int) -> tuple[str, int]:
        sub = self.store.get_subscriber(sid)
        assert sub is not None
        return sub.status, sub.bounces


def write_world_config(
    tmp: Path,
    maildir: Path | str,
    address: str = BOUNCE_ADDRESS,
    name: str = "digest.toml",
    **b: object,
) -> Path:
    bounces = {"address": address, "maildir": str(maildir), "soft_limit": 3, "soft_days": 30, **b}
    text = (
        f'[database]\npath = "{tmp / "digest.db"}"\n'
        f'[mail]\nfrom = "{FROM}"\nunsubscribe_mailto = "{UNSUBSCRIBE}"\n'
        "[smtp]\nbounce_limit = 2\n[bounces]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in bounces.items())
    )
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    maildir = tmp_path / "bounces"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    config = write_world_config(tmp_path, maildir)
    with Store(tmp_path / "digest.db") as store:
        yield World(tmp_path, store, maildir, config, datetime.now(UTC).replace(microsecond=0))


# ---------------------------------------------------------------- a real Postfix relay


def relay(port: int, world: World, edition: str, people: dict[int, str]) -> None:
    """Send one edition through the relay with VERP senders: every message gets a 250."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for sid, email in people.items():
            message_id = world.sent(sid, edition)
            sender = envelope_sender(BOUNCE_ADDRESS, SECRET, sid, edition)
            message = (
                f"From: {FROM}\r\nTo: {email}\r\nSubject: Your papers for {edition}\r\n"
                f"Message-ID: {message_id}\r\n\r\nToday's papers.\r\n"
            )
            assert client.sendmail(sender, [email], message.encode()) == {}


def test_real_postfix_dsns_are_matched_to_their_deliveries_and_suppress_after_the_limit(
    world: World, downstream: tuple[Recorder, int], tmp_path: Path
) -> None:
    """Two editions to 8 subscribers through a real Postfix: 3 addresses it rejects after the
    250 (5.1.1), 1 it gives up on (4.2.2), 4 it relays. Every DSN is matched by its token to
    the right delivery; with bounce_limit 2 the 3 dead addresses are `bounced` after the
    second edition, not before; the soft one and the 4 good ones are untouched; a run after
    the last processes nothing."""
    recorder, port = downstream
    people = {
        world.subscriber(email): email
        for email in [f"ann@{REJECTING_DOMAIN}", "ben@good.example.com", f"cat@{REJECTING_DOMAIN}",
                      "dan@good.example.com", f"eve@{FULL_DOMAIN}", "fay@good.example.com",
                      f"gus@{REJECTING_DOMAIN}", "hal@good.example.com"]
    }  # fmt: skip
    dead = {sid for sid, email in people.items() if email.endswith(REJECTING_DOMAIN)}
    full = {sid for sid, email in people.items() if email.endswith(FULL_DOMAIN)}
    good = set(people) - dead - full
    matched: list[dict[str, object]] = []
    with running_postfix(port) as postfix:
        world.config = write_world_config(tmp_path, postfix.maildir)
        for round_, edition in enumerate((DAY1, DAY2), start=1):
            relay(postfix.port, world, edition, people)
            wait_until(
                lambda r=round_: len(postfix.dsns()) == 4 * r and len(recorder.received) == 4 * r,
                60, f"round {round_}: DSNs in the Maildir and relayed messages",
                lambda: postfix.log,
            )  # fmt: skip
            wait_until(postfix.queue_is_empty, 30, "an empty queue", lambda: postfix.log)
            code, outcomes, stderr = world.bounces()
            assert code == 0, stderr
            assert len(outcomes) == 4  # only this round's: the first round's were marked
            for o in outcomes:
                delivery = o["delivery"]
                assert isinstance(delivery, dict) and o["matched_by"] == "token"
                sid = delivery["subscriber_id"]
                assert isinstance(sid, int)
                assert (delivery["edition"], o["recipient"]) == (edition, people[sid])
                assert o["kind"] == ("soft_bounce" if sid in full else "hard_bounce")
            matched += outcomes
            expected = "active" if round_ == 1 else "bounced"
            assert {world.state(sid) for sid in dead} == {(expected, round_)}
        code, again, _ = world.bounces()
        assert (code, again) == (0, [])
    assert {world.state(sid) for sid in good | full} == {("active", 0)}
    events = world.store.bounce_events()
    false_positives = [e for e in events if e.subscriber_id not in dead | full]
    assert false_positives == []
    assert sorted((e.subscriber_id, e.edition) for e in events) == sorted(
        (sid, edition) for sid in dead | full for edition in (DAY1, DAY2)
    )
    suppressed = sum(world.state(sid)[0] == "bounced" for sid in people)
    n, m = 2 * len(people), 2 * len(dead | full)
    assert len(recorder.received) == n - m
    print(
        f"\nreal Postfix: N={n} deliveries accepted by the relay, M={m} bounced back as DSNs, "
        f"matched={len(matched)} to the right delivery, suppressed={suppressed} "
        f"(bounce_limit 2, {len(dead)} dead addresses), false positives={len(false_positives)}"
    )
    assert (len(matched), suppressed, len(false_positives)) == (m, len(dead), 0)


# ---------------------------------------------------------------- the policy


def test_a_complaint_unsubscribes_at_once_with_the_event(world: World) -> None:
    grace = world.subscriber("grace@example.com")
    world.sent(grace, DAY2)
    arf = sample("rfc5965_arf_abuse.eml").replace(
        b"13-20260924-i62dszumxw7u5gzp", world.token(grace, DAY2).encode()
    )
    world.drop("arf.host", arf)
    code, [outcome], _ = world.bounces()
    assert code == 0
    assert (outcome["kind"], outcome["action"]) == ("complaint", "unsubscribed")
    assert outcome["delivery"] == {"subscriber_id": grace, "edition": DAY2}
    assert world.state(grace) == ("unsubscribed", 0)
    [event] = [e for e in world.store.subscriber_events(grace) if e["event"] == "unsubscribed"]
    assert event["cause"] == "complaint (abuse)" and event["detail"]["report"] == "arf"


def test_the_token_decides_whom_a_report_concerns_not_the_address_written_in_it(
    world: World,
) -> None:
    """A genuine token for Ann in a DSN that names Bob's address: Ann's delivery bounced
    (our message to her was forwarded, or the report is garbled); Bob is not touched."""
    ann, bob = world.subscriber("ann@example.com"), world.subscriber("bob@example.com")
    world.sent(ann, DAY2)
    world.sent(bob, DAY2)
    world.drop("1.host", dsn("bob@example.com", world.token(ann, DAY2)))
    code, [outcome], _ = world.bounces()
    assert code == 0 and outcome["delivery"] == {"subscriber_id": ann, "edition": DAY2}
    assert (world.state(ann), world.state(bob)) == (("active", 1), ("active", 0))


def test_a_second_report_about_the_same_delivery_counts_once(world: World) -> None:
    ann = world.subscriber("ann@example.com")
    world.sent(ann, DAY2)
    world.drop("1.host", dsn("ann@example.com", world.token(ann, DAY2)))
    world.drop("2.host", dsn("ann@example.com", world.token(ann, DAY2)))
    _, outcomes, _ = world.bounces()
    assert [o["action"] for o in outcomes] == ["bounce counted", "already counted"]
    assert world.state(ann) == ("active", 1)


def test_soft_bounces_make_a_subscriber_bounced_only_n_within_m_days(world: World) -> None:
    """soft_limit 3 within soft_days 30: three soft bounces spread over 61 days do nothing;
    a fourth, the third within 30 days, makes the subscriber `bounced`."""
    eve = world.subscriber("eve@example.com")
    store, policy = world.store, Policy(bounce_limit=2, soft_limit=3, soft_days=30)
    mailboxes = Mailboxes(BOUNCE_ADDRESS, UNSUBSCRIBE, SECRET)
    editions = ["2026-06-01", "2026-07-20", "2026-08-01", "2026-08-10"]
    start = datetime(2026, 6, 1, 9, tzinfo=UTC)
    offsets = [0, 49, 61, 70]
    actions = []
    for edition, offset in zip(editions, offsets, strict=True):
        world.sent(eve, edition)
        report = classify(dsn("eve@example.com", world.token(eve, edition), status="4.2.2"),
                          mailboxes)  # fmt: skip
        when = start + timedelta(days=offset)
        actions.append(apply(store, report, f"k{offset}", Origin.MAILBOX, when, policy).action)
    assert actions == [Action.SOFT_COUNTED] * 3 + [Action.BOUNCED]
    assert world.state(eve) == ("bounced", 0)


def test_an_unsubscribe_request_by_email_unsubscribes_its_sender_when_it_is_the_subscriber(
    world: World,
) -> None:
    heidi, ivan = world.subscriber("heidi@example.com"), world.subscriber("ivan@example.com")
    judy = world.subscriber("judy@example.com")
    with_token = sample("unsubscribe_request_with_token.eml").replace(
        b"15-20260924-d4dh4u6q6umxuoex", world.token(heidi, DAY2).encode()
    )
    someone_elses = with_token.replace(b"heidi@example.com", b"judy@example.com")
    plain = sample("unsubscribe_request_plain.eml")
    stranger = plain.replace(b"ivan@example.com", b"stranger@example.com")
    for name, raw in [("1", with_token), ("2", someone_elses), ("3", plain), ("4", stranger)]:
        world.drop(f"{name}.host", raw)
    code, outcomes, _ = world.bounces()
    assert code == 0
    assert [o["action"] for o in outcomes] == ["unsubscribed", "refused", "unsubscribed",
                                               "unmatched"]  # fmt: skip
    assert [world.state(s)[0] for s in (heidi, ivan, judy)] == [
        "unsubscribed", "unsubscribed", "active"
    ]  # fmt: skip


HOSTILE = [
    "hostile_forged_token_other_address.eml",
    "hostile_nested_reports.eml",
    "hostile_bad_charsets.eml",
    "hostile_report_attached_to_plain_mail.eml",
    "rfc3834_auto_replied.eml",
    "vacation_subject_only.eml",
    "postfix_delay_warning.eml",
]


def test_hostile_forged_and_ignorable_messages_change_nothing(world: World) -> None:
    """Forged tokens (a DSN for another person's address signed with another key, and every
    sample signed with the samples' key), a 20 MB report, nested reports, bad charsets,
    auto-replies and junk: each is recorded and counted, no subscriber changes, exit 0."""
    emails = ["ivan@example.com", "alice@bounce.example.com", "judy@slow.example.net",
              "victim@example.com"]  # fmt: skip
    people = {world.subscriber(e) for e in emails}
    victim = max(people)
    message_id = world.sent(victim, DAY2)
    forged = dsn("victim@example.com", make_token("not-our-secret", victim, DAY2), message_id)
    big = dsn("victim@example.com", world.token(victim, DAY2), message_id)
    boundary = b"--9DB0F20C0DF.1796033636/relay.digest.test\n"
    big = big.replace(boundary, boundary + b"Content-Type: text/plain\n\n" + b"x" * 20_000_000
                      + b"\n" + boundary, 1)  # fmt: skip
    for name in HOSTILE:
        world.drop(name, sample(name))
    world.drop("forged.host", forged)
    world.drop("big.host", big)
    world.drop("junk.host", b"\x00\xff" * 500)
    before = {sid: world.state(sid) for sid in people}
    code, outcomes, stderr = world.bounces()
    assert code == 0, stderr
    assert len(outcomes) == len(HOSTILE) + 3
    assert all(o["action"] in ("refused", "ignored") for o in outcomes), outcomes
    assert all(o["delivery"] is None for o in outcomes)
    assert {sid: world.state(sid) for sid in people} == before
    kinds = {e.kind for e in world.store.bounce_events()}
    assert {BounceKind.REFUSED, BounceKind.AUTO_REPLY, BounceKind.UNPARSEABLE} <= kinds
    assert all(e.subscriber_id is None for e in world.store.bounce_events())


def test_without_a_token_a_report_is_matched_by_message_id_only_when_the_address_agrees(
    world: World, tmp_path: Path
) -> None:
    """VERP off: a DSN is matched by the Message-ID of our original, whose delivery must be
    to the address the DSN names; else by the address of a delivery we sent."""
    world.config = write_world_config(tmp_path, world.maildir, address="")
    ann, bob = world.subscriber("ann@example.com"), world.subscriber("bob@example.com")
    ann_id, bob_id = world.sent(ann, DAY2), world.sent(bob, DAY2)
    world.drop("1.host", dsn("ann@example.com", None, ann_id))
    world.drop("2.host", dsn("ann@example.com", None, bob_id))  # Bob's Message-ID, Ann named
    world.drop("3.host", dsn("bob@example.com", None))  # no known Message-ID: by address
    world.drop("4.host", dsn("nobody@example.com", None))
    code, outcomes, _ = world.bounces()
    assert code == 0
    assert [(o["matched_by"], o["action"]) for o in outcomes] == [
        ("message-id", "bounce counted"), (None, "unmatched"),
        ("recipient", "bounce counted"), (None, "unmatched"),
    ]  # fmt: skip
    assert (world.state(ann), world.state(bob)) == (("active", 1), ("active", 1))


def test_a_message_acted_on_but_not_marked_is_not_acted_on_again(world: World) -> None:
    """The processed key is committed with the effects: a crash between them and the mark
    (here: the message put back unread) leaves it to be marked, never counted twice."""
    ann = world.subscriber("ann@example.com")
    world.sent(ann, DAY2)
    world.drop("1.host", dsn("ann@example.com", world.token(ann, DAY2)))
    assert world.bounces()[1][0]["action"] == "bounce counted"
    os.rename(world.maildir / "cur" / "1.host:2,S", world.maildir / "new" / "1.host")
    code, [outcome], _ = world.bounces()
    assert (code, outcome["action"]) == (0, "already processed")
    assert world.state(ann) == ("active", 1)
    assert (world.maildir / "cur" / "1.host:2,S").exists()
    assert world.bounces()[1] == []


def test_the_table_counts_messages_an_unreadable_mailbox_exits_1_and_none_exits_2(
    world: World, tmp_path: Path
) -> None:
    world.drop("1.host", sample("rfc3834_auto_replied.eml"))
    result = runner.invoke(app, ["bounces", "--config", str(world.config)])
    assert result.exit_code == 0
    assert "auto_reply" in result.stdout and "digest bounces: 1 messages, 1 auto_reply" in (
        result.stdout
    )
    os.rename(world.maildir / "new", world.maildir / "gone")
    code, _, stderr = world.bounces()
    assert code == 1 and "no new/ folder" in stderr
    no_mailbox = write_world_config(tmp_path, "", name="off.toml")
    result = runner.invoke(app, ["bounces", "--config", str(no_mailbox)])
    assert result.exit_code == 2 and "set maildir or imap_host" in result.stderr


def test_reading_bounces_with_a_verp_address_but_no_secret_refuses_to_start(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_SECRET")
    world.drop("1.host", sample("rfc3834_auto_replied.eml"))
    code, _, stderr = world.bounces()
    assert code == 2 and "DIGEST_SECRET" in stderr
    assert list((world.maildir / "new").iterdir())  # nothing touched


def test_after_a_run_bounces_are_read_when_configured_and_errors_are_reported(
    world: World, tmp_path: Path
) -> None:
    config = load_config(world.config)
    world.drop("1.host", sample("rfc3834_auto_replied.eml"))
    report = bounces_after_run(config, world.store, world.now)
    assert report is not None and not report.failed and len(report.outcomes) == 1
    off = load_config(write_world_config(tmp_path, "", name="off.toml"))
    assert bounces_after_run(off, world.store, world.now) is None
    missing = load_config(write_world_config(tmp_path, tmp_path / "nowhere", name="gone.toml"))
    failed = bounces_after_run(missing, world.store, world.now)
    assert failed is not None and failed.failed and "no new/ folder" in failed.errors[0]
    assert process_mailbox(config, world.store, world.now).outcomes == []


def test_bounces_read_over_imap_are_acted_on_once_and_flagged(
    world: World,
    imap_server: tuple[int, ssl.SSLContext],  # noqa: F811
) -> None:
    port, context = imap_server
    ann = world.subscriber("ann@example.com")
    world.sent(ann, DAY2)
    with imaplib.IMAP4("127.0.0.1", port, timeout=10) as mta:
        mta.starttls(context)
        mta.login("bounces", "imap-secret")
        mta.create("Wired")
        raw = dsn("ann@example.com", world.token(ann, DAY2))
        mta.append("Wired", "", imaplib.Time2Internaldate(time.time()), raw)
    settings = ImapSettings("127.0.0.1", "bounces", "imap-secret", port, "Wired", timeout=10,
                            security=ImapSecurity.STARTTLS)  # fmt: skip
    config = load_config(world.config)
    for expected in (["bounce counted"], []):
        with Imap(settings, context) as box:
            report = process_mailbox(config, world.store, world.now, (box, "imap:test/Wired:"))
        assert [str(o.action) for o in report.outcomes] == expected and not report.failed
    assert world.state(ann) == ("active", 1)


# ---------------------------------------------------------------- health: stats and alerts


def test_bounce_stats_count_per_delivery_on_the_day_it_was_sent(world: World) -> None:
    """2,000 sent on day 1: 1 hard bounce (reported twice) and 3 complaints arriving the next
    day are day 1's: rates 0.05% and 0.15%. The complaint rate passes 0.1%: one alert."""
    day1 = world.now - timedelta(days=1)
    people = [world.subscriber(f"p{i}@example.com") for i in range(2000)]
    rows = [PlannedDelivery(sid, f"p{i}@example.com", DAY1, DeliveryStatus.PENDING, (),
                            f"<{sid}@x>")
            for i, sid in enumerate(people)]  # fmt: skip
    world.store.plan_deliveries(rows, day1)
    for sid in people:
        delivery = world.store.delivery(sid, DAY1)
        assert delivery is not None
        world.store.mark_sent(delivery.id, sid, [], DAY1, "250", day1)
    mailboxes = Mailboxes(BOUNCE_ADDRESS, UNSUBSCRIBE, SECRET)
    policy = Policy()
    arf = sample("rfc5965_arf_abuse.eml")
    reports = [dsn("p0@example.com", world.token(people[0], DAY1))] * 2 + [
        arf.replace(b"13-20260924-i62dszumxw7u5gzp", world.token(sid, DAY1).encode())
        for sid in people[1:4]
    ]
    for i, raw in enumerate(reports):
        apply(world.store, classify(raw, mailboxes), f"m{i}", Origin.MAILBOX, world.now, policy)
    [day] = bounce_stats(world.store, world.now, 7)
    assert (day.day, day.sent, day.hard, day.complaints) == (day1.date().isoformat(), 2000, 1, 3)
    assert (day.hard_rate, day.complaint_rate) == (0.0005, 0.0015)
    assert bounce_stats_json([day])[0]["complaint_rate"] == 0.0015
    assert bounce_rows(bounce_stats_json([day]))[0][1:] == ["2000", "1", "0", "3", "0", "0.05%",
                                                            "0.15%"]  # fmt: skip
    config = load_config(world.config)
    [(key, subject, body)] = bounce_alerts(config, world.store, world.now)
    assert key == f"complaints:{day.day}" and "0.15%" in subject and "0.10%" in body
    world.store.record_alert(key, subject, world.now)
    assert bounce_alerts(config, world.store, world.now + timedelta(days=1)) == []


def test_a_verified_webhook_event_is_acted_on_once_per_event_not_per_email(world: World) -> None:
    """Postmark reports a bounce and, later, a complaint about the same email: two events;
    the complaint's replay changes nothing."""
    ann = world.subscriber("ann@example.com")
    world.sent(ann, DAY2)
    config, mailboxes = load_config(world.config), Mailboxes(BOUNCE_ADDRESS, UNSUBSCRIBE, SECRET)
    events = [
        ("1", {"RecordType": "Bounce", "Type": "HardBounce"}),
        ("2", {"RecordType": "SpamComplaint", "Type": "SpamComplaint"}),
        ("2", {"RecordType": "SpamComplaint", "Type": "SpamComplaint"}),
    ]
    actions = []
    for event_id, fields in events:
        body = {"ID": event_id, "MessageID": "pm-1", "Email": "ann@example.com", **fields}
        report = parse_postmark(json.dumps(body).encode(), mailboxes)
        actions.append(str(apply_webhook(config, world.store, report, event_id, world.now).action))
    assert actions == ["bounce counted", "unsubscribed", "already processed"]
    assert world.state(ann) == ("unsubscribed", 1)
    assert {e.origin for e in world.store.bounce_events()} == {Origin.WEBHOOK}
