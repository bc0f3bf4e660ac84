"""Bounces, complaints, auto-replies, unsubscribe requests and provider webhooks (issue 14).

Samples in tests/data/bounces/ (see SOURCES.md): real Postfix DSNs recorded from the private
Postfix of tests/postfix.py, others written from the RFCs' examples and the formats of qmail
and Exchange, and hostile ones. Their VERP tokens are signed with SECRET.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import imaplib
import ipaddress
import json
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from digest.bounces.classify import Mailboxes, classify
from digest.bounces.events import MAX_MESSAGE_BYTES, Kind, Report, Source, VerpDelivery
from digest.bounces.mailbox import (
    READ_CAP,
    Imap,
    ImapSecurity,
    ImapSettings,
    MailboxError,
    Maildir,
)
from digest.bounces.verp import (
    envelope_sender,
    find_token,
    make_token,
    read_token,
    token_in_address,
)
from digest.bounces.webhooks import (
    SnsMessage,
    WebhookRefused,
    parse_mailgun,
    parse_postmark,
    parse_ses,
    verify_basic_auth,
    verify_mailgun,
    verify_sns,
)
from digest.errors import TokenError
from tests.bounce_helpers import sns_certificate, sns_signature
from tests.postfix import (
    BOUNCE_ADDRESS,
    FULL_DOMAIN,
    REJECTING_DOMAIN,
    free_port,
    listening,
    running_postfix,
    wait_until,
)

SAMPLES = Path(__file__).parent / "data" / "bounces"
SECRET = "bounce-samples-secret"
MAILBOXES = Mailboxes(BOUNCE_ADDRESS, "unsubscribe@digest.test", SECRET)
DAY = "2026-09-24"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def read_sample(name: str) -> Report:
    return classify(sample(name), MAILBOXES)


# ---------------------------------------------------------------- VERP


def test_a_verp_token_names_its_delivery_and_survives_a_lowercased_or_uppercased_local_part():
    sender = envelope_sender(BOUNCE_ADDRESS, SECRET, 42, DAY)
    local = sender.partition("@")[0]
    assert len(local) <= 64 and local == local.lower()
    token = token_in_address(sender, BOUNCE_ADDRESS)
    assert token is not None
    assert read_token(SECRET, token) == VerpDelivery(42, DAY)
    assert read_token(SECRET, token.upper()) == VerpDelivery(42, DAY)
    weekly = make_token(SECRET, 7, "2026-W39")
    assert read_token(SECRET, weekly) == VerpDelivery(7, "2026-W39")


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace("42-", "43-", 1),  # another subscriber
        lambda t: t.replace("20260924", "20260925"),  # another edition
        lambda t: t[:-1] + ("a" if t[-1] != "a" else "b"),  # one character of the MAC
        lambda t: t[:-2],  # cut short
        lambda t: make_token("another-secret", 42, DAY),  # signed with someone else's key
        lambda t: "42-20260924-",
        lambda t: "",
    ],
    ids=["subscriber", "edition", "mac", "short", "other-secret", "no-mac", "empty"],
)
def test_an_altered_or_forged_verp_token_is_refused(change):
    token = make_token(SECRET, 42, DAY)
    with pytest.raises(TokenError):
        read_token(SECRET, change(token))


def test_tokens_signed_with_an_old_secret_stay_valid_after_a_rotation():
    token = make_token("old-secret", 5, DAY)
    assert read_token("new-secret", token, old_secrets=["old-secret"]) == VerpDelivery(5, DAY)
    with pytest.raises(TokenError):
        read_token("new-secret", token)


def test_only_the_verp_forms_of_our_own_bounce_address_carry_a_token():
    token = make_token(SECRET, 1, DAY)
    assert token_in_address(f"BOUNCES+{token}@Bounces.Digest.Test", BOUNCE_ADDRESS) == token
    assert token_in_address(f"bounces+{token}@other.example", BOUNCE_ADDRESS) is None
    assert token_in_address(f"someone+{token}@bounces.digest.test", BOUNCE_ADDRESS) is None
    assert token_in_address(BOUNCE_ADDRESS, BOUNCE_ADDRESS) is None
    assert find_token(f"Re: unsubscribe {token.upper()}") == token


# ---------------------------------------------------------------- the samples

# name -> (kind, source, first recipient, its status, (subscriber, edition) or None, message id)
EXPECTED = {
    "postfix_dsn_hard_5.1.1.eml": (
        Kind.HARD_BOUNCE, Source.DSN, "alice@bounce.example.com", "5.1.1", (7, DAY),
        "<2026-09-24.7@digest.test>",
    ),
    "postfix_dsn_soft_4.2.2.eml": (
        Kind.SOFT_BOUNCE, Source.DSN, "bob@full.example.com", "4.2.2", (8, DAY),
        "<2026-09-24.8@digest.test>",
    ),
    "rfc3464_simple_dsn_4.0.0.eml": (
        Kind.SOFT_BOUNCE, Source.DSN, "louisl@larry.slip.umd.edu", "4.0.0", (9, DAY),
        "<2026-09-24.9@digest.test>",
    ),
    "rfc3464_multi_recipient_dsn.eml": (
        Kind.HARD_BOUNCE, Source.DSN, "arathib@vnet.ibm.com", "5.0.0", (10, DAY),
        "<2026-09-24.10@digest.test>",
    ),
    "postfix_delay_warning.eml": (
        Kind.DELAYED, Source.DSN, "judy@slow.example.net", "4.4.1", (11, "2026-W39"),
        "<2026-W39.11@digest.test>",
    ),
    "postfix_text_bounce_no_report.eml": (
        Kind.HARD_BOUNCE, Source.POSTFIX_TEXT, "carol@example.net", "5.1.1", (12, DAY),
        "<2026-09-24.12@digest.test>",
    ),
    "qmail_permanent_5.1.1.eml": (
        Kind.HARD_BOUNCE, Source.QMAIL, "dave@example.org", "5.1.1", (11, "2026-W39"),
        "<2026-W39.11@digest.test>",
    ),
    "qmail_transient_4.4.2.eml": (
        Kind.SOFT_BOUNCE, Source.QMAIL, "erin@example.org", "4.4.2", (12, DAY),
        "<2026-09-24.12@digest.test>",
    ),
    "exchange_ndr_5.1.10.eml": (
        Kind.HARD_BOUNCE, Source.EXCHANGE, "frank@contoso.example", "5.1.10", (12, DAY),
        "<2026-09-24.12@digest.test>",
    ),
    "exchange_ndr_policy_5.7.1.eml": (
        Kind.SOFT_BOUNCE, Source.EXCHANGE, "gina@fabrikam.example", "5.7.1", (12, DAY),
        "<2026-09-24.12@digest.test>",
    ),
    "rfc5965_arf_abuse.eml": (
        Kind.COMPLAINT, Source.ARF, "grace@example.com", "", (13, DAY),
        "<2026-09-24.13@digest.test>",
    ),
    "arf_abuse_redacted_recipient.eml": (
        Kind.COMPLAINT, Source.ARF, "redacted@fbl.example.net", "", (14, DAY),
        "<2026-09-24.14@digest.test>",
    ),
    "arf_not_spam.eml": (
        Kind.INFORMATIONAL, Source.ARF, "grace@example.com", "", None,
        "<2026-09-24.13@digest.test>",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bounce_and_complaint_sample_is_read_to_its_kind_recipient_and_delivery(name):
    kind, source, recipient, status, delivery, message_id = EXPECTED[name]
    report = read_sample(name)
    assert (report.kind, report.source) == (kind, source), report.reason
    assert report.recipients[0].address == recipient
    assert report.recipients[0].status == status
    assert report.delivery == (VerpDelivery(*delivery) if delivery else None)
    assert report.message_id == message_id


def test_a_multi_recipient_dsn_keeps_each_recipients_own_verdict():
    report = read_sample("rfc3464_multi_recipient_dsn.eml")
    assert [(r.address, r.kind, r.action) for r in report.recipients] == [
        ("arathib@vnet.ibm.com", Kind.HARD_BOUNCE, "failed"),
        ("johnh@hpnjld.njd.hp.com", Kind.DELAYED, "delayed"),
        ("wsnell@sdcc13.ucsd.edu", Kind.HARD_BOUNCE, "failed"),
    ]
    assert "not a registered gateway user" in report.recipients[0].diagnostic


def test_a_failed_dsn_with_a_4xx_status_is_soft_never_hard():
    assert read_sample("rfc3464_simple_dsn_4.0.0.eml").kind is Kind.SOFT_BOUNCE
    assert read_sample("postfix_dsn_soft_4.2.2.eml").kind is Kind.SOFT_BOUNCE


@pytest.mark.parametrize(
    "name",
    ["exchange_ndr_policy_5.7.1.eml", "qmail_transient_4.4.2.eml"],
)
def test_a_prose_bounce_without_a_dead_address_code_is_never_hard(name):
    assert read_sample(name).kind is Kind.SOFT_BOUNCE


def test_a_prose_bounce_reads_codes_only_from_its_own_text_not_from_our_returned_copy():
    raw = sample("postfix_text_bounce_no_report.eml").replace(b"550 5.1.1", b"550 5.7.1")
    report = classify(raw, MAILBOXES)
    assert report.kind is Kind.SOFT_BOUNCE  # the returned abstract mentions 5.1.1: ignored
    assert report.recipients[0].status == "5.7.1"


def test_a_prose_bounce_naming_no_code_is_soft():
    raw = sample("qmail_permanent_5.1.1.eml").replace(b" (#5.1.1)", b"")
    assert classify(raw, MAILBOXES).kind is Kind.SOFT_BOUNCE


@pytest.mark.parametrize(
    "name",
    ["rfc3834_auto_replied.eml", "vacation_subject_only.eml", "precedence_auto_reply.eml"],
)
def test_auto_replies_are_ignored_never_a_bounce(name):
    report = read_sample(name)
    assert report.kind is Kind.AUTO_REPLY
    assert report.recipients == () and report.delivery is None


def test_a_message_to_the_unsubscribe_address_is_a_request_from_its_sender():
    with_token = read_sample("unsubscribe_request_with_token.eml")
    assert (with_token.kind, with_token.sender) == (Kind.UNSUBSCRIBE, "heidi@example.com")
    assert with_token.delivery == VerpDelivery(15, DAY)
    plain = read_sample("unsubscribe_request_plain.eml")
    assert (plain.kind, plain.sender, plain.delivery) == (
        Kind.UNSUBSCRIBE,
        "ivan@example.com",
        None,
    )


def test_an_unsubscribe_request_with_a_forged_subject_token_is_refused():
    raw = sample("unsubscribe_request_with_token.eml").replace(
        b"15-20260924-d4dh4u6q6umxuoex", make_token("not-ours", 15, DAY).encode()
    )
    assert classify(raw, MAILBOXES).kind is Kind.REFUSED


def test_a_message_to_the_unsubscribe_address_is_not_a_request_when_none_is_configured():
    report = classify(sample("unsubscribe_request_plain.eml"), Mailboxes(BOUNCE_ADDRESS))
    assert report.kind is Kind.UNPARSEABLE


# ---------------------------------------------------------------- hostile input


def test_a_dsn_with_a_forged_token_for_another_persons_address_is_refused_whole():
    report = read_sample("hostile_forged_token_other_address.eml")
    assert report.kind is Kind.REFUSED
    assert report.recipients == () and report.delivery is None and report.message_id is None


def test_a_token_cannot_be_believed_without_the_secret_so_the_report_is_refused():
    report = classify(sample("postfix_dsn_hard_5.1.1.eml"), Mailboxes(BOUNCE_ADDRESS))
    assert report.kind is Kind.REFUSED and "DIGEST_SECRET" in report.reason


def test_a_report_nested_in_a_report_is_read_from_the_outer_report_only():
    report = read_sample("hostile_nested_reports.eml")
    assert report.kind is Kind.DELAYED
    assert [r.address for r in report.recipients] == ["ivan@example.com"]
    assert report.delivery == VerpDelivery(16, DAY)


def test_a_report_attached_to_an_ordinary_message_is_not_a_report():
    assert read_sample("hostile_report_attached_to_plain_mail.eml").kind is Kind.UNPARSEABLE


def test_bad_charsets_and_codecs_that_are_not_text_do_not_stop_the_reading():
    report = read_sample("hostile_bad_charsets.eml")
    assert report.kind is Kind.HARD_BOUNCE
    assert report.recipients[0].address == "ivan@example.com"
    assert report.delivery == VerpDelivery(16, DAY)


def big_dsn(status_first: bool) -> bytes:
    """A 20 MB "report": the real Postfix DSN with 20 MB of junk before or after its
    status part (derived here, not stored)."""
    head, sep, rest = sample("postfix_dsn_hard_5.1.1.eml").partition(
        b"Content-Description: Delivery"
    )
    boundary = b"--9DB0F20C0DF.1796033636/relay.digest.test\n"
    junk = boundary + b"Content-Type: text/plain\n\n" + b"x" * 20_000_000 + b"\n"
    if status_first:
        return head + sep + rest.replace(boundary, junk + boundary, 1)
    return head.replace(boundary, junk + boundary, 1) + sep + rest


def test_a_20_mb_report_is_read_only_up_to_the_cap():
    started = time.monotonic()
    early = classify(big_dsn(status_first=True), MAILBOXES)
    late = classify(big_dsn(status_first=False), MAILBOXES)
    assert early.kind is Kind.HARD_BOUNCE and early.delivery == VerpDelivery(7, DAY)
    assert late.kind is Kind.UNPARSEABLE
    assert f"only the first {MAX_MESSAGE_BYTES}" in late.reason
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff" * 1000,
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n",
        b"Content-Type: multipart/report; report-type=feedback-report\n\nno parts",
        b"Content-Type: multipart/report; report-type*=''%ff%fe; boundary=b\n\n--b--\n",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
        b"--b\nContent-Type: message/delivery-status\n\nAction: failed\n--b--\n",
        b"".join(
            b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in range(3000)
        ),
        b"To: " + b"a@b, " * 100_000 + b"\n\nbody",
    ],
    ids=["empty", "binary", "no-parts", "no-boundary", "rfc2231-junk", "no-recipient",
         "3000-nested", "huge-header"],
)  # fmt: skip
def test_hostile_messages_are_unparseable_never_an_exception_nor_a_bounce(raw):
    """Each one yields a reason instead of raising (3000 nested parts overflow the stdlib
    parser's recursion: caught and reported)."""
    report = classify(raw, MAILBOXES)
    assert report.kind is Kind.UNPARSEABLE and report.reason


# ---------------------------------------------------------------- the Maildir reader


def make_maildir(root: Path) -> Path:
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True)
    return root


