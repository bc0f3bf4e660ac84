"""Specification of digest/message.py: the bytes of one email, header by header and part by part.

Each test states a promise receivers, the transport or the bounce handler rely on; the messages
are parsed back with the stdlib's strict policy and DKIM is verified with dkimpy.
"""

from __future__ import annotations

import base64
import email
import email.policy
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.errors import ConfigError, SendError
from digest.message import Dkim, Outgoing, build_message, check_dkim, message_id_for
from tests.conftest import rsa_key_file

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
SENDER = "Paper Digest <digest@example.org>"
UNSUBSCRIBE = "https://digest.example.org/u/tok"


def build(**overrides: Any) -> Outgoing:
    """A message with every optional header set; each test overrides what it is about."""
    values: dict[str, Any] = {
        "sender": SENDER,
        "to": "Ada <ada@example.org>",
        "subject": "3 new papers",
        "text": "Hello\n",
        "html": "<p>Hello</p>",
        "message_id": "<digest.daily.7.abc@example.org>",
        "date": NOW,
        "list_id": "daily.digest.example.org",
        "unsubscribe_url": UNSUBSCRIBE,
        "unsubscribe_mailto": "unsubscribe+tok@example.org",
        "reply_to": "Help <help@example.org>",
        "feedback_id": "daily:2026-11-24:digest",
    }
    return build_message(**{**values, **overrides})


def parsed(out: Outgoing) -> EmailMessage:
    """The message as a receiver reads it (strict modern policy)."""
    msg = email.message_from_bytes(out.data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def content(part: EmailMessage | None) -> str:
    """A part's decoded text with LF lines (the stdlib keeps the wire's CRLF in 8bit parts)."""
    assert part is not None
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def head(out: Outgoing) -> bytes:
    return out.data.split(b"\r\n\r\n", 1)[0]


def test_every_header_a_receiver_needs_is_present_once_with_its_value() -> None:
    msg = parsed(build())
    names = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Id",
             "List-Unsubscribe", "List-Unsubscribe-Post", "Reply-To", "Feedback-ID")  # fmt: skip
    for name in names:
        assert len(msg.get_all(name) or []) == 1, name
    assert msg["From"] == SENDER
    assert msg["To"] == "Ada <ada@example.org>"
    assert msg["Subject"] == "3 new papers"
    assert msg["Message-ID"] == "<digest.daily.7.abc@example.org>"
    assert msg["MIME-Version"] == "1.0"
    assert msg["List-Id"] == "<daily.digest.example.org>"
    assert msg["Reply-To"] == "Help <help@example.org>"
    assert msg["Feedback-ID"] == "daily:2026-11-24:digest"


def test_the_date_header_is_the_given_instant_in_rfc_5322_form() -> None:
    paris = timezone(timedelta(hours=1))
    msg = parsed(build(date=datetime(2026, 11, 24, 9, 30, tzinfo=paris)))
    assert msg["Date"].datetime == datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    assert b"\r\nDate: Tue, 24 Nov 2026 09:30:00 +0100\r\n" in head(build(date=datetime(
        2026, 11, 24, 9, 30, tzinfo=paris)))  # fmt: skip


def test_list_unsubscribe_offers_the_link_first_then_the_mailto_and_one_click_post() -> None:
    msg = parsed(build())
    targets = str(msg["List-Unsubscribe"]).replace(" ", "")
    assert targets == f"<{UNSUBSCRIBE}>,<mailto:unsubscribe+tok@example.org?subject=unsubscribe>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_mailto_alone_gets_no_one_click_post_header() -> None:
    """RFC 8058's one-click needs an HTTPS link to POST to; a mailto has none."""
    msg = parsed(build(unsubscribe_url=None))
    assert str(msg["List-Unsubscribe"]) == (
        "<mailto:unsubscribe+tok@example.org?subject=unsubscribe>"
    )
    assert msg["List-Unsubscribe-Post"] is None


