"""The bounce reader's specification (digest.bounces): what each kind of message in the bounce
mailbox is read as (RFC 3464 DSNs by action and status, RFC 5965 complaints, prose bounces of
Postfix, Exim, sendmail, qmail, Exchange and Gmail, auto-replies, unsubscribe requests), how the
MIME parts are read defensively, VERP tokens (round trip, tampering refused), and the policy
acting on a report: hard bounces at once up to `bounce_limit`, soft ones `soft_limit` within
`soft_days`, complaints and requests unsubscribe. Messages are built here from the RFCs'
formats; the recorded samples are read in test_bounces.py. The policy runs on a real SQLite
store with an injected clock."""

from __future__ import annotations

import base64
import itertools
import quopri
import re
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.bounces.classify import Mailboxes, classify
from digest.bounces.events import Kind, RecipientStatus, Report, Source, VerpDelivery, worst
from digest.bounces.parts import (
    MAX_BLOCKS,
    MAX_TEXT,
    addresses,
    body_text,
    charset_of,
    header,
    message_id,
    one_line,
    parse_fields,
    report_fields,
    returned_headers,
    text_of,
    typed_address,
)
from digest.bounces.policy import Action, Policy, apply
from digest.bounces.verp import (
    compact_edition,
    envelope_sender,
    expand_edition,
    find_token,
    make_token,
    read_token,
    token_in_address,
)
from digest.errors import TokenError
from digest.message import message_id_for
from digest.models import Subscriber
from digest.store import DeliveryStatus, Origin, PlannedDelivery, Store
from tests.conftest import make_config

SECRET = "bounce-spec-secret"
BOUNCE = "bounces@digest.test"
UNSUBSCRIBE = "unsubscribe@digest.test"
BOXES = Mailboxes(BOUNCE, UNSUBSCRIBE, SECRET)
DAY = "2026-09-24"
VERP = envelope_sender(BOUNCE, SECRET, 7, DAY)
FROM = "Paper Digest <digest@digest.test>"


def parse(raw: str | bytes) -> Message:
    data = raw.encode() if isinstance(raw, str) else raw
    return BytesParser(policy=compat32).parsebytes(data)


def block(recipient: str = "ada@example.org", action: str = "failed", status: str = "5.1.1",
          extra: str = "", field: str = "Final-Recipient") -> str:  # fmt: skip
    """One per-recipient block of a delivery-status part."""
    return f"{field}: rfc822; {recipient}\nAction: {action}\nStatus: {status}\n{extra}"


def original(to: str = "ada@example.org", return_path: str = VERP,
             mid: str = "<2026-09-24.7@digest.test>") -> str:  # fmt: skip
    return f"Return-Path: <{return_path}>\nFrom: {FROM}\nTo: {to}\nMessage-ID: {mid}\n"


def dsn(*blocks: str, report_type: str | None = "delivery-status", to: str = VERP,
        status_type: str = "message/delivery-status", returned: str | None = None,
        returned_type: str = "text/rfc822-headers", headers: str = "") -> bytes:  # fmt: skip
    """A multipart/report as an MTA sends it: prose, the status part, our headers back."""
    param = f"; report-type={report_type}" if report_type else ""
    status = "Reporting-MTA: dns; mx.example.net\n\n" + "\n".join(blocks or (block(),))
    back = original() if returned is None else returned
    return (
        f"From: MAILER-DAEMON@mx.example.net\nTo: {to}\nSubject: Delivery Status Notification\n"
        f'{headers}MIME-Version: 1.0\nContent-Type: multipart/report{param}; boundary="B"\n\n'
        f"--B\nContent-Type: text/plain\n\nThe mail system.\n\n"
        f"--B\nContent-Type: {status_type}\n\n{status}\n"
        f"--B\nContent-Type: {returned_type}\n\n{back}\n--B--\n"
    ).encode()


# ---------------------------------------------------------------- DSNs (RFC 3464)

ACTIONS = [
    ("failed", "5.1.1", Kind.HARD_BOUNCE),
    ("failed", "5.7.1", Kind.HARD_BOUNCE),
    ("FAILED", "5.0.0", Kind.HARD_BOUNCE),
    ("failed (bad mailbox)", "5.1.1 (user unknown)", Kind.HARD_BOUNCE),
    ("failed", "4.2.2", Kind.SOFT_BOUNCE),
    ("failed", "", Kind.SOFT_BOUNCE),
    ("failed", "x.y.z", Kind.SOFT_BOUNCE),
    ("delayed", "4.4.1", Kind.DELAYED),
    ("delivered", "2.0.0", Kind.INFORMATIONAL),
    ("relayed", "2.0.0", Kind.INFORMATIONAL),
    ("expanded", "2.0.0", Kind.INFORMATIONAL),
    ("", "5.1.1", Kind.SOFT_BOUNCE),
    ("bogus", "4.0.0", Kind.SOFT_BOUNCE),
    ("bogus", "2.0.0", Kind.INFORMATIONAL),
]


@pytest.mark.parametrize(("action", "status", "kind"), ACTIONS)
def test_a_dsn_recipient_is_hard_only_when_failed_with_a_5xx_status(
    action: str, status: str, kind: Kind
) -> None:
    report = classify(dsn(block(action=action, status=status)), BOXES)
    assert (report.kind, report.source) == (kind, Source.DSN), report.reason
    (recipient,) = report.recipients
    assert (recipient.address, recipient.kind) == ("ada@example.org", kind)
    assert recipient.status == (status.split()[0] if status[:1].isdigit() else "")
    assert report.delivery == VerpDelivery(7, DAY)


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        (("5.1.1", "4.2.2"), Kind.HARD_BOUNCE),
        (("4.2.2", "delayed"), Kind.SOFT_BOUNCE),
        (("delivered", "delayed"), Kind.DELAYED),
        (("delivered", "delivered"), Kind.INFORMATIONAL),
    ],
)
def test_a_dsn_for_several_recipients_is_as_bad_as_its_worst(
    kinds: tuple[str, str], expected: Kind
) -> None:
    blocks = [
        block(f"r{n}@example.org", "failed", k) if k[0].isdigit() else
        block(f"r{n}@example.org", k, "4.4.1" if k == "delayed" else "2.0.0")
        for n, k in enumerate(kinds)
    ]  # fmt: skip
    report = classify(dsn(*blocks), BOXES)
    assert report.kind is expected
    assert [r.address for r in report.recipients] == ["r0@example.org", "r1@example.org"]


