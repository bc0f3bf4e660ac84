"""Sending through a real SMTP server on 127.0.0.1, faults injected at the protocol level:
transient failures are delivered after retries, permanent ones recorded, nothing lost, nothing
sent twice."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import re
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from digest.build import confirmation_message
from digest.config import SmtpConfig
from digest.errors import ConfigError, SendError
from digest.message import Dkim, Outgoing, build_message, check_dkim, message_id_for
from digest.models import Subscriber
from digest.render import Renderer
from digest.send import (
    GROUP,
    Job,
    OutboxTransport,
    RateLimit,
    Sender,
    SendStats,
    SmtpPool,
    dot_stuffed,
)
from digest.store import DeliveryStatus, PlannedDelivery, Store
from digest.tokens import Tokens
from tests.conftest import make_config, rsa_key_file
from tests.smtp_server import FaultyController, Recorder, free_port, start

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
EDITION = "2026-11-24"
SENDER = "Paper Digest <digest@example.org>"
UNSUBSCRIBE = "https://digest.example.org/u/TOKEN"


class Offering(Recorder):
    """The recorder, offering PIPELINING (as Postfix and smtp-sink do; aiosmtpd reads commands
    in order anyway) or not, and 8BITMIME or not."""

    def __init__(self, *, pipelining: bool = False, eight_bit: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        self.pipelining = pipelining
        self.eight_bit = eight_bit

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        lines = [r for r in responses[:-1] if self.eight_bit or r != "250-8BITMIME"]
        return [*lines, *(["250-PIPELINING"] if self.pipelining else []), responses[-1]]


@pytest.fixture(params=["pipelining", "one-command-at-a-time"])
def smtp(request: pytest.FixtureRequest) -> Iterator[tuple[Recorder, int]]:
    """Every test against the recorder runs with and without PIPELINING offered."""
    recorder = Offering(pipelining=request.param == "pipelining", stall_seconds=1.5)
    controller = start(recorder)
    try:
        yield recorder, controller.port
    finally:
        controller.stop()


def smtp_config(port: int, **kw: object) -> SmtpConfig:
    values = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "concurrency": 3,
        "rate_per_second": 0.0,
        "timeout": 0.5,
        "max_attempts": 4,
        "backoff": 0.0,
    }
    values.update(kw)
    return SmtpConfig(**values)  # type: ignore[arg-type]


def message(
    to: str, sub_id: int, subject: str = "3 new papers: diffusion - Tue 24 Nov"
) -> Outgoing:
    return build_message(
        sender=SENDER,
        to=to,
        subject=subject,
        text=f"Hello {to}\n\nThe papers.\n",
        html=f"<html><body><p>Hello {to}</p></body></html>",
        message_id=message_id_for(sub_id, EDITION, SENDER),
        date=NOW,
        list_id="digest.example.org",
        unsubscribe_url=UNSUBSCRIBE,
        unsubscribe_mailto="unsubscribe@example.org",
    )


def plan(store: Store, count: int) -> list[Job]:
    people = [Subscriber(f"p{n}@example.org", status="active", queries=["x"]) for n in range(count)]
    store.add_subscribers_bulk(people, NOW, "test")
    subs = list(store.iter_subscribers())
    store.plan_deliveries(
        [
            PlannedDelivery(
                subscriber_id=s.id or 0,
                email=s.email,
                edition=EDITION,
                status=DeliveryStatus.PENDING,
                papers=(f"2611.{s.id:05d}",),
                message_id=message_id_for(s.id or 0, EDITION, SENDER),
            )
            for s in subs
        ],
        NOW,
    )
    return jobs(store)


def jobs(store: Store) -> list[Job]:
    rows = store.due_deliveries(NOW, limit=10_000)
    return [
        Job(r.id, r.subscriber_id, r.email, r.edition, r.papers,
            message(r.email, r.subscriber_id), r.attempts, r.possible_duplicate)
        for r in rows
    ]  # fmt: skip


async def stream(items: list[Job]) -> AsyncIterator[Job]:
    for item in items:
        yield item


def send_all(store: Store, config: SmtpConfig, items: list[Job]) -> SendStats:
    async def go() -> SendStats:
        pool = SmtpPool(config)
        try:
            sender = Sender(store, pool, config, lambda: NOW)
            return await sender.run(stream(items), config.concurrency)
        finally:
            await pool.close()

    return asyncio.run(go())


def statuses(store: Store) -> dict[str, str]:
    return {r["email"]: r["status"] for r in store.db.query("select email, status from deliveries")}


def test_messages_arrive_whole_with_every_header(smtp: tuple[Recorder, int], store: Store) -> None:
    recorder, port = smtp
    stats = send_all(store, smtp_config(port), plan(store, 3))
    assert stats.sent == 3 and len(recorder.received) == 3
    got = recorder.to("p0@example.org")[0]
    assert got.sender == "digest@example.org"
    msg = email.message_from_bytes(got.data, policy=email.policy.default)
    assert msg["From"] == SENDER and msg["To"] == "p0@example.org"
    assert msg["Subject"] == "3 new papers: diffusion - Tue 24 Nov"
    assert msg["Date"].datetime == NOW
    assert msg["Message-ID"] == message_id_for(1, EDITION, SENDER)
    assert msg["List-Id"] == "<digest.example.org>"
    raw = got.data.decode()
    assert (
        "List-Unsubscribe: <https://digest.example.org/u/TOKEN>,\r\n"
        " <mailto:unsubscribe@example.org?subject=unsubscribe>\r\n" in raw
    )
    assert "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("plain",)).get_content().startswith("Hello p0@example.org")
    assert "<p>Hello p0@example.org</p>" in msg.get_body(("html",)).get_content()
    assert all(len(line) <= 998 for line in got.data.split(b"\r\n"))
    row = store.delivery(1, EDITION)
    assert row.status == "sent" and row.last_reply.startswith("2.0.0 Ok")
    assert store.sent_counts(1) == (1, 1)


FAULTS = {
    "421-greeting": ("greet", None, "421 4.3.2 Service not available, try later"),
    "451-rcpt": ("rcpt", "p2@example.org", "451 4.3.0 Temporary lookup failure"),
    "452-rcpt": ("rcpt", "p2@example.org", "452 4.2.2 Mailbox full"),
    "dropped-in-data": ("data", "p2@example.org", "drop"),
    "stall-past-timeout": ("data", "p2@example.org", "stall"),
    "451-after-data": ("data", "p2@example.org", "451 4.7.1 Greylisted, come back later"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_transient_faults_are_delivered_after_retries_exactly_once(
    smtp: tuple[Recorder, int], store: Store, fault: str
) -> None:
    recorder, port = smtp
    kind, address, reply = FAULTS[fault]
    if kind == "greet":
        recorder.faults.greet.append(reply)
    elif kind == "rcpt":
        recorder.faults.rcpt[address].append(reply)
    else:
        recorder.faults.data[address].append(reply)
    stats = send_all(store, smtp_config(port), plan(store, 5))
    assert stats.sent == 5 and stats.failed == 0 and stats.retried == 1
    for n in range(5):
        assert len(recorder.to(f"p{n}@example.org")) == 1, n
    assert set(statuses(store).values()) == {"sent"}
    retried = [r for r in store.db.query("select * from deliveries where attempts > 1")]
    assert len(retried) == 1


@pytest.mark.parametrize(
    ("kind", "reply"),
    [("rcpt", "550 5.1.1 No such user here"), ("data", "554 5.7.1 Rejected as spam")],
)
def test_permanent_failures_are_recorded_and_the_batch_goes_on(
    smtp: tuple[Recorder, int], store: Store, kind: str, reply: str
) -> None:
    recorder, port = smtp
    getattr(recorder.faults, kind)["p1@example.org"].append(reply)
    stats = send_all(store, smtp_config(port), plan(store, 4))
    assert (stats.sent, stats.failed, stats.retried) == (3, 1, 0)
    assert recorder.to("p1@example.org") == []
    row = store.delivery(2, EDITION)
    assert row.status == "failed" and row.last_reply == reply
    assert row.attempts == 1
    sub = store.get_subscriber("p1@example.org")
    assert (sub.bounces, sub.status) == (1, "active")
    assert store.sent_counts(2) == (0, 0)
    assert stats.failures == [f"p1@example.org: {reply}"]


def test_a_persistent_4xx_is_deferred_to_a_later_run_not_lost(
    smtp: tuple[Recorder, int], store: Store
) -> None:
    recorder, port = smtp
    recorder.faults.rcpt["p0@example.org"].extend(["451 4.3.0 try later"] * 4)
    stats = send_all(store, smtp_config(port, max_attempts=4), plan(store, 2))
    assert (stats.sent, stats.deferred, stats.retried) == (1, 1, 3)
    row = store.delivery(1, EDITION)
    assert row.status == "pending" and row.attempts == 4
    assert row.next_attempt_at == datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    assert store.due_deliveries(NOW) == []  # not before its time
    later = datetime(2026, 11, 24, 8, 31, tzinfo=UTC)
    assert [r.id for r in store.due_deliveries(later)] == [1]


def test_repeated_permanent_failures_make_a_subscriber_bounced(store: Store) -> None:
    store.add_subscribers_bulk(
        [Subscriber("gone@example.org", status="active", queries=["x"])], NOW, "t"
    )
    for n in range(3):
        store.plan_deliveries(
            [PlannedDelivery(1, "gone@example.org", f"2026-11-2{n}", DeliveryStatus.PENDING,
                             (), f"<{n}@x>")],
            NOW,
        )  # fmt: skip
        became = store.mark_bounced(n + 1, 1, "550 no such user", NOW, 3)
        assert became == (n == 2)
    sub = store.get_subscriber("gone@example.org")
    assert (sub.status, sub.bounces) == ("bounced", 3)
    assert store.subscriber_events(1)[-1]["event"] == "bounced"


def test_an_unsubscribe_during_a_run_stops_the_mail(
    smtp: tuple[Recorder, int], store: Store
) -> None:
    recorder, port = smtp
    items = plan(store, 3)
    store.update_subscriber(2, {"status": "unsubscribed"}, NOW, "unsubscribed", "t")
    stats = send_all(store, smtp_config(port), items)
    assert (stats.sent, stats.skipped) == (2, 1)
    assert recorder.to("p1@example.org") == []
    assert store.delivery(2, EDITION).status == "skipped"


def test_a_delivery_claimed_elsewhere_is_not_sent_again(
    smtp: tuple[Recorder, int], store: Store
) -> None:
    recorder, port = smtp
    items = plan(store, 2)
    assert store.claim_delivery(items[0].delivery_id, NOW)
    stats = send_all(store, smtp_config(port), items)
    assert stats.sent == 1 and len(recorder.received) == 1


@pytest.mark.parametrize(
    "field",
    ["subject", "to", "sender"],
)
def test_header_injection_is_refused(field: str) -> None:
    values = {"sender": SENDER, "to": "a@example.org", "subject": "Hello"}
    values[field] = (
        values[field].replace("@", "\r\nBcc: evil@example.com\r\n@", 1)
        if (field != "subject")
        else "Hello\r\nBcc: evil@example.com"
    )
    with pytest.raises(SendError, match="line break"):
        build_message(**values, text="t", html=None, message_id="<x@example.org>", date=NOW)  # type: ignore[arg-type]


def test_non_ascii_subject_and_name_are_encoded() -> None:
    out = build_message(
        sender="Revue des Articles <digest@example.org>",
        to="Zoë <zoe@example.org>",
        subject="5 nouveaux articles : diffusion — mar. 24 nov 😀",
        text="ça va",
        html="<p>ça va</p>",
        message_id="<x@example.org>",
        date=NOW,
    )
    assert out.data.split(b"\r\n\r\n")[0].isascii(), "headers are encoded; bodies go 8bit"
    assert out.eight_bit and out.seven_bit().isascii()
    msg = email.message_from_bytes(out.data, policy=email.policy.default)
    assert msg["Subject"] == "5 nouveaux articles : diffusion — mar. 24 nov 😀"
    assert msg["To"] == "Zoë <zoe@example.org>"
    assert out.recipient == "zoe@example.org"


def test_dkim_signature_covers_the_unsubscribe_headers_and_verifies(tmp_path: Path) -> None:
    dkim = pytest.importorskip("dkim")
    key_path = tmp_path / "dkim.pem"
    public = rsa_key_file(key_path, 2048)
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    out = build_message(
        sender=SENDER, to="a@example.org", subject="Signed", text="t", html="<p>t</p>",
        message_id="<x@example.org>", date=NOW, unsubscribe_url=UNSUBSCRIBE,
        dkim=Dkim("sel", "example.org", key_path.read_bytes()),
    )  # fmt: skip
    signature = out.data.split(b"\r\n\r\n")[0].decode()
    assert signature.startswith("DKIM-Signature:")
    signed = signature.split(" h=")[1].split(";")[0].replace("\r\n", "").replace(" ", "")
    assert {"from", "subject", "list-unsubscribe", "list-unsubscribe-post"} <= set(
        signed.lower().split(":")
    )
    assert dkim.verify(out.data, dnsfunc=lambda name, timeout=5: record)
    tampered = out.data.replace(b"Subject: Signed", b"Subject: Changed")
    assert not dkim.verify(tampered, dnsfunc=lambda name, timeout=5: record)


def test_outbox_writes_a_maildir_and_a_resend_replaces_the_file(
    tmp_path: Path, store: Store
) -> None:
    items = plan(store, 2)
    outbox = OutboxTransport(tmp_path / "outbox")

    async def go() -> SendStats:
        sender = Sender(store, outbox, smtp_config(0), lambda: NOW)
        return await sender.run(stream(items), 1)

    assert asyncio.run(go()).sent == 2
    files = sorted((tmp_path / "outbox" / "new").iterdir())
    assert len(files) == 2 and all(f.suffix == ".eml" for f in files)
    asyncio.run(outbox.send(items[0].message))
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 2
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_the_rate_limit_spaces_messages() -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def go() -> None:
        limit = RateLimit(10.0, record)
        for _ in range(5):
            await limit.wait()

    asyncio.run(go())
    # the clock does not move while we only record: message k is due k x 0.1 s after the first
    assert waits == pytest.approx([0.1, 0.2, 0.3, 0.4], abs=0.02)


def test_a_5xx_on_our_side_defers_and_bounces_nobody(
    smtp: tuple[Recorder, int], store: Store
) -> None:
    """A refused sender address (or login) is the operator's problem, not the subscribers'."""
    recorder, port = smtp
    recorder.faults.mail.extend(["553 5.7.1 Sender address rejected: not owned by user"] * 8)
    stats = send_all(store, smtp_config(port, max_attempts=2, concurrency=1), plan(store, 2))
    assert (stats.sent, stats.failed, stats.deferred, stats.bounced) == (0, 0, 2, 0)
    for n in (1, 2):
        row = store.delivery(n, EDITION)
        assert row.status == "pending" and row.last_reply.startswith("553")
    assert {s.bounces for s in store.iter_subscribers()} == {0}


def plan_people(store: Store, addresses: list[str]) -> list[Job]:
    people = [Subscriber(a, status="active", queries=["x"]) for a in addresses]
    store.add_subscribers_bulk(people, NOW, "test")
    store.plan_deliveries(
        [PlannedDelivery(s.id or 0, s.email, EDITION, DeliveryStatus.PENDING, (),
                         message_id_for(s.id or 0, EDITION, SENDER))
         for s in store.iter_subscribers()],
        NOW,
    )  # fmt: skip
    return jobs(store)


IDN = ["ada@example.org", "user@münchen.de", "jörg@münchen.de", "zoe@example.org"]


def test_internationalised_addresses_travel_as_idna_and_smtputf8(
    smtp: tuple[Recorder, int], store: Store
) -> None:
    recorder, port = smtp
    stats = send_all(store, smtp_config(port, concurrency=1), plan_people(store, IDN))
    assert (stats.sent, stats.failed, stats.deferred) == (4, 0, 0)
    assert [r.recipients for r in recorder.received] == [
        ["ada@example.org"], ["user@xn--mnchen-3ya.de"], ["jörg@xn--mnchen-3ya.de"],
        ["zoe@example.org"],
    ]  # fmt: skip
    plain, utf8 = recorder.received[1], recorder.received[2]
    assert "SMTPUTF8" not in plain.mail_options and "SMTPUTF8" in utf8.mail_options
    assert b"\r\nTo: user@xn--mnchen-3ya.de\r\n" in plain.data
    assert plain.data.split(b"\r\n\r\n")[0].isascii(), "only an SMTPUTF8 message has UTF-8 headers"
    assert "\r\nTo: jörg@xn--mnchen-3ya.de\r\n".encode() in utf8.data
    msg = email.message_from_bytes(utf8.data, policy=email.policy.SMTPUTF8)
    assert msg["To"] == "jörg@xn--mnchen-3ya.de"


def test_without_smtputf8_only_the_non_ascii_local_part_waits_with_a_clear_reason(
    smtp: tuple[Recorder, int], store: Store
) -> None:
    """Our relay's limit, not the subscriber's fault: deferred (pending), never a bounce."""
    recorder, port = smtp
    recorder.smtputf8 = False
    stats = send_all(store, smtp_config(port, concurrency=1), plan_people(store, IDN))
    assert (stats.sent, stats.failed, stats.deferred, stats.retried) == (3, 0, 1, 0)
    assert len(recorder.received) == 3 and recorder.to("jörg@xn--mnchen-3ya.de") == []
    row = store.delivery(3, EDITION)
    assert row.status == "pending" and row.next_attempt_at == datetime(
        2026, 11, 24, 8, 30, tzinfo=UTC
    )
    assert row.last_reply.startswith("server does not offer SMTPUTF8")
    assert stats.failures == [
        "jörg@münchen.de: will retry later: server does not offer SMTPUTF8 "
        "(needed for a non-ASCII local part)"
    ]
    assert store.get_subscriber("jörg@münchen.de").bounces == 0


def test_an_address_no_server_can_take_fails_alone() -> None:
    with pytest.raises(SendError, match="not a valid internationalised domain"):
        message("a@-ñ.example", 1)


@pytest.mark.parametrize("fault", ["drop", "accept-drop", "stall"])
def test_a_reply_lost_after_data_is_resent_flagged_and_counted(
    smtp: tuple[Recorder, int], store: Store, fault: str
) -> None:
    """The server may have queued the message before the reply was lost: the resend is a
    possible duplicate, flagged on the delivery and counted, like a resend after a crash."""
    recorder, port = smtp
    recorder.faults.data["p1@example.org"].append(fault)
    stats = send_all(store, smtp_config(port), plan(store, 3))
    assert (stats.sent, stats.failed, stats.possible_duplicates) == (3, 0, 1)
    copies = len(recorder.to("p1@example.org"))
    assert copies == (2 if fault == "accept-drop" else 1)
    flagged = {
        r["email"]: r["possible_duplicate"] for r in store.db.query("select * from deliveries")
    }
    assert flagged == {"p0@example.org": 0, "p1@example.org": 1, "p2@example.org": 0}


def test_a_refusal_before_data_is_no_possible_duplicate(
    smtp: tuple[Recorder, int], store: Store
) -> None:
    recorder, port = smtp
    recorder.faults.rcpt["p1@example.org"].append("451 4.3.0 try later")
    stats = send_all(store, smtp_config(port), plan(store, 2))
    assert (stats.sent, stats.possible_duplicates) == (2, 0)


def test_a_dkim_key_that_does_not_sign_is_our_configuration_error() -> None:
    with pytest.raises(ConfigError, match="does not sign"):
        build_message(
            sender=SENDER, to="a@example.org", subject="s", text="t", html=None,
            message_id="<x@example.org>", date=NOW, dkim=Dkim("sel", "example.org", b"no key"),
        )  # fmt: skip


def test_dkim_dns_record_is_the_public_half_of_the_key(tmp_path: Path) -> None:
    key_path = tmp_path / "dkim.pem"
    public = rsa_key_file(key_path)
    record = check_dkim(Dkim("sel", "example.org", key_path.read_bytes()))
    expected = base64.b64encode(public).decode()
    assert record == f'sel._domainkey.example.org TXT "v=DKIM1; k=rsa; p={expected}"'


OUTBOX_FULL = """
import asyncio, resource, signal, sys
from datetime import UTC, datetime
from digest.message import build_message
from digest.send import OutboxTransport
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
outbox = OutboxTransport(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
big = build_message(sender="d@example.org", to="a@example.org", subject="s", text="x" * 20000,
                    html=None, message_id="<big@example.org>", date=datetime.now(UTC))
small = build_message(sender="d@example.org", to="b@example.org", subject="s", text="ok",
                      html=None, message_id="<small@example.org>", date=datetime.now(UTC))
for m in (big, small):
    result = asyncio.run(outbox.send(m))
    print(result.ok, result.reply)
"""


def test_a_full_disk_costs_the_outbox_message_and_leaves_no_tmp_file(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes writes past 4 KB fail with EFBIG, as a full disk would (root ignores
    file modes, so this is the honest way to refuse a write here)."""
    done = subprocess.run(
        [sys.executable, "-c", OUTBOX_FULL, str(tmp_path / "outbox")],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    big, small = done.stdout.splitlines()
    assert big.startswith("False outbox ") and "File too large" in big
    assert small.startswith("True 250 written")
    assert list((tmp_path / "outbox" / "tmp").iterdir()) == []
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 1


def test_an_outbox_path_that_is_a_file_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "outbox").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"\[outbox\].path .*outbox: cannot be used"):
        OutboxTransport(tmp_path / "outbox")


