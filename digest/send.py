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
import ssl
import time
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


class SmtpPool(Opened):
    """Up to `concurrency` persistent connections, each used by one sender at a time,
    reconnected after a 421 or a dropped connection."""

    def __init__(self, config: SmtpConfig, password: str = "", local_hostname: str | None = None):
        self.config = config
        self.password = password
        self.local_hostname = local_hostname
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
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

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[list[aiosmtplib.SMTP | None]]:
        slot = [await self._idle.get()]
        try:
            yield slot
        finally:
            self._idle.put_nowait(slot[0])

    async def send(self, message: Outgoing) -> Result:
        """One transaction, step by step, so a reply lost after the end of DATA is known to
        be ambiguous (the server may have queued the message)."""
        async with self._connection() as slot:
            in_data = False
            try:
                client = slot[0]
                if client is None or not client.is_connected:
                    client = slot[0] = self._client()
                    await client.connect()
                if client.is_ehlo_or_helo_needed:
                    await client.ehlo()
                options = []
                if message.smtputf8:
                    if not client.supports_extension("smtputf8"):
                        return Result(
                            False, f"{NO_SMTPUTF8} (needed for a non-ASCII local part)", later=True
                        )
                    options.append("SMTPUTF8")
                if client.supports_extension("size"):
                    options.append(f"SIZE={len(message.data)}")
                encoding = "utf-8" if message.smtputf8 else "ascii"
                await client.mail(message.sender, options=options, encoding=encoding)
                await client.rcpt(message.recipient, encoding=encoding)
                in_data = True
                response = await client.data(message.data)
                return Result(True, response.message.strip() or "250 OK")
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as ex:
                result = _classify(ex)
                if in_data and not isinstance(ex, aiosmtplib.SMTPResponseException):
                    result = Result(
                        False, f"{result.reply} after the end of DATA (maybe accepted)",
                        ambiguous=True,
                    )  # fmt: skip
                await self._recover(slot, ex)
                return result

    async def _recover(self, slot: list[aiosmtplib.SMTP | None], ex: Exception) -> None:
        """Keep a healthy connection for the next message; drop one that is not."""
        client = slot[0]
        if client is None:
            return
        broken = isinstance(
            ex,
            aiosmtplib.SMTPServerDisconnected
            | aiosmtplib.SMTPConnectError
            | aiosmtplib.SMTPTimeoutError
            | OSError
            | asyncio.TimeoutError,
        ) or (isinstance(ex, aiosmtplib.SMTPResponseException) and ex.code == 421)
        if not broken:
            try:
                await client.rset()
                return
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                pass
        client.close()
        slot[0] = None

    async def close(self) -> None:
        """Say QUIT on every idle connection."""
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client is not None and client.is_connected:
                with suppress(aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
                    await client.quit()


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


class Sender:
    """Drives deliveries through the state machine over one transport."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        config: SmtpConfig,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        on_done: Callable[[Job, str], None] | None = None,
    ) -> None:
        self.store = store
        self.transport = transport
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.rate = RateLimit(config.rate_per_second, sleep)
        self.stats = SendStats()
        self.on_done = on_done

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
            current = self.store.subscriber_status(job.subscriber_id)
            if current != "active":
                self.store.mark_skipped(job.delivery_id, f"subscriber is {current}", self._now())
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
                self.store.mark_sent(
                    job.delivery_id, job.subscriber_id, job.paper_ids, job.edition,
                    result.reply, now,
                )  # fmt: skip
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
        """Send from an async stream of jobs with `concurrency` senders at once."""
        queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=max(1, concurrency) * 4)

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
            async for job in jobs:
                await queue.put(job)
            for _ in workers:
                await queue.put(None)

        # gathered together: a worker stopped by a StoreError cannot leave the producer
        # waiting forever on a full queue
        tasks = [asyncio.create_task(produce()), *workers]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return self.stats


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