def test_maildir_yields_each_message_once_across_runs(tmp_path):
    box = make_maildir(tmp_path / "bounces")
    (box / "new" / "1.host").write_bytes(b"Subject: one\n\n")
    (box / "cur" / "2.host:2,").write_bytes(b"Subject: two\n\n")  # read by a MUA, not by us
    (box / "cur" / "3.host:2,S").write_bytes(b"Subject: three\n\n")  # already handled
    first = Maildir(box)
    seen = [stored.data for stored in first.unread()]
    assert sorted(seen) == [b"Subject: one\n\n", b"Subject: two\n\n"]
    for stored in list(first.unread()):
        first.mark_done(stored.key)
    assert list(Maildir(box).unread()) == []  # a later run
    assert sorted(p.name for p in (box / "cur").iterdir()) == [
        "1.host:2,S",
        "2.host:2,S",
        "3.host:2,S",
    ]


def test_maildir_marking_twice_is_harmless_and_a_bad_key_is_refused(tmp_path):
    box = make_maildir(tmp_path / "bounces")
    (box / "new" / "1.host").write_bytes(b"x")
    maildir = Maildir(box)
    key = next(maildir.unread()).key
    maildir.mark_done(key)
    maildir.mark_done(key)
    with pytest.raises(MailboxError):
        maildir.mark_done("../../etc/passwd")


