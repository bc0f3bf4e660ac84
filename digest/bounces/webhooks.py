"""Provider webhooks: verify a request before believing it, then read it into Reports.

Pure functions; the caller passes what changes (the time, the set of tokens already seen, a
function that fetches the SNS certificate), so tests run on certificates they make. Every
refusal is a WebhookRefused carrying the HTTP status to answer (4xx) and a one-line reason;
the web app must change nothing on a refusal. Verification:
- Amazon SES via SNS: the SNS signature (SignatureVersion 1: SHA1, 2: SHA256) with the
  certificate from SigningCertURL, accepted only from https://sns.<region>.amazonaws.com/….pem,
  and only for the topics we subscribed (anyone can make SNS sign for their own topic).
- Postmark: HTTP basic auth, compared in constant time.
- Mailgun: HMAC-SHA256 of timestamp+token with the signing key, a fresh timestamp, and a
  token never seen before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from digest.bounces.classify import Mailboxes, verified
from digest.bounces.events import Kind, RecipientStatus, Report, Source
from digest.bounces.parts import one_line
from digest.bounces.verp import token_in_address
from digest.errors import DigestError

MAX_BODY = 256 * 1024
SNS_HOST = re.compile(r"sns\.[a-z0-9-]{1,40}\.amazonaws\.com(?:\.cn)?")
SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip
CONTENT_TYPES = {
    Source.SES: ("text/plain", "application/json"),  # SNS posts JSON as text/plain
    Source.POSTMARK: ("application/json",),
    Source.MAILGUN: ("application/json",),
}
JsonObject = Mapping[str, object]


class WebhookRefused(DigestError):
    """A webhook request that failed verification: answer `status`, change nothing."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


class SeenTokens(Protocol):
    """Where replay protection remembers tokens (a set, or a table behind this interface)."""

    def __contains__(self, token: object) -> bool: ...

    def add(self, token: str) -> None:
        """Remember `token`, so the same signed request replayed later is refused."""
        ...


CertificateFetcher = Callable[[str], bytes]


@dataclass(frozen=True, slots=True)
class SnsMessage:
    """A verified SNS message. For a SubscriptionConfirmation the app GETs `subscribe_url`
    (after checking it is on the SNS host too: `check_sns_url`)."""

    type: str
    message_id: str
    topic_arn: str
    message: str
    timestamp: str
    subscribe_url: str = ""


@dataclass(frozen=True, slots=True)
class MailgunEvent:
    """A verified Mailgun webhook: its `event-data` object."""

    token: str
    event: JsonObject


def check_content_type(source: Source, content_type: str | None) -> None:
    """Refuse a body not sent with the media type the provider documents.

    Raises:
        WebhookRefused: 415, another or no Content-Type.
    """
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in CONTENT_TYPES.get(source, ()):
        raise WebhookRefused(f"{source} webhook: unexpected Content-Type {media!r}", 415)


def load_object(body: bytes, what: str) -> dict[str, object]:
    """The body as a JSON object, read only after its size is checked: a provider's body is
    untrusted until verified, so it must not cost unbounded memory or recursion first.

    Raises:
        WebhookRefused: 413 for a body over MAX_BODY, 400 for anything but a JSON object.
    """
    if len(body) > MAX_BODY:
        raise WebhookRefused(f"{what}: body over {MAX_BODY} bytes", 413)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as ex:
        raise WebhookRefused(f"{what}: body is not JSON: {one_line(str(ex), 80)}", 400) from ex
    if not isinstance(data, dict):
        raise WebhookRefused(f"{what}: body is not a JSON object", 400)
    return data


def string(data: JsonObject, key: str) -> str:
    """`data[key]` if it is a string, else "": a missing or mistyped field in a provider's
    JSON reads as absent instead of raising in the middle of parsing."""
    value = data.get(key)
    return value if isinstance(value, str) else ""


def obj(data: JsonObject, key: str) -> JsonObject:
    """`data[key]` if it is a JSON object, else {}: lets nested lookups chain safely."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def objects(data: JsonObject, key: str) -> list[JsonObject]:
    """The JSON objects in the list `data[key]`, skipping anything else it holds."""
    value = data.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


# ---------------------------------------------------------------- Amazon SES through SNS


def check_sns_url(url: str) -> str:
    """The URL, if it is https on an SNS host with no user, port or query tricks.

    Raises:
        WebhookRefused: 403, a URL anywhere else (we would fetch or GET what it names).
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if (
        parts.scheme != "https"
        or "@" in parts.netloc
        or parts.port not in (None, 443)
        or not SNS_HOST.fullmatch(host)
    ):
        raise WebhookRefused(f"SNS: {url[:120]!r} is not on an sns.<region>.amazonaws.com host")
    return url


