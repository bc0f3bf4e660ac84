"""Read ONE message of the bounce mailbox into a typed Report: a DSN, a prose bounce, an ARF
complaint, an auto-reply, a request to the unsubscribe address, or unparseable.

Pure (bytes in, Report out) and total: hostile input (a 20 MB report, reports nested in
reports, bad charsets, missing parts) yields an UNPARSEABLE report with the reason, never an
exception, since one bad message must not stop the reading of the others. It decides nothing
about subscribers: whoever records the Report applies the policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from digest.bounces.events import (
    MAX_MESSAGE_BYTES,
    Kind,
    RecipientStatus,
    Report,
    Source,
    worst,
)
from digest.bounces.parts import (
    RETURNED_TYPES,
    addresses,
    children,
    header,
    message_id,
    one_line,
    report_fields,
    returned_headers,
    typed_address,
)
from digest.bounces.text_bounces import read_text_bounce
from digest.bounces.verp import find_token, read_token, token_in_address
from digest.errors import TokenError

RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "To", "Envelope-To", "X-Envelope-To", "Cc")
STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")
AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|auto:|out of (?:the )?office|"
    r"vacation|abwesenheit|r[ée]ponse automatique|respuesta autom[áa]tica|autosvar|"
    r"away from (?:my|the) (?:desk|office))",
    re.I,
)
DELIVERY_STATUS = ("message/delivery-status", "message/global-delivery-status")
FEEDBACK = "message/feedback-report"


@dataclass(frozen=True, slots=True)
class Mailboxes:
    """What the classifier must know: our addresses and the secret that signs VERP tokens."""

    bounce_address: str = ""  # e.g. bounces@example.org; bounces+TOKEN@ are its VERP forms
    unsubscribe_address: str = ""  # the List-Unsubscribe mailto address, "" when not offered
    secret: str = ""
    old_secrets: tuple[str, ...] = ()
    delimiter: str = "+"


def classify(raw: bytes, mailboxes: Mailboxes) -> Report:
    """What one raw message is; never raises."""
    try:
        return read(raw, mailboxes)
    except Exception as ex:  # hostile input is counted, never fatal
        reason = f"could not be read: {type(ex).__name__}: {one_line(str(ex), 160)}"
        return Report(Kind.UNPARSEABLE, Source.MAIL, reason)


def read(raw: bytes, mailboxes: Mailboxes) -> Report:
    """`classify` without the safety net: the message parsed (at most MAX_MESSAGE_BYTES of it)
    and dispatched. May raise on input the stdlib parser cannot take."""
    cut = len(raw) > MAX_MESSAGE_BYTES
    # compat32: the modern policy raises on some malformed headers compat32 reads as text
    msg = BytesParser(policy=compat32).parsebytes(raw[:MAX_MESSAGE_BYTES])
    report = dispatch(msg, mailboxes)
    if cut and report.kind is Kind.UNPARSEABLE:
        reason = f"{report.reason} (only the first {MAX_MESSAGE_BYTES} of {len(raw)} bytes read)"
        return replace(report, reason=reason)
    return report


def dispatch(msg: Message, mailboxes: Mailboxes) -> Report:
    """Try each reading from the most structured to the least: a report (ARF, DSN), prose
    bounce, auto-reply, unsubscribe request; else unparseable with the reason."""
    parts = children(msg)
    types = [part.get_content_type() for part in parts]
    if msg.get_content_type() == "multipart/report":
        report_type = msg.get_param("report-type")
        kind = report_type.lower() if isinstance(report_type, str) else ""
        # the report-type parameter decides; only when missing do the parts' types
        if kind == "feedback-report" or (not kind and FEEDBACK in types):
            return verified(read_arf(msg, parts, mailboxes), mailboxes)
        if kind in ("delivery-status", "global-delivery-status") or (
            not kind and any(t in DELIVERY_STATUS for t in types)
        ):
            return verified(read_dsn(msg, parts, mailboxes), mailboxes)
    # the bounce was sent to us: our own addresses in it are never the failed recipient
    ours = {a.lower() for a in addresses(msg, *RECIPIENT_HEADERS)}
    ours.add(mailboxes.bounce_address.lower())
    text_bounce = read_text_bounce(msg, ours)
    if text_bounce is not None:
        source, recipients = text_bounce.source, text_bounce.recipients
        if not recipients:
            return Report(Kind.UNPARSEABLE, source, f"{source} bounce naming no recipient")
        report = Report(
            worst(tuple(r.kind for r in recipients)),
            source,
            f"{source} bounce for {len(recipients)} recipient(s)",
            recipients,
            token=token_of(msg, mailboxes),
            message_id=text_bounce.message_id,
        )
        return verified(report, mailboxes)
    # after the bounces: some MTAs mark their bounces Auto-Submitted too
    if is_auto_reply(msg):
        return Report(Kind.AUTO_REPLY, Source.MAIL, "auto-reply (RFC 3834 or vacation)")
    request = unsubscribe_request(msg, mailboxes)
    if request is not None:
        return verified(request, mailboxes)
    if msg.get_content_type() == "multipart/report":
        return Report(Kind.UNPARSEABLE, Source.MAIL, "multipart/report of no known report-type")
    return Report(
        Kind.UNPARSEABLE, Source.MAIL, "neither a bounce, a complaint, an auto-reply nor a request"
    )


def token_of(msg: Message | None, mailboxes: Mailboxes, *names: str) -> str | None:
    """The first VERP token in the recipient headers (or `names`) of a message."""
    if msg is None or not mailboxes.bounce_address:
        return None
    for address in addresses(msg, *(names or RECIPIENT_HEADERS)):
        token = token_in_address(address, mailboxes.bounce_address, mailboxes.delimiter)
        if token:
            return token
    return None


def verified(report: Report, mailboxes: Mailboxes) -> Report:
    """The report with its token checked: a token that does not verify refuses the report."""
    if report.token is None:
        return report
    if not mailboxes.secret:
        reason = f"{report.kind} refused: a VERP token but no secret to check it (DIGEST_SECRET)"
        return Report(Kind.REFUSED, report.source, reason, token=report.token)
    try:
        delivery = read_token(mailboxes.secret, report.token, mailboxes.old_secrets)
    except TokenError as ex:
        return Report(
            Kind.REFUSED, report.source, f"{report.kind} refused: {ex}", token=report.token
        )
    return replace(report, delivery=delivery)


def status_kind(action: str, status: str) -> Kind:
    """RFC 3464: failed + 5.x.x is permanent, failed + 4.x.x (or no status) temporary."""
    if action == "failed":
        return Kind.HARD_BOUNCE if status.startswith("5") else Kind.SOFT_BOUNCE
    if action == "delayed":
        return Kind.DELAYED
    if action in ("delivered", "relayed", "expanded"):
        return Kind.INFORMATIONAL
    return Kind.SOFT_BOUNCE if status[:1] in ("4", "5") else Kind.INFORMATIONAL


def read_dsn(msg: Message, parts: list[Message], mailboxes: Mailboxes) -> Report:
    """An RFC 3464 delivery report: one status per recipient, the worst deciding the kind; the
    token from the report's recipient or the returned message's Return-Path."""
    status_part = next((p for p in parts if p.get_content_type() in DELIVERY_STATUS), None)
    returned = next((p for p in parts if p.get_content_type() in RETURNED_TYPES), None)
    original = returned_headers(returned) if returned is not None else None
    if status_part is None:
        return Report(Kind.UNPARSEABLE, Source.DSN, "delivery report without a status part")
    recipients = []
    for fields in report_fields(status_part):
        address = typed_address(
            fields.get("final-recipient") or fields.get("original-recipient", "")
        )
        if not address:
            continue  # the per-message block (Reporting-MTA, Arrival-Date), or no one
        action = fields.get("action", "").split()[0].lower() if fields.get("action") else ""
        code = STATUS.search(fields.get("status", ""))
        status = code[0] if code else ""
        diagnostic = typed_address(fields.get("diagnostic-code", "")) or fields.get(
            "diagnostic-code", ""
        )
        recipients.append(
            RecipientStatus(address, status_kind(action, status), action, status, diagnostic)
        )
    if not recipients:
        return Report(Kind.UNPARSEABLE, Source.DSN, "delivery report naming no recipient")
    token = token_of(msg, mailboxes) or token_of(original, mailboxes, "Return-Path")
    kind = worst(tuple(r.kind for r in recipients))
    return Report(
        kind,
        Source.DSN,
        "DSN: " + ", ".join(f"{r.action or '?'} {r.status or '?'}" for r in recipients[:5]),
        tuple(recipients),
        token=token,
        message_id=message_id(original),
    )


def read_arf(msg: Message, parts: list[Message], mailboxes: Mailboxes) -> Report:
    """An RFC 5965 feedback report: Feedback-Type abuse is a complaint, any other type is
    informational; the recipient from Original-Rcpt-To, else the returned message's To."""
    feedback = next((p for p in parts if p.get_content_type() == FEEDBACK), None)
    returned = next((p for p in parts if p.get_content_type() in RETURNED_TYPES), None)
    original = returned_headers(returned) if returned is not None else None
    if feedback is None:
        return Report(Kind.UNPARSEABLE, Source.ARF, "feedback report without its report part")
    fields: dict[str, str] = {}
    for block in report_fields(feedback):
        for name, value in block.items():
            fields.setdefault(name, value)
    words = fields.get("feedback-type", "").split()
    feedback_type = words[0].lower() if words else ""
    if not feedback_type:
        return Report(Kind.UNPARSEABLE, Source.ARF, "feedback report without Feedback-Type")
    recipient = typed_address(fields.get("original-rcpt-to", ""))
    if not recipient and original is not None:
        found = addresses(original, "To")
        recipient = found[0] if found else ""
    kind = Kind.COMPLAINT if feedback_type == "abuse" else Kind.INFORMATIONAL
    recipients = (RecipientStatus(recipient, kind, feedback_type),) if recipient else ()
    envelope = typed_address(fields.get("original-mail-from", ""))
    # providers often redact the returned copy: the envelope sender is the surest token
    token = (
        token_in_address(envelope, mailboxes.bounce_address, mailboxes.delimiter)
        if envelope and mailboxes.bounce_address
        else None
    )
    token = token or token_of(original, mailboxes, "Return-Path") or token_of(msg, mailboxes)
    return Report(
        kind,
        Source.ARF,
        f"ARF feedback report, Feedback-Type {feedback_type}",
        recipients,
        token=token,
        message_id=message_id(original),
        feedback_type=feedback_type,
    )


