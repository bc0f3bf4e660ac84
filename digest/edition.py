"""What an edition is: a daily one (`2026-11-24`) or a weekly one (`2026-W48`), its window of
new papers, and who is due for which edition by their own clock.

The one home of the concept: planning, matching, building and the CLI ask here. Reads the
store only to fix an edition's window; sends, renders and matches nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import SubscriberError
from digest.models import WEEKDAYS, Cadence, Paper, Subscriber
from digest.store import Store

WEEK = timedelta(days=7)
# ASCII digits only: the names are keys in rows, Message-IDs and URLs, one spelling each
_DAY_NAME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_WEEK_NAME = re.compile(r"([0-9]{4})-W([0-9]{2})")


@dataclass(frozen=True, slots=True, order=True)
class Edition:
    """One edition: a cadence and its first day (a weekly edition starts on the ISO week's
    Monday). Equal editions have equal names, so it keys maps and delivery rows alike."""

    cadence: Cadence
    day: date

    @classmethod
    def daily(cls, day: date) -> Edition:
        """The daily edition of `day`."""
        return cls(Cadence.DAILY, day)

    @classmethod
    def weekly(cls, day: date) -> Edition:
        """The weekly edition of the ISO week holding `day`."""
        return cls(Cadence.WEEKLY, day - timedelta(days=day.weekday()))

    @classmethod
    def of(cls, cadence: Cadence | str, day: date) -> Edition:
        """The edition of this cadence that holds `day`.

        Raises:
            ValueError: the cadence is neither daily nor weekly.
        """
        return cls.weekly(day) if Cadence(cadence) is Cadence.WEEKLY else cls.daily(day)

    @classmethod
    def parse(cls, name: str) -> Edition:
        """An edition from its name, as delivery rows and `--edition` carry it.

        Raises:
            ValueError: the name is neither `YYYY-MM-DD` nor `YYYY-Www`.
        """
        if "-W" in name:
            found = _WEEK_NAME.fullmatch(name)
            try:
                if found is None:
                    raise ValueError("expected four digits, -W and two digits")
                return cls(Cadence.WEEKLY, date.fromisocalendar(int(found[1]), int(found[2]), 1))
            except ValueError as ex:
                raise ValueError(f"{name!r} is not an ISO week (YYYY-Www): {ex}") from None
        try:
            if _DAY_NAME.fullmatch(name) is None:
                raise ValueError(name)
            return cls.daily(date.fromisoformat(name))
        except ValueError:
            raise ValueError(f"{name!r} is not an edition (YYYY-MM-DD or YYYY-Www)") from None

    @property
    def name(self) -> str:
        """How the edition is named in rows, Message-IDs and subjects."""
        if self.cadence is Cadence.WEEKLY:
            # the ISO year, not the calendar one: 2024-12-30 is in 2025-W01
            year, week, _ = self.day.isocalendar()
            return f"{year}-W{week:02d}"
        return self.day.isoformat()

    def __str__(self) -> str:
        """The name, so an Edition formats as the text users and rows know."""
        return self.name


@dataclass(frozen=True, slots=True)
class Window:
    """The new papers of an edition are those first collected in (start, end]."""

    start: datetime
    end: datetime


def due_edition(sub: Subscriber, now: datetime) -> Edition | None:
    """The edition a subscriber is due for now, by their own clock: their local date (daily)
    or ISO week (weekly, on their weekday), once their send hour has come; None when not yet.

    Raises:
        SubscriberError: the stored time zone is unknown to this machine's tz database (it
            was checked on the way in, but the database may have changed since): a failure
            of that subscriber alone.
    """
    # by the subscriber's clock: Tokyo's 8:00 edition is due while it is still yesterday in UTC
    try:
        zone = ZoneInfo(sub.tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # as subscribers.validate catches
        raise SubscriberError(
            f"{sub.email}: time zone {sub.tz[:64]!r} is unknown here (is tzdata installed?); "
            "set it again with digest subscribers edit --tz"
        ) from None
    local = now.astimezone(zone)
    if local.hour < sub.hour:
        return None
    if sub.cadence == Cadence.WEEKLY:
        if WEEKDAYS[local.weekday()] != sub.weekday:
            return None
        return Edition.weekly(local.date())
    return Edition.daily(local.date())


def daily_window(store: Store, day: date, now: datetime, *, open_it: bool = False) -> Window:
    """The daily edition's window: fixed when first opened, so re-runs see the same papers.
    Without `open_it` (previews, dry runs) an unopened edition gets a provisional window from
    the end of the latest earlier edition (or a day ago) to `now`, and nothing is written."""
    name = Edition.daily(day).name
    default_start = now - timedelta(days=1)
    row = store.get_edition(name)
    if row is None and open_it:
        row = store.open_edition(name, now, default_start)
    if row is None:  # provisional: the same start the opened window would get
        return Window(store.latest_edition_end(before=name) or default_start, now)
    return Window(row.window_start, row.window_end)


def weekly_window(daily: Window) -> Window:
    """A weekly edition holds the seven days up to the end of the run's daily edition."""
    return Window(daily.end - WEEK, daily.end)


def papers_in(store: Store, window: Window) -> list[Paper]:
    """The papers first collected in the window: an edition's new papers."""
    return store.papers_between(window.start, window.end)


def window_of(store: Store, edition: Edition, now: datetime) -> Window:
    """An edition's window as the store has it, opening nothing: a daily edition's own; a
    weekly one's, the seven days up to the end of its last daily edition so far."""
    if edition.cadence is Cadence.DAILY:
        return daily_window(store, edition.day, now)
    # a week still running ends at today's edition, not at a Sunday that has not come
    last_day = min(edition.day + timedelta(days=6), now.date())
    return weekly_window(daily_window(store, last_day, now))