def check_certificate_url(url: str) -> str:
    """The SigningCertURL, if it names a .pem file on an SNS host: the certificate is what
    the signature is checked against, so one from anywhere else would prove nothing.

    Raises:
        WebhookRefused: not https on an SNS host, not a .pem, or with a query or fragment.
    """
    check_sns_url(url)
    parts = urlsplit(url)
    if not parts.path.endswith(".pem") or parts.query or parts.fragment:
        raise WebhookRefused(f"SNS: certificate URL {url[:120]!r} is not a .pem file")
    return url


def sns_string_to_sign(message: JsonObject, kind: str) -> bytes:
    """The bytes SNS signed for a message of this Type: the Type's fields in byte order, each
    as "Key\\nvalue\\n" (AWS's documented canonical form; Subject only when present).

    Raises:
        WebhookRefused: 400 when a field the Type requires is missing or not a string.
    """
    lines = []
    for key in SNS_FIELDS[kind]:
        value = message.get(key)
        if key == "Subject" and value is None:
            continue
        if not isinstance(value, str):
            raise WebhookRefused(f"SNS {kind}: {key} missing", 400)
        lines.append(f"{key}\n{value}\n")
    return "".join(lines).encode("utf-8")


def verify_sns(
    body: bytes,
    fetch_certificate: CertificateFetcher,
    topics: Collection[str],
    now: datetime,
    *,
    max_age: timedelta = timedelta(hours=1),
    seen: SeenTokens | None = None,
) -> SnsMessage:
    """The SNS message, once its signature, certificate URL, topic and age check out.

    Raises:
        WebhookRefused: any check failed; its status is the answer (nothing may change).
    """
    message = load_object(body, "SNS")
    kind = string(message, "Type")
    if kind not in SNS_FIELDS:
        raise WebhookRefused(f"SNS: unknown message Type {kind[:40]!r}", 400)
    topic = string(message, "TopicArn")
    if topic not in topics:
        raise WebhookRefused(f"SNS: topic {topic[:120]!r} is not one we subscribed to")
    check_sns_signature(message, kind, fetch_certificate, now)
    check_sns_freshness(message, now, max_age, seen)
    subscribe_url = string(message, "SubscribeURL")
    if subscribe_url:
        check_sns_url(subscribe_url)
    return SnsMessage(
        kind,
        message_id=string(message, "MessageId"),
        topic_arn=topic,
        message=string(message, "Message"),
        timestamp=string(message, "Timestamp"),
        subscribe_url=subscribe_url,
    )


def sns_algorithm(message: JsonObject) -> hashes.HashAlgorithm:
    """The hash its SignatureVersion names: 1 is SHA1 by definition, 2 is SHA256.

    Raises:
        WebhookRefused: another version (we cannot check what we do not know).
    """
    version = string(message, "SignatureVersion")
    if version == "1":
        return hashes.SHA1()
    if version == "2":
        return hashes.SHA256()
    raise WebhookRefused(f"SNS: SignatureVersion {version[:10]!r} is not supported")


def check_sns_signature(
    message: JsonObject, kind: str, fetch_certificate: CertificateFetcher, now: datetime
) -> None:
    """Check the signature with the certificate at SigningCertURL (an SNS host only), which
    must be valid `now` and hold an RSA key.

    Raises:
        WebhookRefused: the URL, the signature's encoding, the certificate or the signature.
    """
    algorithm = sns_algorithm(message)
    url = check_certificate_url(string(message, "SigningCertURL"))
    try:
        signature = base64.b64decode(string(message, "Signature"), validate=True)
    except (binascii.Error, ValueError) as ex:
        raise WebhookRefused("SNS: Signature is not base64") from ex
    to_sign = sns_string_to_sign(message, kind)
    try:
        certificate = x509.load_pem_x509_certificate(fetch_certificate(url))
    except ValueError as ex:
        raise WebhookRefused(f"SNS: certificate at {url} does not load: {ex}") from ex
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise WebhookRefused(f"SNS: certificate at {url} is not valid at {now.isoformat()}")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRefused(f"SNS: certificate at {url} does not hold an RSA key")
    try:
        key.verify(signature, to_sign, padding.PKCS1v15(), algorithm)
    except InvalidSignature as ex:
        raise WebhookRefused("SNS: signature does not verify") from ex


