"""The connection: WAL, busy timeout, short `BEGIN IMMEDIATE` write transactions, and
migrations on open; and the one place times become text and back (`time_text`, `text_time`):
outside the store a time is an aware datetime. The mixins beside it hold the statements, one
concern each."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import sqlite_utils

from digest.errors import StoreError
from digest.store.schema import migrations

BUSY_TIMEOUT_MS = 10_000


def time_text(at: datetime, name: str) -> str:
    """A time as the store keeps it: ISO 8601 in UTC, as `datetime.isoformat()` writes it
    (microseconds only when non-zero), so text order is time order and rows written before
    times were typed compare with new ones.

    Raises:
        ValueError: `at` is naive (no time zone): which clock it means cannot be known.
        TypeError: `at` is not a datetime (text formatted by the caller, say).
    """
    if not isinstance(at, datetime):
        raise TypeError(f"{name}: expected a datetime, got {type(at).__name__}")
    if at.utcoffset() is None:
        raise ValueError(f"{name}: naive datetime {at.isoformat()!r}; give a time zone (UTC)")
    return at.astimezone(UTC).isoformat()


def maybe_time_text(at: datetime | None, name: str) -> str | None:
    """`time_text`, with None (no time) kept as NULL."""
    return None if at is None else time_text(at, name)


def text_time(text: str) -> datetime:
    """A stored time back as an aware UTC datetime. Text without an offset was written as
    UTC, so it is read as UTC.

    Raises:
        ValueError: the text is not ISO 8601 (a row not written by digest).
    """
    at = datetime.fromisoformat(text)
    if at.tzinfo is UTC:  # as the store writes them: nothing to convert
        return at
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def maybe_text_time(text: str | None) -> datetime | None:
    """`text_time`, with NULL (or empty text) as None."""
    return text_time(text) if text else None


def legacy_text_time(text: str | None) -> datetime | None:
    """A time in a column that before times were typed took text as given (a CSV's
    `paused_until`, an HF `publishedAt`): text that is no time reads as None, as code
    reading it treated it before (no end to a pause, no freshness), not as an error that
    would stop every reader of the table."""
    try:
        return maybe_text_time(text)
    except ValueError:
        return None


_STORAGE_FAULTS = {
    "readonly": "the database (or its folder) is read-only: make both writable for this user",
    "read-only": "the database (or its folder) is read-only: make both writable for this user",
    "disk is full": "the disk is full: free space, then run again (nothing was half-written)",
    "disk i/o": "the disk failed a read or write (full, removed or failing): check it, then run "
    "again (nothing was half-written)",
    "unable to open": "the file or its folder cannot be opened: check the path and permissions",
    "database is locked": "another process held the write lock past the busy timeout: run again;"
    " if it persists, look for a stuck process holding the database",
}


def storage_error(path: str, ex: sqlite3.Error) -> Exception:
    """A storage fault as one line naming the file and what to do; anything else unchanged
    (a bug in a statement stays a bug)."""
    text = str(ex).lower()
    for needle, advice in _STORAGE_FAULTS.items():
        if needle in text:
            return StoreError(f"{path}: {ex}: {advice}")
    return ex


class StoreBase:
    """One open database. Cheap to open; migrations run on open."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        """Open (creating folders and applying migrations); one line naming the file on failure.

        Raises:
            StoreError: the file cannot be opened, read or written, or stayed locked past
                `busy_timeout_ms` (another process holding a write transaction).
        """
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._connect()

    def _connect(self) -> None:
        busy_timeout_ms = self.busy_timeout_ms
        self._loaded_ids: tuple[str, ...] = ()  # a temp table of this connection's
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN ourselves, so every write can be IMMEDIATE
            conn = sqlite3.connect(self.path, timeout=busy_timeout_ms / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL under WAL survives SIGKILL and costs 0.02 ms a commit, not 0.2 (CONVENTIONS.md)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self.db = sqlite_utils.Database(conn)
            with self.write():
                migrations.apply(self.db)
        except StoreError:
            raise
        except (sqlite3.Error, OSError) as ex:
            error = storage_error(self.path, ex) if isinstance(ex, sqlite3.Error) else ex
            if isinstance(error, StoreError):
                raise StoreError(f"cannot open database: {error}") from ex
            raise StoreError(f"{self.path}: cannot open database: {ex}") from ex

    def close(self) -> None:
        """Release the file (and WAL readers' snapshot); the store is unusable afterwards."""
        self.db.conn.close()

    @contextmanager
    def closed_while(self) -> Iterator[None]:
        """The connection closed for the block, then opened again: SQLite's state must not
        cross a fork (a forked child would inherit its locks' bookkeeping), so a process is
        forked inside this.

        Raises:
            StoreError: the file cannot be opened again."""
        if self.db.conn.in_transaction:
            raise StoreError(f"{self.path}: closed inside a transaction (a bug)")
        self.db.conn.close()
        try:
            yield
        finally:
            self._connect()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A short write transaction, taken up front so concurrent writers wait, not fail."""
        conn = self.db.conn
        if conn.in_transaction:  # nested: a savepoint inside the caller's transaction
            with self.db.atomic():
                yield self.db
            return
        try:
            # a deferred BEGIN that upgrades to a write cannot wait on busy_timeout: it fails
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as ex:
            error = storage_error(self.path, ex)
            if error is ex:
                raise
            raise error from ex

    def schema_version(self) -> int:
        """How many migrations this file has had, for `digest doctor` and upgrade checks."""
        return len(migrations.applied(self.db))

    def _select_in(self, table: str, column: str, values: Sequence[str]) -> list[dict[str, Any]]:
        """Rows whose column is in `values`, however many: chunked below SQLite's variable limit."""
        rows: list[dict[str, Any]] = []
        unique = list(dict.fromkeys(values))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"select * from [{table}] where [{column}] in ({marks})"
            rows.extend(self.db.query(sql, chunk))
        return rows

    def _rows_in(self, sql: str, values: Sequence[Any], *before: Any) -> Iterator[Any]:
        """Rows of `sql`, whose `{marks}` stands for the placeholders of `values` (after the
        parameters `before`), however many values: chunked by 500, as SQLite before 3.32
        refuses more than 999 parameters in a statement."""
        for start in range(0, len(values), 500):
            chunk = list(values[start : start + 500])
            marks = ",".join("?" * len(chunk))
            yield from self.db.execute(sql.format(marks=marks), [*before, *chunk]).fetchall()

    def _event(
        self, sub_id: int, email: str, now: datetime, event: str, cause: str, detail: Any
    ) -> None:
        self.db.table("subscriber_events").insert(
            {
                "subscriber_id": sub_id,
                "email": email,
                "at": time_text(now, "now"),
                "event": event,
                "cause": cause,
                "detail": json.dumps(detail, ensure_ascii=False),
            }
        )

    def integrity(self) -> str:
        """SQLite's quick_check verdict ("ok" or the first fault), for `digest doctor`."""
        return str(self.db.execute("pragma quick_check").fetchone()[0])

    def journal_mode(self) -> str:
        """The journal mode actually in force: WAL can be refused (e.g. on a network share)."""
        return str(self.db.execute("pragma journal_mode").fetchone()[0])
