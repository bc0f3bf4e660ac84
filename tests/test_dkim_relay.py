"""A DKIM-signed digest with 8bit parts, sent through a real private Postfix (tests/postfix.py)
to the recorder: the signature still verifies on what comes out, so sending 8bit bodies
(issue 13) costs no deliverability."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.config import SmtpConfig
from digest.message import Dkim, build_message
from digest.send import SmtpPool
from tests.conftest import rsa_key_file
from tests.postfix import running_postfix, wait_until
from tests.smtp_server import Recorder

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
TEXT = (
    "Bonjour Zoë,\n\n"
    ".a line that starts with a dot (dot-stuffed on the wire)\n"
    "Réseaux de diffusion — modèles du monde, 5 articles\n" + "é" * 600 + "\n"
)
HTML = "<html><body><p>Réseaux de diffusion — modèles du monde</p>\n<p>.point</p></body></html>"


def rsa_key(tmp_path: Path) -> tuple[bytes, bytes]:
    """A fresh private key and the TXT record publishing its public half."""
    key_path = tmp_path / "dkim.pem"
    public = rsa_key_file(key_path, 2048)
    return key_path.read_bytes(), b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_a_dkim_signed_8bit_digest_verifies_after_a_real_postfix_relays_it(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    dkim = pytest.importorskip("dkim")
    recorder, downstream = smtp
    private, record = rsa_key(tmp_path)
    sent = build_message(
        sender="Paper Digest <digest@example.org>", to="Zoë <zoe@example.com>",
        subject="5 nouveaux articles : diffusion", text=TEXT, html=HTML,
        message_id="<relay.1@example.org>", date=NOW, list_id="digest.example.org",
        unsubscribe_url="https://digest.example.org/u/TOKEN",
        dkim=Dkim("sel", "example.org", private),
    )  # fmt: skip
    assert sent.eight_bit

    with running_postfix(downstream) as postfix:
        config = SmtpConfig(host="127.0.0.1", port=postfix.port, security="none", timeout=10)

        async def go() -> str:
            async with SmtpPool(config) as pool:
                return (await pool.send(sent)).reply

        reply = asyncio.run(go())
        assert reply.startswith("2.0.0 Ok"), reply
        wait_until(lambda: bool(recorder.received), 30, "postfix to relay", lambda: postfix.log)

    (got,) = recorder.received
    assert "BODY=8BITMIME" in got.mail_options, "Postfix relayed it as 8bit, untouched"
    assert b"Received: " in got.data and got.data.endswith(sent.data)
    assert dkim.verify(got.data, dnsfunc=lambda name, timeout=5: record)
    msg = email.message_from_bytes(got.data, policy=email.policy.default)
    plain = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert plain == TEXT
    assert msg.get_body(("html",))["Content-Transfer-Encoding"] == "8bit"
