"""Building the bytes of one email: headers, multipart/alternative, optional DKIM.

Opens no connection. Written by hand rather than through `email.message` because it runs once
per subscriber and the stdlib costs milliseconds a message; the output is plain RFC 5322 with
CRLF lines, every header value refused if it holds a CR or LF (this Python predates the fix for
CVE-2024-6923, so the stdlib folder cannot be trusted with them). Parts go out 8bit (RFC 6152:
every server we meet offers 8BITMIME, and it costs nothing to encode); a part with a line over
998 octets is quoted-printable, and `Outgoing.seven_bit()` re-encodes (and signs again) the rare
message bound for a server without 8BITMIME.

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
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import Header
from functools import lru_cache, partial

import idna

from digest.errors import ConfigError, SendError

ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class Dkim:
    """A DKIM key: the signature covers From, Subject and both List-Unsubscribe headers."""

    selector: str
    domain: str
    private_key: bytes


MAX_LINE = 998  # octets in a line, CRLF excluded (RFC 5322 2.1.1); longer ones need QP


@dataclass(frozen=True)
class Outgoing:
    """What the transport needs: the envelope and the exact bytes (CRLF lines, not yet
    dot-stuffed)."""

    sender: str
    recipient: str
    data: bytes
    message_id: str
    smtputf8: bool = False  # a non-ASCII local part: needs a server offering SMTPUTF8
    eight_bit: bool = False  # a part is 8bit: MAIL FROM says BODY=8BITMIME
    crlf_only: bool = False  # built by build_message: no bare CR or LF, nothing to normalise
    rebuild_7bit: Callable[[], bytes] | None = field(default=None, repr=False, compare=False)

    def seven_bit(self) -> bytes:
        """The bytes for a server without 8BITMIME: every 8bit part quoted-printable, signed
        again when signed (built only when such a server is met)."""
        if not self.eight_bit or self.rebuild_7bit is None:
            return self.data
        return self.rebuild_7bit()


def check_header(name: str, value: str) -> str:
    """The value, if it holds no line break (a header injection).

    Raises:
        SendError: it holds a CR or LF.
    """
    if "\r" in value or "\n" in value:
        raise SendError(f"{name} header holds a line break (CR/LF), refused: {value[:60]!r}")
    return value


def ascii_domain(domain: str) -> str:
    """The domain as every server accepts it: IDNA (punycode) labels.

    Raises:
        SendError: the domain is not valid IDNA (that one delivery fails).
    """
    if domain.isascii():  # the common case costs nothing
        return domain
    try:
        # UTS 46 maps case and width first (M\u00dcnchen), as browsers and mail clients do
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as ex:
        raise SendError(f"{domain!r} is not a valid internationalised domain: {ex}") from ex


def wire_address(addr: str) -> str:
    """`local@domain` with the domain in IDNA; the local part is kept (UTF-8 if it must).

    Raises:
        SendError: no local part or domain, or a domain that is not valid IDNA.
    """
    local, _, domain = addr.rpartition("@")
    if not local or not domain:
        raise SendError(f"{addr!r} has no usable email address")
    return f"{local}@{ascii_domain(domain)}"


@lru_cache(maxsize=64)
def address_of(mailbox: str) -> str:
    """The bare address of `Name <addr>` (for the envelope), checked for line breaks, with
    an IDNA domain.

    Raises:
        SendError: a line break, or no usable address.
    """
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
    """A mailbox header value: the display name encoded (RFC 2047) and the domain in IDNA.

    Raises:
        SendError: a line break, or no usable address.
    """
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
    """A free-text header (Subject): as is when short ASCII, else RFC 2047 words folded with
    CRLF (the stdlib folds with LF).

    Raises:
        SendError: a line break in the value.
    """
    check_header(name, value)
    if value.isascii() and len(value) + len(name) < 76:
        return value
    return Header(value, "utf-8", maxlinelen=76, header_name=name).encode().replace("\n", "\r\n")


def message_id_for(subscriber_id: int, edition: str, sender: str, secret: str = "") -> str:
    """Stable for (subscriber, edition): a resend after a crash carries the same id, so
    receivers and people can recognise it. Its tag is an HMAC keyed by the app secret, so
    nobody can forge the id of someone else's delivery (a bounce may be matched by it)."""
    domain = address_of(sender).rsplit("@", 1)[1]
    mac = hmac.new(secret.encode(), f"digest.msgid:{subscriber_id}:{edition}".encode(), "sha256")
    # 80 bits of MAC, lowercase base32: survives MTAs that change the case of ids
    tag = base64.b32encode(mac.digest()[:10]).decode("ascii").lower()
    return f"<digest.{edition}.{subscriber_id}.{tag}@{domain}>"


