"""Specification of who is due for which edition and when (digest/edition.py) and of the run
lock (digest/schedule.py), beyond tests/test_edition.py and tests/test_edition_spec.py: send
hours across daylight-saving changes, half-hour zones and the date line; edition names over ISO
years with 53 weeks; windows that hand every paper to exactly one daily edition; a lock that a
killed run releases. Clocks are passed in; the store is a real SQLite file."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.edition import (
    WEEK,
    Cadence,
    Edition,
    Window,
    daily_window,
    due_edition,
    papers_in,
    weekly_window,
    window_of,
)
from digest.errors import DigestError, StoreError
from digest.models import CADENCES, WEEKDAYS, Paper, Subscriber
from digest.schedule import RunLock
from digest.store import Store


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def due_name(now: datetime, **kw: object) -> str | None:
    sub = Subscriber("a@example.org", **kw)  # type: ignore[arg-type]
    due = due_edition(sub, now)
    return due.name if due else None


# ---------------------------------------------------------------- who is due when


@pytest.mark.parametrize(
    ("tz", "first_due", "day"),
    [
        # Paris, 8:00 local: 07:00 UTC in winter, 06:00 UTC in summer
        ("Europe/Paris", utc(2026, 3, 28, 7, 0), "2026-03-28"),
        ("Europe/Paris", utc(2026, 3, 29, 6, 0), "2026-03-29"),  # the day clocks go forward
        ("Europe/Paris", utc(2026, 10, 25, 7, 0), "2026-10-25"),  # the day they go back
        ("America/New_York", utc(2026, 3, 7, 13, 0), "2026-03-07"),
        ("America/New_York", utc(2026, 3, 8, 12, 0), "2026-03-08"),
        # the southern hemisphere leaves summer time in April
        ("Australia/Sydney", utc(2026, 4, 3, 21, 0), "2026-04-04"),
        ("Australia/Sydney", utc(2026, 4, 4, 22, 0), "2026-04-05"),
        ("Asia/Kolkata", utc(2026, 6, 12, 2, 30), "2026-06-12"),  # +05:30
        ("Asia/Kathmandu", utc(2026, 6, 12, 2, 15), "2026-06-12"),  # +05:45
        ("Pacific/Chatham", utc(2026, 6, 11, 19, 15), "2026-06-12"),  # +12:45
    ],
)
def test_the_send_hour_is_local_time_whatever_the_offset_that_day(
    tz: str, first_due: datetime, day: str
) -> None:
    assert due_name(first_due - timedelta(minutes=1), tz=tz, hour=8) is None
    assert due_name(first_due, tz=tz, hour=8) == day


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (utc(2026, 3, 29, 0, 59), None),  # 01:59 local, then the clock jumps to 03:00
        (utc(2026, 3, 29, 1, 0), "2026-03-29"),  # 03:00: the skipped hour has passed
        (utc(2026, 10, 24, 23, 59), None),  # 01:59 summer time
        (utc(2026, 10, 25, 0, 0), "2026-10-25"),  # the first 02:00
        (utc(2026, 10, 25, 1, 30), "2026-10-25"),  # the second 02:30: still the same edition
    ],
)
def test_an_hour_that_does_not_exist_or_comes_twice_is_due_once_it_has_begun(
    now: datetime, due: str | None
) -> None:
    assert due_name(now, tz="Europe/Paris", hour=2) == due


@pytest.mark.parametrize(
    ("now", "tz", "due"),
    [
        (utc(2026, 6, 12, 10, 0), "Pacific/Kiritimati", "2026-06-13"),  # +14: tomorrow already
        (utc(2026, 6, 12, 10, 0), "Pacific/Pago_Pago", "2026-06-11"),  # -11: still yesterday
        (utc(2026, 6, 12, 10, 0), "UTC", "2026-06-12"),
        (utc(2026, 6, 12, 23, 59), "UTC", "2026-06-12"),
    ],
)
def test_a_subscriber_at_hour_zero_is_due_for_their_local_date_all_day(
    now: datetime, tz: str, due: str
) -> None:
    assert due_name(now, tz=tz, hour=0) == due


ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Pacific/Kiritimati"]


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(ZONES),
    st.integers(0, 23),
)
def test_a_daily_subscriber_is_due_from_their_hour_to_their_midnight(
    now: datetime, tz: str, hour: int
) -> None:
    local = now.astimezone(ZoneInfo(tz))
    expected = local.date().isoformat() if local.hour >= hour else None
    assert due_name(now, tz=tz, hour=hour) == expected


def test_at_hour_23_only_the_last_local_hour_is_due() -> None:
    assert due_name(utc(2026, 6, 12, 22, 59), hour=23) is None
    assert due_name(utc(2026, 6, 12, 23, 0), hour=23) == "2026-06-12"


def test_the_same_instant_gives_the_same_edition_in_any_time_zone_of_now() -> None:
    """`now` is an instant: how the caller's clock writes it changes nothing."""
    instant = utc(2026, 6, 12, 22, 30)
    elsewhere = instant.astimezone(timezone(timedelta(hours=-7)))
    for tz in ["Asia/Tokyo", "America/Los_Angeles", "Europe/Paris"]:
        assert due_name(instant, tz=tz, hour=7) == due_name(elsewhere, tz=tz, hour=7)
    assert due_name(elsewhere, tz="Asia/Tokyo", hour=7) == "2026-06-13"


