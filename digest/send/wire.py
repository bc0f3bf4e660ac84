"""The lean SMTP transaction over an open connection: replies parsed as they come, MAIL, RCPT
and DATA pipelined, the body sent as built (dot-stuffed once). Opens no connection (the pool
does) and decides nothing about retries."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from dataclasses import dataclass

import aiosmtplib

from digest.message import Outgoing

MAX_REPLY = 64 * 1024  # bytes of one reply, well past any real server's
Reply = tuple[int, str]


class Wire(asyncio.Protocol):
    """The SMTP conversation after the handshake: replies parsed as they come, any number
    buffered, so pipelined commands (RFC 2920) read back in order. aiosmtplib's protocol keeps
    one reply at a time, and its DATA normalises line endings twice and dot-stuffs with a
    regex: our messages are already CRLF, so they go out as built."""

    def __init__(self, transport: asyncio.BaseTransport, timeout: float) -> None:
        self.transport = transport
        self.timeout = timeout
        self._loop = asyncio.get_running_loop()
        self.replies: deque[Reply] = deque()
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._lost: Exception | None = None
        transport.set_protocol(self)

    @property
    def is_connected(self) -> bool:
        """Whether the connection is still open (no loss seen, not closing)."""
        return self._lost is None and not self.transport.is_closing()

    def data_received(self, data: bytes) -> None:
        """Parse whole replies (multi-line ones joined) as bytes come; a malformed or
        oversized reply drops the connection, since the conversation can no longer be trusted."""
        buffer = self._buffer
        buffer += data
        pos = start = 0
        lines: list[bytes] = []
        while (end := buffer.find(b"\n", pos)) >= 0:
            line = bytes(buffer[pos:end]).rstrip(b"\r")
            pos = end + 1
            lines.append(line)
            if line[3:4] == b"-":
                continue
            if not line[:3].isdigit():
                self._fail(aiosmtplib.SMTPResponseException(-1, f"malformed reply {line[:80]!r}"))
                return
            if pos - start > MAX_REPLY:
                self._fail(aiosmtplib.SMTPResponseException(-1, "reply too long"))
                return
            text = "\n".join(part[4:].strip().decode("utf-8", "surrogateescape") for part in lines)
            self.replies.append((int(line[:3]), text))
            lines, start = [], pos
        del buffer[:start]
        if len(buffer) > MAX_REPLY:
            self._fail(aiosmtplib.SMTPResponseException(-1, "reply too long"))
        elif self.replies:
            self._wake()

    def _fail(self, ex: Exception) -> None:
        self._lost = self._lost or ex
        self.transport.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        """Remember the loss, so the next write or wait for a reply raises it."""
        lost = aiosmtplib.SMTPServerDisconnected("Connection lost")
        lost.__cause__ = exc
        self._lost = self._lost or lost
        self._writable.set()
        self._wake()

    def eof_received(self) -> bool:
        """The server hung up: close our side too (connection_lost follows)."""
        return False

    def pause_writing(self) -> None:
        """The kernel's buffer is full: `write` waits until it drains."""
        self._writable.clear()

    def resume_writing(self) -> None:
        """The buffer drained: a waiting `write` goes on."""
        self._writable.set()

    async def write(self, *parts: bytes) -> None:
        """Send (parts without joining them where the loop can: uvloop, Python 3.12+),
        waiting up to the timeout while the kernel's buffer is full."""
        if not self.is_connected:
            raise self._lost or aiosmtplib.SMTPServerDisconnected("Connection lost")
        if len(parts) == 1:
            self.transport.write(parts[0])  # type: ignore[attr-defined]
        else:
            self.transport.writelines(parts)  # type: ignore[attr-defined]
        if not self._writable.is_set():
            try:
                await asyncio.wait_for(self._writable.wait(), self.timeout)
            except TimeoutError as ex:
                raise aiosmtplib.SMTPTimeoutError("Timed out sending to the server") from ex
        if self._lost is not None and not self.replies:
            raise self._lost

    async def reply(self) -> Reply:
        """The next reply, in the order the commands were sent.

        Raises:
            SMTPTimeoutError: none within the timeout; SMTPServerDisconnected: the server left."""
        if not self.replies:
            if self._lost is not None:
                raise self._lost
            # a timer on the waiter rather than wait_for: a reply is awaited four times an
            # email, and wait_for's own task and future were a tenth of the sender's CPU
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(self.timeout, _time_out, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            if not self.replies:
                raise self._lost or aiosmtplib.SMTPServerDisconnected("Connection lost")
        return self.replies.popleft()

    async def command(self, line: bytes) -> Reply:
        """One command, one reply."""
        await self.write(line + b"\r\n")
        return await self.reply()

    def close(self) -> None:
        """Drop the connection (a desynchronised or refused one is never reused)."""
        self._lost = self._lost or aiosmtplib.SMTPServerDisconnected("closed by us")
        self.transport.close()


def envelope_line(verb: bytes, address: str, options: list[str], encoding: str) -> bytes:
    """`MAIL FROM:<a> OPTIONS` or `RCPT TO:<a>`; a control character is refused (our
    addresses are checked when built, so this would be a bug, never the server's fault)."""
    line = verb + f"<{address}>".encode(encoding) + "".join(f" {o}" for o in options).encode()
    if any(b < 0x20 or b == 0x7F for b in line):
        raise ValueError(f"SMTP command holds a control character: {line[:80]!r}")
    return line


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(aiosmtplib.SMTPReadTimeoutError("Timed out waiting for a reply"))


def dot_stuffed(data: bytes, *, crlf_only: bool = False) -> bytes:
    """The DATA body of CRLF-lined bytes: lines starting with "." doubled (RFC 5321 4.5.2),
    then the end-of-data line."""
    return b"".join(stuffed_parts(data, crlf_only=crlf_only))


def stuffed_parts(data: bytes, *, crlf_only: bool = False) -> tuple[bytes, bytes]:
    """`dot_stuffed` as the body and the end-of-data line, written together without joining
    where the loop can (a 50 KB copy an email). Bytes with a bare CR or LF are normalised
    first, unless the caller knows there are none (`Outgoing.crlf_only`: those scans of
    50 KB cost a tenth of an email's CPU)."""
    if not crlf_only:
        pairs = data.count(b"\r\n")
        if data.count(b"\n") != pairs or data.count(b"\r") != pairs:
            data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    if b"\n." in data:
        data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    return data, (b".\r\n" if data.endswith(b"\r\n") or not data else b"\r\n.\r\n")


@dataclass
class Connection:
    """One connection past its greeting, EHLO, STARTTLS and AUTH (aiosmtplib did those);
    transactions run over our own wire."""

    wire: Wire
    extensions: frozenset[str]
    body_sent: bool = False  # this transaction's body went (at least partly) out

    @property
    def is_connected(self) -> bool:
        """Whether the connection can carry another transaction."""
        return self.wire.is_connected

    def supports(self, extension: str) -> bool:
        """Whether EHLO offered this extension (case-insensitive)."""
        return extension.lower() in self.extensions

    async def send(self, message: Outgoing) -> Reply:
        """MAIL, RCPT and DATA (in one write when the server offers PIPELINING), then the
        body; the reply to its end. `body_sent` tells whether a loss may have left the
        message queued. Raises aiosmtplib's errors for refusals, so they classify as before."""
        self.body_sent = False
        data = message.data
        options = ["SMTPUTF8"] if message.smtputf8 else []
        if message.eight_bit:
            if self.supports("8bitmime"):
                options.append("BODY=8BITMIME")
            else:
                data = message.seven_bit()
        if self.supports("size"):
            options.append(f"SIZE={len(data)}")
        encoding = "utf-8" if message.smtputf8 else "ascii"
        mail = envelope_line(b"MAIL FROM:", message.sender, options, encoding)
        rcpt = envelope_line(b"RCPT TO:", message.recipient, [], encoding)
        wire = self.wire
        replies: list[Reply] = []
        if self.supports("pipelining"):
            await wire.write(b"%s\r\n%s\r\nDATA\r\n" % (mail, rcpt))
            while len(replies) < 3 and (not replies or replies[-1][0] != 421):
                replies.append(await wire.reply())  # after a 421 the server hangs up
        else:
            replies.append(await wire.command(mail))
            for line, ok in ((rcpt, (250,)), (b"DATA", (250, 251))):
                if replies[-1][0] not in ok:
                    break
                replies.append(await wire.command(line))
        replies += [(0, "")] * (3 - len(replies))
        self._check(message, replies[0], replies[1], replies[2])
        self.body_sent = True
        await wire.write(*stuffed_parts(data, crlf_only=message.crlf_only))
        return await wire.reply()

    def _check(self, message: Outgoing, mail: Reply, rcpt: Reply, data: Reply) -> None:
        """Raise the refusal, if any, as aiosmtplib would have; a server that said 354 to a
        DATA whose envelope it refused cannot be cleanly stopped: drop the connection."""
        refusal: aiosmtplib.SMTPResponseException | None = None
        if mail[0] != 250:
            refusal = aiosmtplib.SMTPSenderRefused(mail[0], mail[1], message.sender)
        elif rcpt[0] not in (250, 251):
            refusal = aiosmtplib.SMTPRecipientRefused(rcpt[0], rcpt[1], message.recipient)
        elif data[0] != 354:
            refusal = aiosmtplib.SMTPDataError(data[0], data[1])
        if refusal is None:
            return
        if data[0] == 354:
            self.wire.close()
        raise refusal