@given(st.lists(st.sampled_from(list(Kind)), max_size=8), st.randoms())
def test_worst_is_the_first_failure_kind_present_whatever_the_order(
    kinds: list[Kind], random: object
) -> None:
    shuffled = list(kinds)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    order = [Kind.HARD_BOUNCE, Kind.SOFT_BOUNCE, Kind.DELAYED, Kind.INFORMATIONAL]
    expected = next((k for k in order if k in kinds), Kind.INFORMATIONAL)
    assert worst(tuple(kinds)) == worst(tuple(shuffled)) == expected


def test_original_recipient_stands_in_when_final_recipient_is_missing() -> None:
    report = classify(dsn(block("old@example.org", field="Original-Recipient")), BOXES)
    assert [r.address for r in report.recipients] == ["old@example.org"]


def test_the_per_message_block_is_never_a_recipient_and_diagnostics_lose_their_type() -> None:
    extra = "Diagnostic-Code: smtp; 550 5.1.1 <ada@example.org>: user\n  unknown here\n"
    report = classify(dsn(block(extra=extra)), BOXES)
    (recipient,) = report.recipients
    assert recipient.diagnostic == "550 5.1.1 <ada@example.org>: user unknown here"
    assert report.reason == "DSN: failed 5.1.1"


def test_a_repeated_field_cannot_override_what_the_mta_stated_first() -> None:
    report = classify(dsn(block(status="4.2.2", extra="Status: 5.1.1\n")), BOXES)
    assert report.kind is Kind.SOFT_BOUNCE and report.recipients[0].status == "4.2.2"


@pytest.mark.parametrize(
    ("report_type", "status_type", "kind"),
    [
        ("delivery-status", "message/delivery-status", Kind.HARD_BOUNCE),
        ("Delivery-Status", "message/delivery-status", Kind.HARD_BOUNCE),
        ("global-delivery-status", "message/global-delivery-status", Kind.HARD_BOUNCE),
        (None, "message/delivery-status", Kind.HARD_BOUNCE),
        ("delivery-status", "text/plain", Kind.UNPARSEABLE),
        ("feedback-report", "message/delivery-status", Kind.UNPARSEABLE),
    ],
    ids=["dsn", "case", "global", "no-param", "no-status-part", "param-decides"],
)
def test_the_report_type_parameter_decides_how_a_report_is_read(
    report_type: str | None, status_type: str, kind: Kind
) -> None:
    report = classify(dsn(report_type=report_type, status_type=status_type), BOXES)
    assert report.kind is kind, report.reason


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable"])
def test_a_transfer_encoded_status_part_is_read(encoding: str) -> None:
    rcpt = block("jürgen@example.org")
    status = "Reporting-MTA: dns; mx.example.net\n\n" + rcpt
    encoded = (
        base64.encodebytes(status.encode())
        if encoding == "base64"
        else quopri.encodestring(status.encode()).replace(b"Action: ", b"Act=\nion: ")
    )
    raw = dsn(rcpt, report_type="global-delivery-status").replace(
        b"Content-Type: message/delivery-status\n\n" + status.encode(),
        b"Content-Type: message/global-delivery-status\n"
        + f"Content-Transfer-Encoding: {encoding}\n\n".encode()
        + encoded,
    )
    report = classify(raw, BOXES)
    assert report.kind is Kind.HARD_BOUNCE, report.reason
    assert [r.address for r in report.recipients] == ["jürgen@example.org"]


def test_a_report_without_recipients_or_status_part_says_which() -> None:
    nobody = classify(dsn("Arrival-Date: today\n"), BOXES)
    assert (nobody.kind, nobody.reason) == (Kind.UNPARSEABLE, "delivery report naming no recipient")
    bare = classify(dsn(status_type="text/plain"), BOXES)
    assert bare.reason == "delivery report without a status part"


def test_a_multipart_report_of_another_type_is_not_a_bounce() -> None:
    mdn = dsn(report_type="disposition-notification").replace(
        b"From: MAILER-DAEMON@mx.example.net", b"From: ada@example.org"
    ).replace(b"Subject: Delivery Status Notification", b"Subject: Read: Papers")  # fmt: skip
    report = classify(mdn, BOXES)
    assert (report.kind, report.reason) == (
        Kind.UNPARSEABLE, "multipart/report of no known report-type"
    )  # fmt: skip


@pytest.mark.parametrize(
    "returned_type",
    [
        "text/rfc822-headers",
        "message/rfc822",
        "message/global-headers",
        "message/global",
    ],
)
def test_the_token_and_message_id_come_from_the_returned_headers_in_any_form(
    returned_type: str,
) -> None:
    """Sent back to the bare bounce address, the token is our Return-Path in the copy."""
    report = classify(dsn(to=BOUNCE, returned_type=returned_type), BOXES)
    assert report.delivery == VerpDelivery(7, DAY)
    assert report.message_id == "<2026-09-24.7@digest.test>"


def test_the_token_the_report_was_sent_to_wins_over_the_returned_one() -> None:
    other = envelope_sender(BOUNCE, SECRET, 8, DAY)
    report = classify(dsn(returned=original(return_path=other)), BOXES)
    assert report.delivery == VerpDelivery(7, DAY)


def test_a_report_without_any_token_is_read_but_names_no_delivery() -> None:
    report = classify(dsn(to=BOUNCE, returned=original(return_path=BOUNCE)), BOXES)
    assert report.kind is Kind.HARD_BOUNCE and report.token is None and report.delivery is None


def test_without_a_bounce_address_no_token_is_looked_for() -> None:
    report = classify(dsn(), Mailboxes())
    assert report.kind is Kind.HARD_BOUNCE and report.token is None and report.delivery is None


@pytest.mark.parametrize("local", ["bounces+garbage", "bounces+7-20260924-", "bounces+0"])
def test_anything_after_the_delimiter_that_is_no_genuine_token_refuses_the_report(
    local: str,
) -> None:
    report = classify(dsn(to=f"{local}@digest.test"), BOXES)
    assert report.kind is Kind.REFUSED and report.reason.startswith("hard_bounce refused: ")
    assert report.recipients == () and report.delivery is None


def test_a_bounce_that_also_says_auto_submitted_is_still_a_bounce() -> None:
    raw = dsn(headers="Auto-Submitted: auto-replied\n")
    assert classify(raw, BOXES).kind is Kind.HARD_BOUNCE


# ---------------------------------------------------------------- complaints (RFC 5965)