@pytest.mark.parametrize(
    ("now", "tz", "weekday", "due"),
    [
        # Paris, weekly on Sunday at 8: after the clocks went back, 07:00 UTC
        (utc(2026, 10, 25, 6, 30), "Europe/Paris", "sun", None),
        (utc(2026, 10, 25, 7, 0), "Europe/Paris", "sun", "2026-W43"),
        # the ISO year 2026 has 53 weeks: 31 Dec 2026 and 1 Jan 2027 are both in 2026-W53
        (utc(2026, 12, 31, 9, 0), "UTC", "thu", "2026-W53"),
        (utc(2027, 1, 1, 9, 0), "UTC", "fri", "2026-W53"),
        (utc(2027, 1, 4, 9, 0), "UTC", "mon", "2027-W01"),
        # the last day of 2024 is in the first week of 2025
        (utc(2024, 12, 31, 9, 0), "UTC", "tue", "2025-W01"),
        # New Year's Eve in UTC is already Friday 1 January in Auckland
        (utc(2026, 12, 31, 20, 0), "Pacific/Auckland", "fri", "2026-W53"),
        (utc(2026, 12, 31, 20, 0), "Pacific/Auckland", "thu", None),
    ],
)
def test_a_weekly_edition_is_named_by_the_iso_week_of_the_local_day(
    now: datetime, tz: str, weekday: str, due: str | None
) -> None:
    assert due_name(now, tz=tz, hour=8, cadence="weekly", weekday=weekday) == due


@pytest.mark.parametrize("weekday", WEEKDAYS)
def test_a_weekly_subscriber_is_due_on_exactly_one_day_of_each_week(weekday: str) -> None:
    monday = utc(2026, 6, 8, 12, 0)
    due = [
        due_name(monday + timedelta(days=n), cadence="weekly", weekday=weekday, hour=9)
        for n in range(7)
    ]
    assert due.count("2026-W24") == 1 and due.count(None) == 6
    assert due.index("2026-W24") == WEEKDAYS.index(weekday)


def test_a_daily_subscriber_ignores_the_weekday() -> None:
    for n in range(7):
        day = utc(2026, 6, 8, 12, 0) + timedelta(days=n)
        assert due_name(day, weekday="fri") == day.date().isoformat()


# ---------------------------------------------------------------- editions and their names


def test_the_cadences_are_the_stored_values() -> None:
    assert tuple(c.value for c in Cadence) == CADENCES
    assert Cadence("weekly") is Cadence.WEEKLY
    with pytest.raises(ValueError):
        Cadence("Weekly")


DAYS = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))


@given(DAYS)
def test_a_daily_edition_is_named_by_its_date_and_parses_back(day: date) -> None:
    edition = Edition.daily(day)
    assert edition.name == str(edition) == day.isoformat()
    assert Edition.parse(edition.name) == edition == Edition.of("daily", day)