def test_our_side_failing_for_many_runs_never_fails_a_delivery(
    smtp: tuple[Recorder, int], store: Store
) -> None:
    """give_up_after counts replies about the address only: a relay refusing our MAIL FROM
    for as long as it takes leaves the edition pending for the run after the fix."""
    recorder, port = smtp
    recorder.faults.mail.extend(["553 5.7.1 Sender address rejected"] * 6)
    config = smtp_config(port, max_attempts=1, concurrency=1, give_up_after=2)
    items = plan(store, 1)
    for _ in range(3):
        stats = send_all(store, config, jobs_at(store, datetime(2026, 11, 25, 0, 0, tzinfo=UTC)))
        assert (stats.failed, stats.deferred) == (0, len(items))
    assert store.delivery(1, EDITION).status == "pending"
    recorder.faults.mail.clear()
    assert (
        send_all(store, config, jobs_at(store, datetime(2026, 11, 25, 0, 0, tzinfo=UTC))).sent == 1
    )


def test_a_4xx_about_the_address_fails_after_give_up_after(
    smtp: tuple[Recorder, int], store: Store
) -> None:
    recorder, port = smtp
    recorder.faults.rcpt["p0@example.org"].extend(["452 4.2.2 Mailbox full"] * 6)
    config = smtp_config(port, max_attempts=1, concurrency=1, give_up_after=2)
    plan(store, 1)
    first = send_all(store, config, jobs_at(store, datetime(2026, 11, 25, 0, 0, tzinfo=UTC)))
    second = send_all(store, config, jobs_at(store, datetime(2026, 11, 25, 0, 0, tzinfo=UTC)))
    assert (first.deferred, second.failed) == (1, 1)
    assert store.delivery(1, EDITION).status == "failed"


