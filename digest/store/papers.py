"""Papers, their sources, source state and editions: collecting and reading papers."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from digest.errors import StoreError
from digest.models import Paper
from digest.store.base import (
    StoreBase,
    legacy_text_time,
    maybe_text_time,
    maybe_time_text,
    time_text,
)

_JSON_FIELDS = ("authors", "categories", "ai_keywords")
# Fields a later source may fill in or refresh; text fields follow the newest arXiv version.
_REFRESHED = (
    "upvotes",
    "num_comments",
    "github_repo",
    "github_stars",
    "project_page",
    "thumbnail",
    "ai_summary",
    "hf_date",
    "doi",
    "journal_ref",
    "comment",
    "pdf_url",
)
_VERSIONED = ("title", "abstract", "authors", "announce_type", "link")
_PAPER_COLUMNS = [f.name for f in fields(Paper) if f.name not in ("source", "raw_id", "sources")]
_TIMES = ("published", "first_seen", "updated_at")


@dataclass(frozen=True)
class UpsertCounts:
    """What one source's batch did to the store: the "new" and "updated" columns of collect."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0


class PapersMixin(StoreBase):
    """Papers: merged from every source, searched, and read by window."""

    def upsert_papers(self, source: str, papers: Sequence[Paper], now: datetime) -> UpsertCounts:
        """Merge one source's batch in one transaction: all of it lands, or none of it."""
        at = time_text(now, "now")
        inserts: dict[str, dict[str, Any]] = {}
        updates: dict[str, dict[str, Any]] = {}
        link_inserts: dict[str, dict[str, Any]] = {}
        link_updates: dict[str, dict[str, Any]] = {}
        unchanged = 0
        with self.write():
            ids = [p.id for p in papers]
            # one read of the stored rows for the batch, not one query per paper
            stored = self._rows_by_id(ids)
            links = {
                r["paper_id"]: r
                for r in self._select_in("paper_sources", "paper_id", ids)
                if r["source"] == source
            }
            for paper in papers:
                # a paper twice in one batch merges with its own earlier row, not the stored one
                old = inserts.get(paper.id) or updates.get(paper.id) or stored.get(paper.id)
                row = _merge(old, paper, at)
                if paper.id in inserts or old is None:
                    inserts[paper.id] = row
                elif row != old:
                    updates[paper.id] = {**row, "updated_at": at}
                elif paper.id not in updates:
                    unchanged += 1
                link = {
                    "paper_id": paper.id,
                    "source": source,
                    "raw_id": paper.raw_id,
                    "version": paper.version,
                    "announce_type": paper.announce_type,
                }
                old_link = link_inserts.get(paper.id) or links.get(paper.id)
                if paper.id in link_inserts or old_link is None:
                    link_inserts[paper.id] = {**link, "first_seen": at}
                elif any(old_link[k] != v for k, v in link.items()):
                    link_updates[paper.id] = link
            self.db.table("papers").insert_all(inserts.values(), batch_size=200)
            for paper_id, row in updates.items():
                self.db.table("papers").update(paper_id, row)
            self.db.table("paper_sources").insert_all(link_inserts.values(), batch_size=200)
            for paper_id, link in link_updates.items():
                self.db.table("paper_sources").update((paper_id, source), link)
        return UpsertCounts(len(inserts), len(updates), unchanged)

    def _rows_by_id(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Raw stored rows by paper id (JSON fields still text), for merging and loading."""
        return {r["id"]: r for r in self._select_in("papers", "id", ids)}

    def get_paper(self, paper_id: str) -> Paper | None:
        """One paper with every source that brought it, or None if never collected."""
        rows = self._rows_by_id([paper_id])
        if paper_id not in rows:
            return None
        return self._papers_with_sources([rows[paper_id]])[0]

    def _papers_with_sources(self, rows: Iterable[dict[str, Any]]) -> list[Paper]:
        """Rows as Papers, each with its sources: one query for the batch, in the rows' order."""
        rows = list(rows)
        by_paper: dict[str, list[str]] = {}
        for link in self._select_in("paper_sources", "paper_id", [r["id"] for r in rows]):
            by_paper.setdefault(link["paper_id"], []).append(link["source"])
        return [_paper_from_row(r, sorted(by_paper.get(r["id"], []))) for r in rows]

    def list_papers(
        self,
        search: str | None = None,
        limit: int | None = 50,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Paper]:
        """Stored papers, newest first; `search` is full-text over title, abstract and authors.

        Raises:
            StoreError: the FTS engine refused the search.
        """
        where: list[str] = []
        params: list[str | int] = []
        if since:
            where.append("papers.first_seen >= ?")
            params.append(time_text(since, "since"))
        if until:
            where.append("papers.first_seen < ?")
            params.append(time_text(until, "until"))
        sql = "select papers.* from papers"
        if search:
            sql += " join papers_fts on papers_fts.rowid = papers.rowid"
            where.append("papers_fts match ?")
            # quoted: the user's words are searched for, never run as FTS5 syntax
            params.append(self.db.quote_fts(search))
        if where:
            sql += " where " + " and ".join(where)
        sql += " order by papers.first_seen desc, papers.published desc, papers.id"
        if limit is not None:
            sql += " limit ?"
            params.append(limit)
        try:
            rows = list(self.db.query(sql, params))
        except sqlite3.OperationalError as ex:
            raise StoreError(f"search {search!r} failed: {ex}") from ex
        return self._papers_with_sources(rows)

    def fts_ids(self, fts_query: str, limit: int) -> list[str]:
        """Raw FTS5 syntax, best first: the per-subscriber way the match benchmark compares to."""
        sql = (
            "select papers.id from papers_fts join papers on papers.rowid = papers_fts.rowid"
            " where papers_fts match ? order by papers_fts.rank limit ?"
        )
        return [row[0] for row in self.db.execute(sql, [fts_query, limit]).fetchall()]

    def count_papers(self) -> int:
        """How many distinct papers are stored (one per paper whatever its sources)."""
        return self.db.table("papers").count

    def source_counts(self) -> dict[str, int]:
        """Papers each source has brought, for `digest stats` (a paper may count for several)."""
        sql = "select source, count(*) as n from paper_sources group by source"
        return {r["source"]: r["n"] for r in self.db.query(sql)}

    def papers_between(self, start: datetime, end: datetime | None = None) -> list[Paper]:
        """Papers first collected in (start, end]: an edition's new papers (no `end`: every
        paper collected after `start`)."""
        sql = (
            "select * from papers where first_seen > ? and first_seen <= ? order by first_seen, id"
        )
        last = "9999" if end is None else time_text(end, "end")  # after any stored time
        bounds = [time_text(start, "start"), last]
        return self._papers_with_sources(self.db.query(sql, bounds))

    def window_stamp(self, start: datetime, end: datetime) -> tuple[int, datetime | None]:
        """(how many papers, latest change) first collected in (start, end]: a web page built
        from that window is still current while this stays the same."""
        sql = (
            "select count(*), coalesce(max(updated_at), '') from papers"
            " where first_seen > ? and first_seen <= ?"
        )
        bounds = [time_text(start, "start"), time_text(end, "end")]
        count, latest = self.db.execute(sql, bounds).fetchone()
        return int(count), maybe_text_time(latest)

    def first_seen_bounds(self) -> tuple[datetime | None, datetime | None]:
        """The first and last time a paper was collected: how far back and forward the web
        pages may navigate."""
        row = self.db.execute("select min(first_seen), max(first_seen) from papers").fetchone()
        return maybe_text_time(row[0]), maybe_text_time(row[1])

    def sent_deliveries(
        self, sub_id: int, limit: int, edition: str | None = None
    ) -> list[dict[str, Any]]:
        """A subscriber's sent emails, newest first (one edition's when named): edition,
        papers (ids, as listed), matched, new_papers, sent_at (a datetime). For their web
        view and feed."""
        sql = (
            "select edition, papers, matched, new_papers, sent_at from deliveries"
            " where subscriber_id = ? and status = 'sent'"
        )
        params: list[Any] = [sub_id]
        if edition is not None:
            sql += " and edition = ?"
            params.append(edition)
        sql += " order by sent_at desc, edition desc limit ?"
        rows = list(self.db.query(sql, [*params, limit]))
        for row in rows:
            row["papers"] = json.loads(row["papers"] or "[]")
            row["sent_at"] = maybe_text_time(row["sent_at"])
        return rows

    def sent_in_other_editions(self, sub_id: int, edition: str) -> set[str]:
        """The papers this subscriber received in any edition but this one: what the web view
        of this edition's email must not count among the matches the cap left out."""
        sql = "select paper_id from sent_papers where subscriber_id = ? and edition != ?"
        return {row[0] for row in self.db.execute(sql, [sub_id, edition]).fetchall()}

    def papers_by_id(self, ids: Sequence[str]) -> list[Paper]:
        """The stored papers among these ids (unknown ids are left out), for a sent email's list."""
        return self._papers_with_sources(self._rows_by_id(ids).values())


def _paper_from_row(row: dict[str, Any], sources: list[str]) -> Paper:
    """A stored row back to a Paper: JSON lists decoded, missing text as empty strings."""
    values: dict[str, Any] = {k: row.get(k) for k in _PAPER_COLUMNS}
    for key in _JSON_FIELDS:
        values[key] = json.loads(row[key]) if row.get(key) else []
    for key in _TIMES:
        values[key] = legacy_text_time(values[key])
    values["title"] = row["title"] or ""
    values["abstract"] = row["abstract"] or ""
    return Paper(**values, sources=sources)


def _to_row(paper: Paper) -> dict[str, Any]:
    """A Paper as a row: lists as JSON text (non-ASCII kept readable in the file)."""
    row: dict[str, Any] = {k: getattr(paper, k) for k in _PAPER_COLUMNS}
    for key in _JSON_FIELDS:
        row[key] = json.dumps(row[key], ensure_ascii=False)
    for key in _TIMES:
        row[key] = maybe_time_text(row[key], key)
    return row


def _merge(old: dict[str, Any] | None, paper: Paper, now: str) -> dict[str, Any]:
    """One row from the stored one and a source's view: newest arXiv version wins the text,
    the latest HF figures win the counts, categories are unioned, first_seen never moves.
    `now` is the batch's time as stored text."""
    incoming = _to_row(paper)
    if old is None:
        incoming["first_seen"] = now
        incoming["updated_at"] = now
        return incoming
    row = dict(old)
    old_version = old.get("version")
    newer = paper.version is not None and (old_version is None or paper.version > old_version)
    same = paper.version is not None and paper.version == old_version
    for key in _VERSIONED:
        value = incoming[key]
        empty = value in (None, "", "[]")
        if not empty and (newer or same or row.get(key) in (None, "", "[]")):
            row[key] = value
    if newer:
        row["version"] = paper.version
    for key in _REFRESHED:
        if incoming[key] not in (None, "", "[]"):
            row[key] = incoming[key]
    if paper.ai_keywords:
        row["ai_keywords"] = incoming["ai_keywords"]
    if paper.categories:
        merged = list(
            dict.fromkeys([*json.loads(old.get("categories") or "[]"), *paper.categories])
        )
        row["categories"] = json.dumps(merged, ensure_ascii=False)
    for key in ("arxiv_id", "published"):
        row[key] = row.get(key) or incoming[key]
    return row
