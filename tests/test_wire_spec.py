"""The SMTP wire's specification (digest.send.wire and digest.send.smtp): what each reply at
each stage of a transaction means for the delivery, with PIPELINING offered and not; what goes
on the wire (envelope options, the body as built and dot-stuffed once); when a connection is
kept, reset or dropped; replies that are malformed, too long, split or never come.

Against a scripted SMTP server on 127.0.0.1 (asyncio streams: it answers each command with the
reply the test scripts and records every byte it was sent) or the aiosmtpd recorder of
tests/smtp_server.py. Results are read from `SmtpPool.send`, what the delivery state machine
acts on (test_deliver_spec.py)."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.config import SmtpConfig
from digest.errors import SendError
from digest.message import Outgoing, build_message
from digest.send import MAX_REPLY, Result, SmtpPool, dot_stuffed, smtp_hello
from tests.smtp_server import Recorder, free_port, start

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
SENDER = "Paper Digest <digest@example.org>"
T = TypeVar("T")


class Script:
    """A scripted SMTP server: `replies[VERB]` are answered in turn (then 250, or 354 for
    DATA; "END" is the reply to the end of the body). A scripted "close" hangs up without a
    reply, "silent" never answers; bytes (not str) are written as they are."""

    def __init__(self, extensions: tuple[str, ...] = ("PIPELINING", "8BITMIME", "SIZE 1000000"),
                 greeting: str = "220 script ESMTP") -> None:  # fmt: skip
        self.extensions = extensions
        self.greeting = greeting
        self.replies: dict[str, deque[str | bytes]] = defaultdict(deque)
        self.commands: list[bytes] = []
        self.bodies: list[bytes] = []
        self.connections = 0
        self.port = 0
        self.trickle = False  # write each reply a byte at a time
        self.split_at = 0  # write each reply in two writes, cut here
        self.tasks: set[asyncio.Task[Any]] = set()

    def script(self, verb: str, *replies: str | bytes) -> Script:
        self.replies[verb].extend(replies)
        return self

    async def _say(self, writer: asyncio.StreamWriter, reply: str | bytes) -> None:
        data = reply if isinstance(reply, bytes) else reply.encode() + b"\r\n"
        chunks = [data[: self.split_at], data[self.split_at :]] if self.split_at else [data]
        for chunk in [data[i : i + 1] for i in range(len(data))] if self.trickle else chunks:
            writer.write(chunk)
            await writer.drain()

    async def _answer(self, writer: asyncio.StreamWriter, verb: str, default: str) -> str:
        """Send the scripted reply and return it; "" when it ends the conversation."""
        queue = self.replies[verb]
        reply = queue.popleft() if queue else default
        if reply == "close":
            writer.close()
            return ""
        if reply in ("silent", "354 then deaf"):
            if reply != "silent":
                await self._say(writer, "354 go ahead")
            await asyncio.sleep(30)
            return ""
        await self._say(writer, reply)
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
        return "" if text.startswith("421") else text or "?"

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            await self._say(writer, self.greeting)
            if self.greeting.startswith("220"):
                await self._converse(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up: that is what some tests check
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            self.commands.append(line)
            verb = line[:4].decode(errors="replace").upper()
            if verb in ("EHLO", "HELO"):
                lines = ["script", *self.extensions]
                text = "".join(f"250-{x}\r\n" for x in lines[:-1]) + f"250 {lines[-1]}\r\n"
                await self._say(writer, text.encode())
            elif verb == "QUIT":
                await self._say(writer, "221 bye")
                return
            elif verb == "DATA":
                said = await self._answer(writer, "DATA", "354 go ahead")
                if not said:
                    return
                if not said.startswith("354"):
                    continue
                body = b""
                while (chunk := await reader.readline()) != b".\r\n":
                    if not chunk:
                        return  # hung up on before the end of the body
                    body += chunk
                self.bodies.append(body)
                if not await self._answer(writer, "END", "250 2.0.0 Ok: queued as ABC"):
                    return
            elif not await self._answer(writer, verb, "250 ok"):
                return

    def sent(self, verb: bytes) -> list[bytes]:
        return [c for c in self.commands if c.upper().startswith(verb)]


def config(port: int, **kw: Any) -> SmtpConfig:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "security": "none",
                              "concurrency": 1, "timeout": 1.0}  # fmt: skip
    values.update(kw)
    return SmtpConfig(**values)


def message(to: str = "ada@example.org", text: str = "Hello\n", **kw: Any) -> Outgoing:
    return build_message(sender=SENDER, to=to, subject="Papers", text=text, html=None,
                         message_id="<m@example.org>", date=NOW, **kw)  # fmt: skip


def against(server: Script, go: Callable[[SmtpPool], Awaitable[T]], **kw: Any) -> T:
    """Run `go` with a pool connected to the scripted server, both on one event loop."""

    async def main() -> T:
        listening = await asyncio.start_server(server.session, "127.0.0.1", 0)
        server.port = listening.sockets[0].getsockname()[1]
        try:
            async with SmtpPool(config(server.port, **kw)) as pool:
                return await go(pool)
        finally:
            listening.close()
            for task in server.tasks:
                task.cancel()
            await asyncio.gather(*server.tasks, return_exceptions=True)

    return asyncio.run(main())


def refuse(server: Script, stage: str, reply: str) -> Script:
    """Script a refusal at `stage`, and what a real server then answers to the commands a
    pipelining client has already sent (503: bad sequence)."""
    server.script(stage, reply)
    if "PIPELINING" in server.extensions and stage in ("MAIL", "RCPT"):
        if stage == "MAIL":
            server.script("RCPT", "503 5.5.1 need MAIL first")
        server.script("DATA", "503 5.5.1 no valid recipients")
    return server


def send(server: Script, *messages: Outgoing, **kw: Any) -> list[Result]:
    async def go(pool: SmtpPool) -> list[Result]:
        return [await pool.send(m) for m in messages]

    return against(server, go, **kw)


PIPELINING = pytest.mark.parametrize(
    "extensions",
    [("PIPELINING", "8BITMIME", "SIZE 1000000"), ("8BITMIME", "SIZE 1000000")],
    ids=["pipelining", "one-at-a-time"],
)

# stage, reply -> permanent, about the recipient (counts toward bounces / give_up_after)
STAGES = [
    ("MAIL", "451 4.3.0 try later", False, False),
    ("MAIL", "553 5.7.1 sender rejected", False, False),
    ("RCPT", "450 4.2.1 mailbox busy", False, True),
    ("RCPT", "550 5.1.1 no such user", True, True),
    ("RCPT", "551 5.1.6 user moved", True, True),
    ("DATA", "451 4.3.0 queue full", False, True),
    ("DATA", "554 5.5.1 no valid recipients", True, True),
    ("END", "452 4.3.1 insufficient storage", False, True),
    ("END", "554 5.7.1 rejected as spam", True, True),
]


@PIPELINING
@pytest.mark.parametrize(("stage", "reply", "permanent", "recipient"), STAGES)
def test_each_reply_class_at_each_stage_decides_what_the_delivery_becomes(
    extensions: tuple[str, ...], stage: str, reply: str, permanent: bool, recipient: bool
) -> None:
    server = refuse(Script(extensions), stage, reply)
    (result,) = send(server, message())
    assert not result.ok and not result.ambiguous and not result.later
    assert (result.permanent, result.recipient) == (permanent, recipient)
    assert result.reply.startswith(reply)
    assert result.reply.endswith("(server side: check the SMTP settings)") == (stage == "MAIL")
    assert server.bodies == ([message().data] if stage == "END" else [])


@PIPELINING
@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA", "END"])
def test_after_a_refusal_the_connection_is_reset_and_reused(
    extensions: tuple[str, ...], stage: str
) -> None:
    server = refuse(Script(extensions), stage, "550 5.0.0 no")
    first, second = send(server, message(), message("bob@example.org"))
    assert not first.ok and second.ok
    assert server.connections == 1 and len(server.sent(b"RSET")) == 1
    assert len(server.bodies) == 1 + (stage == "END")


@PIPELINING
@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "END"])
def test_a_421_drops_the_connection_and_the_next_message_reconnects(
    extensions: tuple[str, ...], stage: str
) -> None:
    server = Script(extensions).script(stage, "421 4.3.2 shutting down")
    first, second = send(server, message(), message("bob@example.org"))
    assert not first.ok and not first.permanent and first.reply.startswith("421")
    assert second.ok and server.connections == 2 and server.sent(b"RSET") == []


@PIPELINING
@pytest.mark.parametrize("stage", ["RCPT", "DATA", "END"])
def test_a_421_is_the_servers_state_never_a_verdict_on_the_address(
    extensions: tuple[str, ...], stage: str
) -> None:
    server = Script(extensions).script(stage, "421 4.7.0 too many connections")
    (result,) = send(server, message())
    assert not result.ok and not result.recipient and not result.permanent
    assert not result.ambiguous and result.reply.startswith("421")


def test_one_command_at_a_time_a_refused_sender_stops_the_transaction() -> None:
    server = Script(("8BITMIME",)).script("MAIL", "553 5.7.1 not yours")
    send(server, message())
    assert server.sent(b"RCPT") == [] and server.sent(b"DATA") == []


def test_one_command_at_a_time_a_refused_recipient_sends_no_data() -> None:
    server = Script(("8BITMIME",)).script("RCPT", "550 5.1.1 unknown")
    send(server, message())
    assert len(server.sent(b"RCPT")) == 1 and server.sent(b"DATA") == []


def test_pipelined_a_refused_recipient_sends_no_body_though_data_went() -> None:
    server = Script().script("RCPT", "550 5.1.1 unknown").script("DATA", "503 5.5.1 no rcpt")
    (result,) = send(server, message())
    assert result.permanent and result.reply.startswith("550")
    assert len(server.sent(b"DATA")) == 1 and server.bodies == []


def test_a_server_that_says_354_to_a_refused_envelope_is_hung_up_on_unsent() -> None:
    """It waits for a body that must not go: the only clean way out is to drop the line."""
    server = Script().script("RCPT", "550 5.1.1 unknown")
    first, second = send(server, message(), message("bob@example.org"))
    assert first.permanent and first.reply.startswith("550")
    assert second.ok and server.connections == 2
    assert server.bodies == [message("bob@example.org").data], "only the second one's body"


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        ("250-2.0.0 Ok\r\n250 queued as ABC", "2.0.0 Ok\nqueued as ABC"),
        ("250 2.0.0 queued", "2.0.0 queued"),
        ("250", "250 OK"),
        ("250 ", "250 OK"),
    ],
)
def test_the_final_reply_is_recorded_with_multiline_replies_joined(reply: str, text: str) -> None:
    (result,) = send(Script().script("END", reply), message())
    assert result.ok and result.reply == text


def test_replies_trickling_in_a_byte_at_a_time_are_read_whole() -> None:
    server = Script()
    server.trickle = True
    results = send(server, message(), message("bob@example.org"))
    assert [r.ok for r in results] == [True, True] and server.connections == 1


@pytest.mark.parametrize(
    "reply",
    [b"hello there\r\n", b"2x0 ok\r\n", b"250 " + b"x" * (MAX_REPLY + 10)],
    ids=["no-code", "bad-code", "endless-line"],
)
def test_a_malformed_or_endless_reply_fails_the_message_and_drops_the_connection(
    reply: bytes,
) -> None:
    server = Script(("8BITMIME",)).script("MAIL", reply)
    first, second = send(server, message(), message("bob@example.org"))
    assert not first.ok and not first.permanent and not first.recipient
    assert not first.ambiguous
    assert second.ok and server.connections == 2


def test_a_whole_reply_over_max_reply_is_refused() -> None:
    huge = b"250-" + b"x" * (MAX_REPLY + 10) + b"\r\n250 ok\r\n"
    server = Script(("8BITMIME",)).script("MAIL", huge)
    server.split_at = 60_000  # two reads, each under the cap: no read over it alone
    first, _ = send(server, message(), message("bob@example.org"))
    assert not first.ok and server.connections == 2


@pytest.mark.parametrize(("script", "says"), [("silent", "timed out"), ("close", "connection")])
def test_no_reply_before_the_end_of_data_is_transient_and_no_possible_duplicate(
    script: str, says: str
) -> None:
    (result,) = send(Script().script("RCPT", script), message(), timeout=0.5)
    assert not result.ok and not result.permanent and not result.recipient
    assert not result.ambiguous and says in result.reply.lower()


@pytest.mark.parametrize(("script", "says"), [("silent", "timed out"), ("close", "connection")])
def test_no_reply_to_the_end_of_data_may_mean_accepted(script: str, says: str) -> None:
    (result,) = send(Script().script("END", script), message(), timeout=0.5)
    assert result.ambiguous and not result.permanent
    assert result.reply.endswith("after the end of DATA (maybe accepted)")
    assert says in result.reply.lower()


def test_a_server_that_stops_reading_the_body_times_the_write_out_and_is_dropped() -> None:
    """Past the kernel's buffers, writing waits for the server to read, up to the timeout."""
    line = b"x" * 70 + b"\r\n"
    big = Outgoing("digest@example.org", "ada@example.org", line * 250_000, "<big@x>")
    server = Script().script("DATA", "354 then deaf")
    first, second = send(server, big, message("bob@example.org"), timeout=0.5)
    assert not first.ok and not first.permanent and not first.recipient
    assert "Timed out sending to the server" in first.reply
    assert second.ok and server.connections == 2


