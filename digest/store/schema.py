"""The schema: one migration a change, applied in order when a database is opened."""

from __future__ import annotations

import sqlite_utils
from sqlite_utils import Migrations

migrations = Migrations("digest")


@migrations()
def m001_papers(db: sqlite_utils.Database) -> None:
    """Papers, which sources named each (one paper may come from several) and each source's
    fetch state (ETag, failures in a row), with full-text search for the filters."""
    db.table("papers").create(
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
    db.table("papers").create_index(["first_seen"])
    db.table("paper_sources").create(
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
    db.table("paper_sources").create_index(["source"])
    db.table("source_state").create(
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
    # Triggers keep the index in step with every write; porter lets "policy" find "policies",
    # and remove_diacritics 2 folds accents that 1 misses (SQLite's unicode61 documentation).
    db.table("papers").enable_fts(
        ["title", "abstract", "authors"],
        create_triggers=True,
        tokenize="porter unicode61 remove_diacritics 2",
    )


@migrations()
def m002_subscribers(db: sqlite_utils.Database) -> None:
    """Subscribers and their history of changes, the papers each was sent (never twice) and
    the editions opened, whose windows say which papers are new."""
    db.table("subscribers").create(
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
    # One row per address in any case: RFC 5321 lets a local part be case-sensitive, but no
    # real mailbox is, and Alice@ and alice@ as two subscribers would each get the email.
    db.execute("create unique index subscribers_email on subscribers (email collate nocase)")
    db.table("subscribers").create_index(["status"])
    # No foreign key: the history outlives a removed subscriber.
    db.table("subscriber_events").create(
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
    db.table("subscriber_events").create_index(["subscriber_id"])
    # Keyed without the edition: a paper reaches a subscriber once, whichever edition had it.
    db.table("sent_papers").create(
        {"subscriber_id": int, "paper_id": str, "edition": str, "sent_at": str},
        pk=("subscriber_id", "paper_id"),
    )
    db.table("sent_papers").create_index(["paper_id"])
    db.table("editions").create(
        {"name": str, "window_start": str, "window_end": str, "opened_at": str}, pk="name"
    )


@migrations()
def m003_deliveries(db: sqlite_utils.Database) -> None:
    """The delivery log: one row per subscriber and edition, planned before anything is sent,
    so a crash or a failed run resumes where it stopped instead of mailing twice."""
    db.table("deliveries").create(
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
    # Exactly once rests on this index: a second plan of the same edition inserts nothing.
    db.execute("create unique index deliveries_once on deliveries (subscriber_id, edition)")
    db.table("deliveries").create_index(["status", "next_attempt_at"])
    db.table("deliveries").create_index(["edition"])


@migrations()
def m004_suppressions(db: sqlite_utils.Database) -> None:
    """Erased addresses, so an import or an operator cannot mail them again."""
    # Only a one-way hash of an address that asked to be erased: enough to not mail it again.
    db.table("suppressions").create({"email_hash": str, "at": str, "cause": str}, pk="email_hash")


@migrations()
def m005_alerts(db: sqlite_utils.Database) -> None:
    """Alerts already emailed to the admin, by key, so one problem is one email, not one a run."""
    db.table("alerts").create({"key": str, "sent_at": str, "subject": str}, pk="key")


@migrations()
def m006_subscriber_ids_never_reused(db: sqlite_utils.Database) -> None:
    """AUTOINCREMENT ids: an erased subscriber's id, and any link or history keyed by it, is
    never given to someone else."""
    # SQLite cannot add AUTOINCREMENT to an existing table: copy into a new one and rename.
    columns = ", ".join(c.name for c in db.table("subscribers").columns)
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


@migrations()
def m007_delivery_counts(db: sqlite_utils.Database) -> None:
    """Each delivery's match counts, fixed when it is planned."""
    # What the email says ("10 of 18 matches from 54 new papers") is fixed when it is planned,
    # so a delivery sent on a later day or by another worker states its own edition's numbers.
    db.table("deliveries").add_column("matched", int)
    db.table("deliveries").add_column("new_papers", int)


@migrations()
def m008_bounces(db: sqlite_utils.Database) -> None:
    """The bounce log and the messages already handled, for bounce and complaint processing."""
    # What came back after the relay's 250 (bounces, complaints, unsubscribe requests), one row
    # per message and subscriber it concerns; and the messages already handled, so a message
    # is acted on once however many runs (or readers) see it.
    db.table("bounce_events").create(
        {
            "id": int,
            "at": str,
            "kind": str,
            "subscriber_id": int,
            "edition": str,
            "delivery_id": int,
            "recipient": str,
            "status": str,
            "diagnostic": str,
            "origin": str,
            "report": str,
            "message_key": str,
            "matched_by": str,
            "action": str,
        },
        pk="id",
        not_null={"at", "kind", "origin", "message_key"},
    )
    db.table("bounce_events").create_index(["at"])
    db.table("bounce_events").create_index(["subscriber_id", "kind", "at"])
    db.table("bounce_events").create_index(["delivery_id"])
    db.table("processed_messages").create(
        {"key": str, "origin": str, "processed_at": str, "kind": str, "action": str}, pk="key"
    )


@migrations()
def m009_reading(db: sqlite_utils.Database) -> None:
    """What recommendations learn from and remember, per reader and per delivery."""
    # Learning from each reader: the fitted vocabulary, each paper's vector under it, what a
    # reader said (seeds, More/Less), the authors they follow and their fitted profile with
    # the fingerprint of its inputs (re-fit only when those change).
    db.table("vectorizers").create(
        {"version": str, "data": bytes, "papers": int, "fitted_at": str}, pk="version"
    )
    db.table("paper_vectors").create(
        {"paper_id": str, "version": str, "vector": bytes}, pk=("paper_id", "version")
    )
    db.table("reader_signals").create(
        {"subscriber_id": int, "paper_id": str, "kind": str, "at": str, "source": str},
        pk=("subscriber_id", "paper_id"),
        not_null={"kind", "at"},
    )
    db.table("followed_authors").create(
        {"subscriber_id": int, "author": str, "at": str}, pk=("subscriber_id", "author")
    )
    db.table("reader_profiles").create(
        {"subscriber_id": int, "profile": bytes, "fingerprint": str, "fitted_at": str},
        pk="subscriber_id",
    )
    db.table("subscribers").add_column("recommend", int)
    db.table("deliveries").add_column("recommended", str)
