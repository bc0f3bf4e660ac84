"""Defensive reading of MIME parts for the bounce classifier: headers, text, report fields.

Everything here assumes hostile input (bad charsets, codecs that are not text encodings,
missing or mistyped parts) and returns empty values rather than raising; the classifier
turns "nothing found" into a reason. Never walks into a returned message (message/rfc822):
a report quoted inside a report is the sender's text, not a report to us.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email.utils
import re
from email.errors import MissingHeaderBodySeparatorDefect
from email.header import Header, decode_header, make_header
from email.message import Message
from email.parser import HeaderParser

MAX_TEXT = 256 * 1024  # characters of a text part searched for codes and addresses
MAX_PARTS = 64
MAX_DEPTH = 4
MAX_BLOCKS = 100  # per-recipient blocks read from one delivery-status part
MAX_HEADER = 16 * 1024  # characters of an address header parsed (getaddresses is slow)
RETURNED_TYPES = (
    "message/rfc822",
    "message/global",
    "text/rfc822-headers",
    "message/global-headers",
)
ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def one_line(value: str, limit: int = 300) -> str:
    """Whitespace collapsed and cut: a reply quoted from a hostile report fits one log line."""
    return " ".join(value.split())[:limit]


def header(msg: Message, name: str) -> str:
    """A header as one line of text: RFC 2047 decoded; raw 8-bit bytes read as UTF-8 (RFC
    6532), a byte that is not UTF-8 replaced, since compat32 would make every such byte "?"
    and a vacation subject in French or Spanish would go unrecognised."""
    raw = msg.get(name)
    if raw is None:
        return ""
    text = _eight_bit(msg, name) if isinstance(raw, Header) else str(raw)
    try:
        text = str(make_header(decode_header(text)))
    except Exception:  # raw 8-bit beside encoded-words, or a broken one: decode word by word
        text = ENCODED_WORD.sub(_decoded_word, text)
    return one_line(text.encode("utf-8", "replace").decode("utf-8"), 998)


def _eight_bit(msg: Message, name: str) -> str:
    """The first `name` header's raw bytes as text: compat32 keeps them surrogate-escaped."""
    value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), "")
    return str(value).encode("ascii", "surrogateescape").decode("utf-8", "replace")


def _decoded_word(match: re.Match[str]) -> str:
    """One RFC 2047 encoded-word decoded, or left as it is when it is broken."""
    try:
        return str(make_header(decode_header(match[0])))
    except Exception:
        return match[0]


def addresses(msg: Message, *names: str) -> list[str]:
    """Every address in the named headers (all occurrences), in order."""
    found: list[str] = []
    for name in names:
        for value in msg.get_all(name) or []:
            text = str(value)[:MAX_HEADER].encode("utf-8", "replace").decode("utf-8")
            found.extend(addr for _, addr in email.utils.getaddresses([text]) if "@" in addr)
    return found


def charset_of(part: Message) -> str:
    """The part's declared charset if Python knows it as a text encoding, else UTF-8."""
    name = part.get_content_charset() or "utf-8"
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return "utf-8"
    # "charset=rot13" or "base64" name codecs that are not text encodings: decoding would raise
    return info.name if getattr(info, "_is_text_encoding", True) else "utf-8"


def text_of(part: Message) -> str:
    """The decoded text of a leaf part, cut to MAX_TEXT; "" when it has none."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return ""
    if not isinstance(payload, bytes):
        return ""
    payload = payload[: MAX_TEXT * 4]  # at most 4 bytes a character: enough for MAX_TEXT
    try:
        text = payload.decode(charset_of(part), "replace")
    except (LookupError, UnicodeError, ValueError):
        text = payload.decode("utf-8", "replace")
    return text[:MAX_TEXT]


def children(msg: Message) -> list[Message]:
    """The direct sub-parts of a multipart, never more than MAX_PARTS."""
    if not msg.is_multipart():
        return []
    payload = msg.get_payload()
    if not isinstance(payload, list):
        return []
    return [part for part in payload[:MAX_PARTS] if isinstance(part, Message)]


def body_text(msg: Message) -> str:
    """The message's own plain text (text/plain parts, else text/html, not descending into
    attached messages): where a text bounce states its diagnostics."""
    plain: list[str] = []
    html: list[str] = []

    def visit(part: Message, depth: int) -> None:
        """Collect text leaves, bounded in depth and count (a bomb of nested parts stops)."""
        if depth > MAX_DEPTH or len(plain) + len(html) >= MAX_PARTS:
            return
        ctype = part.get_content_type()
        if part.get_content_maintype() == "multipart":
            for child in children(part):
                visit(child, depth + 1)
        elif ctype == "text/plain":
            plain.append(text_of(part))
        elif ctype == "text/html":
            html.append(text_of(part))

    visit(msg, 0)
    return "\n".join(plain or html)[:MAX_TEXT]


def parse_fields(text: str) -> list[dict[str, str]]:
    """`Name: value` blocks separated by blank lines (RFC 3464/5965 report bodies); keys
    lowercased, continuation lines unfolded, the first occurrence of a field kept."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
                if len(blocks) >= MAX_BLOCKS:
                    return blocks
            current, last = {}, ""
        elif line[:1] in (" ", "\t") and last:  # RFC 5322 folding: continues the last field
            current[last] = one_line(current[last] + " " + line)
        elif ":" in line:
            name, _, value = line.partition(":")
            last = name.strip().lower()
            # the first wins: a later duplicate cannot override what the MTA stated
            current.setdefault(last, one_line(value))
    if current:
        blocks.append(current)
    return blocks


