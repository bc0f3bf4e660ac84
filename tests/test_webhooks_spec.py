"""Provider webhooks as a specification (digest/bounces/webhooks.py, health.py): each check a
request must pass, the HTTP status of each refusal, and what a verified request is read as.
The functions are pure: the tests pass the time, the seen tokens and a certificate fetcher,
with SNS's certificate made here (tests/bounce_helpers.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.bounces.classify import Mailboxes
from digest.bounces.events import Kind, Source
from digest.bounces.health import bounce_alerts, bounce_rows, bounce_stats_json
from digest.bounces.verp import envelope_sender, make_token
from digest.bounces.webhooks import (
    MAX_BODY,
    MailgunEvent,
    SnsMessage,
    WebhookRefused,
    angle,
    check_certificate_url,
    check_content_type,
    check_sns_url,
    load_object,
    parse_mailgun,
    parse_postmark,
    parse_ses,
    verify_basic_auth,
    verify_mailgun,
    verify_sns,
)
from digest.models import Subscriber
from digest.store import (
    BounceDay,
    BounceEvent,
    BounceKind,
    DeliveryStatus,
    Origin,
    PlannedDelivery,
    Store,
)
from tests.bounce_helpers import sns_certificate, sns_signature
from tests.conftest import make_config

NOW = datetime(2026, 9, 24, 12, 0, tzinfo=UTC)
TOPIC = "arn:aws:sns:eu-west-1:123456789012:digest-ses"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"
SECRET = "webhook-spec-secret-0123456789abcdef"
BOX = Mailboxes("bounces@digest.test", secret=SECRET)
KEY = "mailgun-signing-key"


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return tuple(  # type: ignore[return-value]
        rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)
    )


def _notification(key: rsa.RSAPrivateKey, **changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "Type": "Notification", "MessageId": "sns-1", "TopicArn": TOPIC,
        "Message": json.dumps({"notificationType": "Bounce"}), "Timestamp": "2026-09-24T11:59:00Z",
        "SignatureVersion": "2", "SigningCertURL": CERT_URL,
    }  # fmt: skip
    message.update(changes)
    message["Signature"] = sns_signature(key, message)
    return message


def _verify(message: dict[str, Any], pem: bytes, **kw: Any) -> SnsMessage:
    return verify_sns(json.dumps(message).encode(), lambda url: pem, [TOPIC], NOW, **kw)


def _refusal(call: Any) -> tuple[int, str]:
    with pytest.raises(WebhookRefused) as caught:
        call()
    return caught.value.status, str(caught.value)


# ---------------------------------------------------------------- what any body must be


@pytest.mark.parametrize(
    ("source", "content_type", "ok"),
    [
        (Source.SES, "text/plain; charset=UTF-8", True),
        (Source.SES, "application/json", True),
        (Source.POSTMARK, "Application/JSON", True),
        (Source.MAILGUN, "application/json; charset=utf-8", True),
        (Source.POSTMARK, "text/plain", False),
        (Source.MAILGUN, "multipart/form-data", False),
        (Source.SES, None, False),
        (Source.SES, "", False),
        (Source.SES, "application/x-www-form-urlencoded", False),
        (Source.POSTMARK, "text/html", False),
        (Source.MAILGUN, "multipart/form-data; boundary=x", False),
        (Source.MAILGUN, None, False),
    ],
)
def test_only_the_documented_media_type_is_read(
    source: Source, content_type: str | None, ok: bool
) -> None:
    if ok:
        check_content_type(source, content_type)
    else:
        assert _refusal(lambda: check_content_type(source, content_type))[0] == 415


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"x" * (MAX_BODY + 1), 413),
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'"text"', 400),
        (b"[" * 100_000, 400),  # deep nesting: refused, not a crash
    ],
)
def test_a_body_is_a_bounded_json_object_or_refused(body: bytes, status: int) -> None:
    assert _refusal(lambda: load_object(body, "X"))[0] == status


def test_a_body_exactly_at_the_cap_is_read() -> None:
    body = b'{"a": "' + b"x" * (MAX_BODY - 9) + b'"}'
    assert len(body) == MAX_BODY
    assert load_object(body, "X")["a"] == "x" * (MAX_BODY - 9)


# ---------------------------------------------------------------- SNS URLs and signatures


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-1.amazonaws.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.org/x.pem",
        "https://evil.org@sns.eu-west-1.amazonaws.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/x.pem",
        "https://sqs.eu-west-1.amazonaws.com/x.pem",
        "https://sns.amazonaws.com/x.pem",
        "https://SNS.evil_host.amazonaws.com/x.pem",
    ],
)
def test_an_sns_url_must_be_https_on_an_sns_regional_host(url: str) -> None:
    assert _refusal(lambda: check_sns_url(url))[0] == 403


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/cert.pem",
        "https://sns.us-east-1.amazonaws.com:443/cert.pem",
    ],
)
def test_a_certificate_url_on_an_sns_host_naming_a_pem_is_accepted(url: str) -> None:
    assert check_certificate_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.eu-west-1.amazonaws.com/cert.txt",
        "https://sns.eu-west-1.amazonaws.com/cert.pem?x=1",
        "https://sns.eu-west-1.amazonaws.com/cert.pem#frag",
    ],
)
def test_a_certificate_url_that_is_no_plain_pem_file_is_refused(url: str) -> None:
    status, reason = _refusal(lambda: check_certificate_url(url))
    assert status == 403 and ".pem" in reason


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_genuine_sns_message_verifies_under_either_signature_version(
    keys: tuple[rsa.RSAPrivateKey, ...], version: str
) -> None:
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    message = _notification(keys[0], SignatureVersion=version)
    message["Signature"] = sns_signature(keys[0], message, algorithm)
    got = _verify(message, sns_certificate(keys[0], NOW))
    assert (got.type, got.message_id, got.topic_arn) == ("Notification", "sns-1", TOPIC)


def test_the_subject_is_signed_when_present(keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    pem = sns_certificate(keys[0], NOW)
    message = _notification(keys[0], Subject="Bounce")
    assert _verify(message, pem).message_id == "sns-1"
    message["Subject"] = "Changed"
    assert _refusal(lambda: _verify(message, pem)) == (403, "SNS: signature does not verify")


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"Type": "Other"}, 400, "unknown message Type"),
        ({"TopicArn": "arn:aws:sns:eu-west-1:666:theirs"}, 403, "not one we subscribed"),
        ({"SignatureVersion": "3"}, 403, "SignatureVersion"),
        ({"SigningCertURL": "https://evil.org/c.pem"}, 403, "sns.<region>"),
        ({"Signature": "***not base64***"}, 403, "not base64"),
        ({"Timestamp": "yesterday"}, 400, "not a date"),
        ({"Timestamp": "2026-09-24T10:00:00Z"}, 403, "too old"),
        ({"Timestamp": "2026-09-24T14:00:00Z"}, 403, "in the future"),
        ({"Timestamp": "2026-09-24T12:00:00"}, 403, "too old"),  # no zone: not trusted
    ],
)
def test_each_sns_check_refuses_with_its_status(
    keys: tuple[rsa.RSAPrivateKey, ...], change: dict[str, str], status: int, words: str
) -> None:
    message = _notification(keys[0], **change)
    if "Signature" in change:
        message.update(change)
    got = _refusal(lambda: _verify(message, sns_certificate(keys[0], NOW)))
    assert got[0] == status and words in got[1]


def test_a_message_missing_a_signed_field_is_400(keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    message = _notification(keys[0])
    del message["MessageId"]
    assert _refusal(lambda: _verify(message, sns_certificate(keys[0], NOW))) == (
        400, "SNS Notification: MessageId missing",
    )  # fmt: skip


def test_a_message_signed_by_another_key_is_refused(keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    forged = _notification(keys[1])
    assert _refusal(lambda: _verify(forged, sns_certificate(keys[0], NOW)))[0] == 403


@pytest.mark.parametrize("offset", [timedelta(days=-60), timedelta(days=60)])
def test_a_certificate_not_valid_now_is_refused(
    keys: tuple[rsa.RSAPrivateKey, ...], offset: timedelta
) -> None:
    pem = sns_certificate(keys[0], NOW + offset)
    status, reason = _refusal(lambda: _verify(_notification(keys[0]), pem))
    assert status == 403 and "is not valid at" in reason


def test_a_certificate_that_does_not_load_is_refused(keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    status, reason = _refusal(lambda: _verify(_notification(keys[0]), b"not a certificate"))
    assert status == 403 and "does not load" in reason


def test_a_seen_sns_message_id_is_a_409_replay_and_a_new_one_is_remembered(
    keys: tuple[rsa.RSAPrivateKey, ...],
) -> None:
    seen: set[str] = set()
    pem = sns_certificate(keys[0], NOW)
    _verify(_notification(keys[0]), pem, seen=seen)
    assert seen == {"sns-1"}
    assert _refusal(lambda: _verify(_notification(keys[0]), pem, seen=seen))[0] == 409


def test_the_age_window_is_the_callers(keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    message = _notification(keys[0], Timestamp="2026-09-24T09:00:00Z")
    pem = sns_certificate(keys[0], NOW)
    assert _verify(message, pem, max_age=timedelta(hours=4)).timestamp == "2026-09-24T09:00:00Z"


def test_a_subscribe_url_off_the_sns_hosts_is_refused(keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    message = _notification(
        keys[0], Type="SubscriptionConfirmation", Token="t", SubscribeURL="https://evil.org/?a=1"
    )
    assert _refusal(lambda: _verify(message, sns_certificate(keys[0], NOW)))[0] == 403


# ---------------------------------------------------------------- SES notifications read


def _sns(message: object, kind: str = "Notification") -> SnsMessage:
    text = message if isinstance(message, str) else json.dumps(message)
    return SnsMessage(kind, "sns-1", TOPIC, text, "2026-09-24T11:59:00Z")


def _ses_bounce(kind: str, recipients: list[dict[str, str]], **mail: str) -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {"bounceType": kind, "bounceSubType": "General", "bouncedRecipients": recipients},
        "mail": {"messageId": "ses-9", "commonHeaders": {"messageId": "m1@digest.test"}, **mail},
    }


@pytest.mark.parametrize(("kind", "expected"), [("Permanent", Kind.HARD_BOUNCE),
                                                ("Transient", Kind.SOFT_BOUNCE),
                                                ("Undetermined", Kind.SOFT_BOUNCE)])  # fmt: skip
def test_an_ses_bounce_is_hard_only_when_permanent(kind: str, expected: Kind) -> None:
    rcpt = {"emailAddress": "ann@example.com", "status": "5.1.1", "diagnosticCode": "a\n b"}
    report = parse_ses(_sns(_ses_bounce(kind, [rcpt])), BOX)
    assert report.kind is expected and report.provider_id == "ses-9"
    assert report.message_id == "<m1@digest.test>"
    (r,) = report.recipients
    assert (r.address, r.status, r.diagnostic, r.action) == (
        "ann@example.com",
        "5.1.1",
        "a b",
        "failed",
    )


def test_an_ses_bounce_naming_no_recipient_is_unparseable() -> None:
    report = parse_ses(_sns(_ses_bounce("Permanent", [{"status": "5.1.1"}])), BOX)
    assert report.kind is Kind.UNPARSEABLE and "no recipient" in report.reason


@pytest.mark.parametrize(("feedback", "expected"), [("abuse", Kind.COMPLAINT), ("", Kind.COMPLAINT),
                                                    ("not-spam", Kind.INFORMATIONAL)])  # fmt: skip
def test_an_ses_complaint_unsubscribes_unless_it_says_not_spam(
    feedback: str, expected: Kind
) -> None:
    data = {"notificationType": "Complaint", "mail": {},
            "complaint": {"complaintFeedbackType": feedback,
                          "complainedRecipients": [{"emailAddress": "g@example.com"}]}}  # fmt: skip
    report = parse_ses(_sns(data), BOX)
    assert report.kind is expected and report.feedback_type == (feedback or "abuse")
    assert [r.address for r in report.recipients] == ["g@example.com"]


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ({"notificationType": "Delivery", "mail": {}}, Kind.INFORMATIONAL),
        ({"eventType": "Open"}, Kind.INFORMATIONAL),
        ("not json", Kind.UNPARSEABLE),
        ("[]", Kind.UNPARSEABLE),
    ],
)
def test_other_ses_notifications_change_nothing(message: object, kind: Kind) -> None:
    assert parse_ses(_sns(message), BOX).kind is kind


def test_an_sns_subscription_message_is_informational() -> None:
    report = parse_ses(_sns("{}", "SubscriptionConfirmation"), BOX)
    assert report.kind is Kind.INFORMATIONAL and report.provider_id == "sns-1"


def test_the_verp_sender_ses_reports_names_the_delivery_when_it_verifies() -> None:
    sender = envelope_sender(BOX.bounce_address, SECRET, 7, "2026-09-24")
    rcpt = [{"emailAddress": "ann@example.com"}]
    report = parse_ses(_sns(_ses_bounce("Permanent", rcpt, source=sender)), BOX)
    assert report.delivery is not None
    assert (report.delivery.subscriber_id, report.delivery.edition) == (7, "2026-09-24")
    forged = sender.replace("+", "+x", 1)
    refused = parse_ses(_sns(_ses_bounce("Permanent", rcpt, source=forged)), BOX)
    assert refused.kind is Kind.REFUSED and refused.recipients == ()


# ---------------------------------------------------------------- Postmark


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("", 401),
        (_basic("pm:wrong"), 401),
        (_basic("other:secret"), 401),
        ("Bearer " + base64.b64encode(b"pm:secret").decode(), 401),
        ("Basic ***", 401),
    ],
)
def test_postmark_needs_the_exact_basic_credentials(header: str | None, status: int) -> None:
    assert _refusal(lambda: verify_basic_auth(header, "pm", "secret"))[0] == status


def test_postmark_credentials_pass_whatever_the_scheme_case() -> None:
    verify_basic_auth(_basic("pm:secret"), "pm", "secret")
    verify_basic_auth("basic " + base64.b64encode(b"pm:secret").decode(), "pm", "secret")


@pytest.mark.parametrize(("user", "password"), [("", "secret"), ("pm", "")])
def test_postmark_without_configured_credentials_is_our_fault_503(user: str, password: str) -> None:
    assert (
        _refusal(lambda: verify_basic_auth(_basic(f"{user}:{password}"), user, password))[0] == 503
    )


@pytest.mark.parametrize(
    ("record", "type_", "kind"),
    [
        ("Bounce", "HardBounce", Kind.HARD_BOUNCE),
        ("Bounce", "BadEmailAddress", Kind.HARD_BOUNCE),
        ("Bounce", "SoftBounce", Kind.SOFT_BOUNCE),
        ("Bounce", "Transient", Kind.SOFT_BOUNCE),
        ("Bounce", "DnsError", Kind.SOFT_BOUNCE),
        ("Bounce", "AutoResponder", Kind.AUTO_REPLY),
        ("Bounce", "Blocked", Kind.INFORMATIONAL),
        ("SpamComplaint", "", Kind.COMPLAINT),
        ("Delivery", "", Kind.INFORMATIONAL),
    ],
)
def test_postmark_types_map_to_what_we_do(record: str, type_: str, kind: Kind) -> None:
    body = {"RecordType": record, "Type": type_, "Email": "a@example.com", "MessageID": "pm-1",
            "Details": "smtp;550 5.1.1\nno such user"}  # fmt: skip
    report = parse_postmark(json.dumps(body).encode(), BOX)
    assert report.kind is kind and report.provider_id == "pm-1"
    assert report.feedback_type == ("abuse" if kind is Kind.COMPLAINT else None)
    assert report.recipients[0].diagnostic == "smtp;550 5.1.1 no such user"


@pytest.mark.parametrize("record", ["Bounce", "SpamComplaint"])
def test_a_postmark_report_that_would_act_without_an_email_is_unparseable(record: str) -> None:
    body = json.dumps({"RecordType": record, "Type": "HardBounce", "MessageID": "pm-2"})
    assert parse_postmark(body.encode(), BOX).kind is Kind.UNPARSEABLE


def test_a_postmark_metadata_token_is_checked_before_it_is_believed() -> None:
    good = make_token(SECRET, 5, "2026-09-24")
    body = {"RecordType": "Bounce", "Type": "HardBounce", "Email": "a@example.com",
            "MessageID": "pm-3", "Metadata": {"token": good}}  # fmt: skip
    report = parse_postmark(json.dumps(body).encode(), BOX)
    assert report.delivery is not None and report.delivery.subscriber_id == 5
    body["Metadata"] = {"token": good[:-2] + "zz"}
    assert parse_postmark(json.dumps(body).encode(), BOX).kind is Kind.REFUSED
    no_secret = parse_postmark(json.dumps(body).encode(), Mailboxes("bounces@digest.test"))
    assert no_secret.kind is Kind.REFUSED and "no secret" in no_secret.reason


# ---------------------------------------------------------------- Mailgun


def _mailgun(timestamp: int, token: str, key: str = KEY, event: object = None) -> bytes:
    signed = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    signature = {"timestamp": str(timestamp), "token": token, "signature": signed}
    return json.dumps({"signature": signature, "event-data": event or {"event": "x"}}).encode()


def test_a_genuine_mailgun_request_is_read_and_its_token_remembered() -> None:
    seen: set[str] = set()
    got = verify_mailgun(
        _mailgun(int(NOW.timestamp()), "tok-1", event={"event": "failed"}), KEY, NOW, seen
    )
    assert got == MailgunEvent("tok-1", {"event": "failed"}) and seen == {"tok-1"}
    status, reason = _refusal(
        lambda: verify_mailgun(_mailgun(int(NOW.timestamp()), "tok-1"), KEY, NOW, seen)
    )
    assert status == 409 and "replay" in reason


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (_mailgun(int(NOW.timestamp()), "t", key="other-key"), 403),
        (_mailgun(int(NOW.timestamp()) - 301, "t"), 403),
        (_mailgun(int(NOW.timestamp()) + 301, "t"), 403),
        (_mailgun(10**30, "t"), 403),  # absurd timestamps are not a crash
        (
            json.dumps(
                {"signature": {"timestamp": "-5", "token": "t", "signature": "ab"}}
            ).encode(),
            400,
        ),
        (
            json.dumps({"signature": {"timestamp": "5", "token": "", "signature": "ab"}}).encode(),
            400,
        ),
        (json.dumps({"event-data": {}}).encode(), 400),
        (b"[]", 400),
    ],
)
def test_each_mailgun_check_refuses_with_its_status(body: bytes, status: int) -> None:
    seen: set[str] = set()
    assert _refusal(lambda: verify_mailgun(body, KEY, NOW, seen))[0] == status
    assert seen == set(), "a refused request leaves no token behind"


def test_mailgun_timestamps_within_five_minutes_either_way_are_fresh() -> None:
    for delta in (-300, 300):
        verify_mailgun(_mailgun(int(NOW.timestamp()) + delta, f"t{delta}"), KEY, NOW, set())


def test_mailgun_without_a_signing_key_is_our_fault_503() -> None:
    assert _refusal(lambda: verify_mailgun(_mailgun(0, "t", key=""), "", NOW, set()))[0] == 503


def test_an_uppercase_hex_signature_verifies() -> None:
    data = json.loads(_mailgun(int(NOW.timestamp()), "t"))
    data["signature"]["signature"] = data["signature"]["signature"].upper()
    assert verify_mailgun(json.dumps(data).encode(), KEY, NOW, set()).token == "t"


@pytest.mark.parametrize(
    ("event", "kind", "status"),
    [
        ({"event": "failed", "severity": "permanent", "recipient": "a@x.org",
          "delivery-status": {"code": 550, "description": "no such\nuser"}},
         Kind.HARD_BOUNCE, "550"),
        ({"event": "failed", "severity": "temporary", "recipient": "a@x.org",
          "delivery-status": {"enhanced-code": "4.2.2"}}, Kind.SOFT_BOUNCE, "4.2.2"),
        ({"event": "complained", "recipient": "a@x.org"}, Kind.COMPLAINT, ""),
        ({"event": "delivered", "recipient": "a@x.org"}, Kind.INFORMATIONAL, None),
        ({"event": "failed", "severity": "permanent"}, Kind.UNPARSEABLE, None),
        ({"event": "complained"}, Kind.UNPARSEABLE, None),
    ],
)  # fmt: skip
def test_mailgun_events_map_to_what_we_do(
    event: dict[str, Any], kind: Kind, status: str | None
) -> None:
    report = parse_mailgun(MailgunEvent("t", event), BOX)
    assert report.kind is kind
    if status is not None:
        assert report.recipients[0].status == status


def test_a_mailgun_message_id_is_read_in_angle_form() -> None:
    event = {"event": "complained", "recipient": "a@x.org", "id": "mg-7",
             "message": {"headers": {"message-id": "m9@digest.test"}}}  # fmt: skip
    report = parse_mailgun(MailgunEvent("t", event), BOX)
    assert (report.message_id, report.provider_id) == ("<m9@digest.test>", "mg-7")


@pytest.mark.parametrize(
    ("given_id", "expected"),
    [("abc@d", "<abc@d>"), ("<abc@d>", "<abc@d>"), (" <abc@d> ", "<abc@d>"), ("", None),
     ("<>", None), ("two words", None)],
)  # fmt: skip
def test_a_provider_message_id_matches_only_as_one_word_in_angles(
    given_id: str, expected: str | None
) -> None:
    assert angle(given_id) == expected


@settings(max_examples=60)
@given(st.binary(max_size=300))
def test_no_body_makes_a_parser_raise_anything_but_a_refusal(body: bytes) -> None:
    for call in (lambda: parse_postmark(body, BOX), lambda: verify_mailgun(body, KEY, NOW, set())):
        try:
            call()
        except WebhookRefused as ex:
            assert 400 <= ex.status < 500


# ---------------------------------------------------------------- health: rates and alerts


def _day_with(store: Store, sent: int, complaints: int, hard: int) -> None:
    edition = "2026-09-24"
    for n in range(sent):
        sub = store.add_subscriber(Subscriber(f"p{n}@example.org", status="active"), NOW, "t")
        assert sub.id is not None
        row = PlannedDelivery(sub.id, sub.email, edition, DeliveryStatus.PENDING, (), f"<{n}@t>")
        store.plan_deliveries([row], NOW)
        delivery = store.delivery(sub.id, edition)
        assert delivery is not None
        store.claim_delivery(delivery.id, NOW)
        store.mark_sent(delivery.id, sub.id, [], edition, "250", NOW)
        kind = (
            BounceKind.COMPLAINT
            if n < complaints
            else BounceKind.HARD
            if n < complaints + hard
            else None
        )
        if kind:
            store.record_bounce_event(
                BounceEvent(kind, Origin.WEBHOOK, f"k{n}", NOW, delivery_id=delivery.id)
            )


@pytest.mark.parametrize(
    ("complaints", "hard", "keys"),
    [
        (0, 0, []),
        (1, 0, ["complaints:2026-09-24"]),
        (0, 1, ["hard-bounces:2026-09-24"]),
        (1, 1, ["complaints:2026-09-24", "hard-bounces:2026-09-24"]),
    ],
)
def test_a_day_over_a_threshold_alerts_once_per_kind(
    tmp_path: Path, store: Store, complaints: int, hard: int, keys: list[str]
) -> None:
    config = make_config(
        tmp_path, [], bounces={"complaint_alert_rate": 0.2, "hard_alert_rate": 0.2}
    )
    _day_with(store, 4, complaints, hard)
    alerts = bounce_alerts(config, store, NOW)
    assert [a[0] for a in alerts] == keys
    for key, subject, body in alerts:
        assert "25.00% of the 4 emails sent on 2026-09-24" in subject and "20.00%" in body
        store.record_alert(key, subject, NOW)
    assert bounce_alerts(config, store, NOW + timedelta(hours=1)) == []


def test_a_rate_equal_to_its_threshold_does_not_alert(tmp_path: Path, store: Store) -> None:
    config = make_config(
        tmp_path, [], bounces={"complaint_alert_rate": 0.25, "hard_alert_rate": 0.25}
    )
    _day_with(store, 4, 1, 1)
    assert bounce_alerts(config, store, NOW) == []


def test_a_day_older_than_the_alert_window_never_alerts(tmp_path: Path, store: Store) -> None:
    config = make_config(tmp_path, [], bounces={"complaint_alert_rate": 0.1})
    _day_with(store, 2, 2, 0)
    assert bounce_alerts(config, store, NOW + timedelta(days=5)) == []


def test_the_stats_table_shows_no_rate_on_a_day_nothing_was_sent() -> None:
    days = [BounceDay("2026-09-24", 0, 2, 0, 0, 0), BounceDay("2026-09-23", 200, 1, 0, 0, 0)]
    assert bounce_rows(bounce_stats_json(days)) == [
        ["2026-09-24", "0", "2", "0", "0", "0", "-", "-"],
        ["2026-09-23", "200", "1", "0", "0", "0", "0.50%", "0.00%"],
    ]
