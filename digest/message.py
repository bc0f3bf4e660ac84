"""Building the bytes of one email: headers, multipart/alternative, optional DKIM.

Opens no connection. Written by hand rather than through `email.message` because it runs once
per subscriber and the stdlib costs milliseconds a message; the output is plain RFC 5322 with
quoted-printable parts, and every header value is refused if it holds a CR or LF (this
Python predates the fix for CVE-2024-6923, so the stdlib folder cannot be trusted with them).

Internationalised addresses are delivered: the domain always travels as IDNA (punycode), in the
envelope and the headers; a local part that is not ASCII makes the message SMTPUTF8 (RFC 6531/6532:
the address stays UTF-8 in To and RCPT TO), which the transport needs the server to offer.
Address problems raise SendError (that one delivery's fault); a DKIM key that does not sign
raises ConfigError (ours: the delivery waits for the fix).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from functools import lru_cache

import idna

from digest.errors import ConfigError, SendError

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
    smtputf8: bool = False  # a non-ASCII local part: needs a server offering SMTPUTF8


def check_header(name: str, value: str) -> str:
    """The value, if it holds no line break (a header injection).

    Raises:
        SendError: it holds a CR or LF.
    """
    if "\r" in value or "\n" in value:
        raise SendError(f"{name} header holds a line break (CR/LF), refused: {value[:60]!r}")
    return value


def ascii_domain(domain: str) -> str:
    """The domain as every server accepts it: IDNA (punycode) labels."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as ex:
        raise SendError(f"{domain!r} is not a valid internationalised domain: {ex}") from ex


def wire_address(addr: str) -> str:
    """`local@domain` with the domain in IDNA; the local part is kept (UTF-8 if it must)."""
    local, _, domain = addr.rpartition("@")
    if not local or not domain:
        raise SendError(f"{addr!r} has no usable email address")
    return f"{local}@{ascii_domain(domain)}"


@lru_cache(maxsize=64)
def address_of(mailbox: str) -> str:
    """The bare address of `Name <addr>` (for the envelope), checked for line breaks, with
    an IDNA domain."""
    check_header("address", mailbox)
    _, addr = email.utils.parseaddr(mailbox)
    if not addr or "@" not in addr:
        raise SendError(f"{mailbox!r} has no usable email address")
    return wire_address(addr)


@lru_cache(maxsize=64)
def _formatted(name: str, mailbox: str) -> str:
    """Sender-side mailboxes repeat for every message: parse and encode them once."""
    return _mailbox(name, mailbox)


def _mailbox(name: str, mailbox: str) -> str:
    check_header(name, mailbox)
    display, addr = email.utils.parseaddr(mailbox)
    if not addr or "@" not in addr:
        raise SendError(f"{name}: {mailbox!r} has no usable email address")
    addr = wire_address(addr)
    if addr.isascii():
        return email.utils.formataddr((display, addr), charset="utf-8")
    # RFC 6532: an SMTPUTF8 message carries the address itself in UTF-8
    if not display:
        return addr
    if display.isascii():
        shown = f'"{email.utils.quote(display)}"'
    else:
        shown = Header(display, "utf-8").encode()
    return f"{shown} <{addr}>"


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


def _list_headers(
    list_id: str, unsubscribe_url: str | None, unsubscribe_mailto: str | None
) -> list[tuple[str, str]]:
    """List-Id, List-Unsubscribe (web link, then mailto) and List-Unsubscribe-Post."""
    headers = []
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
    return headers


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
    """One message: text alone, or multipart/alternative (text first, then html); with
    `unsubscribe_url`, the list headers of RFC 2369 and the one-click POST of RFC 8058.

    Raises:
        SendError: an address that cannot be mailed, or a header value with a line break.
        ConfigError: the DKIM key does not sign.
    """
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
    headers += _list_headers(list_id, unsubscribe_url, unsubscribe_mailto)
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
    envelope_to = address_of(to)
    return Outgoing(
        address_of(sender), envelope_to, data, message_id, smtputf8=not envelope_to.isascii()
    )


def _sign(data: bytes, key: Dkim) -> bytes:
    import dkim as dkimpy  # type: ignore[import-untyped]  # only when a key is configured

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
    except (dkimpy.DKIMException, ValueError, IndexError, TypeError) as ex:
        raise ConfigError(
            f"[mail] DKIM key for {key.selector}._domainkey.{key.domain} does not sign: "
            f"{type(ex).__name__}: {ex} (check dkim_key_file holds a PEM private key)"
        ) from ex
    return bytes(signature) + data


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


_RSA_ALGORITHM = _der(0x30, bytes.fromhex("06092a864886f70d010101") + b"\x05\x00")


def dkim_dns_record(key: Dkim) -> str:
    """The TXT record receivers look up to verify our signatures, derived from the private key
    (SubjectPublicKeyInfo, as `openssl rsa -pubout` writes it). ConfigError if it is no RSA key."""
    from dkim.crypto import parse_pem_private_key  # type: ignore[import-untyped]

    try:
        parsed = parse_pem_private_key(key.private_key)
        rsa = _der(0x30, _der_int(parsed["modulus"]) + _der_int(parsed["publicExponent"]))
    except Exception as ex:  # dkimpy raises several kinds for a file that is not a PEM RSA key
        raise ConfigError(
            f"[mail] DKIM key for {key.domain}: not a PEM RSA private key ({ex})"
        ) from ex
    public = base64.b64encode(_der(0x30, _RSA_ALGORITHM + _der(0x03, b"\x00" + rsa))).decode()
    return f'{key.selector}._domainkey.{key.domain} TXT "v=DKIM1; k=rsa; p={public}"'


def check_dkim(key: Dkim) -> str:
    """Sign a test message and verify it against the key's own public half: a key that would
    fail mid-run fails here, before anything is sent. Returns the DNS record to publish."""
    import dkim as dkimpy

    record = dkim_dns_record(key)
    probe = build_message(
        sender=f"probe@{key.domain}", to=f"probe@{key.domain}", subject="DKIM probe",
        text="probe\n", html=None, message_id=f"<probe@{key.domain}>",
        date=datetime(2026, 1, 1, tzinfo=UTC), dkim=key,
    )  # fmt: skip
    txt = record.split(" TXT ", 1)[1].strip('"').encode()
    if not dkimpy.verify(probe.data, dnsfunc=lambda name, timeout=5: txt):
        raise ConfigError(f"[mail] DKIM key for {key.domain}: a test signature does not verify")
    return record
