"""Building the bytes of one email: headers, multipart/alternative, optional DKIM.

Opens no connection. Written by hand rather than through `email.message` because it runs once
per subscriber and the stdlib costs milliseconds a message; the output is plain RFC 5322 with
quoted-printable parts, and every header value is refused if it holds a CR or LF (this
Python predates the fix for CVE-2024-6923, so the stdlib folder cannot be trusted with them).
"""

from __future__ import annotations

import binascii
import email.utils
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from functools import lru_cache

from digest.errors import SendError

ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class Dkim:
    """A DKIM key: the signature covers From, Subject and both List-Unsubscribe headers."""

    selector: str
    domain: str
    private_key: bytes


@dataclass(frozen=True)
class Outgoing:
    """What the transport needs: the envelope and the exact bytes."""

    sender: str
    recipient: str
    data: bytes
    message_id: str


def check_header(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise SendError(f"{name} header holds a line break (CR/LF), refused: {value[:60]!r}")
    return value


@lru_cache(maxsize=64)
def address_of(mailbox: str) -> str:
    """The bare address of `Name <addr>` (for the envelope), checked for line breaks."""
    check_header("address", mailbox)
    _, addr = email.utils.parseaddr(mailbox)
    if not addr or "@" not in addr:
        raise SendError(f"{mailbox!r} has no usable email address")
    return addr


@lru_cache(maxsize=64)
def _formatted(name: str, mailbox: str) -> str:
    """Sender-side mailboxes repeat for every message: parse and encode them once."""
    return _mailbox(name, mailbox)


def _mailbox(name: str, mailbox: str) -> str:
    check_header(name, mailbox)
    display, addr = email.utils.parseaddr(mailbox)
    if not addr or "@" not in addr:
        raise SendError(f"{name}: {mailbox!r} has no usable email address")
    return email.utils.formataddr((display, addr), charset="utf-8")


def _encoded(name: str, value: str) -> str:
    check_header(name, value)
    if value.isascii() and len(value) + len(name) < 76:
        return value
    return Header(value, "utf-8", maxlinelen=76, header_name=name).encode().replace("\n", "\r\n")


def message_id_for(subscriber_id: int, edition: str, sender: str) -> str:
    """Stable for (subscriber, edition): a resend after a crash carries the same id, so
    receivers and people can recognise it."""
    domain = address_of(sender).rsplit("@", 1)[1]
    tag = hashlib.sha256(f"{subscriber_id}/{edition}".encode()).hexdigest()[:12]
    return f"<digest.{edition}.{subscriber_id}.{tag}@{domain}>"


def _part(content_type: str, body: str) -> bytes:
    encoded = binascii.b2a_qp(body.encode("utf-8"), istext=True)
    encoded = encoded.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return (
        f"Content-Type: {content_type}; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode() + encoded


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    message_id: str,
    date: datetime,
    list_id: str = "",
    unsubscribe_url: str | None = None,
    unsubscribe_mailto: str | None = None,
    reply_to: str | None = None,
    dkim: Dkim | None = None,
) -> Outgoing:
    """One message: text alone, or multipart/alternative (text first, then html)."""
    headers = [
        ("From", _formatted("From", sender)),
        ("To", _mailbox("To", to)),
        ("Subject", _encoded("Subject", subject)),
        ("Date", email.utils.format_datetime(date)),
        ("Message-ID", check_header("Message-ID", message_id)),
        ("MIME-Version", "1.0"),
    ]
    if reply_to:
        headers.append(("Reply-To", _formatted("Reply-To", reply_to)))
    if list_id:
        headers.append(("List-Id", f"<{check_header('List-Id', list_id)}>"))
    targets = []
    if unsubscribe_url:
        targets.append(f"<{check_header('List-Unsubscribe', unsubscribe_url)}>")
    if unsubscribe_mailto:
        check_header("List-Unsubscribe", unsubscribe_mailto)
        targets.append(f"<mailto:{unsubscribe_mailto}?subject=unsubscribe>")
    if targets:
        headers.append(("List-Unsubscribe", ",\r\n ".join(targets)))
    if unsubscribe_url:
        headers.append(("List-Unsubscribe-Post", ONE_CLICK))
    if html is None:
        content = _part("text/plain", text)
    else:
        boundary = "=_digest_" + secrets.token_hex(12)
        headers.append(("Content-Type", f'multipart/alternative; boundary="{boundary}"'))
        marker = f"--{boundary}\r\n".encode()
        content = (
            b"\r\nThis is a multi-part message in MIME format.\r\n\r\n"
            + marker
            + _part("text/plain", text)
            + b"\r\n"
            + marker
            + _part("text/html", html)
            + f"\r\n--{boundary}--\r\n".encode()
        )
    # a single part's own headers follow the message headers directly
    head = "".join(f"{k}: {v}\r\n" for k, v in headers).encode()
    data = head + content
    if dkim is not None:
        data = _sign(data, dkim)
    return Outgoing(address_of(sender), address_of(to), data, message_id)


def _sign(data: bytes, key: Dkim) -> bytes:
    import dkim as dkimpy  # optional: only when a key is configured

    signed = [b"from", b"to", b"subject", b"date", b"message-id", b"list-id"]
    signed += [b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type"]
    try:
        signature = dkimpy.sign(
            data,
            key.selector.encode(),
            key.domain.encode(),
            key.private_key,
            include_headers=signed,
        )
    except dkimpy.DKIMException as ex:
        raise SendError(f"DKIM signing for {key.domain} failed: {ex}") from ex
    return bytes(signature) + data