def arf(feedback_type: str | None = "abuse", rcpt: str | None = "ada@example.org",
        mail_from: str = VERP, returned: str | None = None) -> bytes:  # fmt: skip
    fields = "Version: 1\nUser-Agent: FBL/1.0\n"
    fields += f"Feedback-Type: {feedback_type}\n" if feedback_type else ""
    fields += f"Original-Mail-From: <{mail_from}>\n"
    fields += f"Original-Rcpt-To: <{rcpt}>\n" if rcpt else ""
    back = original(return_path=BOUNCE) if returned is None else returned
    return (
        "From: fbl@isp.example\nTo: bounces@digest.test\nSubject: FW: Papers\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\n\n'
        "--F\nContent-Type: text/plain\n\nA complaint.\n\n"
        f"--F\nContent-Type: message/feedback-report\n\n{fields}\n"
        f"--F\nContent-Type: message/rfc822\n\n{back}\nbody\n--F--\n"
    ).encode()


@pytest.mark.parametrize(
    ("feedback_type", "kind"),
    [("abuse", Kind.COMPLAINT), ("Abuse", Kind.COMPLAINT), ("fraud", Kind.INFORMATIONAL),
     ("not-spam", Kind.INFORMATIONAL), ("virus", Kind.INFORMATIONAL),
     ("other", Kind.INFORMATIONAL)],
)  # fmt: skip
def test_only_an_abuse_feedback_report_is_a_complaint(feedback_type: str, kind: Kind) -> None:
    report = classify(arf(feedback_type), BOXES)
    assert (report.kind, report.source) == (kind, Source.ARF)
    assert report.feedback_type == feedback_type.lower()
    assert report.delivery == VerpDelivery(7, DAY), "the token from Original-Mail-From"
    assert [(r.address, r.kind) for r in report.recipients] == [("ada@example.org", kind)]


def test_a_feedback_report_without_feedback_type_is_unparseable() -> None:
    assert classify(arf(None), BOXES).kind is Kind.UNPARSEABLE


def test_a_feedback_report_without_feedback_type_says_so() -> None:
    assert classify(arf(None), BOXES).reason == "feedback report without Feedback-Type"


def test_a_feedback_report_without_its_report_part_is_unparseable() -> None:
    raw = arf().replace(b"Content-Type: message/feedback-report", b"Content-Type: text/plain")
    report = classify(raw, BOXES)
    assert (report.kind, report.reason) == (
        Kind.UNPARSEABLE, "feedback report without its report part"
    )  # fmt: skip


def test_a_redacted_complaint_names_the_returned_to_and_the_returned_token() -> None:
    bare = original(to="x@isp.example", return_path=BOUNCE)
    report = classify(arf(rcpt=None, mail_from="", returned=bare), BOXES)
    assert report.kind is Kind.COMPLAINT
    assert report.recipients[0].address == "x@isp.example"
    assert report.delivery is None
    verp_copy = original(to="x@isp.example")
    report = classify(arf(rcpt=None, mail_from="", returned=verp_copy), BOXES)
    assert report.delivery == VerpDelivery(7, DAY)


def test_a_complaint_with_a_forged_envelope_token_is_refused_whole() -> None:
    forged = envelope_sender(BOUNCE, "not-our-secret", 7, DAY)
    report = classify(arf(mail_from=forged), BOXES)
    assert report.kind is Kind.REFUSED and report.recipients == () and report.delivery is None


# ---------------------------------------------------------------- prose bounces

EXIM = """From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: {to}
Subject: Mail delivery failed: returning message to sender

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  ada@example.org
    host mx.example.org [192.0.2.1]
    SMTP error from remote mail server after RCPT TO:<ada@example.org>:
    {reply}

------ This is a copy of the message, including all the headers. ------

Return-path: <{verp}>
To: ada@example.org
Message-ID: <2026-09-24.7@digest.test>

A paper about error 5.1.1 and bob@example.org.
"""

GMAIL = """From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: {to}
Subject: Delivery Status Notification (Failure)

** Message not delivered **

Your message wasn't delivered to ada@example.org.

The response from the remote server was:
{reply}
"""

SENDMAIL = """From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>
To: {to}
Subject: Returned mail: see transcript for details

   ----- The following addresses had permanent fatal errors -----
<ada@example.org>
    (reason: {reply})
"""

POSTFIX = """From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender

This is the mail system at host mx.example.net.

<ada@example.org> (expanded from <team@example.org>): host mx.example.org[10.5.1.1]
    said: {reply} (in reply to RCPT TO command)
"""

QMAIL = """From: MAILER-DAEMON@mx.example.net
To: {to}
Subject: failure notice

Hi. This is the qmail-send program at mx.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.

<ada@example.org>:
{reply}
"""

EXCHANGE = """From: postmaster@contoso.example
To: {to}
Subject: Undeliverable: Papers

Delivery has failed to these recipients or groups:

ada@example.org
Your message couldn't be delivered.

Remote Server returned '{reply}'
"""