@pytest.mark.parametrize("greeting", ["554 5.7.1 go away", "421 4.3.2 busy"])
def test_a_refused_greeting_is_our_sides_problem_never_the_recipients(greeting: str) -> None:
    (result,) = send(Script(greeting=greeting), message())
    assert not result.ok and not result.permanent and not result.recipient


def test_nobody_listening_is_a_transient_connection_problem() -> None:
    async def go() -> Result:
        async with SmtpPool(config(free_port())) as pool:
            return await pool.send(message())

    result = asyncio.run(go())
    assert not result.ok and not result.permanent and not result.recipient
    assert result.reply.startswith("connection problem")


# ---------------------------------------------------------------- what goes on the wire


def mail_options(server: Script) -> list[str]:
    (line,) = server.sent(b"MAIL")
    return line.decode().split()[2:]


@pytest.mark.parametrize(
    ("extensions", "text", "expected"),
    [
        (("8BITMIME", "SIZE 10000"), "ça va\n", ["BODY=8BITMIME", "SIZE=8bit"]),
        (("SIZE 10000",), "ça va\n", ["SIZE=7bit"]),
        (("8BITMIME",), "ça va\n", ["BODY=8BITMIME"]),
        (("8BITMIME", "SIZE 10000"), "plain ascii\n", ["SIZE=8bit"]),
        ((), "plain ascii\n", []),
    ],
    ids=["8bit-size", "no-8bitmime", "no-size", "7bit-message", "nothing-offered"],
)
def test_mail_from_offers_body_and_size_only_as_the_server_and_message_call_for(
    extensions: tuple[str, ...], text: str, expected: list[str]
) -> None:
    built = message(text=text)
    server = Script(extensions)
    (result,) = send(server, built)
    sent = built.data if "BODY=8BITMIME" in expected or not built.eight_bit else built.seven_bit()
    sizes = {"SIZE=8bit": f"SIZE={len(built.data)}", "SIZE=7bit": f"SIZE={len(sent)}"}
    assert result.ok and mail_options(server) == [sizes.get(o, o) for o in expected]
    assert server.bodies[0] + b".\r\n" == dot_stuffed(sent)
    assert server.bodies[0].isascii() or "BODY=8BITMIME" in expected