def _encoding(raw: bytes, allow_8bit: bool) -> str:
    """The transfer encoding a part's (LF-lined) bytes need: 7bit, 8bit, or quoted-printable
    for a line over 998 octets, a NUL, or 8bit bytes bound for a server without 8BITMIME."""
    if b"\x00" in raw or _longest_line(raw) > MAX_LINE:
        return "quoted-printable"
    if raw.isascii():
        return "7bit"
    return "8bit" if allow_8bit else "quoted-printable"


def _longest_line(raw: bytes) -> int:
    """The longest LF-ended line's length, from the positions of the line feeds (an HTML part
    of 60 KB has a thousand lines: splitting it into bytes objects cost five times as much)."""
    if len(raw) <= MAX_LINE:
        return len(raw)
    import numpy as np  # already loaded in a daily run (matching); other paths pay once

    breaks = np.flatnonzero(np.frombuffer(raw, np.uint8) == 10)
    if not len(breaks):
        return len(raw)
    inner = int(np.diff(breaks).max()) - 1 if len(breaks) > 1 else 0
    return max(int(breaks[0]), inner, len(raw) - int(breaks[-1]) - 1)


def _lf_bytes(body: str) -> bytes:
    """A part's text as UTF-8 with LF lines: encoded once, for the message and, should a
    server lack 8BITMIME, its 7-bit rebuild (bytes also cross to the sending process as a
    copy, where text would be encoded and decoded again)."""
    raw = body.encode("utf-8")
    if "\r" in body:  # rendered parts have LF lines: normalise only what needs it
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return raw


