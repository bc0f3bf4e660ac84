"""The store: schema and migrations on open, WAL, and FTS kept in sync with the papers."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.errors import StoreError
from digest.models import Paper
from digest.store import DeliveryStatus, PlannedDelivery, Store, migrations

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)


def test_opening_creates_the_schema_once_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "digest.db"
    with Store(path) as store:
        assert store.schema_version() == len(migrations.pending(store.db)) + len(
            migrations.applied(store.db)
        )
        assert {"papers", "paper_sources", "source_state", "papers_fts"} <= set(
            store.db.table_names()
        )
        assert next(store.db.query("pragma journal_mode"))["journal_mode"] == "wal"
        version = store.schema_version()
    with Store(path) as again:
        assert again.schema_version() == version
        assert again.db.execute("pragma busy_timeout").fetchone()[0] >= 5000


def test_full_text_search_follows_inserts_and_updates(store: Store) -> None:
    paper = Paper(
        id="2601.00001",
        title="Sparse attention",
        abstract="We study kernels.",
        authors=["Ada Lovelace"],
        version=1,
    )
    store.upsert_papers("a", [paper], NOW)
    assert [p.id for p in store.list_papers("kernels")] == ["2601.00001"]
    assert [p.id for p in store.list_papers("lovelace")] == ["2601.00001"]
    newer = Paper(
        id="2601.00001",
        title="Sparse attention",
        abstract="We study routers.",
        authors=["Ada Lovelace"],
        version=2,
    )
    assert store.upsert_papers("a", [newer], NOW).updated == 1
    assert store.list_papers("kernels") == []
    assert [p.id for p in store.list_papers("routers")] == ["2601.00001"]


def test_search_text_with_fts_syntax_is_taken_literally(store: Store) -> None:
    store.upsert_papers("a", [Paper(id="x", title='A "quoted" AND (odd) title*')], NOW)
    assert [p.id for p in store.list_papers('"quoted" AND (odd')] == ["x"]


def test_counts_from_a_later_source_refresh_but_text_stays_arxivs(store: Store) -> None:
    arxiv = Paper(
        id="2601.00001",
        title="arXiv title",
        abstract="arXiv abstract",
        version=2,
        categories=["cs.CV"],
        announce_type="new",
    )
    hf = Paper(
        id="2601.00001", title="HF title", abstract="HF abstract", upvotes=5, ai_keywords=["k"]
    )
    store.upsert_papers("arxiv", [arxiv], NOW)
    store.upsert_papers("hf", [hf], NOW)
    store.upsert_papers("hf", [Paper(id="2601.00001", title="HF title", upvotes=9)], NOW)
    paper = store.get_paper("2601.00001")
    assert (paper.title, paper.abstract, paper.version) == ("arXiv title", "arXiv abstract", 2)
    assert paper.upvotes == 9 and paper.ai_keywords == ["k"] and paper.categories == ["cs.CV"]
    assert paper.sources == ["arxiv", "hf"]


def test_a_full_database_is_one_storage_error_and_the_batch_is_not_half_written(
    store: Store,
) -> None:
    """SQLite's own page cap gives the same SQLITE_FULL a full disk gives."""
    pages = store.db.execute("pragma page_count").fetchone()[0]
    store.db.execute(f"pragma max_page_count = {pages + 2}")
    rows = [
        PlannedDelivery(n, f"p{n}@example.org", "2026-06-12", DeliveryStatus.PENDING,
                        ("x" * 200,) * 20, f"<{n}@example.org>")
        for n in range(500)
    ]  # fmt: skip
    with pytest.raises(StoreError) as info:
        store.plan_deliveries(rows, NOW)
    message = str(info.value)
    assert message.startswith(f"{store.path}: database or disk is full: the disk is full")
    assert "\n" not in message
    assert store.delivery_counts() == {}


def test_a_read_only_database_file_is_one_storage_error_with_what_to_do(tmp_path: Path) -> None:
    """Root ignores file modes; the immutable attribute (ext4) stops root too."""
    path = tmp_path / "digest.db"
    Store(path).close()
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("no immutable attribute on this filesystem")
    try:
        with pytest.raises(StoreError) as info, Store(path) as store:
            store.plan_deliveries(
                [PlannedDelivery(1, "a@example.org", "2026-06-12", DeliveryStatus.PENDING, (),
                                 "<1@example.org>")],
                NOW,
            )  # fmt: skip
        assert str(info.value) == (
            f"{path}: attempt to write a readonly database: the database (or its folder) is "
            "read-only: make both writable for this user"
        )
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
