"""When things run: the lock that keeps runs from overlapping, and who is due for which
edition by their own clock. No I/O beyond the lock file."""

from __future__ import annotations

import fcntl
import os
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.errors import DigestError, StoreError
from digest.models import WEEKDAYS, Subscriber


class RunLock:
    """A lock beside the database, so two runs never overlap (cron is not a queue).

    `digest run` and unsharded `digest send` take it exclusively (they may recover every
    delivery left `sending`); shard workers share it and each also holds its shard's lock, so
    no run can reset a delivery a live worker is sending."""

    def __init__(self, db_path: str, shared: bool = False) -> None:
        self.path = Path(f"{db_path}.lock")
        self.shared = shared
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as ex:
            raise StoreError(
                f"{self.path}: cannot create the run lock ({ex.strerror or ex}): make the "
                "database's folder writable for this user"
            ) from ex
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DigestError(
                f"another digest run holds {self.path}; it will finish what is pending "
                "(if no run is alive, the lock is released automatically)"
            ) from None
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)


def due_edition(sub: Subscriber, now: datetime) -> str | None:
    """The edition a subscriber is due for now, by their own clock: their local date (daily)
    or ISO week (weekly, on their weekday), once their send hour has come."""
    local = now.astimezone(ZoneInfo(sub.tz))
    if local.hour < sub.hour:
        return None
    if sub.cadence == "weekly":
        if WEEKDAYS[local.weekday()] != sub.weekday:
            return None
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.date().isoformat()


def edition_day(name: str) -> date:
    if "-W" in name:
        year, week = name.split("-W")
        return date.fromisocalendar(int(year), int(week), 1)
    return date.fromisoformat(name)