def transfer_encoded(part: Message) -> bool:
    """Whether the part is base64 or quoted-printable (RFC 6533 allows it for the global
    report types), which the parser does not undo before splitting a message/* part."""
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    return cte in ("base64", "quoted-printable")


def message_part_text(part: Message) -> str:
    """The text of a message/* part the parser split into messages, put back together as
    it was sent and its Content-Transfer-Encoding undone; "" when it cannot be decoded."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return text_of(part)
    pieces: list[str] = []
    for sub in payload[:MAX_BLOCKS]:
        if not isinstance(sub, Message):
            continue
        head = "".join(f"{name}: {value}\n" for name, value in sub.raw_items())
        joined = any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in sub.defects)
        rest = sub.get_payload()
        body = rest if isinstance(rest, str) else ""
        pieces.append(head + ("" if joined or not head else "\n") + body)
    data = "\n".join(pieces).encode("ascii", "surrogateescape")[: MAX_TEXT * 8]
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    try:
        if cte == "base64":
            letters = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
            letters = letters[: len(letters) - (len(letters) % 4 == 1)]
            data = base64.b64decode(letters + b"=" * (-len(letters) % 4))
        elif cte == "quoted-printable":
            data = binascii.a2b_qp(data)
    except (binascii.Error, ValueError):
        return ""
    return data[: MAX_TEXT * 4].decode(charset_of(part), "replace")[:MAX_TEXT]


def report_fields(part: Message) -> list[dict[str, str]]:
    """The field blocks of a message/delivery-status, message/global-delivery-status or
    message/feedback-report part, however the stdlib parser split it."""
    payload = part.get_payload()
    if isinstance(payload, str):
        return parse_fields(text_of(part) or payload[:MAX_TEXT])
    if transfer_encoded(part):
        return parse_fields(message_part_text(part))[:MAX_BLOCKS]
    blocks: list[dict[str, str]] = []
    for sub in payload[:MAX_BLOCKS] if isinstance(payload, list) else []:
        if not isinstance(sub, Message):
            continue
        fields: dict[str, str] = {}
        for name, value in sub.items():
            text = str(value).encode("utf-8", "replace").decode("utf-8")
            fields.setdefault(name.strip().lower(), one_line(text))
        if fields:
            blocks.append(fields)
        rest = sub.get_payload()
        if isinstance(rest, str) and rest.strip():
            blocks.extend(parse_fields(rest[:MAX_TEXT]))
    return blocks[:MAX_BLOCKS]


def returned_headers(part: Message) -> Message | None:
    """The headers of the original message inside a report (message/rfc822 or
    text/rfc822-headers and their RFC 6532 `global` forms). The parser makes every message/*
    part a message, message/global-headers included; an encoded one is decoded first."""
    ctype = part.get_content_type()
    if ctype not in RETURNED_TYPES:
        return None
    payload = part.get_payload()
    if isinstance(payload, list) and transfer_encoded(part):
        return HeaderParser().parsestr(message_part_text(part), headersonly=True)
    if isinstance(payload, list):
        first = payload[0] if payload else None
        return first if isinstance(first, Message) else None
    if isinstance(payload, str):
        return HeaderParser().parsestr(text_of(part), headersonly=True)
    return None


def message_id(msg: Message | None) -> str | None:
    """`<id@host>` of a message, normalised to one pair of angle brackets."""
    if msg is None:
        return None
    value = header(msg, "Message-ID").strip().strip("<>").strip()
    return f"<{value}>" if value and " " not in value else None


def typed_address(value: str) -> str:
    """`rfc822; user@example.com` -> `user@example.com` (DSN and ARF address fields)."""
    _, _, address = value.rpartition(";")
    return address.strip().strip("<>").strip()