def test_maildir_reads_no_more_than_the_cap_of_a_huge_message(tmp_path):
    box = make_maildir(tmp_path / "bounces")
    (box / "new" / "big.host").write_bytes(b"x" * (READ_CAP + 5_000_000))
    assert len(next(Maildir(box).unread()).data) == READ_CAP


def test_a_missing_maildir_is_a_loud_error(tmp_path):
    with pytest.raises(MailboxError, match="no new/ folder"):
        list(Maildir(tmp_path / "nowhere").unread())


# ---------------------------------------------------------------- webhooks: SNS (SES)

NOW = datetime(2026, 9, 24, 12, 0, tzinfo=UTC)
TOPIC = "arn:aws:sns:eu-west-1:123456789012:digest-ses"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"


@pytest.fixture(scope="module")
def sns_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    """A key and self-signed certificate standing in for SNS's signing certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, sns_certificate(key, NOW)


def sns_body(key: rsa.RSAPrivateKey, version: str = "2", **fields: str) -> bytes:
    """An SNS message signed as AWS documents it: "Key\\nValue\\n" for each signed key in
    alphabetical order (written out here, independently of the code under test)."""
    message = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(ses_bounce()),
        "Timestamp": "2026-09-24T11:59:30.000Z",
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
        **fields,
    }
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    message.setdefault("Signature", sns_signature(key, message, algorithm))
    return json.dumps(message).encode()


def ses_bounce() -> dict[str, object]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": "alice@example.com",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
        },
        "mail": {
            "messageId": "0102018f-ses-id",
            "source": envelope_sender(BOUNCE_ADDRESS, SECRET, 21, DAY),
            "commonHeaders": {"messageId": "<2026-09-24.21@digest.test>"},
        },
    }


class Fetcher:
    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        return self.pem


@pytest.mark.parametrize("version", ["1", "2"])
def test_an_sns_message_signed_with_either_signature_version_verifies(sns_key, version):
    key, pem = sns_key
    fetch = Fetcher(pem)
    message = verify_sns(sns_body(key, version), fetch, {TOPIC}, NOW)
    assert (message.type, message.topic_arn, fetch.urls) == ("Notification", TOPIC, [CERT_URL])
    report = parse_ses(message, MAILBOXES)
    assert report.kind is Kind.HARD_BOUNCE and report.source is Source.SES
    assert report.recipients[0].address == "alice@example.com"
    assert report.delivery == VerpDelivery(21, DAY)
    assert report.message_id == "<2026-09-24.21@digest.test>"


def test_an_sns_message_changed_after_signing_is_refused(sns_key):
    key, pem = sns_key
    body = json.loads(sns_body(key))
    body["Message"] = body["Message"].replace("alice@example.com", "victim@example.com")
    with pytest.raises(WebhookRefused, match="does not verify") as refused:
        verify_sns(json.dumps(body).encode(), Fetcher(pem), {TOPIC}, NOW)
    assert refused.value.status == 403


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com@evil.example/cert.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
        "https://sns.eu-west-1.amazonaws.com/cert.txt",
        "https://sqs.eu-west-1.amazonaws.com/cert.pem",
    ],
)
def test_an_sns_certificate_url_off_the_sns_hosts_is_refused_without_fetching_it(sns_key, url):
    key, pem = sns_key
    fetch = Fetcher(pem)
    with pytest.raises(WebhookRefused):
        verify_sns(sns_body(key, SigningCertURL=url), fetch, {TOPIC}, NOW)
    assert fetch.urls == []


def test_an_sns_message_for_a_topic_that_is_not_ours_is_refused(sns_key):
    key, pem = sns_key
    body = sns_body(key, TopicArn="arn:aws:sns:eu-west-1:999999999999:attacker")
    with pytest.raises(WebhookRefused, match="not one we subscribed"):
        verify_sns(body, Fetcher(pem), {TOPIC}, NOW)


def test_an_old_or_replayed_sns_message_is_refused(sns_key):
    key, pem = sns_key
    with pytest.raises(WebhookRefused, match="too old"):
        verify_sns(sns_body(key), Fetcher(pem), {TOPIC}, NOW + timedelta(hours=2))
    seen: set[str] = set()
    verify_sns(sns_body(key), Fetcher(pem), {TOPIC}, NOW, seen=seen)
    with pytest.raises(WebhookRefused, match="already received") as refused:
        verify_sns(sns_body(key), Fetcher(pem), {TOPIC}, NOW, seen=seen)
    assert refused.value.status == 409


def test_an_sns_subscription_confirmation_is_recognised_with_its_url(sns_key):
    key, pem = sns_key
    url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc"
    body = sns_body(
        key, Type="SubscriptionConfirmation", SubscribeURL=url, Token="abc", Message="confirm"
    )
    message = verify_sns(body, Fetcher(pem), {TOPIC}, NOW)
    assert (message.type, message.subscribe_url) == ("SubscriptionConfirmation", url)
    assert parse_ses(message, MAILBOXES).kind is Kind.INFORMATIONAL


def test_an_ses_complaint_becomes_a_complaint_for_each_recipient():
    message = {
        "notificationType": "Complaint",
        "complaint": {
            "complaintFeedbackType": "abuse",
            "complainedRecipients": [{"emailAddress": "grace@example.com"}],
        },
        "mail": {"messageId": "ses-2", "source": "digest@digest.test"},
    }
    sns = SnsMessage("Notification", "m-2", TOPIC, json.dumps(message), "2026-09-24T12:00:00Z")
    report = parse_ses(sns, MAILBOXES)
    assert (report.kind, report.feedback_type) == (Kind.COMPLAINT, "abuse")
    assert [r.address for r in report.recipients] == ["grace@example.com"]


def test_an_ses_transient_bounce_is_soft():
    message = ses_bounce()
    message["bounce"] = {**message["bounce"], "bounceType": "Transient"}  # type: ignore[dict-item]
    sns = SnsMessage("Notification", "m-3", TOPIC, json.dumps(message), "2026-09-24T12:00:00Z")
    assert parse_ses(sns, MAILBOXES).kind is Kind.SOFT_BOUNCE


# ---------------------------------------------------------------- webhooks: Postmark, Mailgun


A = "a@example.com"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_postmark_basic_auth_is_checked():
    verify_basic_auth(basic("postmark", "s3cret"), "postmark", "s3cret")
    for header in [basic("postmark", "wrong"), basic("other", "s3cret"), None, "Bearer x",
                   "Basic !!!"]:  # fmt: skip
        with pytest.raises(WebhookRefused) as refused:
            verify_basic_auth(header, "postmark", "s3cret")
        assert refused.value.status == 401


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        ({"RecordType": "Bounce", "Type": "HardBounce", "Email": A}, Kind.HARD_BOUNCE),
        ({"RecordType": "Bounce", "Type": "SoftBounce", "Email": A}, Kind.SOFT_BOUNCE),
        ({"RecordType": "SpamComplaint", "Type": "SpamComplaint", "Email": A}, Kind.COMPLAINT),
        ({"RecordType": "Bounce", "Type": "AutoResponder", "Email": A}, Kind.AUTO_REPLY),
        ({"RecordType": "Delivery", "Email": A}, Kind.INFORMATIONAL),
        ({"RecordType": "Bounce", "Type": "HardBounce"}, Kind.UNPARSEABLE),
    ],
)  # fmt: skip
def test_postmark_events_become_typed_reports(payload, kind):
    report = parse_postmark(json.dumps({"MessageID": "pm-1", **payload}).encode(), MAILBOXES)
    assert report.kind is kind and report.source is Source.POSTMARK


def mailgun_body(key: str, timestamp: int, token: str, event: dict[str, object]) -> bytes:
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    payload = {
        "signature": {"timestamp": str(timestamp), "token": token, "signature": signature},
        "event-data": event,
    }
    return json.dumps(payload).encode()


MAILGUN_KEY = "key-mailgun-signing"
FAILED = {
    "event": "failed",
    "severity": "permanent",
    "recipient": "alice@example.com",
    "delivery-status": {"code": 550, "description": "No such user"},
    "message": {"headers": {"message-id": "2026-09-24.21@digest.test"}},
    "envelope": {"sender": envelope_sender(BOUNCE_ADDRESS, SECRET, 21, DAY)},
}


def test_a_signed_fresh_mailgun_event_verifies_once_and_its_replay_is_refused():
    seen: set[str] = set()
    body = mailgun_body(MAILGUN_KEY, int(NOW.timestamp()), "tok-1", FAILED)
    report = parse_mailgun(verify_mailgun(body, MAILGUN_KEY, NOW, seen), MAILBOXES)
    assert (report.kind, report.delivery) == (Kind.HARD_BOUNCE, VerpDelivery(21, DAY))
    assert report.message_id == "<2026-09-24.21@digest.test>"
    with pytest.raises(WebhookRefused, match="replay") as refused:
        verify_mailgun(body, MAILGUN_KEY, NOW, seen)
    assert refused.value.status == 409


def test_a_mailgun_event_with_a_bad_signature_or_an_old_timestamp_is_refused():
    seen: set[str] = set()
    wrong_key = mailgun_body("another-key", int(NOW.timestamp()), "tok-2", FAILED)
    with pytest.raises(WebhookRefused, match="does not verify"):
        verify_mailgun(wrong_key, MAILGUN_KEY, NOW, seen)
    stale = mailgun_body(MAILGUN_KEY, int((NOW - timedelta(hours=1)).timestamp()), "tok-3", FAILED)
    with pytest.raises(WebhookRefused, match="not fresh"):
        verify_mailgun(stale, MAILGUN_KEY, NOW, seen)
    assert seen == set()  # a refused request is not remembered


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ({**FAILED, "severity": "temporary"}, Kind.SOFT_BOUNCE),
        ({"event": "complained", "recipient": "grace@example.com"}, Kind.COMPLAINT),
        ({"event": "delivered", "recipient": "grace@example.com"}, Kind.INFORMATIONAL),
    ],
)
def test_mailgun_events_become_typed_reports(event, kind):
    body = mailgun_body(MAILGUN_KEY, int(NOW.timestamp()), f"tok-{kind}", event)
    assert parse_mailgun(verify_mailgun(body, MAILGUN_KEY, NOW, set()), MAILBOXES).kind is kind


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"{" * 100_000, b"x" * 300_000])
def test_webhook_bodies_that_are_not_a_json_object_are_refused_with_4xx(body):
    with pytest.raises(WebhookRefused) as refused:
        verify_mailgun(body, MAILGUN_KEY, NOW, set())
    assert 400 <= refused.value.status < 500


# ---------------------------------------------------------------- a real Postfix


def test_a_real_postfix_bounces_after_250_and_each_dsn_names_the_right_delivery(downstream):
    """N messages accepted by the relay with VERP senders; M rejected after the 250 come
    back as real DSNs, each read to the right recipient and delivery; none for the rest."""
    recorder, port = downstream
    system = system_postfix_state()
    deliveries = {  # subscriber id -> recipient
        1: f"ann@{REJECTING_DOMAIN}",
        2: "ben@good.example.com",
        3: f"cat@{REJECTING_DOMAIN}",
        4: "dan@good.example.com",
        5: f"eve@{FULL_DOMAIN}",
        6: "fay@good.example.com",
        7: f"gus@{REJECTING_DOMAIN}",
        8: "hal@good.example.com",
    }
    with running_postfix(port) as postfix:
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as client:
            for sid, recipient in deliveries.items():
                sender = envelope_sender(BOUNCE_ADDRESS, SECRET, sid, DAY)
                message = (
                    f"From: Paper Digest <digest@digest.test>\r\nTo: {recipient}\r\n"
                    f"Subject: Your papers\r\nMessage-ID: <{DAY}.{sid}@digest.test>\r\n\r\nhi\r\n"
                )
                refused = client.sendmail(sender, [recipient], message.encode())
                assert refused == {}  # the relay says 250 to every one
        wait_until(
            lambda: len(postfix.dsns()) == 4 and len(recorder.received) == 4,
            60,
            "4 DSNs in the Maildir and 4 messages relayed",
            lambda: postfix.log,
        )
        wait_until(postfix.queue_is_empty, 30, "an empty queue", lambda: postfix.log)
        maildir = Maildir(postfix.maildir)
        reports = {}
        for stored in maildir.unread():
            report = classify(stored.data, MAILBOXES)
            assert report.delivery is not None, report.reason
            reports[report.delivery.subscriber_id] = report
            maildir.mark_done(stored.key)
        assert list(Maildir(postfix.maildir).unread()) == []
    assert sorted(reports) == [1, 3, 5, 7]
    for sid, report in reports.items():
        assert report.source is Source.DSN
        assert report.delivery == VerpDelivery(sid, DAY)
        assert [r.address for r in report.recipients] == [deliveries[sid]]
        assert report.message_id == f"<{DAY}.{sid}@digest.test>"
    hard = {sid for sid, r in reports.items() if r.kind is Kind.HARD_BOUNCE}
    assert hard == {1, 3, 7}
    assert reports[5].kind is Kind.SOFT_BOUNCE
    assert sorted(r.recipients[0] for r in recorder.received) == sorted(
        deliveries[sid] for sid in (2, 4, 6, 8)
    )
    assert system_postfix_state() == system


def system_postfix_state() -> list[tuple[str, int, float]]:
    """The system's /etc/postfix, which the private instance must leave as it found it."""
    root = Path("/etc/postfix")
    if not root.is_dir():
        return []
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*"))


