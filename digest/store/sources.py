"""Each source's health and HTTP validators: what makes the next fetch conditional, what
`stats` shows and what alerts count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from digest.store.base import StoreBase, maybe_text_time, time_text


@dataclass(frozen=True)
class SourceState:
    """A source's health and HTTP validators (ETag, Last-Modified): what `stats` shows, what
    alerts count (`failures` in a row) and what makes the next fetch conditional."""

    source: str
    last_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    failures: int = 0
    last_fetched: int | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SourceState:
        """A `source_state` row, its times as datetimes."""
        times = ("last_attempt", "last_success", "last_error_at")
        return cls(**{**row, **{k: maybe_text_time(row[k]) for k in times}})


class SourceStateMixin(StoreBase):
    """The `source_state` table: one row per source ever run."""

    def get_source_state(self, source: str) -> SourceState:
        """A source's state; a fresh one (no failures, no validators) for a source never run."""
        rows = list(self.db.query("select * from source_state where source = ?", [source]))
        return SourceState.from_row(rows[0]) if rows else SourceState(source)

    def all_source_states(self) -> list[SourceState]:
        """Every source ever run, by name: the health table of `stats` and the alert check."""
        rows = self.db.query("select * from source_state order by 1")
        return [SourceState.from_row(r) for r in rows]

    def record_source_success(
        self,
        source: str,
        now: datetime,
        fetched: int,
        url: str | None,
        etag: str | None,
        last_modified: str | None,
    ) -> None:
        """A fetch that landed: the failure streak ends and its validators are kept for the
        next conditional request."""
        at = time_text(now, "now")
        with self.write():
            self.db.table("source_state").upsert(
                {
                    "source": source,
                    "last_url": url,
                    "etag": etag,
                    "last_modified": last_modified,
                    "last_attempt": at,
                    "last_success": at,
                    "last_fetched": fetched,
                    "failures": 0,
                },
                pk="source",
            )

    def record_source_failure(self, source: str, now: datetime, error: str) -> None:
        """A failed fetch: one more in a row (alerts fire on the streak), validators kept."""
        at = time_text(now, "now")
        with self.write():  # read and increment in one transaction: two runs never lose one
            old = self.get_source_state(source)
            self.db.table("source_state").upsert(
                {
                    "source": source,
                    "last_attempt": at,
                    "last_error": error,
                    "last_error_at": at,
                    "failures": old.failures + 1,
                },
                pk="source",
            )
