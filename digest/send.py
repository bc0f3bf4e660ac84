"""Delivering, the last part of the daily job: transports (an SMTP connection pool, a maildir
outbox; async context managers, closed where they are opened) and the delivery state machine.

Decides nothing about who gets what. For each planned delivery: check the subscriber is still
active, claim it (pending -> sending, committed before SMTP starts), send, then record the
server's answer: sent (with its papers, in one transaction), retried with backoff (4xx, network),
or failed (5xx, counted as a bounce). A delivery left `sending` by a crash, or whose reply to
the end of DATA was lost (timeout, disconnect), is sent again and flagged and counted as a possible
duplicate; nothing else can be sent twice.

Only replies about the subscriber's own address or message count towards `give_up_after` and
bounces; a failure on our side (connection, login, MAIL FROM, the outbox's disk) leaves the
delivery pending however long it lasts, so the run after the fix sends it. A non-ASCII local part
needs a server that offers SMTPUTF8: when ours does not, that delivery waits the same way (our
relay's limit, not the subscriber's fault), with the reason "server does not offer SMTPUTF8".
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, Self

import aiosmtplib

from digest.config import Config, SmtpConfig
from digest.errors import ConfigError, SendError, StoreError
from digest.message import Outgoing
from digest.store import Store
from digest.store.deliveries import SentMark

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Result:
    """A transport's answer for one message."""

    ok: bool
    reply: str
    permanent: bool = False
    ambiguous: bool = False  # lost after the end of DATA: the server may have accepted it
    recipient: bool = False  # the reply is about this address or message (RCPT, after DATA)
    later: bool = False  # retrying within this run cannot help (e.g. no SMTPUTF8)


class Transport(Protocol):
    """Where messages go: an SMTP pool, the maildir outbox, or a test's own."""

    async def send(self, message: Outgoing) -> Result:
        """Hand one message over; the answer says whether and how it was taken."""
        ...

    async def close(self) -> None:
        """Release what the transport holds (connections); it may not be used after."""
        ...


class Opened:
    """A transport is an async context manager: `async with` closes it on the way out."""

    async def close(self) -> None:
        """Release what the transport holds (connections)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class OutboxTransport(Opened):
    """Writes each message as a .eml file into a maildir (tmp/ then rename into new/).

    The file is named after the Message-ID, which is stable per (subscriber, edition), so a
    resend after a crash replaces the file instead of adding a second one."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as ex:
            raise ConfigError(
                f"[outbox].path {self.path}: cannot be used as a maildir folder "
                f"({ex.strerror or ex}); point it at a writable folder"
            ) from ex

    async def send(self, message: Outgoing) -> Result:
        """Write tmp/ then rename into new/; a failed write leaves no tmp file behind."""
        name = hashlib.sha256(message.message_id.encode()).hexdigest()[:24] + ".eml"
        tmp = self.path / "tmp" / f"{name}.{os.getpid()}"
        try:
            with open(tmp, "wb") as handle:
                handle.write(message.data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path / "new" / name)
        except OSError as ex:
            with suppress(OSError):
                tmp.unlink()
            reason = ex.strerror or str(ex)
            return Result(
                False, f"outbox {self.path}: {reason} (free space or fix the folder)", later=True
            )
        return Result(True, f"250 written to {self.path / 'new' / name}")