# ---------------------------------------------------------------- IMAP (pymap, STARTTLS)


@pytest.fixture(scope="module")
def imap_server(tmp_path_factory) -> Iterator[tuple[int, ssl.SSLContext]]:
    """pymap (a pure-Python IMAP server, in-memory backend) on 127.0.0.1 with a certificate
    made here; it offers STARTTLS. Yields its port and a client context trusting the cert."""
    folder = tmp_path_factory.mktemp("imap")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    port = free_port()
    log = (folder / "pymap.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "pymap"), "--host", "127.0.0.1", "--port", str(port),
         "--cert", str(folder / "cert.pem"), "--key", str(folder / "key.pem"),
         "dict", "--demo-data", "--demo-user", "bounces", "--demo-password", "imap-secret"],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )  # fmt: skip
    try:
        wait_until(
            lambda: listening(port) or server.poll() is not None,
            30,
            "pymap to listen",
            lambda: (folder / "pymap.log").read_text(errors="replace"),
        )
        assert server.poll() is None, (folder / "pymap.log").read_text(errors="replace")
        yield port, ssl.create_default_context(cadata=pem.decode())
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def imap_settings(port: int, password: str = "imap-secret") -> ImapSettings:
    return ImapSettings(
        "127.0.0.1", "bounces", password, port, folder="Bounces", timeout=10,
        security=ImapSecurity.STARTTLS,
    )  # fmt: skip


