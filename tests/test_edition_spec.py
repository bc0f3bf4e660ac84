"""Specification of digest/edition.py beyond tests/test_edition.py: a weekly edition is due by
the subscriber's own weekday, and a provisional window starts where the last opened edition
ended (so a preview shows the papers the real run will send)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest.collect import collect
from digest.edition import Edition, daily_window, due_edition, papers_in
from digest.models import Subscriber
from digest.store import Store
from tests.conftest import ARXIV_API, ARXIV_RSS, DATA, make_config

FRIDAY = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)


def collect_file(tmp_path: Path, store: Store, now: datetime, name: str) -> None:
    collect(make_config(tmp_path, [{"name": "s", "kind": "arxiv", "url": str(DATA / name)}]),
            store, now)  # fmt: skip


@pytest.mark.parametrize(
    ("now", "tz", "weekday", "expected"),
    [
        (datetime(2026, 6, 12, 23, 0, tzinfo=UTC), "Asia/Tokyo", "sat", "2026-W24"),
        (datetime(2026, 6, 12, 23, 0, tzinfo=UTC), "Asia/Tokyo", "fri", None),
        (datetime(2026, 6, 13, 3, 0, tzinfo=UTC), "America/Los_Angeles", "fri", "2026-W24"),
        (datetime(2026, 6, 13, 3, 0, tzinfo=UTC), "America/Los_Angeles", "sat", None),
        (datetime(2026, 6, 14, 23, 30, tzinfo=UTC), "Asia/Tokyo", "mon", "2026-W25"),
        (datetime(2026, 6, 14, 23, 30, tzinfo=UTC), "UTC", "sun", "2026-W24"),
    ],
)
def test_a_weekly_subscriber_is_due_on_their_own_weekday_and_iso_week(
    now: datetime, tz: str, weekday: str, expected: str | None
) -> None:
    """Sunday evening in UTC is already Monday, and a new ISO week, in Tokyo."""
    sub = Subscriber("a@example.org", cadence="weekly", weekday=weekday, tz=tz, hour=0)
    due = due_edition(sub, now)
    assert (due.name if due else None) == expected


def test_a_subscriber_is_due_from_their_hour_on_not_a_minute_before() -> None:
    sub = Subscriber("a@example.org", hour=9)
    assert due_edition(sub, FRIDAY - timedelta(minutes=1)) is None
    assert due_edition(sub, FRIDAY) == Edition.daily(date(2026, 6, 12))
    assert due_edition(sub, FRIDAY.replace(hour=23, minute=59)) == Edition.daily(date(2026, 6, 12))


def test_a_provisional_window_starts_where_the_last_opened_edition_ended(
    tmp_path: Path, store: Store
) -> None:
    """A preview between runs shows the papers the next run will send, no more, no fewer."""
    collect_file(tmp_path, store, FRIDAY, ARXIV_RSS)
    friday = daily_window(store, FRIDAY.date(), FRIDAY, open_it=True)
    monday = FRIDAY + timedelta(days=3)
    collect_file(tmp_path, store, monday - timedelta(hours=1), ARXIV_API)
    provisional = daily_window(store, monday.date(), monday)
    assert (provisional.start, provisional.end) == (friday.end, monday)
    assert store.get_edition("2026-06-15") is None
    assert len(papers_in(store, provisional)) == 20, "only the papers not yet in an edition"
    opened = daily_window(store, monday.date(), monday, open_it=True)
    assert opened == provisional
