"""What an edition is: its name, its window of new papers, and who is due for it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest.collect import collect
from digest.edition import (
    Cadence,
    Edition,
    daily_window,
    due_edition,
    papers_in,
    weekly_window,
    window_of,
)
from digest.models import Subscriber
from digest.store import Store
from tests.conftest import ARXIV_API, ARXIV_RSS, DATA, make_config

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)  # a Friday


def collect_file(tmp_path: Path, store: Store, now: datetime, name: str) -> None:
    collect(make_config(tmp_path, [{"name": "s", "kind": "arxiv", "url": str(DATA / name)}]),
            store, now)  # fmt: skip


@pytest.mark.parametrize(
    ("tz", "hour", "cadence", "weekday", "expected"),
    [
        ("UTC", 9, "daily", "mon", "2026-06-12"),
        ("UTC", 10, "daily", "mon", None),  # its hour has not come
        ("Asia/Tokyo", 8, "daily", "mon", "2026-06-12"),  # 18:00 there
        ("America/Los_Angeles", 8, "daily", "mon", None),  # 02:00 there
        ("Pacific/Kiritimati", 8, "daily", "mon", "2026-06-12"),  # 23:00 there, same date
        ("UTC", 8, "weekly", "fri", "2026-W24"),
        ("UTC", 8, "weekly", "mon", None),
    ],
)
def test_a_subscriber_is_due_by_their_own_clock(
    tz: str, hour: int, cadence: str, weekday: str, expected: str | None
) -> None:
    sub = Subscriber("a@example.org", tz=tz, hour=hour, cadence=cadence, weekday=weekday)
    due = due_edition(sub, NOW)
    assert (due.name if due else None) == expected
    if due is not None:
        assert due.cadence is Cadence(cadence)


def test_a_subscriber_ahead_of_the_run_is_due_for_their_own_date() -> None:
    late = NOW.replace(hour=23)  # already the 13th in Tokyo
    sub = Subscriber("a@example.org", tz="Asia/Tokyo", hour=8)
    assert due_edition(sub, late) == Edition.daily(date(2026, 6, 13))


@pytest.mark.parametrize(
    ("name", "cadence", "day"),
    [
        ("2026-06-12", Cadence.DAILY, date(2026, 6, 12)),
        ("2026-W24", Cadence.WEEKLY, date(2026, 6, 8)),
        ("2020-W53", Cadence.WEEKLY, date(2020, 12, 28)),
        ("2027-W01", Cadence.WEEKLY, date(2027, 1, 4)),
    ],
)
def test_an_edition_is_named_as_it_is_parsed(name: str, cadence: Cadence, day: date) -> None:
    edition = Edition.parse(name)
    assert (edition.cadence, edition.day, edition.name, str(edition)) == (cadence, day, name, name)


def test_every_day_of_an_iso_week_is_the_same_weekly_edition() -> None:
    days = [date(2026, 6, 8) + timedelta(days=n) for n in range(7)]
    assert {Edition.weekly(d) for d in days} == {Edition.parse("2026-W24")}
    assert Edition.of("weekly", date(2026, 6, 14)) == Edition.of(Cadence.WEEKLY, days[0])
    assert Edition.of("daily", days[3]) == Edition.daily(days[3]) != Edition.daily(days[4])


@pytest.mark.parametrize("name", ["", "2026-13-01", "2026-W54", "2026-Wxx", "yesterday"])
def test_a_name_that_is_no_edition_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"edition|ISO week"):
        Edition.parse(name)


def test_an_unknown_cadence_is_refused() -> None:
    with pytest.raises(ValueError):
        Edition.of("monthly", NOW.date())


def test_an_edition_window_is_fixed_once_opened(tmp_path: Path, store: Store) -> None:
    collect_file(tmp_path, store, NOW, ARXIV_RSS)
    first = daily_window(store, NOW.date(), NOW, open_it=True)
    collect_file(tmp_path, store, NOW + timedelta(hours=1), ARXIV_API)
    again = daily_window(store, NOW.date(), NOW + timedelta(hours=2), open_it=True)
    assert again == first and len(papers_in(store, again)) == 4
    tomorrow = NOW + timedelta(days=1)
    second = daily_window(store, tomorrow.date(), tomorrow, open_it=True)
    assert second.start == first.end
    assert len(papers_in(store, second)) == 20
    week = weekly_window(second)
    assert week == window_of(store, Edition.weekly(tomorrow.date()), tomorrow)
    assert Edition.weekly(tomorrow.date()).name == "2026-W24"
    assert len(papers_in(store, week)) == 24


def test_a_window_not_opened_is_provisional_and_writes_nothing(
    tmp_path: Path, store: Store
) -> None:
    collect_file(tmp_path, store, NOW, ARXIV_RSS)
    later = NOW + timedelta(hours=1)
    provisional = daily_window(store, NOW.date(), later)
    assert (provisional.start, provisional.end) == (later - timedelta(days=1), later)
    assert len(papers_in(store, provisional)) == 4
    assert store.get_edition("2026-06-12") is None


def test_a_past_weekly_edition_ends_with_its_last_daily_edition(
    tmp_path: Path, store: Store
) -> None:
    collect_file(tmp_path, store, NOW, ARXIV_RSS)
    sunday = datetime(2026, 6, 14, 9, 0, tzinfo=UTC)
    closed = daily_window(store, sunday.date(), sunday, open_it=True)
    next_week = sunday + timedelta(days=3)
    assert window_of(store, Edition.parse("2026-W24"), next_week) == weekly_window(closed)
    assert len(papers_in(store, window_of(store, Edition.parse("2026-W24"), next_week))) == 4
