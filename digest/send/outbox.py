"""The maildir outbox transport: each message one .eml file (the embedded default, no SMTP).
Writes files only; knows nothing of deliveries."""

from __future__ import annotations

import hashlib
import os
from contextlib import suppress
from pathlib import Path

from digest.errors import ConfigError
from digest.message import Outgoing
from digest.send.transport import Opened, Result


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
