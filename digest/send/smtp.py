"""The SMTP connection pool (aiosmtplib for the handshake, `Wire` for transactions), what a
server's refusal means for a delivery, and the EHLO check of `digest doctor`.

Only replies about the subscriber's own address or message count against the subscriber; a
failure on our side (connection, login, MAIL FROM) is transient, so the delivery waits for a
fix. A non-ASCII local part needs a server that offers SMTPUTF8: when ours does not, that
delivery waits the same way (our relay's limit), with the reason "server does not offer
SMTPUTF8". Decides nothing about who gets what."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import aiosmtplib

from digest.config import SmtpConfig
from digest.errors import SendError
from digest.message import Outgoing
from digest.send.transport import Opened, Result
from digest.send.wire import Connection, Wire

NO_SMTPUTF8 = "server does not offer SMTPUTF8"


def _classify(ex: Exception) -> Result:
    """An aiosmtplib error -> retry or give up. Only the recipient's refusal (RCPT) or the
    message's (after DATA) with a 5xx is permanent and counts against the subscriber; a 5xx
    at login, greeting or MAIL FROM is our side's problem: the delivery waits for a fix.
    4xx and lost connections are transient (lost after DATA: resent, a possible duplicate).
    A 421 at any stage is the server closing the channel (RFC 5321 3.8), never a verdict on
    the address: transient and not counted against the subscriber."""
    if isinstance(ex, aiosmtplib.SMTPRecipientsRefused) and ex.recipients:
        return _refused(ex.recipients[0].code, ex.recipients[0].message)
    if isinstance(ex, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        return _refused(ex.code, ex.message)
    if isinstance(ex, aiosmtplib.SMTPResponseException):
        return Result(False, f"{ex.code} {ex.message} (server side: check the SMTP settings)")
    if isinstance(ex, aiosmtplib.SMTPNotSupported):
        return Result(False, f"{ex} (needed for a non-ASCII local part)", later=True)
    if isinstance(ex, aiosmtplib.SMTPTimeoutError | asyncio.TimeoutError):
        return Result(False, f"timed out: {ex}".rstrip(": "))
    return Result(False, f"connection problem: {type(ex).__name__}: {ex}".rstrip(": "))


def _refused(code: int, text: str) -> Result:
    """A reply at RCPT or after DATA: about the address or message, unless it is a 421."""
    if code == 421:
        return Result(False, f"{code} {text} (server closing the connection)")
    return Result(False, f"{code} {text}", 500 <= code < 600, recipient=True)


class SmtpPool(Opened):
    """Up to `concurrency` persistent connections, each used by one sender at a time,
    reconnected after a 421 or a dropped connection. aiosmtplib connects (greeting, EHLO,
    STARTTLS, AUTH); each transaction then runs over `Wire`."""

    def __init__(self, config: SmtpConfig, password: str = "", local_hostname: str | None = None):
        self.config = config
        self.password = password
        self.local_hostname = local_hostname
        self._idle: asyncio.Queue[Connection | None] = asyncio.Queue()
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

    async def _connect(self) -> Connection:
        """A connection ready for transactions: aiosmtplib's handshake, then our wire."""
        client = self._client()
        await client.connect()
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        transport = client.transport
        if transport is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost during the handshake")
        extensions = frozenset(k.lower() for k in client.esmtp_extensions)
        return Connection(Wire(transport, self.config.timeout), extensions)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[list[Connection | None]]:
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

    async def _recover(self, slot: list[Connection | None], ex: Exception) -> None:
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
