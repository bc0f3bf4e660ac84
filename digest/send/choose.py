"""Which transport a job sends through: SMTP when a host is configured, else the maildir
outbox; opened here and closed in one place, `transport_for`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from digest.config import Config
from digest.send.outbox import OutboxTransport
from digest.send.smtp import SmtpPool
from digest.send.transport import Transport


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
