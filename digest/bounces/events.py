"""The typed results of reading one bounce-mailbox message or one provider webhook.

Shared by the classifier, the webhook parsers and whoever records them; holds no logic beyond
ranking severities, and never touches the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# A report larger than this is cut before parsing: real DSNs and ARF reports carry at most the
# original message (ours are ~50 KB); a 20 MB "report" is an attack or a loop, not a bounce.
MAX_MESSAGE_BYTES = 2 * 1024 * 1024


class Kind(StrEnum):
    """What a message or webhook event asks of us."""

    HARD_BOUNCE = "hard_bounce"  # permanent failure (5.x.x): counts toward bounce_limit
    SOFT_BOUNCE = "soft_bounce"  # temporary or unsure failure: counts toward the soft window
    DELAYED = "delayed"  # a warning that delivery is still being tried: nothing to do
    COMPLAINT = "complaint"  # ARF abuse report or provider complaint: unsubscribe at once
    UNSUBSCRIBE = "unsubscribe"  # a message to the List-Unsubscribe mailto address
    AUTO_REPLY = "auto_reply"  # vacation and other RFC 3834 answers: ignored, counted
    INFORMATIONAL = "informational"  # a report that asks nothing (delivered, not-spam)
    REFUSED = "refused"  # carries a VERP token that does not verify: changes nothing
    UNPARSEABLE = "unparseable"  # anything else: ignored, counted, with the reason


class Source(StrEnum):
    """Where a report came from, for the --json output and the event log."""

    DSN = "dsn"  # RFC 3464 multipart/report; report-type=delivery-status
    POSTFIX_TEXT = "postfix_text"  # "Undelivered Mail Returned to Sender" without a report
    TEXT_BOUNCE = "text_bounce"  # another MAILER-DAEMON message in plain text
    QMAIL = "qmail"
    EXCHANGE = "exchange"
    ARF = "arf"  # RFC 5965 feedback report
    MAILTO = "mailto"  # a message to the unsubscribe address
    MAIL = "mail"  # any other message (auto-replies, unparseable)
    SES = "ses"
    POSTMARK = "postmark"
    MAILGUN = "mailgun"


FAILURE_ORDER = (
    Kind.HARD_BOUNCE,
    Kind.SOFT_BOUNCE,
    Kind.DELAYED,
    Kind.INFORMATIONAL,
)


def worst(kinds: tuple[Kind, ...]) -> Kind:
    """The report's kind from its recipients': one hard failure makes the report hard."""
    for kind in FAILURE_ORDER:
        if kind in kinds:
            return kind
    return Kind.INFORMATIONAL


@dataclass(frozen=True, slots=True)
class VerpDelivery:
    """The delivery a genuine VERP token names."""

    subscriber_id: int
    edition: str


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """One recipient of a report: whom it concerns and how badly."""

    address: str  # Final-Recipient (DSN), Original-Rcpt-To (ARF), the provider's address field
    kind: Kind
    action: str = ""  # DSN Action (failed, delayed, ...), or the provider's own word
    status: str = ""  # enhanced status code, e.g. "5.1.1"
    diagnostic: str = ""  # Diagnostic-Code or the provider's description, one line


@dataclass(frozen=True, slots=True)
class Report:
    """One message of the bounce mailbox, or one webhook event, read.

    `token` is the VERP token as found (unverified text); `delivery` is set only when it
    verified. A token that does not verify makes the kind REFUSED: never fall back to
    `recipients` or `message_id` then, since a forger chose them.
    """

    kind: Kind
    source: Source
    reason: str  # one line: what was recognised, or why nothing was
    recipients: tuple[RecipientStatus, ...] = ()
    token: str | None = None
    delivery: VerpDelivery | None = None
    message_id: str | None = None  # of the original message we sent, when found
    sender: str | None = None  # From of an unsubscribe request
    feedback_type: str | None = None  # ARF Feedback-Type / provider complaint type
    provider_id: str | None = None  # the provider's own message or event id