def test_a_control_character_in_the_envelope_is_our_bug_refused_before_a_byte_is_sent() -> None:
    good = message()
    forged = Outgoing("digest@example.org", "ada@example.org\x00x", good.data, good.message_id)

    async def go(pool: SmtpPool) -> Result:
        with pytest.raises(ValueError, match="control character"):
            await pool.send(forged)
        return await pool.send(good)

    server = Script()
    assert against(server, go).ok
    assert len(server.sent(b"MAIL")) == 1 and server.connections == 1


def test_concurrent_messages_share_at_most_concurrency_connections() -> None:
    recorder = Recorder()
    controller = start(recorder)

    async def go() -> list[Result]:
        async with SmtpPool(config(controller.port, concurrency=3)) as pool:
            return await asyncio.gather(
                *(pool.send(message(f"p{n}@example.org")) for n in range(12))
            )

    try:
        results = asyncio.run(go())
    finally:
        controller.stop()
    assert all(r.ok for r in results) and len(recorder.received) == 12
    assert recorder.connections == 1 + 3, "the controller's start-up probe, then three"


def test_the_doctor_check_says_ehlo_and_names_an_unreachable_server() -> None:
    recorder = Recorder()
    controller = start(recorder)
    try:
        hello = asyncio.run(smtp_hello(config(controller.port)))
    finally:
        controller.stop()
    assert hello.startswith("250 ")
    port = free_port()
    with pytest.raises(SendError, match=rf"^127\.0\.0\.1:{port}: "):
        asyncio.run(smtp_hello(config(port)))