@given(DAYS)
def test_a_weekly_edition_starts_on_the_monday_of_the_iso_week_and_parses_back(
    day: date,
) -> None:
    edition = Edition.weekly(day)
    year, week, _ = day.isocalendar()
    assert edition.day.weekday() == 0
    assert edition.day <= day < edition.day + WEEK
    assert edition.name == f"{year}-W{week:02d}"
    assert Edition.parse(edition.name) == edition == Edition.of(Cadence.WEEKLY, day)


@pytest.mark.parametrize(
    ("name", "monday"),
    [
        ("2026-W53", date(2026, 12, 28)),
        ("2026-W01", date(2025, 12, 29)),  # week 1 may start in the previous calendar year
        ("2015-W53", date(2015, 12, 28)),
    ],
)
def test_a_week_name_is_read_in_iso_years(name: str, monday: date) -> None:
    assert Edition.parse(name).day == monday


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("2027-W53", "not an ISO week"),  # 2027 has only 52
        ("2026-W00", "not an ISO week"),
        ("W24", "not an edition"),  # no year
        ("2026-W24-3", "not an ISO week"),
        ("2026-06-31", "not an edition"),
        ("2026/06/12", "not an edition"),
        ("12-06-2026", "not an edition"),
    ],
)
def test_a_name_that_is_no_edition_says_which_forms_are(name: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        Edition.parse(name)
    assert says in str(caught.value) and repr(name) in str(caught.value)


@pytest.mark.parametrize(
    "name",
    [
        *("20260612", "2026W24", "2026-W1", " 2026-W24", "2026-W\u0662\u0664", "2026-W24\n"),
        *("2026-06-12\n", "2026-06-1\u0662", "2026-W24-1", "2026-06-12T00:00"),
    ],
)
def test_only_the_two_canonical_forms_are_editions(name: str) -> None:
    """The docstring: "Raises ValueError: the name is neither YYYY-MM-DD nor YYYY-Www". Not
    int() and date.fromisoformat(), which also take ISO basic forms, spaces, one-digit weeks
    and non-ASCII digits: "2026W24" would parse as the DAILY edition of 2026-06-08, and
    `/w/TOKEN/2026W24` name another email than `/w/TOKEN/2026-W24`."""
    with pytest.raises(ValueError):
        Edition.parse(name)


def test_editions_key_maps_by_cadence_and_day_and_sort_by_day_within_a_cadence() -> None:
    days = [date(2026, 6, d) for d in (12, 9, 10)]
    assert [e.day for e in sorted(Edition.daily(d) for d in days)] == sorted(days)
    assert Edition.daily(date(2026, 6, 8)) != Edition.weekly(date(2026, 6, 8))
    assert len({Edition.weekly(d) for d in days} | {Edition.parse("2026-W24")}) == 1


# ---------------------------------------------------------------- windows


T0 = utc(2026, 6, 12, 9, 0)


def collect_at(store: Store, at: datetime, *ids: str) -> None:
    store.upsert_papers("test", [Paper(pid, f"paper {pid}") for pid in ids], at)


def test_a_window_holds_papers_after_its_start_up_to_and_including_its_end(
    store: Store,
) -> None:
    start, end = T0 - timedelta(hours=2), T0
    collect_at(store, start, "at-start")
    collect_at(store, start + timedelta(seconds=1), "inside")
    collect_at(store, end, "at-end")
    collect_at(store, end + timedelta(seconds=1), "after")
    assert [p.id for p in papers_in(store, Window(start, end))] == ["inside", "at-end"]


def test_an_editions_papers_come_in_the_order_they_were_collected_then_by_id(
    store: Store,
) -> None:
    collect_at(store, T0 - timedelta(hours=1), "b", "a")
    collect_at(store, T0 - timedelta(hours=2), "c")
    window = Window(T0 - timedelta(hours=3), T0)
    assert [p.id for p in papers_in(store, window)] == ["c", "a", "b"]


def test_the_first_edition_ever_reaches_one_day_back(store: Store) -> None:
    collect_at(store, T0 - timedelta(hours=25), "too-old")
    collect_at(store, T0 - timedelta(hours=23), "recent")
    window = daily_window(store, T0.date(), T0, open_it=True)
    assert window == Window(T0 - timedelta(days=1), T0)
    assert [p.id for p in papers_in(store, window)] == ["recent"]
    row = store.get_edition("2026-06-12")
    assert row is not None and row.window_end == T0


def test_each_paper_lands_in_exactly_one_daily_edition_however_irregular_the_runs(
    store: Store,
) -> None:
    """Runs a few hours late or skipped: every paper collected is in one edition, none twice."""
    runs = [T0, T0 + timedelta(days=1, hours=5), T0 + timedelta(days=3), T0 + timedelta(days=4)]
    collected: list[str] = []
    seen: list[str] = []
    for k, run in enumerate(runs):
        for h in (20, 10, 0):
            collect_at(store, run - timedelta(hours=h), f"{k}-{h}")
            collected.append(f"{k}-{h}")
        seen += [p.id for p in papers_in(store, daily_window(store, run.date(), run, open_it=True))]
    assert sorted(seen) == sorted(collected)
    assert len(seen) == len(set(seen))


def test_a_weekly_window_is_the_seven_days_before_the_end_of_its_daily_one() -> None:
    daily = Window(T0 - timedelta(hours=30), T0)
    assert weekly_window(daily) == Window(T0 - WEEK, T0)


def test_a_running_week_ends_at_todays_edition_not_at_a_sunday_to_come(store: Store) -> None:
    wednesday = utc(2026, 6, 10, 9, 0)
    collect_at(store, wednesday - timedelta(hours=1), "wed")
    today = daily_window(store, wednesday.date(), wednesday, open_it=True)
    window = window_of(store, Edition.weekly(wednesday.date()), wednesday)
    assert window == Window(today.end - WEEK, today.end)
    assert [p.id for p in papers_in(store, window)] == ["wed"]


def test_reading_a_window_never_opens_an_edition(store: Store) -> None:
    window_of(store, Edition.daily(T0.date()), T0)
    window_of(store, Edition.weekly(T0.date()), T0)
    daily_window(store, T0.date(), T0)
    assert store.get_edition(T0.date().isoformat()) is None


# ---------------------------------------------------------------- the run lock


def test_the_lock_sits_beside_the_database_and_is_free_again_after_a_run(tmp_path: Path) -> None:
    db = str(tmp_path / "deep" / "er" / "digest.db")
    with RunLock(db) as lock:
        assert lock.path == Path(f"{db}.lock") and lock.path.exists()
    with RunLock(db):
        pass


def test_a_run_that_fails_still_releases_the_lock(tmp_path: Path) -> None:
    db = str(tmp_path / "digest.db")
    with pytest.raises(RuntimeError), RunLock(db):
        raise RuntimeError("the run failed")
    with RunLock(db, shared=True):
        pass


def test_a_run_in_progress_refuses_a_shard_worker_and_says_what_to_do(tmp_path: Path) -> None:
    db = str(tmp_path / "digest.db")
    with RunLock(db), pytest.raises(DigestError) as caught:
        RunLock(db, shared=True).__enter__()
    message = str(caught.value)
    assert f"{db}.lock" in message and "released automatically" in message


def test_a_lock_that_cannot_be_created_is_a_store_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder", encoding="utf-8")
    db = str(tmp_path / "a-file" / "digest.db")
    with pytest.raises(StoreError) as caught, RunLock(db):
        pass
    assert f"{db}.lock" in str(caught.value) and "writable" in str(caught.value)


def test_a_killed_run_leaves_no_stale_lock(tmp_path: Path) -> None:
    """flock, not a PID file: the kernel drops the lock with the process that held it."""
    db = str(tmp_path / "digest.db")
    code = (
        "import sys\nfrom digest.schedule import RunLock\n"
        f"with RunLock({db!r}):\n    print('locked', flush=True)\n    sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    ) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == "locked\n"
            with pytest.raises(DigestError, match="another digest run"):
                RunLock(db).__enter__()
        finally:
            child.kill()
            child.wait(timeout=30)
    with RunLock(db):
        pass