def jobs_at(store: Store, now: datetime) -> list[Job]:
    rows = store.due_deliveries(now, limit=10_000)
    return [
        Job(r.id, r.subscriber_id, r.email, r.edition, r.papers,
            message(r.email, r.subscriber_id), r.attempts, r.possible_duplicate)
        for r in rows
    ]  # fmt: skip


def test_the_confirmation_email_carries_one_signed_link_and_no_list_headers(
    tmp_path: Path,
) -> None:
    """Built by the same module as every digest: one link that confirms this subscriber, and
    no List-Unsubscribe (nobody is on the list yet)."""
    config = make_config(tmp_path, [], web={"base_url": "https://digest.example.org/"})
    tokens = Tokens("confirm-test-secret-0123456789abcdef")
    sub = Subscriber("ada@example.org", id=7, topics=["llm-agents"])
    sent = confirmation_message(config, Renderer(config), tokens, sub, NOW)
    assert sent.recipient == "ada@example.org" and sent.message_id.startswith("<confirm.7.")
    message = email.message_from_bytes(sent.data, policy=email.policy.default)
    assert message["List-Unsubscribe"] is None and message["To"] == "ada@example.org"
    body = message.get_body(("plain",))
    assert body is not None
    (token,) = re.findall(r"https://digest\.example\.org/c/(\S+)", str(body.get_content()))
    claims = tokens.read("confirm", token)
    assert claims.subscriber_id == 7 and claims.is_for("ada@example.org")


