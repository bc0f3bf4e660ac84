"""When things run: the lock that keeps runs from overlapping. No I/O beyond the lock file.

Who is due for which edition lives with the edition (`digest.edition`); the lock stays here
because it is about runs, not editions, and sits below the store in the layering."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from digest.errors import DigestError, StoreError


class RunLock:
    """A lock beside the database, so two runs never overlap (cron is not a queue).

    `digest run` and unsharded `digest send` take it exclusively (they may recover every
    delivery left `sending`); shard workers share it and each also holds its shard's lock, so
    no run can reset a delivery a live worker is sending."""

    def __init__(self, db_path: str, shared: bool = False) -> None:
        """A lock named after the database (`digest.db.lock`); taken only on `with`."""
        self.path = Path(f"{db_path}.lock")
        self.shared = shared
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        """Take the lock at once or refuse.

        Raises:
            DigestError: another run holds it.
            StoreError: the lock file cannot be created beside the database.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as ex:
            raise StoreError(
                f"{self.path}: cannot create the run lock ({ex.strerror or ex}): make the "
                "database's folder writable for this user"
            ) from ex
        try:
            # flock, not a PID file: the kernel releases it when a killed run's process dies
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
        """Release the lock (also closing its file)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