def check_sns_freshness(
    message: JsonObject, now: datetime, max_age: timedelta, seen: SeenTokens | None
) -> None:
    """Refuse a replay: a message older (or newer) than `max_age`, or one already received,
    which `seen` then remembers.

    Raises:
        WebhookRefused: the Timestamp is not a date, too far from `now`, or the id was seen.
    """
    try:
        sent = datetime.fromisoformat(string(message, "Timestamp").replace("Z", "+00:00"))
    except ValueError as ex:
        raise WebhookRefused("SNS: Timestamp is not a date", 400) from ex
    if sent.tzinfo is None or abs(now - sent) > max_age:
        raise WebhookRefused(f"SNS: message of {sent.isoformat()} is too old or in the future")
    message_id = string(message, "MessageId")
    if seen is not None:
        if message_id in seen:
            raise WebhookRefused(f"SNS: message {message_id[:80]} was already received", 409)
        seen.add(message_id)


def parse_ses(sns: SnsMessage, mailboxes: Mailboxes) -> Report:
    """An SES bounce or complaint notification (or event) into a Report."""
    source = Source.SES
    if sns.type != "Notification":
        return Report(Kind.INFORMATIONAL, source, f"SNS {sns.type}", provider_id=sns.message_id)
    try:
        data = load_object(sns.message.encode("utf-8"), "SES notification")
    except WebhookRefused as ex:
        return Report(Kind.UNPARSEABLE, source, str(ex), provider_id=sns.message_id)
    kind = string(data, "notificationType") or string(data, "eventType")
    mail = obj(data, "mail")
    headers = obj(mail, "commonHeaders")
    base = Report(
        Kind.INFORMATIONAL,
        source,
        f"SES {kind or 'notification of no type'}",
        message_id=angle(string(headers, "messageId")),
        provider_id=string(mail, "messageId") or sns.message_id,
        token=token_of_sender(string(mail, "source"), mailboxes),
    )
    if kind == "Bounce":
        bounce = obj(data, "bounce")
        severity = (
            Kind.HARD_BOUNCE if string(bounce, "bounceType") == "Permanent" else (Kind.SOFT_BOUNCE)
        )
        recipients = tuple(
            RecipientStatus(
                string(r, "emailAddress"),
                severity,
                string(r, "action") or "failed",
                string(r, "status"),
                one_line(string(r, "diagnosticCode")),
            )
            for r in objects(bounce, "bouncedRecipients")
            if string(r, "emailAddress")
        )
        if not recipients:
            return replace(base, kind=Kind.UNPARSEABLE, reason="SES bounce naming no recipient")
        reason = f"SES {string(bounce, 'bounceType')} bounce ({string(bounce, 'bounceSubType')})"
        report = replace(base, kind=severity, reason=reason, recipients=recipients)
        return verified(report, mailboxes)
    if kind == "Complaint":
        complaint = obj(data, "complaint")
        feedback = string(complaint, "complaintFeedbackType") or "abuse"
        complaint_kind = Kind.INFORMATIONAL if feedback == "not-spam" else Kind.COMPLAINT
        recipients = tuple(
            RecipientStatus(string(r, "emailAddress"), complaint_kind, feedback)
            for r in objects(complaint, "complainedRecipients")
            if string(r, "emailAddress")
        )
        report = replace(
            base,
            kind=complaint_kind,
            recipients=recipients,
            feedback_type=feedback,
            reason=f"SES complaint ({feedback})",
        )
        return verified(report, mailboxes)
    return base


# ---------------------------------------------------------------- Postmark


def verify_basic_auth(authorization: str | None, user: str, password: str) -> None:
    """Postmark's webhook credentials, compared in constant time.

    Raises:
        WebhookRefused: 401 when they differ; 503 when none are configured (our side).
    """
    if not user or not password:
        raise WebhookRefused("Postmark webhook: no credentials configured", 503)
    scheme, _, encoded = (authorization or "").partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        given = b""
    expected = f"{user}:{password}".encode()
    same = hmac.compare_digest(given, expected)
    if scheme.lower() != "basic" or not same:
        raise WebhookRefused("Postmark webhook: wrong or missing basic auth", 401)


POSTMARK_KINDS = {
    "HardBounce": Kind.HARD_BOUNCE,
    "BadEmailAddress": Kind.HARD_BOUNCE,
    "SoftBounce": Kind.SOFT_BOUNCE,
    "Transient": Kind.SOFT_BOUNCE,
    "DnsError": Kind.SOFT_BOUNCE,
    "SpamComplaint": Kind.COMPLAINT,
    "AutoResponder": Kind.AUTO_REPLY,
}


