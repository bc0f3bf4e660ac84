"""A real SMTP server (aiosmtpd) on 127.0.0.1 that records what it accepted and injects
faults at the protocol level: a 421 greeting, 4xx/5xx on RCPT, 554 after DATA, a connection
dropped at the end of DATA (before or after queueing the message), a stall longer than the
client's timeout. `smtputf8` says whether EHLO offers SMTPUTF8 (RFC 6531)."""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    mail_options: list[str] = field(default_factory=list)


@dataclass
class Faults:
    greet: deque[str] = field(default_factory=deque)  # replies to send instead of 220
    mail: deque[str] = field(default_factory=deque)  # replies to MAIL FROM
    rcpt: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    data: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    # "drop" closes the connection without a reply; "accept-drop" queues the message, then
    # closes without a reply; "stall" waits past the client's timeout


class Recorder:
    def __init__(self, stall_seconds: float = 3.0, smtputf8: bool = True) -> None:
        self.received: list[Received] = []
        self.faults = Faults()
        self.stall_seconds = stall_seconds
        self.smtputf8 = smtputf8
        self.connections = 0
        self.open = 0  # connections open now, and the most ever open at once
        self.most_open = 0

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.recipients]

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.faults.mail:
            return self.faults.mail.popleft()
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        queue = self.faults.rcpt.get(address)
        if queue:
            return queue.popleft()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for address in envelope.rcpt_tos:
            queue = self.faults.data.get(address)
            if queue:
                fault = queue.popleft()
                if fault in ("drop", "accept-drop"):
                    if fault == "accept-drop":
                        self._keep(envelope)
                    server.transport.close()
                    return "250 never seen"
                if fault == "stall":
                    await asyncio.sleep(self.stall_seconds)
                    return "451 too late"
                return fault
        self._keep(envelope)
        return "250 2.0.0 Ok: queued"

    def _keep(self, envelope: Any) -> None:
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                bytes(envelope.original_content),
                list(envelope.mail_options),
            )
        )


class FaultySMTP(SMTP):
    async def _handle_client(self) -> None:
        recorder: Recorder = self.event_handler
        recorder.connections += 1
        self.enable_SMTPUTF8 = recorder.smtputf8
        if recorder.faults.greet:
            await self.push(recorder.faults.greet.popleft())
            self.transport.close()
            return
        recorder.open += 1
        recorder.most_open = max(recorder.most_open, recorder.open)
        try:
            await super()._handle_client()
        finally:
            recorder.open -= 1


class FaultyController(Controller):
    def factory(self) -> SMTP:
        return FaultySMTP(self.handler, **self.SMTP_kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(recorder: Recorder) -> FaultyController:
    controller = FaultyController(
        recorder,
        hostname="127.0.0.1",
        port=free_port(),
        decode_data=False,
        data_size_limit=50_000_000,
    )
    controller.start()
    return controller