def test_optional_headers_are_absent_when_not_given() -> None:
    msg = parsed(build(list_id="", unsubscribe_url=None, unsubscribe_mailto=None,
                       reply_to=None, feedback_id=""))  # fmt: skip
    for name in ("List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Reply-To",
                 "Feedback-ID"):  # fmt: skip
        assert msg[name] is None, name


def test_a_non_ascii_subject_is_rfc_2047_and_an_ascii_one_travels_as_is() -> None:
    out = build(subject="Réseaux de diffusion — 5 articles")
    assert b"Subject: =?utf-8?" in head(out)
    assert head(out).isascii()
    assert parsed(out)["Subject"] == "Réseaux de diffusion — 5 articles"
    assert b"\r\nSubject: 3 new papers\r\n" in head(build())


def test_a_long_non_ascii_subject_folds_with_crlf_and_reads_back_whole() -> None:
    subject = "Réseaux de diffusion, modèles du monde et apprentissage " * 4
    out = build(subject=subject.strip())
    header = head(out).split(b"\r\nSubject: ")[1].split(b"\r\nDate:")[0]
    assert header.count(b"\r\n ") >= 2, "folded onto continuation lines"
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    assert b"\n" not in head(out).replace(b"\r\n", b"")
    assert parsed(out)["Subject"] == subject.strip()


def test_the_recipient_domain_travels_as_idna_in_to_and_the_envelope() -> None:
    out = build(to="Zoë <zoe@Bücher.example>")
    assert out.recipient == "zoe@xn--bcher-kva.example"
    assert not out.smtputf8, "an ASCII local part needs no SMTPUTF8"
    assert b"<zoe@xn--bcher-kva.example>" in head(out)
    assert parsed(out)["To"].addresses[0].display_name == "Zoë"


def test_a_non_ascii_local_part_makes_the_message_smtputf8() -> None:
    out = build(to="josé@example.org")
    assert out.smtputf8 and out.recipient == "josé@example.org"


def test_an_invalid_idna_domain_fails_that_message_only() -> None:
    with pytest.raises(SendError, match="internationalised domain"):
        build(to="a@-bad-.ex\u00e4mple")


def test_the_envelope_sender_defaults_to_the_from_address() -> None:
    assert build().sender == "digest@example.org"
    assert build(envelope_sender="bounces+7@example.org").sender == "bounces+7@example.org"


def test_message_id_is_deterministic_and_names_the_sender_domain() -> None:
    """A resend after a crash carries the same id, and a bounce is matched by it."""
    one = message_id_for(7, "2026-11-24", SENDER, "s" * 32)
    assert one.startswith("<digest.2026-11-24.7.") and one.endswith("@example.org>")
    tag = one[1:-1].split("@")[0].split(".")[-1]
    assert tag == tag.lower() and len(tag) == 16
    assert one != message_id_for(7, "2026-11-25", SENDER, "s" * 32), "edition is in the MAC"
    assert parsed(build(message_id=one))["Message-ID"] == one


@pytest.mark.parametrize("brk", ["\r\n", "\n", "\r"])
@pytest.mark.parametrize(
    "field",
    ["sender", "to", "subject", "message_id", "list_id", "unsubscribe_url",
     "unsubscribe_mailto", "reply_to", "feedback_id", "envelope_sender"],
)  # fmt: skip
def test_a_line_break_in_any_header_value_is_refused(field: str, brk: str) -> None:
    """This Python predates the CVE-2024-6923 fix: a CR or LF must never reach the headers."""
    bad = {
        "sender": f"Paper{brk}Bcc: evil@example.com <digest@example.org>",
        "to": f"ada@example.org{brk}Bcc: evil@example.com",
        "subject": f"Hi{brk}Bcc: evil@example.com",
        "message_id": f"<x@example.org>{brk}Bcc: evil@example.com",
        "list_id": f"list.example.org{brk}Bcc: evil@example.com",
        "unsubscribe_url": f"https://example.org/u{brk}Bcc: evil@example.com",
        "unsubscribe_mailto": f"u@example.org{brk}Bcc: evil@example.com",
        "reply_to": f"help@example.org{brk}Bcc: evil@example.com",
        "feedback_id": f"a:b{brk}Bcc: evil@example.com",
        "envelope_sender": f"bounces@example.org{brk}Bcc: evil@example.com",
    }
    with pytest.raises(SendError, match="line break"):
        build(**{field: bad[field]})