# ---------------------------------------------------------------- dot-stuffing


def unstuff(data: bytes) -> bytes:
    """What a receiving server stores: the end line cut, one leading dot of each line
    removed (RFC 5321 4.5.2)."""
    assert data.endswith(b".\r\n")
    body = data[:-3]
    lines = body.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


LINES = st.lists(
    st.sampled_from([b"", b".", b"..", b".x", b"x.", b"a b", b"\xc3\xa9", b". ", b"\r", b"\n"]),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(LINES, st.sampled_from([b"\r\n", b"\n", b"\r"]), st.booleans())
def test_dot_stuffing_round_trips_any_body_with_its_line_endings_made_crlf(
    parts: list[bytes], eol: bytes, final_eol: bool
) -> None:
    data = eol.join(parts) + (eol if final_eol else b"")
    stuffed = dot_stuffed(data)
    crlf = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    assert unstuff(stuffed) == (crlf if crlf.endswith(b"\r\n") or not crlf else crlf + b"\r\n")
    lines = stuffed.split(b"\r\n")
    assert lines[-2:] == [b".", b""] and b"." not in lines[:-2]
    assert b"\r" not in stuffed.replace(b"\r\n", b"") and b"\n" not in stuffed.replace(b"\r\n", b"")


@settings(max_examples=150, deadline=None)
@given(LINES, st.booleans())
def test_dot_stuffing_a_message_known_crlf_only_gives_the_same_bytes(
    parts: list[bytes], final_eol: bool
) -> None:
    data = b"\r\n".join(p.replace(b"\r", b"").replace(b"\n", b"") for p in parts)
    data += b"\r\n" if final_eol else b""
    assert dot_stuffed(data, crlf_only=True) == dot_stuffed(data)


@pytest.mark.parametrize(
    ("data", "stuffed"),
    [
        (b"", b".\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b"\r\n.\r\n", b"\r\n..\r\n.\r\n"),
        (b"a.\r\n.b", b"a.\r\n..b\r\n.\r\n"),
    ],
)
def test_dot_stuffing_edges(data: bytes, stuffed: bytes) -> None:
    assert dot_stuffed(data) == stuffed