def _part(content_type: str, raw: bytes, allow_8bit: bool = True) -> tuple[bytes, bool]:
    """A part's headers and body (UTF-8, LF lines) with CRLF lines; True when it went out
    8bit."""
    cte = _encoding(raw, allow_8bit)
    if cte == "quoted-printable":
        # istext: line breaks stay line breaks (LF here, CRLF below), not =0A
        raw = binascii.b2a_qp(raw, istext=True)
    head = (
        f"Content-Type: {content_type}; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    ).encode()
    return head + raw.replace(b"\n", b"\r\n"), cte == "8bit"


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
    if unsubscribe_url:  # one-click (RFC 8058) needs a link to POST to; a mailto has none
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
    envelope_sender: str | None = None,
    feedback_id: str = "",
) -> Outgoing:
    """One message: text alone, or multipart/alternative (text first, then html); with
    `unsubscribe_url`, the list headers of RFC 2369 and the one-click POST of RFC 8058.
    MAIL FROM is `envelope_sender` (a VERP address) when given, else the From address.

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
    if feedback_id:
        headers.append(("Feedback-ID", check_header("Feedback-ID", feedback_id)))
    # "=_" is invalid quoted-printable, and 96 random bits keep 8bit text from clashing
    rich = None if html is None else _lf_bytes(html)
    parts = (headers, _lf_bytes(text), rich, dkim, "=_digest_" + secrets.token_hex(12))
    data, eight_bit = _assemble(*parts, allow_8bit=True)
    envelope_to = address_of(to)
    return Outgoing(
        address_of(envelope_sender or sender), envelope_to, data, message_id,
        smtputf8=not envelope_to.isascii(), eight_bit=eight_bit, crlf_only=True,
        rebuild_7bit=partial(_seven_bit, *parts) if eight_bit else None,
    )  # fmt: skip


def _seven_bit(
    headers: list[tuple[str, str]],
    text: bytes,
    html: bytes | None,
    dkim: Dkim | None,
    boundary: str,
) -> bytes:
    """The message again with no 8bit part (a plain function: the message stays picklable)."""
    return _assemble(headers, text, html, dkim, boundary, allow_8bit=False)[0]


def _assemble(
    headers: list[tuple[str, str]],
    text: bytes,
    html: bytes | None,
    dkim: Dkim | None,
    boundary: str,
    allow_8bit: bool,
) -> tuple[bytes, bool]:
    """The message's bytes (signed when a key is given) from its parts' UTF-8, LF-lined
    bytes; True when a part is 8bit."""
    if html is None:
        content, eight_bit = _part("text/plain", text, allow_8bit)
    else:
        headers = [*headers, ("Content-Type", f'multipart/alternative; boundary="{boundary}"')]
        marker = f"--{boundary}\r\n".encode()
        plain, plain_8bit = _part("text/plain", text, allow_8bit)
        rich, rich_8bit = _part("text/html", html, allow_8bit)
        content = b"".join(
            (b"\r\nThis is a multi-part message in MIME format.\r\n\r\n", marker, plain,
             b"\r\n", marker, rich, f"\r\n--{boundary}--\r\n".encode())
        )  # fmt: skip
        eight_bit = plain_8bit or rich_8bit
    # a single part's own headers follow the message headers directly
    data = "".join(f"{k}: {v}\r\n" for k, v in headers).encode() + content
    if dkim is not None:
        data = _sign(data, dkim)
    return data, eight_bit


def _sign(data: bytes, key: Dkim) -> bytes:
    """The message with its DKIM-Signature header prepended.

    Raises:
        ConfigError: the key does not sign (ours to fix; the delivery stays pending).
    """
    import dkim as dkimpy  # type: ignore[import-untyped]  # only when a key is configured

    # explicit: dkimpy's default list omits List-Unsubscribe-Post (CONVENTIONS.md, Traps)
    signed = [b"from", b"to", b"subject", b"date", b"message-id", b"list-id"]
    signed += [b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type"]
    signed.append(b"feedback-id")
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
    """One DER element: tag, length (short form below 128, else long form), body."""
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + body


def _der_int(value: int) -> bytes:
    """A DER INTEGER; the extra byte keeps a high first bit from reading as negative."""
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


_RSA_ALGORITHM = _der(0x30, bytes.fromhex("06092a864886f70d010101") + b"\x05\x00")


def dkim_dns_record(key: Dkim) -> str:
    """The TXT record receivers look up to verify our signatures, derived from the private key
    (SubjectPublicKeyInfo, as `openssl rsa -pubout` writes it).

    Raises:
        ConfigError: the file is not a PEM RSA private key.
    """
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
    fail mid-run fails here, before anything is sent. Returns the DNS record to publish.

    Raises:
        ConfigError: the key does not load, sign, or verify against its own public half.
    """
    import dkim as dkimpy

    record = dkim_dns_record(key)
    probe = build_message(
        sender=f"probe@{key.domain}", to=f"probe@{key.domain}", subject="DKIM probe",
        text="probe\n", html=None, message_id=f"<probe@{key.domain}>",
        date=datetime(2026, 1, 1, tzinfo=UTC), dkim=key,
    )  # fmt: skip
    txt = record.split(" TXT ", 1)[1].strip('"').encode()
    # no DNS: the verifier is handed our own record, so this checks the key, not the zone
    if not dkimpy.verify(probe.data, dnsfunc=lambda name, timeout=5: txt):
        raise ConfigError(f"[mail] DKIM key for {key.domain}: a test signature does not verify")
    return record