PROSE = [
    (EXIM, "550 5.1.1 <ada@example.org>: User unknown", Source.TEXT_BOUNCE, Kind.HARD_BOUNCE,
     "5.1.1"),
    (EXIM, "452 4.2.2 Mailbox full", Source.TEXT_BOUNCE, Kind.SOFT_BOUNCE, "4.2.2"),
    (GMAIL, "550 5.1.1 The email account does not exist", Source.TEXT_BOUNCE, Kind.HARD_BOUNCE,
     "5.1.1"),
    (GMAIL, "552 5.2.2 The account is over quota", Source.TEXT_BOUNCE, Kind.SOFT_BOUNCE,
     "5.2.2"),
    (SENDMAIL, "550 5.1.1 User unknown", Source.TEXT_BOUNCE, Kind.HARD_BOUNCE, "5.1.1"),
    (SENDMAIL, "554 5.7.1 Relay denied", Source.TEXT_BOUNCE, Kind.SOFT_BOUNCE, "5.7.1"),
    (POSTFIX, "550 5.1.1 no such user", Source.POSTFIX_TEXT, Kind.HARD_BOUNCE, "5.1.1"),
    (POSTFIX, "550 no such user (server v2.5.1.1)", Source.POSTFIX_TEXT, Kind.SOFT_BOUNCE,
     "550"),
    (POSTFIX, "mailbox unavailable", Source.POSTFIX_TEXT, Kind.SOFT_BOUNCE, ""),
    (QMAIL, "This mailbox is disabled (#5.2.1)", Source.QMAIL, Kind.HARD_BOUNCE, "5.2.1"),
    (QMAIL, "Sorry, I couldn't find any host by that name. (#4.1.2)", Source.QMAIL,
     Kind.SOFT_BOUNCE, "4.1.2"),
    (EXCHANGE, "550 5.1.10 RESOLVER.ADR.RecipientNotFound", Source.EXCHANGE, Kind.HARD_BOUNCE,
     "5.1.10"),
    (EXCHANGE, "554 5.2.2 mailbox full", Source.EXCHANGE, Kind.SOFT_BOUNCE, "5.2.2"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("template", "reply", "source", "kind", "status"),
    PROSE,
    ids=[f"{t.split(chr(10))[2][9:25].strip()}-{r[:9]}" for t, r, *_ in PROSE],
)
def test_prose_bounces_are_hard_only_for_a_dead_address_code_in_their_own_text(
    template: str, reply: str, source: Source, kind: Kind, status: str
) -> None:
    raw = template.format(to=VERP, reply=reply, verp=VERP)
    report = classify(raw.encode(), BOXES)
    assert (report.kind, report.source) == (kind, source), report.reason
    (recipient,) = report.recipients
    assert (recipient.address, recipient.status) == ("ada@example.org", status)
    assert report.delivery == VerpDelivery(7, DAY)


def test_the_returned_copy_gives_the_message_id_and_none_of_its_codes_or_addresses() -> None:
    raw = EXIM.format(to=VERP, reply="451 4.3.0 try again", verp=VERP)
    report = classify(raw.encode(), BOXES)
    assert report.kind is Kind.SOFT_BOUNCE
    assert [r.address for r in report.recipients] == ["ada@example.org"]
    assert report.message_id == "<2026-09-24.7@digest.test>"


def test_a_warning_that_delivery_is_still_tried_is_a_delay_never_a_bounce() -> None:
    raw = POSTFIX.format(to=VERP, reply="550 5.1.1 no such user").replace(
        "This is the mail system", "THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND.\n\n"
        "This is the mail system",
    )  # fmt: skip
    report = classify(raw.encode(), BOXES)
    assert report.kind is Kind.DELAYED and report.recipients[0].status == "5.1.1"


def test_each_angle_paragraph_is_its_own_recipients_verdict() -> None:
    raw = QMAIL.format(to=VERP, reply="No mailbox here. (#5.1.1)") + (
        "\n<bob@example.org>:\nMailbox full. (#4.2.2)\n\n<bounces@digest.test>:\nloop (#5.4.6)\n"
    )
    report = classify(raw.encode(), BOXES)
    assert [(r.address, r.kind) for r in report.recipients] == [
        ("ada@example.org", Kind.HARD_BOUNCE), ("bob@example.org", Kind.SOFT_BOUNCE)
    ], "our own bounce address is never a recipient"  # fmt: skip
    assert report.kind is Kind.HARD_BOUNCE


def test_prose_naming_two_addresses_without_paragraphs_names_no_recipient() -> None:
    raw = GMAIL.format(to=BOUNCE, reply="550 5.1.1 unknown, try bob@example.org instead")
    report = classify(raw.encode(), BOXES)
    assert (report.kind, report.source) == (Kind.UNPARSEABLE, Source.TEXT_BOUNCE)
    assert report.reason == "text_bounce bounce naming no recipient"


def test_a_bounce_robots_own_address_in_the_prose_is_not_the_recipient() -> None:
    raw = GMAIL.format(to=BOUNCE, reply="550 5.1.1 unknown; ask postmaster@example.org")
    report = classify(raw.encode(), BOXES)
    assert [r.address for r in report.recipients] == ["ada@example.org"]


@pytest.mark.parametrize(
    ("sender", "subject"),
    [("Ada <ada@example.org>", "Mail delivery failed"),
     ("MAILER-DAEMON@mx.example.net", "Your papers were lovely")],
)  # fmt: skip
def test_a_bounce_subject_from_a_person_or_a_daemon_chatting_is_no_bounce(
    sender: str, subject: str
) -> None:
    raw = f"From: {sender}\nTo: {BOUNCE}\nSubject: {subject}\n\n<ada@example.org>: 550 5.1.1\n"
    assert classify(raw.encode(), BOXES).kind is Kind.UNPARSEABLE


def test_a_prose_bounce_with_a_forged_token_is_refused() -> None:
    forged = envelope_sender(BOUNCE, "not-our-secret", 7, DAY)
    raw = POSTFIX.format(to=forged, reply="550 5.1.1 no such user")
    report = classify(raw.encode(), BOXES)
    assert report.kind is Kind.REFUSED and report.recipients == ()


# ---------------------------------------------------------------- auto-replies and requests


@pytest.mark.parametrize(
    ("headers", "auto"),
    [
        ("Auto-Submitted: auto-replied\n", True),
        ("Auto-Submitted: auto-generated; owner-email=x@y\n", True),
        ("Auto-Submitted: no\n", False),
        ("X-Autoreply: yes\n", True),
        ("X-Autorespond: Vacation\n", True),
        ("X-Autoreply: no\n", False),
        ("Precedence: auto_reply\n", True),
        ("Precedence: bulk\n", False),
        ("Subject: Out of Office: back Monday\n", True),
        ("Subject: Automatic reply: Papers\n", True),
        ("Subject: Autoantwort: Papers\n", True),
        ("Subject: Abwesenheit\n", True),
        ("Subject: =?iso-8859-1?q?Respuesta_autom=E1tica?=\n", True),
        ("Subject: Autosvar\n", True),
        ("Subject: =?utf-8?q?R=C3=A9ponse_automatique?=\n", True),
        ("Subject: Re: Papers, and my vacation photos\n", False),
    ],
)
def test_auto_replies_are_recognised_by_header_or_subject(headers: str, auto: bool) -> None:
    raw = f"From: ada@example.org\nTo: {VERP}\n{headers}\nI am away.\n"
    report = classify(raw.encode(), BOXES)
    assert (report.kind is Kind.AUTO_REPLY) == auto, report.reason
    assert report.delivery is None


@pytest.mark.parametrize("subject", ["Réponse automatique", "Respuesta automática"])
def test_a_raw_utf8_vacation_subject_is_an_auto_reply(subject: str) -> None:
    raw = f"From: ada@example.org\nTo: {VERP}\nSubject: {subject}\n\nI am away.\n"
    assert classify(raw.encode(), BOXES).kind is Kind.AUTO_REPLY


def request(to: str = UNSUBSCRIBE, sender: str = "Ada <ada@example.org>",
            subject: str = "unsubscribe", cc: str = "") -> bytes:  # fmt: skip
    lines = f"From: {sender}\n" if sender else ""
    lines += f"To: {to}\n" + (f"Cc: {cc}\n" if cc else "")
    return f"{lines}Subject: {subject}\n\nplease\n".encode()


def test_a_request_may_reach_the_unsubscribe_address_by_to_cc_or_its_verp_form() -> None:
    token = make_token(SECRET, 7, DAY)
    for raw, delivery in [
        (request(), None),
        (request(to="someone@example.org", cc=UNSUBSCRIBE.upper()), None),
        (request(to=f"unsubscribe+{token}@digest.test"), VerpDelivery(7, DAY)),
        (request(subject=f"unsubscribe {token}"), VerpDelivery(7, DAY)),
    ]:
        report = classify(raw, BOXES)
        assert (report.kind, report.source) == (Kind.UNSUBSCRIBE, Source.MAILTO), report.reason
        assert (report.sender, report.delivery) == ("ada@example.org", delivery)


def test_an_auto_reply_to_the_unsubscribe_address_unsubscribes_nobody() -> None:
    raw = request(subject="Out of office").replace(
        b"Subject:", b"Auto-Submitted: auto-replied\nSubject:"
    )
    assert classify(raw, BOXES).kind is Kind.AUTO_REPLY


def test_a_message_to_neither_of_our_addresses_is_nothing_we_act_on() -> None:
    report = classify(request(to="someone@example.org"), BOXES)
    assert (report.kind, report.reason) == (
        Kind.UNPARSEABLE, "neither a bounce, a complaint, an auto-reply nor a request"
    )  # fmt: skip


def test_a_request_without_a_from_cannot_name_whom_to_unsubscribe() -> None:
    report = classify(request(sender=""), BOXES)
    assert (report.kind, report.reason) == (
        Kind.UNPARSEABLE, "unsubscribe request without a From"
    )  # fmt: skip


# ---------------------------------------------------------------- never raises


SAMPLE = dsn()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000))
def test_any_bytes_classify_to_a_report_with_a_reason(raw: bytes) -> None:
    report = classify(raw, BOXES)
    assert isinstance(report.kind, Kind) and report.reason


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(SAMPLE)), st.integers(0, 200), st.binary(max_size=40))
def test_a_damaged_dsn_still_classifies_and_is_never_hard_without_its_status(
    at: int, cut: int, junk: bytes
) -> None:
    raw = SAMPLE[:at] + junk + SAMPLE[at + cut :]
    report = classify(raw, BOXES)
    assert report.reason
    # a 5.x.x status still on a Status line, junk or not before it ("Status:\x00 5.1.1"),
    # is the status: only without one may a damaged report never read as hard
    if not _FIVE_STATUS.search(raw) and report.source is Source.DSN:
        assert report.kind is not Kind.HARD_BOUNCE


