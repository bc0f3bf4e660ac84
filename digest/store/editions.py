"""Editions' windows, fixed the first time an edition is opened so re-runs see the same papers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.store.base import StoreBase, maybe_text_time, text_time, time_text


@dataclass(frozen=True)
class EditionWindow:
    """An opened edition: its name and the window (start, end] of first-collected times whose
    papers are its new papers, fixed when it was opened. `name` is the edition's name (a date
    or an ISO week), not a time."""

    name: str
    window_start: datetime
    window_end: datetime
    opened_at: datetime

    @classmethod
    def from_row(cls, row: tuple[str, str, str, str]) -> EditionWindow:
        """(name, window_start, window_end, opened_at) as stored."""
        name, start, end, opened = row
        return cls(name, text_time(start), text_time(end), text_time(opened))


class EditionsMixin(StoreBase):
    """The `editions` table: name -> (window_start, window_end], opened once."""

    def get_edition(self, name: str) -> EditionWindow | None:
        """An edition's fixed window, if it was opened."""
        row = self.db.execute(
            "select name, window_start, window_end, opened_at from editions where name = ?",
            [name],
        ).fetchone()
        return None if row is None else EditionWindow.from_row(row)

    def latest_edition_end(self, before: str) -> datetime | None:
        """Where the latest earlier edition's window ended: the next one starts there, so no
        paper falls between two editions."""
        # names are ISO dates, so text order is time order
        sql = "select max(window_end) as end from editions where name < ?"
        end: str | None = next(self.db.query(sql, [before]))["end"]
        return maybe_text_time(end)

    def open_edition(self, name: str, now: datetime, default_start: datetime) -> EditionWindow:
        """An edition's window is fixed the first time it is opened, so re-runs see the same
        papers: from the end of the latest earlier edition (or `default_start`) to `now`."""
        with self.write():
            existing = self.get_edition(name)
            if existing:
                return existing
            previous = self.latest_edition_end(before=name)
            window = EditionWindow(name, previous or default_start, now, now)
            self.db.execute(
                "insert into editions (name, window_start, window_end, opened_at)"
                " values (?, ?, ?, ?)",
                [
                    window.name,
                    time_text(window.window_start, "default_start"),
                    time_text(window.window_end, "now"),
                    time_text(window.opened_at, "now"),
                ],
            )
            return window