def test_with_html_the_message_is_multipart_alternative_text_first() -> None:
    msg = parsed(build(text="Plain ça\n", html="<p>Riche ça</p>"))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert [p.get_content_charset() for p in parts] == ["utf-8", "utf-8"]
    assert content(parts[0]) == "Plain ça\n"
    assert content(parts[1]) == "<p>Riche ça</p>"
    assert not msg.defects and not any(p.defects for p in parts)


def test_without_html_the_message_is_a_single_text_part() -> None:
    msg = parsed(build(html=None, text="Only text\n"))
    assert msg.get_content_type() == "text/plain"
    assert not msg.is_multipart()
    assert content(msg) == "Only text\n"


def test_the_multipart_boundary_differs_between_messages() -> None:
    """A fixed boundary could appear in a paper's text and cut the part short."""
    first = parsed(build()).get_boundary()
    assert first and first != parsed(build()).get_boundary()


def test_every_line_ends_crlf_even_when_the_body_used_lf_or_cr() -> None:
    """And the message says so (`crlf_only`): the SMTP wire then skips its own check."""
    out = build(text="one\ntwo\rthree\r\nfour\n", html="<p>a</p>\n<p>b</p>")
    assert out.crlf_only
    assert b"\n" not in out.data.replace(b"\r\n", b"")
    assert b"\r" not in out.data.replace(b"\r\n", b"")
    assert content(parsed(out).get_body(("plain",))) == "one\ntwo\nthree\nfour\n"


def _encodings(out: Outgoing) -> list[str]:
    return [str(p["Content-Transfer-Encoding"]) for p in parsed(out).iter_parts()]


def test_each_part_chooses_its_own_transfer_encoding() -> None:
    assert _encodings(build(text="ascii\n", html="<p>ascii</p>")) == ["7bit", "7bit"]
    out = build(text="ça\n", html="<p>ascii</p>")
    assert _encodings(out) == ["8bit", "7bit"] and out.eight_bit
    assert not build(text="a\n", html="<p>b</p>").eight_bit


def test_a_line_over_998_octets_makes_only_that_part_quoted_printable() -> None:
    long_line = "x" * 999
    out = build(text="short\n", html=f"<p>{long_line}</p>")
    assert _encodings(out) == ["7bit", "quoted-printable"]
    assert max(len(line) for line in out.data.split(b"\r\n")) <= 998
    assert content(parsed(out).get_body(("html",))) == f"<p>{long_line}</p>"
    exactly = parsed(build(text="x" * 998 + "\n", html=None))
    assert exactly["Content-Transfer-Encoding"] == "7bit", "998 octets is still a legal line"


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.sampled_from([0, 1, 80, 997, 998, 999, 1500]), min_size=1, max_size=6),
    st.booleans(),
)
def test_quoted_printable_exactly_when_some_line_is_over_998_octets(
    lengths: list[int], final_newline: bool
) -> None:
    """Wherever the long line is: first, between others, last, with or without its LF."""
    text = "\n".join("y" * n for n in lengths) + ("\n" if final_newline else "")
    expected = "quoted-printable" if max(lengths) > 998 else "7bit"
    assert _encodings(build(text="short\n", html=text or "x")) == ["7bit", expected]