_FIVE_STATUS = re.compile(rb"Status:[^\n]*?5\.\d{1,3}\.\d{1,3}", re.IGNORECASE)


# ---------------------------------------------------------------- reading MIME parts


def test_one_line_collapses_whitespace_and_cuts() -> None:
    assert one_line("  a\r\n\tb   c \n") == "a b c"
    assert one_line("x" * 500) == "x" * 300 and one_line("ab cd", 4) == "ab c"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"Subject: =?utf-8?b?w6l0w6k=?=\n\n", "été"),
        (b"Subject: =?iso-8859-1?q?caf=E9?= ok\n\n", "café ok"),
        (b"Subject: =?x-unknown?q?abc?=\n\n", "=?x-unknown?q?abc?="),
        (b"Subject: caf\xe9\n\n", "caf\ufffd"),
        (b"Subject: a\n  folded\n\n", "a folded"),
        (b"X-Other: 1\n\n", ""),
    ],
    ids=["rfc2047-b", "rfc2047-q", "broken-word", "raw-8bit", "folded", "missing"],
)
def test_a_header_reads_as_one_decoded_line_whatever_arrives(raw: bytes, text: str) -> None:
    assert header(parse(raw), "Subject") == text


def test_addresses_are_every_address_of_every_named_header_in_order() -> None:
    msg = parse("To: A <a@x.org>, b@y.org\nCc: not an address\nTo: c@z.org\nCc: d@w.org\n\n")
    assert addresses(msg, "To", "Cc") == ["a@x.org", "b@y.org", "c@z.org", "d@w.org"]
    assert addresses(msg, "Bcc") == []


@pytest.mark.parametrize(
    ("charset", "name"),
    [(None, "utf-8"), ("latin-1", "iso8859-1"), ("x-unknown", "utf-8"), ("rot13", "utf-8"),
     ("base64", "utf-8"), ("UTF-8", "utf-8")],
)  # fmt: skip
def test_a_part_decodes_with_its_charset_only_when_that_is_a_text_encoding(
    charset: str | None, name: str
) -> None:
    param = f"; charset={charset}" if charset else ""
    part = parse(f"Content-Type: text/plain{param}\n\nx\n")
    assert charset_of(part) == name


@pytest.mark.parametrize(
    ("headers", "body", "text"),
    [
        ("Content-Transfer-Encoding: base64\nContent-Type: text/plain; charset=latin-1",
         base64.b64encode("café".encode("latin-1")).decode(), "café"),
        ("Content-Transfer-Encoding: quoted-printable", "caf=C3=A9", "café"),
        ("Content-Type: text/plain; charset=rot13", "abc", "abc"),
        ("Content-Type: text/plain; charset=utf-8", "\udcff", "\ufffd"),
        ("Content-Type: multipart/mixed; boundary=b", "--b\n\nx\n--b--", ""),
    ],
    ids=["base64-latin1", "qp", "rot13", "bad-utf8", "multipart"],
)  # fmt: skip
def test_the_text_of_a_part_is_decoded_or_empty_never_an_error(
    headers: str, body: str, text: str
) -> None:
    raw = f"{headers}\n\n{body}".encode("utf-8", "surrogateescape")
    assert text_of(parse(raw)).rstrip("\n") == text


def test_the_text_of_a_part_is_cut_at_max_text() -> None:
    assert len(text_of(parse("Content-Type: text/plain\n\n" + "y" * (MAX_TEXT + 99)))) == MAX_TEXT


