"""Reading the bounce mailbox: a local Maildir, or IMAP over TLS, behind one small interface.

A message is yielded once and marked after it was handled (Maildir: moved to cur/ with the
Seen flag; IMAP: flagged \\Seen), so a later run never handles it again. What a message says
is not this module's business; it returns bytes, capped at MAX_MESSAGE_BYTES + 1 so the
classifier knows a message was larger without the reader holding 20 MB.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from digest.bounces.events import MAX_MESSAGE_BYTES
from digest.errors import DigestError

READ_CAP = MAX_MESSAGE_BYTES + 1
SEEN = "S"


class MailboxError(DigestError):
    """The mailbox cannot be read at all (missing folder, login refused): ours to fix."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One unhandled message: `key` is stable for the message until it is marked."""

    key: str
    data: bytes


class Mailbox(Protocol):
    """What `process_mailbox` needs of a mailbox, so Maildir and IMAP are interchangeable."""

    def unread(self) -> Iterator[Stored]:
        """Each message not yet marked, oldest first."""
        ...

    def mark_done(self, key: str) -> None:
        """Never yield this message again, in this run or any later one."""
        ...


def maildir_flags(name: str) -> str:
    """The flags of a Maildir file name (`...:2,RS` -> `RS`); "" when it has none."""
    _, sep, info = name.partition(":2,")
    return info if sep else ""