def _classify(ex: Exception) -> Result:
    """An aiosmtplib error -> retry or give up. Only the recipient's refusal (RCPT) or the
    message's (after DATA) with a 5xx is permanent and counts against the subscriber; a 5xx
    at login, greeting or MAIL FROM is our side's problem: the delivery waits for a fix.
    4xx and lost connections are transient (lost after DATA: resent, a possible duplicate)."""
    if isinstance(ex, aiosmtplib.SMTPRecipientsRefused) and ex.recipients:
        refused = ex.recipients[0]
        return Result(
            False, f"{refused.code} {refused.message}", refused.code >= 500, recipient=True
        )
    if isinstance(ex, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        return Result(False, f"{ex.code} {ex.message}", 500 <= ex.code < 600, recipient=True)
    if isinstance(ex, aiosmtplib.SMTPResponseException):
        return Result(False, f"{ex.code} {ex.message} (server side: check the SMTP settings)")
    if isinstance(ex, aiosmtplib.SMTPNotSupported):
        return Result(False, f"{ex} (needed for a non-ASCII local part)", later=True)
    if isinstance(ex, aiosmtplib.SMTPTimeoutError | asyncio.TimeoutError):
        return Result(False, f"timed out: {ex}".rstrip(": "))
    return Result(False, f"connection problem: {type(ex).__name__}: {ex}".rstrip(": "))


NO_SMTPUTF8 = "server does not offer SMTPUTF8"
MAX_REPLY = 64 * 1024  # bytes of one reply, well past any real server's
Reply = tuple[int, str]


class _Wire(asyncio.Protocol):
    """The SMTP conversation after the handshake: replies parsed as they come, any number
    buffered, so pipelined commands (RFC 2920) read back in order. aiosmtplib's protocol keeps
    one reply at a time, and its DATA normalises line endings twice and dot-stuffs with a
    regex: our messages are already CRLF, so they go out as built."""

    def __init__(self, transport: asyncio.BaseTransport, timeout: float) -> None:
        self.transport = transport
        self.timeout = timeout
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
        lost = aiosmtplib.SMTPServerDisconnected("Connection lost")
        lost.__cause__ = exc
        self._lost = self._lost or lost
        self._writable.set()
        self._wake()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def write(self, data: bytes) -> None:
        """Send, waiting (up to the timeout) while the kernel's buffer is full."""
        if not self.is_connected:
            raise self._lost or aiosmtplib.SMTPServerDisconnected("Connection lost")
        self.transport.write(data)  # type: ignore[attr-defined]
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
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, self.timeout)
            except TimeoutError as ex:
                raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for a reply") from ex
            finally:
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


def _envelope_line(verb: bytes, address: str, options: list[str], encoding: str) -> bytes:
    """`MAIL FROM:<a> OPTIONS` or `RCPT TO:<a>`; a control character is refused (our
    addresses are checked when built, so this would be a bug, never the server's fault)."""
    line = verb + f"<{address}>".encode(encoding) + "".join(f" {o}" for o in options).encode()
    if any(b < 0x20 or b == 0x7F for b in line):
        raise ValueError(f"SMTP command holds a control character: {line[:80]!r}")
    return line


def dot_stuffed(data: bytes) -> bytes:
    """The DATA body of CRLF-lined bytes: lines starting with "." doubled (RFC 5321 4.5.2),
    then the end-of-data line. Bytes with a bare CR or LF are normalised first."""
    if data.count(b"\n") != data.count(b"\r\n") or data.count(b"\r") != data.count(b"\n"):
        data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    return data + (b".\r\n" if data.endswith(b"\r\n") or not data else b"\r\n.\r\n")


@dataclass
class _Connection:
    """One connection past its greeting, EHLO, STARTTLS and AUTH (aiosmtplib did those);
    transactions run over our own wire."""

    wire: _Wire
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
        mail = _envelope_line(b"MAIL FROM:", message.sender, options, encoding)
        rcpt = _envelope_line(b"RCPT TO:", message.recipient, [], encoding)
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
        await wire.write(dot_stuffed(data))
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