def nested(depth: int, leaf: str) -> str:
    if depth == 0:
        return leaf
    inner = nested(depth - 1, leaf)
    return (
        f'Content-Type: multipart/mixed; boundary="d{depth}"\n\n--d{depth}\n{inner}\n--d{depth}--\n'
    )


def test_the_body_text_is_the_plain_text_else_the_html_never_an_attached_message() -> None:
    both = (
        'Content-Type: multipart/alternative; boundary="a"\n\n--a\nContent-Type: text/html\n\n'
        "<p>html</p>\n--a\nContent-Type: text/plain\n\nplain\n--a\nContent-Type: message/rfc822"
        "\n\nSubject: inner\n\ninner text\n--a--\n"
    )
    assert body_text(parse(both)).strip() == "plain"
    html_only = both.replace("Content-Type: text/plain\n\nplain\n--a\n", "")
    assert body_text(parse(html_only)).strip() == "<p>html</p>"


def test_the_body_text_stops_at_max_depth() -> None:
    leaf = "Content-Type: text/plain\n\ndeep"
    assert body_text(parse(nested(4, leaf))).strip() == "deep"
    assert body_text(parse(nested(6, leaf))) == ""


def test_report_fields_are_blocks_lowercased_unfolded_first_kept_and_capped() -> None:
    text = "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y\nSTATUS: 5.1.1\n  (really)\n"
    text += "Status: 2.0.0\n\n\n" + "no colon here\n"
    assert parse_fields(text) == [
        {"reporting-mta": "dns; a"},
        {"final-recipient": "rfc822; x@y", "status": "5.1.1 (really)"},
    ]
    many = "\n\n".join(f"Final-Recipient: rfc822; r{n}@x" for n in range(MAX_BLOCKS + 50))
    assert len(parse_fields(many)) == MAX_BLOCKS


def test_report_fields_read_a_status_part_however_the_parser_split_it() -> None:
    raw = dsn(block(status="4.2.2"))
    status = parse(raw).get_payload()[1]  # type: ignore[index]
    assert isinstance(status, Message) and report_fields(status)[1]["status"] == "4.2.2"
    as_text = parse("Content-Type: text/plain\n\nFinal-Recipient: rfc822; q@x\nAction: failed\n")
    assert report_fields(as_text) == [{"final-recipient": "rfc822; q@x", "action": "failed"}]


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("message/rfc822", original()),
        ("text/rfc822-headers", original()),
        ("message/global-headers", original()),
        ("message/global", original() + "\nbody"),
    ],
)
def test_the_returned_headers_are_read_from_every_returned_form(ctype: str, body: str) -> None:
    got = returned_headers(parse(f"Content-Type: {ctype}\n\n{body}\n"))
    assert got is not None and got["To"] == "ada@example.org"
    assert returned_headers(parse(f"Content-Type: text/plain\n\n{body}")) is None


@pytest.mark.parametrize(
    ("value", "normalised"),
    [("<a@b>", "<a@b>"), ("a@b", "<a@b>"), ("  <a@b>  ", "<a@b>"), ("<<a@b>>", "<a@b>"),
     ("<a b@c>", None), ("", None)],
)  # fmt: skip
def test_a_message_id_is_one_pair_of_brackets_or_none(value: str, normalised: str | None) -> None:
    assert message_id(parse(f"Message-ID: {value}\n\n")) == normalised
    assert message_id(None) is None


@pytest.mark.parametrize(
    ("value", "address"),
    [("rfc822; a@b.org", "a@b.org"), ("rfc822;<a@b.org>", "a@b.org"), ("a@b.org", "a@b.org"),
     ("utf-8; x;y@b.org", "y@b.org"), ("", "")],
)  # fmt: skip
def test_a_typed_address_loses_its_type_and_brackets(value: str, address: str) -> None:
    assert typed_address(value) == address


# ---------------------------------------------------------------- VERP


@given(st.integers(0, 10**18 - 1), st.dates(date(1000, 1, 1), date(9999, 12, 31)))
def test_a_daily_token_reads_back_to_its_delivery_in_any_case(sid: int, day: date) -> None:
    token = make_token(SECRET, sid, day.isoformat())
    assert read_token(SECRET, token) == VerpDelivery(sid, day.isoformat())
    assert read_token(SECRET, f"  {token.upper()} ") == VerpDelivery(sid, day.isoformat())
    assert find_token(f"Re: stop {token}!") == token


@given(st.integers(0, 99_999), st.integers(1000, 9999), st.integers(1, 53))
def test_a_weekly_token_reads_back_and_editions_compact_both_ways(
    sid: int, year: int, week: int
) -> None:
    edition = f"{year}-W{week:02d}"
    assert expand_edition(compact_edition(edition)) == edition
    assert read_token(SECRET, make_token(SECRET, sid, edition)) == VerpDelivery(sid, edition)


@settings(max_examples=100)
@given(st.integers(0, 10**6), st.data())
def test_changing_any_one_character_of_a_token_is_refused(sid: int, data: st.DataObject) -> None:
    token = make_token(SECRET, sid, DAY)
    at = data.draw(st.integers(0, len(token) - 1))
    alphabet = [c for c in "0123456789abcdefghijklmnopqrstuvwxyz-" if c != token[at]]
    changed = token[:at] + data.draw(st.sampled_from(alphabet)) + token[at + 1 :]
    with pytest.raises(TokenError):
        read_token(SECRET, changed)


def test_a_token_for_any_int64_subscriber_id_reads_back() -> None:
    sid = 2**63 - 1
    assert read_token(SECRET, make_token(SECRET, sid, DAY)) == VerpDelivery(sid, DAY)


@pytest.mark.parametrize(
    ("secret", "sid", "edition", "message"),
    [("", 1, DAY, "DIGEST_SECRET is not set"), (SECRET, -1, DAY, "cannot be in a VERP token"),
     (SECRET, 1, "24/09/2026", "neither YYYY-MM-DD nor YYYY-Www"),
     (SECRET, 1, "2026-w39", "neither"), (SECRET, 1, "2026-09-24T00:00", "neither")],
)  # fmt: skip
def test_a_token_is_refused_without_a_secret_or_for_an_id_or_edition_it_cannot_carry(
    secret: str, sid: int, edition: str, message: str
) -> None:
    with pytest.raises(TokenError, match=message):
        make_token(secret, sid, edition)