def is_auto_reply(msg: Message) -> bool:
    """RFC 3834 Auto-Submitted, the X-Autoreply family, Precedence auto_reply, or a
    vacation-style subject."""
    submitted = header(msg, "Auto-Submitted").split(";")[0].strip().lower()
    if submitted and submitted != "no":
        return True
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        value = header(msg, name).strip().lower()
        if value and value != "no":
            return True
    if header(msg, "Precedence").strip().lower() == "auto_reply":
        return True
    return bool(AUTO_SUBJECT.match(header(msg, "Subject")))


def unsubscribe_request(msg: Message, mailboxes: Mailboxes) -> Report | None:
    """A message to the unsubscribe address: its From asks to leave; a token in the VERP
    form of the address or in the subject names (and proves) the delivery."""
    target = mailboxes.unsubscribe_address.lower()
    if not target:
        return None
    token = None
    addressed = False
    for address in addresses(msg, *RECIPIENT_HEADERS):
        if address.lower() == target:
            addressed = True
        elif found := token_in_address(address, target, mailboxes.delimiter):
            addressed, token = True, token or found
    if not addressed:
        return None
    senders = addresses(msg, "From")
    if not senders:
        return Report(Kind.UNPARSEABLE, Source.MAILTO, "unsubscribe request without a From")
    # a mailto: List-Unsubscribe link carries the token in its subject
    token = token or find_token(header(msg, "Subject"))
    return Report(
        Kind.UNSUBSCRIBE,
        Source.MAILTO,
        "message to the unsubscribe address",
        token=token,
        sender=senders[0],
    )