def test_imap_yields_each_unseen_message_once_across_connections(imap_server):
    port, context = imap_server
    with imaplib.IMAP4("127.0.0.1", port, timeout=10) as mta:  # delivers two real DSNs
        mta.starttls(context)
        mta.login("bounces", "imap-secret")
        mta.create("Bounces")
        for name in ("postfix_dsn_hard_5.1.1.eml", "postfix_dsn_soft_4.2.2.eml"):
            mta.append("Bounces", "", imaplib.Time2Internaldate(time.time()), sample(name))
    with Imap(imap_settings(port), context) as box:
        first = list(box.unread())
        kinds = [classify(stored.data, MAILBOXES).kind for stored in first]
        assert kinds == [Kind.HARD_BOUNCE, Kind.SOFT_BOUNCE]
        assert first[0].data == sample("postfix_dsn_hard_5.1.1.eml").replace(b"\n", b"\r\n")
        box.mark_done(first[0].key)
    with Imap(imap_settings(port), context) as box:  # a later run
        second = list(box.unread())
        assert [s.key for s in second] == [first[1].key]
        box.mark_done(second[0].key)
    with Imap(imap_settings(port), context) as box:
        assert list(box.unread()) == []
        with pytest.raises(MailboxError, match="not from this folder"):
            box.mark_done("1:999")


def test_imap_refusing_the_login_is_a_loud_error(imap_server):
    port, context = imap_server
    with (
        pytest.raises(MailboxError, match="as bounces"),
        Imap(imap_settings(port, "wrong"), context),
    ):
        pass


def test_imap_refuses_a_server_certificate_it_does_not_trust(imap_server):
    port, _ = imap_server
    with pytest.raises(MailboxError), Imap(imap_settings(port), ssl.create_default_context()):
        pass
