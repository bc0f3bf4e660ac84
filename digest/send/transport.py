"""What every transport is: the `Transport` protocol, its `Result` for one message, and the
`Opened` base that makes a transport an async context manager. Knows no SMTP and no files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Self

from digest.message import Outgoing


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