class QuitCounter(Recorder):
    """Also counts the QUITs it was sent: a closed pool says goodbye on each connection."""

    quits = 0

    async def handle_QUIT(self, server: object, session: object, envelope: object) -> str:
        self.quits += 1
        return "221 Bye"


def test_a_transport_closes_when_its_block_ends(tmp_path: Path) -> None:
    """Transports are async context managers: the pool says QUIT on every connection it
    opened when the block ends; the outbox is used the same way."""
    recorder = QuitCounter()
    server = start(recorder)

    async def go() -> None:
        async with SmtpPool(smtp_config(server.port, concurrency=2)) as pool:
            sent = await asyncio.gather(
                *(pool.send(message(f"p{n}@example.org", n)) for n in range(4))
            )
            assert all(r.ok for r in sent) and recorder.quits == 0
        async with OutboxTransport(tmp_path / "out") as outbox:
            assert (await outbox.send(message("b@example.org", 9))).ok

    try:
        asyncio.run(go())
    finally:
        server.stop()
    assert len(recorder.received) == 4 and recorder.quits == 2
    assert len(list((tmp_path / "out" / "new").iterdir())) == 1


def test_dot_stuffing_doubles_leading_dots_and_ends_the_data() -> None:
    assert dot_stuffed(b".a\r\nb\r\n.\r\n..c\r\n") == b"..a\r\nb\r\n..\r\n...c\r\n.\r\n"
    assert dot_stuffed(b"no newline at the end") == b"no newline at the end\r\n.\r\n"
    assert dot_stuffed(b"bare\nLF\rCR\r\n.x") == b"bare\r\nLF\r\nCR\r\n..x\r\n.\r\n"