@pytest.mark.parametrize("address", ["bounces", "@digest.test", "bounces@", " "])
def test_an_envelope_sender_needs_a_bounce_address_of_local_at_domain(address: str) -> None:
    with pytest.raises(TokenError, match="is not local@domain"):
        envelope_sender(address, SECRET, 1, DAY)


def test_the_envelope_sender_keeps_the_domain_and_uses_the_configured_delimiter() -> None:
    sender = envelope_sender(BOUNCE, SECRET, 3, DAY, delimiter="-")
    assert sender == f"bounces-{make_token(SECRET, 3, DAY)}@digest.test"
    assert token_in_address(sender, BOUNCE, "-") == make_token(SECRET, 3, DAY)
    assert token_in_address(sender, BOUNCE, "+") is None
    assert token_in_address('"odd@local"+x@digest.test', '"odd@local"@digest.test') == "x"
    assert find_token("no token here 12-2026-abc") is None


# ---------------------------------------------------------------- the policy

T0 = datetime(2026, 9, 24, 12, 0, tzinfo=UTC)
POLICY = Policy(bounce_limit=2, soft_limit=3, soft_days=10)
_keys = itertools.count()


def person(store: Store, email: str = "ada@example.org", status: str = "active") -> int:
    sub = store.add_subscriber(Subscriber(email, status=status), T0, "test")
    assert sub.id is not None
    return sub.id


def sent(store: Store, sid: int, edition: str, at: datetime = T0) -> str:
    """A delivery of `edition` accepted by the relay; its Message-ID."""
    sub = store.get_subscriber(sid)
    assert sub is not None
    mid = message_id_for(sid, edition, FROM)
    store.plan_deliveries([PlannedDelivery(sid, sub.email, edition, DeliveryStatus.PENDING, (),
                                           mid)], at)  # fmt: skip
    delivery = store.delivery(sid, edition)
    assert delivery is not None
    store.mark_sent(delivery.id, sid, [], edition, "250 ok", at)
    return mid


def report(kind: Kind, address: str = "ada@example.org", *, sid: int | None = None,
           edition: str = DAY, status: str = "5.1.1", **kw: object) -> Report:  # fmt: skip
    """A classified report, as `classify` returns it (a verified token when `sid` is given)."""
    delivery = VerpDelivery(sid, edition) if sid is not None else None
    recipients = (RecipientStatus(address, kind, "failed", status),) if address else ()
    return Report(kind, Source.DSN, f"DSN: failed {status}", recipients,
                  token="t" if delivery else None, delivery=delivery, **kw)  # type: ignore[arg-type]  # fmt: skip


def act(store: Store, rep: Report, now: datetime = T0, key: str | None = None,
        policy: Policy = POLICY) -> Action:  # fmt: skip
    return apply(store, rep, key or f"k{next(_keys)}", Origin.MAILBOX, now, policy).action


def state(store: Store, sid: int) -> tuple[str, int]:
    sub = store.get_subscriber(sid)
    assert sub is not None
    return sub.status, sub.bounces


def test_hard_bounces_count_once_per_delivery_and_the_limit_stops_the_mail(
    store: Store,
) -> None:
    sid = person(store)
    sent(store, sid, "2026-09-23")
    sent(store, sid, DAY)
    assert act(store, report(Kind.HARD_BOUNCE, sid=sid, edition="2026-09-23")) is (
        Action.BOUNCE_COUNTED
    )
    assert act(store, report(Kind.HARD_BOUNCE, sid=sid, edition="2026-09-23")) is (
        Action.ALREADY_COUNTED
    )
    assert state(store, sid) == ("active", 1)
    assert act(store, report(Kind.HARD_BOUNCE, sid=sid)) is Action.BOUNCED
    assert state(store, sid) == ("bounced", 2)


@pytest.mark.parametrize(
    ("days", "bounced"),
    [((0, 4, 8), True), ((0, 6, 12), False), ((0, 0.5, 9.9), True), ((0, 10.1, 10.2), False)],
)
def test_soft_bounces_stop_the_mail_only_soft_limit_within_soft_days(
    store: Store, days: tuple[float, ...], bounced: bool
) -> None:
    sid = person(store)
    actions = []
    for n, day in enumerate(days):
        edition = f"2026-09-{n + 10}"
        sent(store, sid, edition)
        rep = report(Kind.SOFT_BOUNCE, sid=sid, edition=edition, status="4.2.2")
        actions.append(act(store, rep, T0 + timedelta(days=day)))
    assert actions[:2] == [Action.SOFT_COUNTED] * 2
    assert actions[2] is (Action.BOUNCED if bounced else Action.SOFT_COUNTED)
    assert state(store, sid) == ("bounced" if bounced else "active", 0)


def test_soft_bounces_about_one_delivery_count_once(store: Store) -> None:
    sid = person(store)
    sent(store, sid, DAY)
    for _ in range(4):
        assert act(store, report(Kind.SOFT_BOUNCE, sid=sid, status="4.2.2")) is (
            Action.SOFT_COUNTED
        )
    assert state(store, sid) == ("active", 0)


def test_a_complaint_unsubscribes_at_once_even_a_bounced_subscriber(store: Store) -> None:
    sid = person(store, status="bounced")
    sent(store, sid, DAY)
    rep = report(Kind.COMPLAINT, sid=sid, status="", feedback_type="abuse")
    assert act(store, rep) is Action.UNSUBSCRIBED
    assert act(store, rep) is Action.ALREADY_UNSUBSCRIBED
    assert state(store, sid)[0] == "unsubscribed"


def test_a_hard_bounce_never_turns_an_unsubscribed_subscriber_into_a_bounced_one(
    store: Store,
) -> None:
    sid = person(store, status="unsubscribed")
    for edition in ("2026-09-22", "2026-09-23", DAY):
        sent(store, sid, edition)
        act(store, report(Kind.HARD_BOUNCE, sid=sid, edition=edition))
    assert state(store, sid) == ("unsubscribed", 3)


@pytest.mark.parametrize(
    ("kind", "action"),
    [(Kind.AUTO_REPLY, Action.IGNORED), (Kind.DELAYED, Action.IGNORED),
     (Kind.INFORMATIONAL, Action.IGNORED), (Kind.UNPARSEABLE, Action.IGNORED),
     (Kind.REFUSED, Action.REFUSED)],
)  # fmt: skip
def test_reports_that_ask_nothing_change_nothing_but_are_logged(
    store: Store, kind: Kind, action: Action
) -> None:
    sid = person(store)
    sent(store, sid, DAY)
    assert act(store, report(kind, sid=sid)) is action
    assert state(store, sid) == ("active", 0)
    (event,) = store.bounce_events()
    assert (event.action, event.subscriber_id) == (str(action), None)