def test_a_nul_byte_makes_the_part_quoted_printable_and_survives() -> None:
    out = build(text="before\x00after\n", html="<p>ok</p>")
    assert _encodings(out) == ["quoted-printable", "7bit"]
    assert b"\x00" not in out.data
    assert content(parsed(out).get_body(("plain",))) == "before\x00after\n"


def test_seven_bit_rebuild_has_no_8bit_byte_and_the_same_content() -> None:
    out = build(text="Zoë ça\n", html="<p>é</p>")
    seven = out.seven_bit()
    assert seven.isascii()
    again = email.message_from_bytes(seven, policy=email.policy.default)
    assert isinstance(again, EmailMessage)
    assert [content(p) for p in again.iter_parts()] == ["Zoë ça\n", "<p>é</p>"]
    assert again["Message-ID"] == parsed(out)["Message-ID"]
    ascii_only = build(text="a\n", html="<p>b</p>")
    assert ascii_only.seven_bit() == ascii_only.data


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """A private key and the TXT record of its public half (1024 bits: fast, enough to sign)."""
    path: Path = tmp_path_factory.mktemp("dkim") / "key.pem"
    public = rsa_key_file(path)
    return path.read_bytes(), b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def _signed_headers(out: Outgoing) -> set[str]:
    signature = head(out).decode().split("\r\n\r\n")[0]
    assert signature.startswith("DKIM-Signature:")
    sig = signature.split("\r\nFrom:")[0].replace("\r\n", "").replace(" ", "").replace("\t", "")
    h = next(tag for tag in sig.split(";") if tag.startswith("h="))
    return set(h[2:].lower().split(":"))


def test_dkim_signs_every_header_we_promise_including_list_unsubscribe_post(
    rsa_key: tuple[bytes, bytes],
) -> None:
    dkim = pytest.importorskip("dkim")
    private, record = rsa_key
    out = build(dkim=Dkim("sel", "example.org", private))
    assert {"from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
            "list-unsubscribe-post", "mime-version", "content-type",
            "feedback-id"} <= _signed_headers(out)  # fmt: skip
    assert dkim.verify(out.data, dnsfunc=lambda name, timeout=5: record)
    assert out.crlf_only and b"\n" not in out.data.replace(b"\r\n", b""), "signature too"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: x"),
        (b"Feedback-ID: daily:2026-11-24:digest", b"Feedback-ID: other"),
        (b"List-Id: <daily.digest.example.org>", b"List-Id: <other.example.org>"),
        (b"<p>Hello</p>", b"<p>Hellp</p>"),
    ],
)
def test_a_signed_message_changed_in_a_signed_header_or_body_fails_verification(
    rsa_key: tuple[bytes, bytes], old: bytes, new: bytes
) -> None:
    dkim = pytest.importorskip("dkim")
    private, record = rsa_key
    out = build(dkim=Dkim("sel", "example.org", private))
    assert old in out.data
    assert not dkim.verify(out.data.replace(old, new), dnsfunc=lambda name, timeout=5: record)


def test_the_seven_bit_rebuild_is_signed_again_and_verifies(
    rsa_key: tuple[bytes, bytes],
) -> None:
    dkim = pytest.importorskip("dkim")
    private, record = rsa_key
    out = build(text="Zoë\n", dkim=Dkim("sel", "example.org", private))
    seven = out.seven_bit()
    assert seven != out.data and seven.isascii()
    assert dkim.verify(seven, dnsfunc=lambda name, timeout=5: record)


def test_check_dkim_returns_the_record_for_a_good_key_and_refuses_a_bad_one(
    rsa_key: tuple[bytes, bytes],
) -> None:
    pytest.importorskip("dkim")
    private, record = rsa_key
    published = check_dkim(Dkim("sel", "example.org", private))
    assert published == f'sel._domainkey.example.org TXT "{record.decode()}"'
    with pytest.raises(ConfigError, match="not a PEM RSA private key"):
        check_dkim(Dkim("sel", "example.org", b"not a key"))