def parse_postmark(body: bytes, mailboxes: Mailboxes) -> Report:
    """A Postmark bounce or spam-complaint webhook. Postmark's MessageID is its own id; a
    VERP token may travel in the message's Metadata under `token`.

    Raises:
        WebhookRefused: 413 or 400, a body too big or not a JSON object.
    """
    data = load_object(body, "Postmark")
    record = string(data, "RecordType")
    kind_name = "SpamComplaint" if record == "SpamComplaint" else string(data, "Type")
    kind = POSTMARK_KINDS.get(kind_name, Kind.INFORMATIONAL)
    address = string(data, "Email")
    token = string(obj(data, "Metadata"), "token") or None
    provider_id = string(data, "MessageID") or None
    if kind in (Kind.HARD_BOUNCE, Kind.SOFT_BOUNCE, Kind.COMPLAINT) and not address:
        return Report(Kind.UNPARSEABLE, Source.POSTMARK, f"Postmark {kind_name} without Email")
    diagnostic = one_line(string(data, "Details") or string(data, "Description"))
    recipients = (RecipientStatus(address, kind, kind_name, "", diagnostic),) if address else ()
    report = Report(
        kind,
        Source.POSTMARK,
        f"Postmark {record or '?'} {kind_name}",
        recipients,
        token=token,
        provider_id=provider_id,
        feedback_type="abuse" if kind is Kind.COMPLAINT else None,
    )
    return verified(report, mailboxes)


# ---------------------------------------------------------------- Mailgun


def verify_mailgun(
    body: bytes,
    signing_key: str,
    now: datetime,
    seen: SeenTokens,
    *,
    max_age: timedelta = timedelta(minutes=5),
) -> MailgunEvent:
    """A Mailgun webhook whose signature verifies, whose timestamp is fresh and whose token
    was never seen before (the token is remembered in `seen`).

    Raises:
        WebhookRefused: any check failed (409 for a replay, 503 with no signing key); its
            status is the answer, and nothing may change.
    """
    if not signing_key:
        raise WebhookRefused("Mailgun webhook: no signing key configured", 503)
    data = load_object(body, "Mailgun")
    signature = obj(data, "signature")
    timestamp, token = string(signature, "timestamp"), string(signature, "token")
    given = string(signature, "signature")
    if not timestamp.isdigit() or not token or not given:
        raise WebhookRefused("Mailgun webhook: signature fields missing", 400)
    expected = hmac.new(
        signing_key.encode("utf-8"), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, given.lower()):
        raise WebhookRefused("Mailgun webhook: signature does not verify")
    sent = datetime.fromtimestamp(min(int(timestamp), 2**33), UTC)
    if abs(now - sent) > max_age:
        raise WebhookRefused(f"Mailgun webhook: timestamp {timestamp} is not fresh")
    if token in seen:
        raise WebhookRefused("Mailgun webhook: token already used (replay)", 409)
    seen.add(token)
    return MailgunEvent(token, obj(data, "event-data"))


def parse_mailgun(event: MailgunEvent, mailboxes: Mailboxes) -> Report:
    """Mailgun `failed` (permanent / temporary) and `complained` events."""
    data = event.event
    name = string(data, "event")
    address = string(data, "recipient")
    headers = obj(obj(data, "message"), "headers")
    status = obj(data, "delivery-status")
    code = status.get("code")
    base = Report(
        Kind.INFORMATIONAL,
        Source.MAILGUN,
        f"Mailgun {name or 'event of no name'}",
        message_id=angle(string(headers, "message-id")),
        provider_id=string(data, "id") or None,
        token=token_of_sender(string(obj(data, "envelope"), "sender"), mailboxes),
    )
    if name == "failed":
        severity = string(data, "severity")
        kind = Kind.HARD_BOUNCE if severity == "permanent" else Kind.SOFT_BOUNCE
        diagnostic = one_line(string(status, "description") or string(status, "message"))
        enhanced = string(status, "enhanced-code") or (str(code) if isinstance(code, int) else "")
        recipient = RecipientStatus(address, kind, f"failed {severity}", enhanced, diagnostic)
        report = replace(base, kind=kind, recipients=(recipient,), reason=f"Mailgun {severity}")
    elif name == "complained":
        recipient = RecipientStatus(address, Kind.COMPLAINT, "complained")
        report = replace(base, kind=Kind.COMPLAINT, recipients=(recipient,), feedback_type="abuse")
    else:
        return base
    if not address:
        return replace(report, kind=Kind.UNPARSEABLE, reason=f"Mailgun {name} without recipient")
    return verified(report, mailboxes)


def angle(message_id: str) -> str | None:
    """A provider's Message-ID in the `<id>` form our deliveries are stored under, or None
    when it is empty or not a single word (so it can never match the wrong delivery)."""
    value = message_id.strip().strip("<>").strip()
    return f"<{value}>" if value and " " not in value else None


def token_of_sender(sender: str, mailboxes: Mailboxes) -> str | None:
    """The VERP token in the envelope sender the provider reports, which names the delivery
    that bounced; None without a bounce address to compare with. Unverified: see `verified`."""
    if not sender or not mailboxes.bounce_address:
        return None
    return token_in_address(sender, mailboxes.bounce_address, mailboxes.delimiter)