def test_a_message_is_acted_on_once_however_often_it_is_read(store: Store) -> None:
    sid = person(store)
    sent(store, sid, DAY)
    rep = report(Kind.HARD_BOUNCE, sid=sid)
    assert act(store, rep, key="maildir:1") is Action.BOUNCE_COUNTED
    assert act(store, rep, key="maildir:1") is Action.DUPLICATE
    assert len(store.bounce_events()) == 1 and state(store, sid) == ("active", 1)


def test_without_a_token_the_latest_delivery_to_the_address_is_matched(store: Store) -> None:
    sid = person(store)
    sent(store, sid, DAY)
    out = apply(store, report(Kind.HARD_BOUNCE, "ADA@Example.org"), "k-addr", Origin.MAILBOX,
                T0, POLICY)  # fmt: skip
    assert (out.action, out.matched_by, out.subscriber_id, out.edition) == (
        Action.BOUNCE_COUNTED, "recipient", sid, DAY
    )  # fmt: skip
    assert act(store, report(Kind.HARD_BOUNCE, "stranger@example.org")) is Action.UNMATCHED


def test_a_message_id_counts_only_with_the_address_it_was_sent_to(store: Store) -> None:
    ada = person(store)
    mid = sent(store, ada, DAY)
    person(store, "bob@example.org")
    guessed = report(Kind.HARD_BOUNCE, "bob@example.org", message_id=mid)
    assert act(store, guessed) is Action.UNMATCHED
    assert state(store, ada) == ("active", 0)
    assert act(store, report(Kind.HARD_BOUNCE, message_id=mid)) is Action.BOUNCE_COUNTED
    assert state(store, ada) == ("active", 1)


def test_the_token_decides_whom_a_report_concerns(store: Store) -> None:
    ada, bob = person(store), person(store, "bob@example.org")
    sent(store, ada, DAY)
    out = apply(store, report(Kind.HARD_BOUNCE, "bob@example.org", sid=ada), "k-tok",
                Origin.WEBHOOK, T0, POLICY)  # fmt: skip
    assert (out.subscriber_id, out.matched_by) == (ada, "token")
    assert state(store, ada) == ("active", 1) and state(store, bob) == ("active", 0)


def test_a_mailed_request_unsubscribes_its_sender_only_when_the_token_is_theirs(
    store: Store,
) -> None:
    ada, bob = person(store), person(store, "bob@example.org")

    def mailed(sender: str, sid: int | None) -> Report:
        delivery = VerpDelivery(sid, DAY) if sid else None
        return Report(Kind.UNSUBSCRIBE, Source.MAILTO, "request", sender=sender,
                      token="t" if sid else None, delivery=delivery)  # fmt: skip

    assert act(store, mailed("bob@example.org", ada)) is Action.REFUSED
    assert act(store, mailed("eve@example.org", None)) is Action.UNMATCHED
    assert state(store, ada)[0] == state(store, bob)[0] == "active"
    assert act(store, mailed("Bob@Example.org", bob)) is Action.UNSUBSCRIBED
    assert act(store, mailed("ada@example.org", None)) is Action.UNSUBSCRIBED
    assert act(store, mailed("ada@example.org", None)) is Action.ALREADY_UNSUBSCRIBED


def test_a_report_about_several_recipients_is_summed_up_by_its_gravest_action(
    store: Store,
) -> None:
    ada, bob = person(store), person(store, "bob@example.org")
    sent(store, ada, DAY)
    sent(store, bob, DAY)
    store.update_subscriber(bob, {"bounces": 1}, T0, "edited", "t")
    both = Report(Kind.HARD_BOUNCE, Source.DSN, "DSN", (
        RecipientStatus("ada@example.org", Kind.HARD_BOUNCE, "failed", "5.1.1"),
        RecipientStatus("bob@example.org", Kind.HARD_BOUNCE, "failed", "5.1.1"),
    ))  # fmt: skip
    assert act(store, both) is Action.BOUNCED
    assert state(store, ada) == ("active", 1) and state(store, bob) == ("bounced", 2)


def test_a_report_naming_nobody_acted_on_is_unmatched_and_only_failures_are_acted_on(
    store: Store,
) -> None:
    ada, bob = person(store), person(store, "bob@example.org")
    sent(store, ada, DAY)
    sent(store, bob, DAY)
    nobody = apply(store, report(Kind.HARD_BOUNCE, ""), "k-none", Origin.MAILBOX, T0, POLICY)
    assert nobody.action is Action.UNMATCHED and nobody.reason.endswith(": names no recipient")
    mixed = Report(Kind.HARD_BOUNCE, Source.DSN, "DSN", (
        RecipientStatus("ada@example.org", Kind.DELAYED, "delayed", "4.4.1"),
        RecipientStatus("bob@example.org", Kind.HARD_BOUNCE, "failed", "5.1.1"),
    ))  # fmt: skip
    assert act(store, mixed) is Action.BOUNCE_COUNTED
    assert state(store, ada) == ("active", 0) and state(store, bob) == ("active", 1)


def test_an_outcome_reads_as_json_with_its_delivery(store: Store) -> None:
    sid = person(store)
    sent(store, sid, DAY)
    out = apply(store, report(Kind.HARD_BOUNCE, sid=sid), "maildir:x", Origin.MAILBOX, T0,
                POLICY)  # fmt: skip
    assert out.as_json() == {
        "key": "maildir:x", "kind": "hard_bounce", "source": "dsn",
        "recipient": "ada@example.org", "delivery": {"subscriber_id": sid, "edition": DAY},
        "matched_by": "token", "action": "bounce counted", "reason": "DSN: failed 5.1.1",
    }  # fmt: skip
    ignored = apply(store, report(Kind.AUTO_REPLY, ""), "maildir:y", Origin.MAILBOX, T0, POLICY)
    assert ignored.as_json()["delivery"] is None and ignored.as_json()["matched_by"] is None


def test_the_policy_thresholds_come_from_the_config(tmp_path: Path) -> None:
    config = make_config(tmp_path, [], smtp={"bounce_limit": 7},
                         bounces={"soft_limit": 4, "soft_days": 9})  # fmt: skip
    assert Policy.from_config(config) == Policy(7, 4, 9)