class SmtpPool(Opened):
    """Up to `concurrency` persistent connections, each used by one sender at a time,
    reconnected after a 421 or a dropped connection. aiosmtplib connects (greeting, EHLO,
    STARTTLS, AUTH); each transaction then runs over `_Wire`."""

    def __init__(self, config: SmtpConfig, password: str = "", local_hostname: str | None = None):
        self.config = config
        self.password = password
        self.local_hostname = local_hostname
        self._idle: asyncio.Queue[_Connection | None] = asyncio.Queue()
        for _ in range(max(1, config.concurrency)):
            self._idle.put_nowait(None)

    def _client(self) -> aiosmtplib.SMTP:
        c = self.config
        tls = ssl.create_default_context() if c.security != "none" else None
        return aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            username=c.username or None,
            password=self.password or None,
            use_tls=c.security == "tls",
            start_tls=c.security == "starttls",
            tls_context=tls,
            timeout=c.timeout,
            local_hostname=self.local_hostname,
        )

    async def _connect(self) -> _Connection:
        """A connection ready for transactions: aiosmtplib's handshake, then our wire."""
        client = self._client()
        await client.connect()
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        transport = client.transport
        if transport is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost during the handshake")
        extensions = frozenset(k.lower() for k in client.esmtp_extensions)
        return _Connection(_Wire(transport, self.config.timeout), extensions)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[list[_Connection | None]]:
        slot = [await self._idle.get()]
        try:
            yield slot
        finally:
            self._idle.put_nowait(slot[0])

    async def send(self, message: Outgoing) -> Result:
        """One transaction, so a reply lost after the end of DATA is known to be ambiguous
        (the server may have queued the message)."""
        async with self._connection() as slot:
            conn = slot[0]
            try:
                if conn is None or not conn.is_connected:
                    conn = slot[0] = None
                    conn = slot[0] = await self._connect()
                if message.smtputf8 and not conn.supports("smtputf8"):
                    return Result(
                        False, f"{NO_SMTPUTF8} (needed for a non-ASCII local part)", later=True
                    )
                code, text = await conn.send(message)
                if code != 250:
                    raise aiosmtplib.SMTPDataError(code, text)
                return Result(True, text.strip() or "250 OK")
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as ex:
                result = _classify(ex)
                in_data = conn is not None and conn.body_sent
                if in_data and not isinstance(ex, aiosmtplib.SMTPResponseException):
                    result = Result(
                        False, f"{result.reply} after the end of DATA (maybe accepted)",
                        ambiguous=True,
                    )  # fmt: skip
                await self._recover(slot, ex)
                return result

    async def _recover(self, slot: list[_Connection | None], ex: Exception) -> None:
        """Keep a healthy connection for the next message; drop one that is not."""
        conn = slot[0]
        if conn is None:
            return
        broken = isinstance(
            ex,
            aiosmtplib.SMTPServerDisconnected
            | aiosmtplib.SMTPConnectError
            | aiosmtplib.SMTPTimeoutError
            | OSError
            | asyncio.TimeoutError,
        ) or (isinstance(ex, aiosmtplib.SMTPResponseException) and ex.code == 421)
        if not broken and conn.is_connected:
            with suppress(TimeoutError, aiosmtplib.SMTPException, OSError):
                if (await conn.wire.command(b"RSET"))[0] == 250:
                    return
        conn.wire.close()
        slot[0] = None

    async def close(self) -> None:
        """Say QUIT on every idle connection."""
        while not self._idle.empty():
            conn = self._idle.get_nowait()
            if conn is not None and conn.is_connected:
                with suppress(aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
                    await conn.wire.command(b"QUIT")
                conn.wire.close()


class RateLimit:
    """At most `per_second` messages a second across all senders (0 = unlimited)."""

    def __init__(self, per_second: float, sleep: Sleep = asyncio.sleep) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.sleep = sleep
        self._next = 0.0

    async def wait(self) -> None:
        """Wait for this message's slot: the next free one, `1 / per_second` apart."""
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await self.sleep(slot - now)


@dataclass
class SendStats:
    """What sending did in one run, by outcome, and one line per failure."""

    sent: int = 0
    skipped: int = 0
    retried: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    possible_duplicates: int = 0
    errors: int = 0
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Job:
    """One planned delivery, with its message built."""

    delivery_id: int
    subscriber_id: int
    email: str
    edition: str
    paper_ids: tuple[str, ...]
    message: Outgoing
    attempts: int = 0
    possible_duplicate: bool = False


GROUP = 32  # deliveries claimed, and "sent" marks committed, per transaction in `run`
GROUP_SECONDS = 0.5  # the longest a mark waits for its group (slow, rate-limited runs)


class Sender:
    """Drives deliveries through the state machine over one transport.

    In `run`, the delivery log is written in group commits: `group` deliveries are claimed in
    one transaction before any of them is sent, and "sent" marks are committed `group` at a
    time (or once the oldest has waited GROUP_SECONDS). So a SIGKILL leaves at most
    2 x group + 2 x concurrency deliveries `sending` (a group being queued, the queue, those
    on the wire, the uncommitted marks), all resent and flagged by the next run, and at most
    group + concurrency of them had really been accepted (the uncommitted marks, and the
    messages whose end of DATA had gone out)."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        config: SmtpConfig,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        on_done: Callable[[Job, str], None] | None = None,
        group: int = GROUP,
    ) -> None:
        self.store = store
        self.transport = transport
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.rate = RateLimit(config.rate_per_second, sleep)
        self.stats = SendStats()
        self.on_done = on_done
        self.group = max(1, group)
        self._claimed: set[int] = set()  # claimed by a group claim, not yet sent
        self._marks: list[SentMark] = []  # accepted, not yet committed
        self._oldest_mark = 0.0  # time.monotonic() of the first uncommitted mark
        self._grouped = False  # inside `run`: marks wait for their group

    def flush(self) -> None:
        """Commit the buffered "sent" marks in one transaction. Should it fail, those stay
        `sending`, and the next run resends them as possible duplicates.

        Raises:
            StoreError: the database failed."""
        marks, self._marks = self._marks, []
        if marks:
            self.store.mark_sent_many(marks)

    def _mark_sent(self, job: Job, reply: str, now: str) -> None:
        if not self._marks:
            self._oldest_mark = time.monotonic()
        self._marks.append(
            (job.delivery_id, job.subscriber_id, job.paper_ids, job.edition, reply, now)
        )
        if (
            not self._grouped
            or len(self._marks) >= self.group
            or time.monotonic() - self._oldest_mark >= GROUP_SECONDS
        ):
            self.flush()

    def _now(self) -> str:
        return self.clock().isoformat()

    async def deliver(self, job: Job) -> str:
        """Take one delivery to its end for this run; returns the final status."""
        status = await self._deliver(job)
        if self.on_done:
            self.on_done(job, status)
        return status

    async def _deliver(self, job: Job) -> str:
        """pending -> sending -> sent | failed | pending (retry now, or in a later run)."""
        attempts = job.attempts
        flagged = job.possible_duplicate
        tries = max(1, self.config.max_attempts)
        for attempt in range(tries):
            if attempt == 0 and job.delivery_id in self._claimed:
                self._claimed.discard(job.delivery_id)  # claimed with its group
            else:
                current = self.store.subscriber_status(job.subscriber_id)
                if current != "active":
                    self.store.mark_skipped(
                        job.delivery_id, f"subscriber is {current}", self._now()
                    )
                    self.stats.skipped += 1
                    return "skipped"
                if not self.store.claim_delivery(job.delivery_id, self._now()):
                    return "taken"
            attempts += 1
            if job.possible_duplicate and attempt == 0:
                self.stats.possible_duplicates += 1
            await self.rate.wait()
            result = await self.transport.send(job.message)
            now = self._now()
            if result.ok:
                self._mark_sent(job, result.reply, now)
                self.stats.sent += 1
                return "sent"
            if result.ambiguous and not flagged:
                flagged = True
                self.stats.possible_duplicates += 1
                self.store.flag_possible_duplicate(job.delivery_id, now)
            final = self._failed(job, result, attempts, now)
            if final is None:
                final = self._retry(job, result, now, last=result.later or attempt + 1 >= tries)
            if final != "retried":
                return final
            self.stats.retried += 1
            await self.sleep(self.config.backoff * (2**attempt) * (0.5 + random.random()))
        return "deferred"

    def _failed(self, job: Job, result: Result, attempts: int, now: str) -> str | None:
        """A 5xx about the address or message ends the delivery as failed (a bounce), and so
        do `give_up_after` 4xx replies about it; anything else is not final (None)."""
        if result.permanent:
            became = self.store.mark_failed(
                job.delivery_id, job.subscriber_id, result.reply, now, self.config.bounce_limit
            )
            self.stats.failed += 1
            self.stats.bounced += became
            self.stats.failures.append(f"{job.email}: {result.reply}")
            return "failed"
        if result.recipient and attempts >= self.config.give_up_after:
            self.store.mark_failed(job.delivery_id, job.subscriber_id, result.reply, now, None)
            self.stats.failed += 1
            self.stats.failures.append(f"{job.email}: gave up after {attempts}: {result.reply}")
            return "failed"
        return None

    def _retry(self, job: Job, result: Result, now: str, *, last: bool) -> str:
        """Back to pending: due again at once ("retried", in this run), or on the last try
        after `retry_later_minutes` ("deferred", for a later run)."""
        wait = timedelta(minutes=self.config.retry_later_minutes) if last else timedelta(0)
        self.store.mark_retry(job.delivery_id, result.reply, (self.clock() + wait).isoformat(), now)
        if not last:
            return "retried"
        self.stats.deferred += 1
        self.stats.failures.append(f"{job.email}: will retry later: {result.reply}")
        return "deferred"

    async def run(self, jobs: AsyncIterator[Job], concurrency: int) -> SendStats:
        """Send from an async stream of jobs with `concurrency` senders at once, claiming and
        marking in group commits (see the class)."""
        queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=max(1, concurrency))

        async def worker() -> None:
            while (job := await queue.get()) is not None:
                try:
                    await self.deliver(job)
                except StoreError:
                    raise  # the database is unusable: stop; claimed ones are recovered next run
                except Exception as ex:  # one bad delivery must not stall the others
                    self.stats.errors += 1
                    self.stats.failures.append(
                        f"{job.email}: internal error: {type(ex).__name__}: {ex}"
                    )

        workers = [asyncio.create_task(worker()) for _ in range(max(1, concurrency))]

        async def produce() -> None:
            group: list[Job] = []
            async for job in jobs:
                group.append(job)
                if len(group) >= self.group:
                    await self._hand_over(group, queue)
                    group = []
            await self._hand_over(group, queue)
            for _ in workers:
                await queue.put(None)

        # gathered together: a worker stopped by a StoreError cannot leave the producer
        # waiting forever on a full queue
        tasks = [asyncio.create_task(produce()), *workers]
        self._grouped = True
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._grouped = False
            self.flush()
        return self.stats

    async def _hand_over(self, group: list[Job], queue: asyncio.Queue[Job | None]) -> None:
        """Claim a group in one transaction, then queue what was claimed for the senders."""
        if not group:
            return
        claimed, gone = self.store.claim_deliveries([j.delivery_id for j in group], self._now())
        self._claimed |= claimed
        for job in group:
            if job.delivery_id in claimed:
                await queue.put(job)
                continue
            status = "skipped" if job.delivery_id in gone else "taken"
            self.stats.skipped += status == "skipped"
            if self.on_done:
                self.on_done(job, status)


def make_transport(config: Config) -> SmtpPool | OutboxTransport:
    """SMTP when a host is configured, else the maildir outbox (the embedded default); use it
    with `async with`, which closes it.

    Raises:
        ConfigError: the outbox folder cannot be used.
    """
    if config.smtp.host:
        return SmtpPool(config.smtp, config.smtp_password)
    return OutboxTransport(config.outbox.path)


@asynccontextmanager
async def transport_for(config: Config, given: Transport | None = None) -> AsyncIterator[Transport]:
    """The transport a job sends through: the one given (its owner closes it), else one made
    from the config and closed when the block ends, whatever happens in it.

    Raises:
        ConfigError: the outbox folder cannot be used.
    """
    if given is not None:
        yield given
        return
    async with make_transport(config) as made:
        yield made


async def smtp_hello(config: SmtpConfig) -> str:
    """Connect and EHLO only (for `digest doctor`): the server's greeting, or SendError."""
    client = aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        use_tls=config.security == "tls",
        start_tls=config.security == "starttls",
        timeout=min(config.timeout, 15.0),
    )
    try:
        await client.connect()
        code, message = await client.ehlo()
        await client.quit()
    except (TimeoutError, aiosmtplib.SMTPException, OSError) as ex:
        raise SendError(f"{config.host}:{config.port}: {type(ex).__name__}: {ex}") from ex
    first = message.splitlines()[0] if message else ""
    return f"{code} {first}"