class Maildir:
    """A Maildir (new/, cur/, tmp/) such as Postfix's virtual or local delivery writes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def check(self) -> None:
        """Fail early and clearly when the path is not a Maildir.

        Raises:
            MailboxError: new/ or cur/ is missing.
        """
        for sub in ("new", "cur"):
            if not (self.path / sub).is_dir():
                raise MailboxError(f"maildir {self.path}: no {sub}/ folder (is the path right?)")

    def unread(self) -> Iterator[Stored]:
        """Messages in new/, and those in cur/ not yet Seen (a mail client may have moved
        them), oldest first.

        Raises:
            MailboxError: the path is not a Maildir.
        """
        self.check()
        names: list[tuple[float, str, Path]] = []
        for sub in ("new", "cur"):
            for entry in os.scandir(self.path / sub):
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                if sub == "cur" and SEEN in maildir_flags(entry.name):
                    continue
                names.append((entry.stat().st_mtime, entry.name, Path(entry.path)))
        for _, name, path in sorted(names):
            try:
                with path.open("rb") as handle:
                    data = handle.read(READ_CAP)
            except FileNotFoundError:
                continue  # another reader took it
            yield Stored(f"{path.parent.name}/{name}", data)

    def mark_done(self, key: str) -> None:
        """Move the message to cur/ with the Seen flag, the Maildir way of "read".

        Raises:
            MailboxError: the key is not one `unread` gave, or the message is gone.
        """
        sub, _, name = key.partition("/")
        # the key names a file: refuse anything that could step outside the Maildir
        if sub not in ("new", "cur") or "/" in name or not name:
            raise MailboxError(f"maildir {self.path}: {key!r} is not a message key")
        base, _, _ = name.partition(":2,")
        flags = "".join(sorted(set(maildir_flags(name)) | {SEEN}))
        target = self.path / "cur" / f"{base}:2,{flags}"
        try:
            os.rename(self.path / sub / name, target)
        except FileNotFoundError:  # already moved (by us earlier, or a client): fine if there
            if not target.exists():
                raise MailboxError(f"maildir {self.path}: message {key} vanished") from None


class ImapSecurity(StrEnum):
    """How the IMAP connection is encrypted; there is deliberately no plain-text choice."""

    TLS = "tls"  # implicit TLS, port 993
    STARTTLS = "starttls"  # plain connection upgraded before login, port 143


@dataclass(frozen=True, slots=True)
class ImapSettings:
    """Where and as whom to read the bounce mailbox over IMAP (from `[bounces]` and
    DIGEST_IMAP_PASSWORD)."""

    host: str
    user: str
    password: str
    port: int = 993
    folder: str = "INBOX"
    timeout: float = 30.0
    security: ImapSecurity = ImapSecurity.TLS


class Imap:
    """An IMAP mailbox over TLS (stdlib imaplib; implicit TLS or STARTTLS, never plain text):
    UID SEARCH UNSEEN, a fetch capped at READ_CAP octets that does not set \\Seen, then
    \\Seen once handled. Keys are `UIDVALIDITY:UID`; a key from another UIDVALIDITY is never
    marked. The tests run the STARTTLS path against pymap; implicit TLS differs only in how
    imaplib opens the socket.
    """

    def __init__(self, settings: ImapSettings, context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.context = context or ssl.create_default_context()
        self.connection: imaplib.IMAP4 | None = None
        self.validity = ""

    def __enter__(self) -> Imap:
        """Connect, encrypt, log in and open the folder.

        Raises:
            MailboxError: the server, TLS, the login or the folder refused.
        """
        s = self.settings
        try:
            if s.security is ImapSecurity.STARTTLS:
                self.connection = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
                self.connection.starttls(self.context)
            else:
                self.connection = imaplib.IMAP4_SSL(
                    s.host, s.port, ssl_context=self.context, timeout=s.timeout
                )
            self.connection.login(s.user, s.password)
            status, data = self.connection.select(s.folder)
            if status != "OK":
                self.close()  # logged in: log out before refusing
                raise MailboxError(f"IMAP {s.host}: cannot open folder {s.folder!r}: {data!r}")
            # UIDs are only meaningful within one UIDVALIDITY: keys carry it
            response = self.connection.response("UIDVALIDITY")[1]
            self.validity = text(response[0]) if response and response[0] else ""
        except (OSError, ssl.SSLError, imaplib.IMAP4.error) as ex:
            self.close()
            raise MailboxError(f"IMAP {s.host}:{s.port} as {s.user}: {ex}") from ex
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Log out if connected; a connection already dead is not an error here."""
        if self.connection is not None:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                self.connection.logout()
            self.connection = None

    def opened(self) -> imaplib.IMAP4:
        """The live connection.

        Raises:
            MailboxError: used outside `with`.
        """
        if self.connection is None:
            raise MailboxError(f"IMAP {self.settings.host}: not connected (use `with`)")
        return self.connection

    def unread(self) -> Iterator[Stored]:
        """Each UNSEEN message, its first READ_CAP octets, without marking it Seen.

        Raises:
            MailboxError: the search or a fetch failed at the protocol or network level.
        """
        connection = self.opened()
        try:
            status, data = connection.uid("SEARCH", "UNSEEN")
            if status != "OK":
                raise MailboxError(f"IMAP {self.settings.host}: SEARCH UNSEEN failed: {data!r}")
            uids = text(data[0]).split() if data and data[0] else []
            for uid in uids:
                if not uid.isdigit():
                    continue
                # PEEK: fetching must not set \Seen, or a crash would lose the message
                status, parts = connection.uid("FETCH", uid, f"(BODY.PEEK[]<0.{READ_CAP}>)")
                body = next(
                    (p[1] for p in parts or [] if isinstance(p, tuple) and len(p) == 2), None
                )
                if status == "OK" and isinstance(body, bytes):
                    yield Stored(f"{self.validity}:{uid}", body)
        except (OSError, imaplib.IMAP4.error) as ex:
            raise MailboxError(f"IMAP {self.settings.host}: {ex}") from ex

    def mark_done(self, key: str) -> None:
        """Flag the message \\Seen, so no later run reads it again.

        Raises:
            MailboxError: the key is from another UIDVALIDITY, or the server refused.
        """
        validity, _, uid = key.rpartition(":")
        if validity != self.validity or not uid.isdigit():
            raise MailboxError(f"IMAP {self.settings.host}: {key!r} is not from this folder")
        try:
            status, data = self.opened().uid("STORE", uid, "+FLAGS", r"(\Seen)")
        except (OSError, imaplib.IMAP4.error) as ex:
            raise MailboxError(f"IMAP {self.settings.host}: flag {uid}: {ex}") from ex
        if status != "OK":
            raise MailboxError(f"IMAP {self.settings.host}: flag {uid} refused: {data!r}")


def text(value: object) -> str:
    """An imaplib response item as text for messages and keys (bytes decoded as ASCII)."""
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return re.sub(r"\s+", " ", str(value))
