"""What reached whom: the papers each subscriber was sent, so nobody gets a paper twice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from digest.store.base import StoreBase, time_text


class SentPapersMixin(StoreBase):
    """The `sent_papers` table, written with each accepted delivery, read by matching."""

    def mark_papers_sent(
        self, sub_id: int, paper_ids: Sequence[str], edition: str, now: datetime
    ) -> None:
        """Called once the server accepted the message: only then is a paper sent."""
        at = time_text(now, "now")
        with self.write():
            self.db.table("sent_papers").insert_all(
                (
                    {"subscriber_id": sub_id, "paper_id": p, "edition": edition, "sent_at": at}
                    for p in paper_ids
                ),
                ignore=True,  # a resend after a crash must not fail on papers already marked
            )

    def sent_among(self, sub_ids: Sequence[int], paper_ids: Sequence[str]) -> dict[int, set[str]]:
        """Which of these papers each of these subscribers already received."""
        found: dict[int, set[str]] = {}
        if not sub_ids or not paper_ids:
            return found
        self._load_ids(paper_ids)
        sql = (
            "select subscriber_id, paper_id from sent_papers join _ids on _ids.id = paper_id"
            " where subscriber_id in ({marks})"
        )
        for row in self._rows_in(sql, sub_ids):
            found.setdefault(row[0], set()).add(row[1])
        return found

    def sent_by_subscriber(self, paper_ids: Sequence[str]) -> dict[int, set[str]]:
        """Which of these papers (an edition's) each subscriber already received: one join
        through the paper index, however many subscribers and however long their history."""
        found: dict[int, set[str]] = {}
        if not paper_ids:
            return found
        self._load_ids(paper_ids)
        # CROSS JOIN keeps _ids outside: SQLite would otherwise scan the whole history.
        sql = (
            "select subscriber_id, paper_id from _ids cross join sent_papers"
            " on sent_papers.paper_id = _ids.id"
        )
        for sub_id, paper_id in self.db.execute(sql):
            found.setdefault(sub_id, set()).add(paper_id)
        return found

    def _load_ids(self, paper_ids: Sequence[str]) -> None:
        """The temp table `_ids` holds these paper ids (reloaded only when they change)."""
        wanted = tuple(paper_ids)
        if wanted != self._loaded_ids:
            self.db.execute("create temp table if not exists _ids (id text primary key)")
            with self.db.atomic():  # deferred: touches only the temp database, locks nothing
                self.db.execute("delete from _ids")
                self.db.conn.executemany(
                    "insert or ignore into _ids values (?)", [(p,) for p in wanted]
                )
            self._loaded_ids = wanted

    def sent_counts(self, sub_id: int) -> tuple[int, int]:
        """(editions that reached this subscriber, papers sent to them)."""
        sql = "select count(distinct edition), count(*) from sent_papers where subscriber_id = ?"
        editions, papers = self.db.execute(sql, [sub_id]).fetchone()
        return int(editions), int(papers)
