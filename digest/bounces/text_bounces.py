"""Best-effort reading of bounces that are not RFC 3464 reports: Postfix's plain
"Undelivered Mail Returned to Sender", qmail's "Hi. This is the qmail-send program",
Exchange/Outlook NDRs and other MAILER-DAEMON prose.

Prose is guesswork, so the rule is one-sided: a recipient is a hard bounce only when its own
paragraph carries an enhanced status code that means "this address does not exist" (5.1.x,
5.2.1) and nothing says the message is still being tried. Any other failure is soft; a
paragraph without a code is soft. Never a false hard bounce.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from digest.bounces.events import Kind, RecipientStatus, Source
from digest.bounces.parts import addresses, body_text, header, one_line

DEAD_ADDRESS = {"5.1.0", "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1"}
# x.y.z not inside a longer dotted number (an IP address or a version string is no code)
ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
BASIC = re.compile(r"\b([45][0-9][0-9])[ -]")
# Postfix's "<user@host>: host said: ..." paragraph, one per recipient
ANGLE_BLOCK = re.compile(
    r"^<([^<>\s@]+@[^<>\s@]+)>(?:\s*\(expanded from [^)]*\))?:[ \t]*\n?((?:.+\n?)*)", re.M
)
ADDRESS = re.compile(r"[A-Za-z0-9._%+=-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")
STILL_TRYING = re.compile(
    r"THIS IS A WARNING ONLY|will (?:keep|continue) (?:on )?trying|not yet been delivered|"
    r"delivery (?:has been )?delayed|will retry",
    re.I,
)
RETURNED_MARKERS = (
    "------ This is a copy of the message",
    "--- Below this line is a copy of the message",
    "Original message headers:",
    "------ Original message",
    "----- Original message -----",
    "Below is a copy of the original message",
)
BOUNCE_SUBJECTS = re.compile(
    r"^(?:Undelivered Mail Returned to Sender|Undeliverable|Undelivered|Mail delivery failed|"
    r"Delivery Status Notification|failure notice|Returned mail|Delivery failure|"
    r"Mail System Error|Non[- ]?delivery)",
    re.I,
)
MESSAGE_ID = re.compile(r"^Message-ID:[ \t]*(<[^<>\s]{1,250}>)", re.I | re.M)
DAEMONS = ("mailer-daemon@", "postmaster@", "mail-daemon@")


def flavour(msg: Message, text: str) -> Source | None:
    """Which kind of prose bounce this is, or None when it does not look like one."""
    subject = header(msg, "Subject")
    sender = " ".join(addresses(msg, "From")).lower() + " " + header(msg, "From").lower()
    if "This is the qmail-send program" in text:
        return Source.QMAIL
    if "This is the mail system at host" in text or subject.startswith(
        "Undelivered Mail Returned to Sender"
    ):
        return Source.POSTFIX_TEXT
    if (
        "Delivery has failed to these recipients" in text
        or ("Your message to " in text and "couldn't be delivered" in text)
        or subject.lower().startswith("undeliverable:")
    ):
        return Source.EXCHANGE
    if BOUNCE_SUBJECTS.match(subject) and (
        any(daemon in sender for daemon in DAEMONS) or "mailer-daemon" in sender
    ):
        return Source.TEXT_BOUNCE
    return None


def split_returned(text: str) -> tuple[str, str]:
    """The bounce's own prose, and the returned copy of our message after it (which holds our
    recipient's address and could hold any code at all, so codes are never read there)."""
    cut = len(text)
    for marker in RETURNED_MARKERS:
        at = text.find(marker)
        if at != -1:
            cut = min(cut, at)
    return text[:cut], text[cut:]


def severity(paragraph: str, whole: str) -> tuple[Kind, str]:
    """How bad one recipient's failure is, and the code that says so: hard only for a code
    naming a dead address, delayed when the message says it is still being tried."""
    codes = [".".join(m.groups()) for m in ENHANCED.finditer(paragraph)]
    # checked on the whole text: the warning is usually stated once, above the paragraphs
    if STILL_TRYING.search(whole):
        return Kind.DELAYED, codes[0] if codes else ""
    for code in codes:
        if code in DEAD_ADDRESS:
            return Kind.HARD_BOUNCE, code
    if codes:
        return Kind.SOFT_BOUNCE, codes[0]
    basic = BASIC.search(paragraph)
    return Kind.SOFT_BOUNCE, basic[1] if basic else ""


@dataclass(frozen=True, slots=True)
class TextBounce:
    """What a prose bounce says: which MTA wrote it, each recipient's fate, and our Message-ID
    when the returned copy carries it."""

    source: Source
    recipients: tuple[RecipientStatus, ...]
    message_id: str | None  # found in the returned copy, when there is one


def read_text_bounce(msg: Message, ignore: set[str]) -> TextBounce | None:
    """What a prose bounce says, or None if it is not one.
    `ignore` holds addresses that are ours (the bounce address) and never a recipient."""
    text = body_text(msg)
    found = flavour(msg, text)
    if found is None:
        return None
    head, returned = split_returned(text)
    recipients: list[RecipientStatus] = []
    for match in ANGLE_BLOCK.finditer(head):
        address, paragraph = match[1], match[2]
        if address.lower() in ignore:
            continue
        kind, code = severity(paragraph, head)
        recipients.append(RecipientStatus(address, kind, "failed", code, one_line(paragraph)))
    if not recipients:
        candidates = {
            a for a in ADDRESS.findall(head) if a.lower() not in ignore and not is_daemon(a)
        }
        if len(candidates) == 1:  # two addresses in prose: we cannot tell which one failed
            kind, code = severity(head, head)
            diagnostic = one_line(head[-600:])
            recipients.append(RecipientStatus(candidates.pop(), kind, "failed", code, diagnostic))
    original = MESSAGE_ID.search(returned)
    return TextBounce(found, tuple(recipients[:50]), original[1] if original else None)


def is_daemon(address: str) -> bool:
    """Whether the address is a bounce robot's: it is the sender, never the recipient."""
    return address.lower().startswith(tuple(d.rstrip("@") + "@" for d in DAEMONS))
