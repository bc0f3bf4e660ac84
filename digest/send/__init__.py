"""Delivering, the last part of the daily job: transports (an SMTP connection pool, a maildir
outbox; async context managers, closed where they are opened) and the delivery state machine.
Decides nothing about who gets what.

One concern per module, in the order they build on each other: `transport` (the protocol and
its result), `outbox` (the maildir), `wire` (one lean SMTP transaction), `smtp` (the pool, what
a refusal means, the EHLO check), `choose` (which transport, opened and closed in one place),
`rate` (the rate limit), `deliver` (the state machine and its stats). Importers use this
package's names, never a module's.
"""

from digest.send.choose import make_transport, transport_for
from digest.send.deliver import GROUP, GROUP_SECONDS, Clock, Job, Outcome, Sender, SendStats
from digest.send.outbox import OutboxTransport
from digest.send.rate import RateLimit, Sleep
from digest.send.smtp import NO_SMTPUTF8, SmtpPool, smtp_hello
from digest.send.transport import Opened, Result, Transport
from digest.send.wire import MAX_REPLY, Reply, dot_stuffed

__all__ = [
    "GROUP",
    "GROUP_SECONDS",
    "MAX_REPLY",
    "NO_SMTPUTF8",
    "Clock",
    "Job",
    "Opened",
    "OutboxTransport",
    "Outcome",
    "RateLimit",
    "Reply",
    "Result",
    "SendStats",
    "Sender",
    "Sleep",
    "SmtpPool",
    "Transport",
    "dot_stuffed",
    "make_transport",
    "smtp_hello",
    "transport_for",
]
