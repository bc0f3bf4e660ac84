"""The SQLite schema, its migrations and every SQL statement of the project.

Nothing else speaks SQL. Writes run in short `BEGIN IMMEDIATE` transactions so the web process and
the cron job can share the file (a deferred transaction that upgrades to a write cannot wait).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from digest.errors import StoreError
from digest.models import Paper, Subscriber

BUSY_TIMEOUT_MS = 10_000
migrations = Migrations("digest")

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
_SUBSCRIBER_JSON = ("queries", "topics")
_SUBSCRIBER_COLUMNS = [f.name for f in fields(Subscriber)]
_QUERIES_AT = _SUBSCRIBER_COLUMNS.index("queries")
_TOPICS_AT = _SUBSCRIBER_COLUMNS.index("topics")
_ID_AT = _SUBSCRIBER_COLUMNS.index("id")
_PAPER_COLUMNS = [f.name for f in fields(Paper) if f.name not in ("source", "raw_id", "sources")]


@migrations()
def m001_papers(db: sqlite_utils.Database) -> None:
    db["papers"].create(
        {
            "id": str,
            "arxiv_id": str,
            "version": int,
            "title": str,
            "abstract": str,
            "authors": str,
            "categories": str,
            "announce_type": str,
            "published": str,
            "link": str,
            "pdf_url": str,
            "doi": str,
            "journal_ref": str,
            "comment": str,
            "upvotes": int,
            "num_comments": int,
            "github_repo": str,
            "github_stars": int,
            "project_page": str,
            "thumbnail": str,
            "ai_summary": str,
            "ai_keywords": str,
            "hf_date": str,
            "first_seen": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"title", "first_seen"},
    )
    db["papers"].create_index(["first_seen"])
    db["paper_sources"].create(
        {
            "paper_id": str,
            "source": str,
            "raw_id": str,
            "version": int,
            "announce_type": str,
            "first_seen": str,
        },
        pk=("paper_id", "source"),
        foreign_keys=[("paper_id", "papers", "id")],
    )
    db["paper_sources"].create_index(["source"])
    db["source_state"].create(
        {
            "source": str,
            "last_url": str,
            "etag": str,
            "last_modified": str,
            "last_attempt": str,
            "last_success": str,
            "last_error": str,
            "last_error_at": str,
            "failures": int,
            "last_fetched": int,
        },
        pk="source",
        defaults={"failures": 0},
    )
    db["papers"].enable_fts(
        ["title", "abstract", "authors"],
        create_triggers=True,
        tokenize="porter unicode61 remove_diacritics 2",
    )


@migrations()
def m002_subscribers(db: sqlite_utils.Database) -> None:
    db["subscribers"].create(
        {
            "id": int,
            "email": str,
            "status": str,
            "queries": str,
            "topics": str,
            "cadence": str,
            "weekday": str,
            "hour": int,
            "tz": str,
            "max_papers": int,
            "min_upvotes": int,
            "bounces": int,
            "paused_until": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"email", "status"},
        defaults={"bounces": 0},
    )
    db.execute("create unique index subscribers_email on subscribers (email collate nocase)")
    db["subscribers"].create_index(["status"])
    # No foreign key: the history outlives a removed subscriber.
    db["subscriber_events"].create(
        {
            "id": int,
            "subscriber_id": int,
            "email": str,
            "at": str,
            "event": str,
            "cause": str,
            "detail": str,
        },
        pk="id",
    )
    db["subscriber_events"].create_index(["subscriber_id"])
    db["sent_papers"].create(
        {"subscriber_id": int, "paper_id": str, "edition": str, "sent_at": str},
        pk=("subscriber_id", "paper_id"),
    )
    db["sent_papers"].create_index(["paper_id"])
    db["editions"].create(
        {"name": str, "window_start": str, "window_end": str, "opened_at": str}, pk="name"
    )


@migrations()
def m003_deliveries(db: sqlite_utils.Database) -> None:
    db["deliveries"].create(
        {
            "id": int,
            "subscriber_id": int,
            "email": str,
            "edition": str,
            "status": str,
            "papers": str,
            "attempts": int,
            "last_reply": str,
            "message_id": str,
            "possible_duplicate": int,
            "created_at": str,
            "updated_at": str,
            "sent_at": str,
            "next_attempt_at": str,
        },
        pk="id",
        not_null={"subscriber_id", "edition", "status"},
        defaults={"attempts": 0, "possible_duplicate": 0},
    )
    db.execute("create unique index deliveries_once on deliveries (subscriber_id, edition)")
    db["deliveries"].create_index(["status", "next_attempt_at"])
    db["deliveries"].create_index(["edition"])


@migrations()
def m004_suppressions(db: sqlite_utils.Database) -> None:
    # Only a keyed hash of an address that asked to be erased: enough to not mail it again.
    db["suppressions"].create({"email_hash": str, "at": str, "cause": str}, pk="email_hash")


@migrations()
def m005_alerts(db: sqlite_utils.Database) -> None:
    db["alerts"].create({"key": str, "sent_at": str, "subject": str}, pk="key")


@migrations()
def m006_subscriber_ids_never_reused(db: sqlite_utils.Database) -> None:
    # AUTOINCREMENT: an erased subscriber's id (and the history keyed by it) is never reused.
    columns = ", ".join(c.name for c in db["subscribers"].columns)
    db.execute(
        "create table subscribers_new (id integer primary key autoincrement, email text not null,"
        " status text not null, queries text, topics text, cadence text, weekday text,"
        " hour integer, tz text, max_papers integer, min_upvotes integer,"
        " bounces integer default 0, paused_until text, created_at text, updated_at text)"
    )
    db.execute(f"insert into subscribers_new ({columns}) select {columns} from subscribers")
    db.execute("drop table subscribers")
    db.execute("alter table subscribers_new rename to subscribers")
    db.execute("create unique index subscribers_email on subscribers (email collate nocase)")
    db.execute("create index idx_subscribers_status on subscribers (status)")


@dataclass(frozen=True)
class UpsertCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class SourceState:
    source: str
    last_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_attempt: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    failures: int = 0
    last_fetched: int | None = None


class Store:
    """One open database. Cheap to open; migrations run on open."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._loaded_ids: tuple[str, ...] = ()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self.db = sqlite_utils.Database(conn)
            with self.write():
                migrations.apply(self.db)
        except (sqlite3.Error, OSError) as ex:
            raise StoreError(f"{self.path}: cannot open database: {ex}") from ex

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A short write transaction, taken up front so concurrent writers wait, not fail."""
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield self.db
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def schema_version(self) -> int:
        return len(migrations.applied(self.db))

    # papers -----------------------------------------------------------------

    def upsert_papers(self, source: str, papers: Sequence[Paper], now: str) -> UpsertCounts:
        """Merge one source's batch in one transaction: all of it lands, or none of it."""
        inserts: dict[str, dict[str, Any]] = {}
        updates: dict[str, dict[str, Any]] = {}
        link_inserts: dict[str, dict[str, Any]] = {}
        link_updates: dict[str, dict[str, Any]] = {}
        unchanged = 0
        with self.write():
            ids = [p.id for p in papers]
            stored = self._rows_by_id(ids)
            links = {
                r["paper_id"]: r
                for r in self._select_in("paper_sources", "paper_id", ids)
                if r["source"] == source
            }
            for paper in papers:
                old = inserts.get(paper.id) or updates.get(paper.id) or stored.get(paper.id)
                row = _merge(old, paper, now)
                if paper.id in inserts or old is None:
                    inserts[paper.id] = row
                elif row != old:
                    updates[paper.id] = {**row, "updated_at": now}
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
                    link_inserts[paper.id] = {**link, "first_seen": now}
                elif any(old_link[k] != v for k, v in link.items()):
                    link_updates[paper.id] = link
            self.db["papers"].insert_all(inserts.values(), batch_size=200)
            for paper_id, row in updates.items():
                self.db["papers"].update(paper_id, row)
            self.db["paper_sources"].insert_all(link_inserts.values(), batch_size=200)
            for paper_id, link in link_updates.items():
                self.db["paper_sources"].update((paper_id, source), link)
        return UpsertCounts(len(inserts), len(updates), unchanged)

    def _select_in(self, table: str, column: str, values: Sequence[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        unique = list(dict.fromkeys(values))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"select * from [{table}] where [{column}] in ({marks})"
            rows.extend(self.db.query(sql, chunk))
        return rows

    def _rows_by_id(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self._select_in("papers", "id", ids)}

    def get_paper(self, paper_id: str) -> Paper | None:
        rows = self._rows_by_id([paper_id])
        if paper_id not in rows:
            return None
        return self._papers_with_sources([rows[paper_id]])[0]

    def _papers_with_sources(self, rows: Iterable[dict[str, Any]]) -> list[Paper]:
        rows = list(rows)
        by_paper: dict[str, list[str]] = {}
        for link in self._select_in("paper_sources", "paper_id", [r["id"] for r in rows]):
            by_paper.setdefault(link["paper_id"], []).append(link["source"])
        return [_paper_from_row(r, sorted(by_paper.get(r["id"], []))) for r in rows]

    def list_papers(
        self,
        search: str | None = None,
        limit: int | None = 50,
        since: str | None = None,
        until: str | None = None,
    ) -> list[Paper]:
        """Stored papers, newest first; `search` is full-text over title, abstract and authors."""
        where, params = [], []
        if since:
            where.append("papers.first_seen >= ?")
            params.append(since)
        if until:
            where.append("papers.first_seen < ?")
            params.append(until)
        sql = "select papers.* from papers"
        if search:
            sql += " join papers_fts on papers_fts.rowid = papers.rowid"
            where.append("papers_fts match ?")
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
        return self.db["papers"].count

    def source_counts(self) -> dict[str, int]:
        sql = "select source, count(*) as n from paper_sources group by source"
        return {r["source"]: r["n"] for r in self.db.query(sql)}

    # source state -----------------------------------------------------------

    def get_source_state(self, source: str) -> SourceState:
        rows = list(self.db.query("select * from source_state where source = ?", [source]))
        return SourceState(**rows[0]) if rows else SourceState(source)

    def all_source_states(self) -> list[SourceState]:
        return [SourceState(**r) for r in self.db.query("select * from source_state order by 1")]

    def record_source_success(
        self,
        source: str,
        now: str,
        fetched: int,
        url: str | None,
        etag: str | None,
        last_modified: str | None,
    ) -> None:
        with self.write():
            self.db["source_state"].upsert(
                {
                    "source": source,
                    "last_url": url,
                    "etag": etag,
                    "last_modified": last_modified,
                    "last_attempt": now,
                    "last_success": now,
                    "last_fetched": fetched,
                    "failures": 0,
                },
                pk="source",
            )

    def record_source_failure(self, source: str, now: str, error: str) -> None:
        with self.write():
            old = self.get_source_state(source)
            self.db["source_state"].upsert(
                {
                    "source": source,
                    "last_attempt": now,
                    "last_error": error,
                    "last_error_at": now,
                    "failures": old.failures + 1,
                },
                pk="source",
            )

    # subscribers --------------------------------------------------------------

    def add_subscriber(self, sub: Subscriber, now: str, cause: str) -> Subscriber:
        """Insert and record the event; a taken address is a StoreError naming it."""
        row = _subscriber_row(sub)
        row.pop("id")
        row.update(created_at=now, updated_at=now)
        with self.write():
            try:
                new_id = self.db["subscribers"].insert(row).last_pk
            except sqlite3.IntegrityError as ex:
                raise StoreError(f"{sub.email}: already a subscriber") from ex
            self._event(int(new_id), sub.email, now, "created", cause, {"status": sub.status})
        added = self.get_subscriber(int(new_id))
        assert added is not None
        return added

    def get_subscriber(self, key: int | str) -> Subscriber | None:
        column = "id" if isinstance(key, int) else "email"
        sql = f"select * from subscribers where {column} = ? collate nocase"
        rows = list(self.db.query(sql, [key]))
        return _subscriber_from_row(rows[0]) if rows else None

    def update_subscriber(
        self, sub_id: int, changes: dict[str, Any], now: str, event: str, cause: str
    ) -> Subscriber:
        """Apply changes and record what changed from what; no change records nothing."""
        with self.write():
            old = self.get_subscriber(sub_id)
            if old is None:
                raise StoreError(f"no subscriber with id {sub_id}")
            before = _subscriber_row(old)
            after = {**before, **_subscriber_row(Subscriber(**{**_fields(old), **changes}))}
            diff = {k: [before[k], after[k]] for k in after if after[k] != before[k]}
            if diff:
                after["updated_at"] = now
                self.db["subscribers"].update(sub_id, after)
                self._event(sub_id, old.email, now, event, cause, diff)
        updated = self.get_subscriber(sub_id)
        assert updated is not None
        return updated

    def delete_subscriber(self, sub_id: int, now: str, cause: str) -> None:
        """Erase the subscriber and what was sent to them; the event log keeps the removal."""
        with self.write():
            old = self.get_subscriber(sub_id)
            if old is None:
                raise StoreError(f"no subscriber with id {sub_id}")
            self.db.execute("delete from sent_papers where subscriber_id = ?", [sub_id])
            self.db.execute("delete from deliveries where subscriber_id = ?", [sub_id])
            self.db.execute("delete from subscribers where id = ?", [sub_id])
            self._event(sub_id, old.email, now, "removed", cause, {"status": old.status})

    def _event(
        self, sub_id: int, email: str, now: str, event: str, cause: str, detail: Any
    ) -> None:
        self.db["subscriber_events"].insert(
            {
                "subscriber_id": sub_id,
                "email": email,
                "at": now,
                "event": event,
                "cause": cause,
                "detail": json.dumps(detail, ensure_ascii=False),
            }
        )

    def record_event(self, sub_id: int, email: str, now: str, event: str, cause: str) -> None:
        """Something happened to a subscriber that changed nothing stored (a failed send)."""
        with self.write():
            self._event(sub_id, email, now, event, cause, {})

    def subscriber_events(self, sub_id: int) -> list[dict[str, Any]]:
        sql = "select * from subscriber_events where subscriber_id = ? order by id"
        return [{**r, "detail": json.loads(r["detail"])} for r in self.db.query(sql, [sub_id])]

    def list_subscribers(self, status: str | None = None) -> list[Subscriber]:
        return list(self.iter_subscribers((status,) if status else None))

    def iter_subscribers(
        self, statuses: Sequence[str] | None = None, batch: int = 1000
    ) -> Iterator[Subscriber]:
        """Every subscriber in id order, a page at a time: never the whole table in memory."""
        last = 0
        where = ""
        params: list[Any] = []
        if statuses:
            where = f" and status in ({','.join('?' * len(statuses))})"
            params = list(statuses)
        columns = ", ".join(_SUBSCRIBER_COLUMNS)
        sql = f"select {columns} from subscribers where id > ?{where} order by id limit {batch}"
        loads = json.loads
        while True:
            rows = self.db.execute(sql, [last, *params]).fetchall()
            if not rows:
                return
            for row in rows:
                # Positional, in field order: this loop feeds the match over every subscriber.
                values = list(row)
                for at in (_QUERIES_AT, _TOPICS_AT):
                    text = values[at]
                    values[at] = loads(text) if text and text != "[]" else []
                yield Subscriber(*values)
            last = rows[-1][_ID_AT]

    def count_subscribers(self) -> dict[str, int]:
        sql = "select status, count(*) as n from subscribers group by status"
        return {r["status"]: r["n"] for r in self.db.query(sql)}

    def add_subscribers_bulk(self, subs: Iterable[Subscriber], now: str, cause: str) -> int:
        """Many at once in one transaction (imports, benchmarks); events recorded for each."""
        count = 0
        with self.write():
            for sub in subs:
                row = _subscriber_row(sub)
                row.pop("id")
                row.update(created_at=now, updated_at=now)
                try:
                    new_id = self.db["subscribers"].insert(row).last_pk
                except sqlite3.IntegrityError as ex:
                    raise StoreError(f"{sub.email}: already a subscriber") from ex
                self._event(int(new_id), sub.email, now, "created", cause, {"status": sub.status})
                count += 1
        return count

    # what was sent -------------------------------------------------------------

    def mark_papers_sent(
        self, sub_id: int, paper_ids: Sequence[str], edition: str, now: str
    ) -> None:
        """Called once the server accepted the message: only then is a paper sent."""
        with self.write():
            self.db["sent_papers"].insert_all(
                (
                    {"subscriber_id": sub_id, "paper_id": p, "edition": edition, "sent_at": now}
                    for p in paper_ids
                ),
                ignore=True,
            )

    def sent_among(self, sub_ids: Sequence[int], paper_ids: Sequence[str]) -> dict[int, set[str]]:
        """Which of these papers each of these subscribers already received."""
        found: dict[int, set[str]] = {}
        if not sub_ids or not paper_ids:
            return found
        wanted = tuple(paper_ids)
        if wanted != self._loaded_ids:
            self.db.execute("create temp table if not exists _ids (id text primary key)")
            with self.db.atomic():  # deferred: touches only the temp database, locks nothing
                self.db.execute("delete from _ids")
                self.db.conn.executemany(
                    "insert or ignore into _ids values (?)", [(p,) for p in wanted]
                )
            self._loaded_ids = wanted
        for start in range(0, len(sub_ids), 500):
            chunk = list(sub_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            sql = (
                "select subscriber_id, paper_id from sent_papers join _ids on _ids.id = paper_id"
                f" where subscriber_id in ({marks})"
            )
            for row in self.db.execute(sql, chunk).fetchall():
                found.setdefault(row[0], set()).add(row[1])
        return found

    def sent_counts(self, sub_id: int) -> tuple[int, int]:
        """(editions that reached this subscriber, papers sent to them)."""
        sql = "select count(distinct edition), count(*) from sent_papers where subscriber_id = ?"
        editions, papers = self.db.execute(sql, [sub_id]).fetchone()
        return int(editions), int(papers)

    # editions -------------------------------------------------------------------

    def get_edition(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db.query("select * from editions where name = ?", [name]))
        return rows[0] if rows else None

    def latest_edition_end(self, before: str) -> str | None:
        sql = "select max(window_end) as end from editions where name < ?"
        return next(self.db.query(sql, [before]))["end"]

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
            self.db["editions"].insert(row)
            return row

    def papers_between(self, start: str, end: str) -> list[Paper]:
        """Papers first collected in (start, end]: an edition's new papers."""
        sql = (
            "select * from papers where first_seen > ? and first_seen <= ? order by first_seen, id"
        )
        return self._papers_with_sources(self.db.query(sql, [start, end]))

    # deliveries ------------------------------------------------------------------

    def has_delivery(self, sub_id: int, edition: str) -> bool:
        sql = "select 1 from deliveries where subscriber_id = ? and edition = ?"
        return self.db.execute(sql, [sub_id, edition]).fetchone() is not None

    def delivered_editions(
        self, sub_ids: Sequence[int], editions: Sequence[str]
    ) -> set[tuple[int, str]]:
        """Which (subscriber, edition) pairs already have a delivery row, for a batch."""
        found: set[tuple[int, str]] = set()
        if not sub_ids or not editions:
            return found
        for start in range(0, len(sub_ids), 500):
            chunk = list(sub_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            emarks = ",".join("?" * len(editions))
            sql = (
                f"select subscriber_id, edition from deliveries where subscriber_id in ({marks})"
                f" and edition in ({emarks})"
            )
            found.update(tuple(r) for r in self.db.execute(sql, [*chunk, *editions]).fetchall())
        return found

    def plan_delivery(
        self,
        sub_id: int,
        email: str,
        edition: str,
        paper_ids: Sequence[str],
        message_id: str,
        now: str,
        status: str = "pending",
        reply: str | None = None,
    ) -> int | None:
        """Record who gets which papers for an edition, once: None if it was already planned."""
        with self.write():
            cursor = self.db.execute(
                "insert or ignore into deliveries (subscriber_id, email, edition, status, papers,"
                " attempts, last_reply, message_id, possible_duplicate, created_at, updated_at)"
                " values (?, ?, ?, ?, ?, 0, ?, ?, 0, ?, ?)",
                [
                    sub_id,
                    email,
                    edition,
                    status,
                    json.dumps(list(paper_ids)),
                    reply,
                    message_id,
                    now,
                    now,
                ],
            )
            return cursor.lastrowid if cursor.rowcount else None

    def plan_deliveries(self, rows: Sequence[dict[str, Any]], now: str) -> int:
        """Plan many deliveries in one transaction; ones already planned are left alone."""
        with self.write():
            cursor = self.db.conn.executemany(
                "insert or ignore into deliveries (subscriber_id, email, edition, status, papers,"
                " attempts, last_reply, message_id, possible_duplicate, created_at, updated_at)"
                " values (?, ?, ?, ?, ?, 0, ?, ?, 0, ?, ?)",
                [
                    (
                        r["subscriber_id"],
                        r["email"],
                        r["edition"],
                        r["status"],
                        json.dumps(list(r["papers"])),
                        r.get("reply"),
                        r["message_id"],
                        now,
                        now,
                    )
                    for r in rows
                ],
            )
            return cursor.rowcount

    def subscribers_by_id(self, ids: Sequence[int]) -> dict[int, Subscriber]:
        columns = ", ".join(_SUBSCRIBER_COLUMNS)
        found: dict[int, Subscriber] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            sql = f"select {columns} from subscribers where id in ({marks})"
            for row in self.db.execute(sql, chunk).fetchall():
                values = list(row)
                for at in (_QUERIES_AT, _TOPICS_AT):
                    values[at] = json.loads(values[at] or "[]")
                sub = Subscriber(*values)
                found[sub.id or 0] = sub
        return found

    def papers_by_id(self, ids: Sequence[str]) -> list[Paper]:
        return self._papers_with_sources(self._rows_by_id(ids).values())

    def resume_expired_pauses(self, now: str) -> list[str]:
        """Subscribers paused `until` a time that has passed become active again."""
        with self.write():
            rows = self.db.execute(
                "select id, email from subscribers where status = 'paused'"
                " and paused_until is not null and paused_until <= ?",
                [now],
            ).fetchall()
            for sub_id, email in rows:
                self.db.execute(
                    "update subscribers set status = 'active', paused_until = null,"
                    " updated_at = ? where id = ?",
                    [now, sub_id],
                )
                self._event(sub_id, email, now, "active", "pause ended", {})
        return [r[1] for r in rows]

    def recover_interrupted(self, now: str, shard: tuple[int, int] | None = None) -> int:
        """Deliveries a killed run left `sending` go back to pending, flagged: the server may
        have accepted them just before the crash, so a resend is a possible duplicate. Call it
        only while holding the lock of everything it covers (all, or one shard)."""
        sql = (
            "update deliveries set status = 'pending', possible_duplicate = 1,"
            " updated_at = ? where status = 'sending'"
        )
        params: list[Any] = [now]
        if shard:
            sql += " and subscriber_id % ? = ?"
            params += [shard[1], shard[0] - 1]
        with self.write():
            return self.db.execute(sql, params).rowcount

    # operations --------------------------------------------------------------------

    def alert_sent_since(self, key: str, since: str) -> bool:
        row = self.db.execute("select sent_at from alerts where key = ?", [key]).fetchone()
        return row is not None and row[0] >= since

    def record_alert(self, key: str, subject: str, now: str) -> None:
        with self.write():
            self.db.execute(
                "insert or replace into alerts (key, sent_at, subject) values (?, ?, ?)",
                [key, now, subject],
            )

    def sends_per_day(self, days: int, now: str) -> list[tuple[str, int, int]]:
        """(day, sent, failed) for the last `days` days, newest first."""
        sql = (
            "select substr(updated_at, 1, 10) as day, sum(status = 'sent'), sum(status = 'failed')"
            " from deliveries where updated_at >= date(?, ?) group by day order by day desc"
        )
        return [tuple(r) for r in self.db.execute(sql, [now, f"-{days} days"]).fetchall()]

    def recent_failures(self, limit: int = 10) -> list[dict[str, Any]]:
        sql = (
            "select email, edition, last_reply, updated_at from deliveries"
            " where status = 'failed' order by updated_at desc limit ?"
        )
        return list(self.db.query(sql, [limit]))

    def topic_counts(self) -> dict[str, int]:
        sql = (
            "select value, count(*) from subscribers, json_each(subscribers.topics)"
            " where status in ('active', 'paused') group by value order by 2 desc"
        )
        return {r[0]: r[1] for r in self.db.execute(sql).fetchall()}

    def integrity(self) -> str:
        return str(self.db.execute("pragma quick_check").fetchone()[0])

    def journal_mode(self) -> str:
        return str(self.db.execute("pragma journal_mode").fetchone()[0])

    def due_deliveries(
        self, now: str, shard: tuple[int, int] | None = None, after_id: int = 0, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Pending deliveries whose retry time has come, in id order, a page at a time."""
        sql = (
            "select * from deliveries where status = 'pending' and id > ?"
            " and (next_attempt_at is null or next_attempt_at <= ?)"
        )
        params: list[Any] = [after_id, now]
        if shard:
            sql += " and subscriber_id % ? = ?"
            params += [shard[1], shard[0] - 1]
        sql += " order by id limit ?"
        rows = list(self.db.query(sql, [*params, limit]))
        for row in rows:
            row["papers"] = json.loads(row["papers"] or "[]")
        return rows

    def claim_delivery(self, delivery_id: int, now: str) -> bool:
        """pending -> sending, committed before the SMTP transaction starts; False if another
        worker (or an unsubscribe) got there first."""
        with self.write():
            cursor = self.db.execute(
                "update deliveries set status = 'sending', attempts = attempts + 1,"
                " updated_at = ? where id = ? and status = 'pending'",
                [now, delivery_id],
            )
            return cursor.rowcount == 1

    def mark_sent(
        self,
        delivery_id: int,
        sub_id: int,
        paper_ids: Sequence[str],
        edition: str,
        reply: str,
        now: str,
    ) -> None:
        """Accepted by the server: the delivery and its papers are sent, in one transaction."""
        with self.write():
            self.db.execute(
                "update deliveries set status = 'sent', last_reply = ?, sent_at = ?,"
                " updated_at = ? where id = ?",
                [reply, now, now, delivery_id],
            )
            self.db.conn.executemany(
                "insert or ignore into sent_papers (subscriber_id, paper_id, edition, sent_at)"
                " values (?, ?, ?, ?)",
                [(sub_id, p, edition, now) for p in paper_ids],
            )

    def mark_retry(self, delivery_id: int, reply: str, next_attempt_at: str, now: str) -> None:
        with self.write():
            self.db.execute(
                "update deliveries set status = 'pending', last_reply = ?, next_attempt_at = ?,"
                " updated_at = ? where id = ?",
                [reply, next_attempt_at, now, delivery_id],
            )

    def mark_skipped(self, delivery_id: int, reason: str, now: str) -> None:
        with self.write():
            self.db.execute(
                "update deliveries set status = 'skipped', last_reply = ?, updated_at = ?"
                " where id = ?",
                [reason, now, delivery_id],
            )

    def mark_failed(
        self, delivery_id: int, sub_id: int, reply: str, now: str, bounce_limit: int | None
    ) -> bool:
        """A permanent failure; with `bounce_limit`, count a bounce and stop mailing a
        subscriber who reached it. True when the subscriber became `bounced`."""
        with self.write():
            self.db.execute(
                "update deliveries set status = 'failed', last_reply = ?, updated_at = ?"
                " where id = ?",
                [reply, now, delivery_id],
            )
            if bounce_limit is None:
                return False
            self.db.execute("update subscribers set bounces = bounces + 1 where id = ?", [sub_id])
            row = self.db.execute(
                "select email, bounces, status from subscribers where id = ?", [sub_id]
            ).fetchone()
            if row is None or row[1] < bounce_limit or row[2] == "bounced":
                return False
            self.db.execute(
                "update subscribers set status = 'bounced', updated_at = ? where id = ?",
                [now, sub_id],
            )
            self._event(
                sub_id, row[0], now, "bounced", f"{row[1]} permanent failures", {"reply": reply}
            )
            return True

    def subscriber_status(self, sub_id: int) -> str | None:
        row = self.db.execute("select status from subscribers where id = ?", [sub_id]).fetchone()
        return row[0] if row else None

    def delivery(self, sub_id: int, edition: str) -> dict[str, Any] | None:
        rows = list(
            self.db.query(
                "select * from deliveries where subscriber_id = ? and edition = ?",
                [sub_id, edition],
            )
        )
        if not rows:
            return None
        rows[0]["papers"] = json.loads(rows[0]["papers"] or "[]")
        return rows[0]

    def delivery_counts(self, since: str | None = None) -> dict[str, int]:
        sql = "select status, count(*) from deliveries"
        params: list[Any] = []
        if since:
            sql += " where updated_at >= ?"
            params.append(since)
        sql += " group by status"
        return {r[0]: r[1] for r in self.db.execute(sql, params).fetchall()}

    # erasure and suppression ------------------------------------------------------

    def erase_subscriber(self, sub_id: int, email_hash: str, now: str, cause: str) -> None:
        """Delete my data: the subscriber, their deliveries, what was sent and their history
        go; a suppression hash stays so the address is not mailed again unless it subscribes
        anew."""
        with self.write():
            for table in ("sent_papers", "deliveries", "subscriber_events"):
                self.db.execute(f"delete from {table} where subscriber_id = ?", [sub_id])
            self.db.execute("delete from subscribers where id = ?", [sub_id])
            self.db.execute(
                "insert or replace into suppressions (email_hash, at, cause) values (?, ?, ?)",
                [email_hash, now, cause],
            )

    def is_suppressed(self, email_hash: str) -> bool:
        sql = "select 1 from suppressions where email_hash = ?"
        return self.db.execute(sql, [email_hash]).fetchone() is not None

    def lift_suppression(self, email_hash: str) -> None:
        with self.write():
            self.db.execute("delete from suppressions where email_hash = ?", [email_hash])

    def purge_pending(self, older_than: str, now: str) -> int:
        """Signups left unconfirmed since the cut-off are removed (the removal is logged);
        the clock starts at the latest (re)signup, not at the first one."""
        with self.write():
            rows = self.db.execute(
                "select id, email from subscribers where status = 'pending' and updated_at < ?",
                [older_than],
            ).fetchall()
            for sub_id, email in rows:
                self.db.execute("delete from deliveries where subscriber_id = ?", [sub_id])
                self.db.execute("delete from sent_papers where subscriber_id = ?", [sub_id])
                self.db.execute("delete from subscribers where id = ?", [sub_id])
                self._event(sub_id, email, now, "removed", "never confirmed", {})
        return len(rows)


def _fields(sub: Subscriber) -> dict[str, Any]:
    return {f.name: getattr(sub, f.name) for f in fields(Subscriber)}


def _subscriber_row(sub: Subscriber) -> dict[str, Any]:
    row = _fields(sub)
    for key in _SUBSCRIBER_JSON:
        row[key] = json.dumps(row[key], ensure_ascii=False)
    return row


def _subscriber_from_row(row: dict[str, Any]) -> Subscriber:
    values = dict(row)
    for key in _SUBSCRIBER_JSON:
        values[key] = json.loads(row[key] or "[]")
    return Subscriber(**values)


def _paper_from_row(row: dict[str, Any], sources: list[str]) -> Paper:
    values = {k: row.get(k) for k in _PAPER_COLUMNS}
    for key in _JSON_FIELDS:
        values[key] = json.loads(row[key]) if row.get(key) else []
    values["title"] = row["title"] or ""
    values["abstract"] = row["abstract"] or ""
    return Paper(**values, sources=sources)


def _to_row(paper: Paper) -> dict[str, Any]:
    row: dict[str, Any] = {k: getattr(paper, k) for k in _PAPER_COLUMNS}
    for key in _JSON_FIELDS:
        row[key] = json.dumps(row[key], ensure_ascii=False)
    return row


def _merge(old: dict[str, Any] | None, paper: Paper, now: str) -> dict[str, Any]:
    """One row from the stored one and a source's view: newest arXiv version wins the text,
    the latest HF figures win the counts, categories are unioned, first_seen never moves."""
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
