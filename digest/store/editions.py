"""Editions' windows, fixed the first time an edition is opened so re-runs see the same papers."""

from __future__ import annotations

from typing import Any

from digest.store.base import StoreBase


class EditionsMixin(StoreBase):
    """The `editions` table: name -> (window_start, window_end], opened once."""

    def get_edition(self, name: str) -> dict[str, Any] | None:
        """An edition's fixed window (name, window_start, window_end, opened_at), if opened."""
        rows = list(self.db.query("select * from editions where name = ?", [name]))
        return rows[0] if rows else None

    def latest_edition_end(self, before: str) -> str | None:
        """Where the latest earlier edition's window ended: the next one starts there, so no
        paper falls between two editions."""
        # names are ISO dates, so text order is time order
        sql = "select max(window_end) as end from editions where name < ?"
        end: str | None = next(self.db.query(sql, [before]))["end"]
        return end

    def open_edition(self, name: str, now: str, default_start: str) -> dict[str, Any]:
        """An edition's window is fixed the first time it is opened, so re-runs see the same
        papers: from the end of the latest earlier edition (or `default_start`) to `now`."""
        with self.write():
            existing = self.get_edition(name)
            if existing:
                return existing
            previous = self.latest_edition_end(before=name)
            row = {
                "name": name,
                "window_start": previous or default_start,
                "window_end": now,
                "opened_at": now,
            }
            self.db.table("editions").insert(row)
            return row