def test_lines_starting_with_a_dot_arrive_unchanged(
    smtp: tuple[Recorder, int], store: Store
) -> None:
    recorder, port = smtp
    text = ".starts with a dot\n.\n..two\nend\n"
    sent = build_message(
        sender=SENDER, to="p0@example.org", subject="dots", text=text, html=None,
        message_id="<dots@example.org>", date=NOW,
    )  # fmt: skip

    async def go() -> bool:
        async with SmtpPool(smtp_config(port)) as pool:
            return (await pool.send(sent)).ok

    assert asyncio.run(go())
    got = email.message_from_bytes(recorder.received[0].data, policy=email.policy.default)
    assert got.get_content().replace("\r\n", "\n") == text
    assert recorder.received[0].data == sent.data


async def _withholding_server(seen: list[bytes]) -> asyncio.Server:
    """A minimal SMTP server offering PIPELINING that answers MAIL, RCPT and DATA only once
    all three have arrived: a client that waits for each reply before the next command
    (no pipelining) times out against it."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ESMTP\r\n")
        line = await reader.readline()
        seen.append(line)
        writer.write(b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
        while line := await reader.readline():
            seen.append(line)
            if line.startswith((b"MAIL", b"RCPT")):
                continue  # withheld until DATA
            if line == b"DATA\r\n":
                writer.write(b"250 sender ok\r\n250 rcpt ok\r\n354 go\r\n")
                while (body := await reader.readline()) != b".\r\n":
                    seen.append(body)
                writer.write(b"250 2.0.0 queued as 1\r\n")
            elif line == b"QUIT\r\n":
                writer.write(b"221 bye\r\n")
                break
        writer.close()

    return await asyncio.start_server(session, "127.0.0.1", 0)


def test_mail_rcpt_and_data_go_in_one_write_when_the_server_offers_pipelining() -> None:
    seen: list[bytes] = []

    async def go() -> bool:
        server = await _withholding_server(seen)
        port = server.sockets[0].getsockname()[1]
        try:
            async with SmtpPool(smtp_config(port, timeout=2.0)) as pool:
                return (await pool.send(message("p0@example.org", 1))).ok
        finally:
            server.close()

    assert asyncio.run(go())
    commands = [line for line in seen if line[:4] in (b"MAIL", b"RCPT", b"DATA")]
    assert commands[0].startswith(b"MAIL FROM:<digest@example.org>")
    assert commands[1:] == [b"RCPT TO:<p0@example.org>\r\n", b"DATA\r\n"]


def test_8bit_bodies_go_out_as_built_when_the_server_offers_8bitmime(
    smtp: tuple[Recorder, int], store: Store
) -> None:
    recorder, port = smtp
    send_all(store, smtp_config(port), plan_people(store, ["zoé@example.org"]))
    got = recorder.received[0]
    assert "BODY=8BITMIME" in got.mail_options
    assert b"Content-Transfer-Encoding: 8bit\r\n" in got.data
    assert "Hello zoé@example.org".encode() in got.data
    msg = email.message_from_bytes(got.data, policy=email.policy.default)
    assert msg.get_body(("plain",)).get_content().startswith("Hello zoé@example.org")


def test_a_server_without_8bitmime_gets_quoted_printable_signed_again(tmp_path: Path) -> None:
    dkim = pytest.importorskip("dkim")
    key = Dkim("sel", "example.org", _rsa_key(tmp_path))
    record = check_dkim(key).split(" TXT ", 1)[1].strip('"').encode()
    recorder = Offering(eight_bit=False)
    server = start(recorder)
    sent = build_message(
        sender=SENDER, to="a@example.org", subject="Signed", text="ça va\n",
        html="<p>ça va</p>", message_id="<x@example.org>", date=NOW, dkim=key,
    )  # fmt: skip

    async def go() -> bool:
        async with SmtpPool(smtp_config(server.port)) as pool:
            return (await pool.send(sent)).ok

    try:
        assert asyncio.run(go())
    finally:
        server.stop()
    got = recorder.received[0]
    assert got.data.isascii() and not any(o.startswith("BODY") for o in got.mail_options)
    assert b"Content-Transfer-Encoding: quoted-printable\r\n" in got.data
    msg = email.message_from_bytes(got.data, policy=email.policy.default)
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == "ça va\n"
    assert dkim.verify(got.data, dnsfunc=lambda name, timeout=5: record)


def test_only_a_part_with_a_line_over_998_octets_is_quoted_printable() -> None:
    out = build_message(
        sender=SENDER, to="a@example.org", subject="s", text="é" * 600 + "\nshort\n",
        html="<p>é</p>", message_id="<x@example.org>", date=NOW,
    )  # fmt: skip
    text_part, html_part = out.data.split(b"--=_digest_")[1:3]
    assert b"Content-Transfer-Encoding: quoted-printable" in text_part
    assert b"Content-Transfer-Encoding: 8bit" in html_part
    assert all(len(line) <= 998 for line in out.data.split(b"\r\n"))
    plain = build_message(
        sender=SENDER, to="a@example.org", subject="s", text="ascii only\n", html=None,
        message_id="<x@example.org>", date=NOW,
    )  # fmt: skip
    assert b"Content-Transfer-Encoding: 7bit" in plain.data and not plain.eight_bit


def test_message_ids_carry_an_hmac_nobody_can_compute_without_the_secret() -> None:
    one = message_id_for(7, EDITION, SENDER, "secret-one")
    assert one == message_id_for(7, EDITION, SENDER, "secret-one"), "stable for a resend"
    assert one != message_id_for(7, EDITION, SENDER, "secret-two")
    assert one != message_id_for(8, EDITION, SENDER, "secret-one")
    tag = one.split("@")[0].split(".")[-1]
    assert len(tag) == 16 and tag not in message_id_for(7, EDITION, SENDER)
    import hashlib

    guessable = hashlib.sha256(f"7/{EDITION}".encode()).hexdigest()[:12]
    assert guessable not in one


def test_the_envelope_sender_and_feedback_id_are_set_per_message() -> None:
    out = build_message(
        sender=SENDER, to="a@example.org", subject="s", text="t", html=None,
        message_id="<x@example.org>", date=NOW,
        envelope_sender="bounces+7-20261124-abcdefghijklmnop@example.org",
        feedback_id="daily:2026-11-24:digest",
    )  # fmt: skip
    assert out.sender == "bounces+7-20261124-abcdefghijklmnop@example.org"
    assert b"\r\nFeedback-ID: daily:2026-11-24:digest\r\n" in out.data
    with pytest.raises(SendError, match="line break"):
        build_message(
            sender=SENDER, to="a@example.org", subject="s", text="t", html=None,
            message_id="<x@example.org>", date=NOW, feedback_id="a\r\nBcc: x@example.com",
        )  # fmt: skip


def _rsa_key(tmp_path: Path) -> bytes:
    key_path = tmp_path / "dkim.pem"
    rsa_key_file(key_path)
    return key_path.read_bytes()


class TrustingPool(SmtpPool):
    """The pool, trusting one self-signed certificate (the real one verifies against the
    system's CAs)."""

    def __init__(self, config: SmtpConfig, cafile: Path) -> None:
        super().__init__(config)
        self.cafile = cafile

    def _client(self) -> Any:
        client = super()._client()
        client.tls_context = ssl.create_default_context(cafile=str(self.cafile))
        return client


def test_after_starttls_transactions_run_over_the_encrypted_connection(tmp_path: Path) -> None:
    """aiosmtplib does STARTTLS; our wire then takes the TLS transport over (the server
    refuses MAIL before STARTTLS, so what it recorded came encrypted)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(str(cert), str(key))
    recorder = Offering(pipelining=True)
    controller = FaultyController(
        recorder, hostname="127.0.0.1", port=free_port(), decode_data=False,
        tls_context=server_tls, require_starttls=True,
    )  # fmt: skip
    controller.start()

    async def go() -> list[bool]:
        config = smtp_config(controller.port, security="starttls", concurrency=1)
        async with TrustingPool(config, cert) as pool:
            return [(await pool.send(message(f"p{n}@example.org", n))).ok for n in range(3)]

    try:
        assert asyncio.run(go()) == [True, True, True]
    finally:
        controller.stop()
    assert [r.recipients for r in recorder.received] == [[f"p{n}@example.org"] for n in range(3)]
    assert recorder.connections == 2, "the controller's start-up probe, then our one connection"


def test_claims_and_sent_marks_are_committed_a_group_at_a_time(
    smtp: tuple[Recorder, int], store: Store
) -> None:
    """Issue 13: about 4 write transactions per email before; now two per group of 32."""
    recorder, port = smtp
    items = plan(store, 100)
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        stats = send_all(store, smtp_config(port), items)
    finally:
        store.db.conn.set_trace_callback(None)
    assert stats.sent == 100 and len(recorder.received) == 100
    transactions = sum(s.startswith("BEGIN") for s in statements)
    assert transactions <= 2 * -(-100 // GROUP) + 2, transactions
    assert set(statuses(store).values()) == {"sent"}
    assert store.sent_counts(1) == (1, 1) and store.sent_counts(100) == (1, 1)


def test_due_deliveries_page_in_id_order_by_index_seeks(store: Store) -> None:
    """Never tried, retries whose time has come, retries not yet due, and the sent, mixed:
    pages of 7 give exactly the due ones in id order (per shard too), and the never-tried
    are read by seeking the status index from the page's start, not by sorting every
    pending delivery for each page."""
    items = plan(store, 60)
    ids = [j.delivery_id for j in items]
    later = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    for n, delivery_id in enumerate(ids):
        if n % 5 == 1:
            store.mark_retry(delivery_id, "451 busy", NOW, NOW)  # due now
        elif n % 5 == 2:
            store.mark_retry(delivery_id, "451 busy", later, NOW)  # due later
        elif n % 5 == 3:
            store.claim_delivery(delivery_id, NOW)
    due = [i for n, i in enumerate(ids) if n % 5 in (0, 1, 4)]
    by_subscriber = {j.delivery_id: j.subscriber_id for j in items}
    for shard in (None, (1, 3), (3, 3)):
        pages: list[int] = []
        statements: list[str] = []
        store.db.conn.set_trace_callback(statements.append)
        try:
            while rows := store.due_deliveries(NOW, shard, after_id=max(pages, default=0), limit=7):
                assert len(rows) <= 7
                pages += [r.id for r in rows]
        finally:
            store.db.conn.set_trace_callback(None)
        expected = [i for i in due if not shard or by_subscriber[i] % 3 == shard[0] - 1]
        assert pages == expected, shard
        fresh = next(s for s in statements if "next_attempt_at is null" in s)
        plan_text = " / ".join(r[3] for r in store.db.execute(f"explain query plan {fresh}"))
        assert "rowid>?" in plan_text and "TEMP B-TREE" not in plan_text, plan_text
    assert [r.id for r in store.due_deliveries(later)] == [
        i for n, i in enumerate(ids) if n % 5 != 3
    ]


def test_a_group_claim_looks_its_deliveries_up_by_id_however_many_are_pending(
    store: Store,
) -> None:
    """By the status index, each claim read every pending delivery (3 ms a group with 60,000
    pending, so a run's claims grew with the square of its size): the plan must be the ids'."""
    items = plan(store, 200)
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        claimed, gone = store.claim_deliveries([j.delivery_id for j in items[:32]], NOW)
    finally:
        store.db.conn.set_trace_callback(None)
    assert len(claimed) == 32 and not gone
    (select,) = [s for s in statements if s.lstrip().lower().startswith("select")]
    plan_text = " / ".join(row[3] for row in store.db.execute(f"explain query plan {select}"))
    # newer SQLite says "SEARCH d", older "SEARCH TABLE deliveries AS d"
    assert re.search(r"SEARCH (TABLE deliveries AS )?d USING INTEGER PRIMARY KEY", plan_text)
    assert store.claim_deliveries([j.delivery_id for j in items[:33]], NOW)[0] == {
        items[32].delivery_id
    }, "the ones already claimed are not claimed twice"
