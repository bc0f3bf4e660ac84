"""The send rate limit shared by every sender of a run. Sends nothing itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Sleep = Callable[[float], Awaitable[None]]


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
