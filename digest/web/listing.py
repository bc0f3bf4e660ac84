"""The papers of a day, a week or the last seven days as the web pages show them: a window's
papers indexed once and kept while they stay the same, ranked like the email, selected by a
query and a topic. No routes and no HTML; store work runs in the store's thread."""

from __future__ import annotations

import asyncio
import gc
import logging
import time as clock
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any, TypeVar

from digest.edition import Window, daily_window
from digest.errors import DigestError, QueryError
from digest.match import Match, Matcher
from digest.models import Paper, Subscriber, Topic
from digest.query import parse
from digest.render import Card
from digest.render.cards import (
    PaperView,
    PaperWords,
    paper_words,
    web_card,
    web_plain_card,
    web_view_paper,
)
from digest.store import Store
from digest.web.cards import Frames
from digest.web.store_thread import StoreThread

DAY = timedelta(days=1)
FRESH_SECONDS = 5.0  # how long a window's papers are served before the store is asked again
MAX_QUERIES = 4096  # distinct queries one matcher remembers before it is built afresh...
MIN_QUERIES = 256
QUERY_CELLS = 10_000_000  # ...at most this many queries x papers (see `query_room`)
MAX_PAPERS = 50_000  # a window's papers loaded at most: the cost of a page stays bounded
MAX_PAGES = 4096  # pages, searches and previews kept at most...
MAX_PAGE_BYTES = 64 << 20  # ...and their size (a page of 60 cards is ~80 KB, a search's ~30 KB)
HEAP_SETTLE = 600.0  # seconds between full collections of the heap (see settle_heap)
PAGE_WAIT = 2.0  # seconds a page waits for the database before it answers without it
WARM_PAGES = 128  # pages last asked for a window built over its new papers before they show...
WARM_SECONDS = 1.0  # ...for at most this long
T = TypeVar("T")
log = logging.getLogger("digest.web")


@dataclass(frozen=True, slots=True)
class Indexed:
    """One window's papers, newest-trending first, and the matcher over them."""

    window: Window
    stamp: tuple[int, datetime | None]
    papers: list[Paper]
    matcher: Matcher
    checked: float
    days: dict[str, int]  # UTC day first collected -> bitset of the papers' positions
    parts: dict[str, tuple[PaperView, PaperWords]] = field(default_factory=dict)
    plain: dict[str, Card] = field(default_factory=dict)
    frames: Frames = field(default_factory=Frames)  # the cards' HTML frames
    seen: tuple[datetime, datetime] | None = None  # first collected: earliest, latest

    def holds(self, window: Window, stamp: tuple[int, datetime | None]) -> bool:
        """Whether `window`, whose store stamp is `stamp`, has exactly these papers: the
        same window, or one that moved over none of them (today's window before the daily
        run ends now and starts a day before; the run then fixes it) with the same count and
        latest change: its papers are all still in it, and nothing came or went."""
        if stamp != self.stamp:
            return False
        if window.start == self.window.start:
            return True
        return self.seen is not None and window.start < self.seen[0] <= self.seen[1] <= window.end

    @property
    def query_room(self) -> int:
        """How many distinct queries its matcher ranks before it is built afresh. A query's
        ranking holds a few numbers per paper it selects (~18 KB each over 2,266 papers,
        ~10 KB over 628), and a new matcher indexes every paper again (~0.2 s for 2,266):
        at 512 queries, a seventh of the server's CPU under bench/web.py's load went there."""
        return max(MIN_QUERIES, min(MAX_QUERIES, QUERY_CELLS // max(1, len(self.papers))))

    def card(self, match: Match) -> Card:
        """`match`'s card as the pages show it (no text part), the paper's cleaned, cut and
        tokenised text and its card with nothing picked made once per window (a distinct
        search builds up to a page of cards: this was a third of its cost)."""
        view, words = self._parts(match.paper)
        return web_card(match, view, words, self.plain_card(match.paper))

    def plain_card(self, paper: Paper) -> Card:
        """The card of a paper nothing picked: the same for every page that lists it."""
        found = self.plain.get(paper.id)
        if found is None:
            found = self.plain[paper.id] = web_plain_card(self._parts(paper)[0])
        return found

    def _parts(self, paper: Paper) -> tuple[PaperView, PaperWords]:
        found = self.parts.get(paper.id)
        if found is None:
            view = web_view_paper(paper)
            found = self.parts[paper.id] = (view, paper_words(view))
        return found

    def selected(self, sub: Subscriber) -> int:
        """The bitset of the papers any of `sub`'s topics and queries selects: counting
        them costs bit operations, whatever the window holds."""
        union = 0
        for source in self.matcher.sources_of(sub):
            union |= source.bits
        return union

    @property
    def key(self) -> tuple[datetime, tuple[int, datetime | None]]:
        """Equal while the window holds the same papers: what cached pages are keyed by."""
        return self.window.start, self.stamp


@dataclass(frozen=True, slots=True)
class Recipe:
    """How a cached page or preview is made over the papers of the window `name`, whatever
    they are: its cache key and its build over an `Indexed`; `over` is the key of the
    papers it was built over."""

    name: Hashable
    over: Hashable
    key: Callable[[Indexed], Hashable]
    build: Callable[[Indexed], Any]


@dataclass(frozen=True, slots=True)
class Selection:
    """What a page lists: the papers (with why, when a query or topic picked them), how many
    there are in all, and the caret message of a query that does not parse."""

    matches: list[Match]
    papers: list[Paper]
    total: int
    error: str = ""


_UNDATED = datetime.min.replace(tzinfo=UTC)  # after every dated paper, newest first


def trending(papers: list[Paper]) -> list[Paper]:
    """The day's order without a query, as the email breaks ties: HF upvotes, then the
    freshest, then the id (stable)."""
    by_id = sorted(papers, key=lambda p: p.id)
    by_date = sorted(by_id, key=lambda p: p.published or _UNDATED, reverse=True)
    return sorted(by_date, key=lambda p: -(p.upvotes or 0))


def day_window(store: Store, day: date, now: datetime) -> Window:
    """A day's papers: its daily edition's window once opened; today's provisional one
    before the run; else the calendar day (UTC), for days no edition was made."""
    if store.get_edition(day.isoformat()) is not None or day >= now.date():
        return daily_window(store, day, now)
    start = datetime.combine(day, time(), UTC)
    return Window(start, start + DAY)


def week_window(store: Store, monday: date, now: datetime) -> Window:
    """A week's papers: from the start of its Monday to the end of its Sunday (or today)."""
    last = min(monday + timedelta(days=6), now.date())
    return Window(day_window(store, monday, now).start, day_window(store, last, now).end)


def recent_window(now: datetime, days: int = 7) -> Window:
    """The last `days` calendar days (UTC), today included: what a preview counts over."""
    start = datetime.combine(now.date() - timedelta(days=days - 1), time(), UTC)
    return Window(start, now)


def _stamp(store: Store, window: Window) -> tuple[int, datetime | None]:
    return store.window_stamp(window.start, window.end)


def _load(
    store: Store,
    window: Window,
    topics: Mapping[str, Topic],
    now: datetime,
    before: Indexed | None = None,
) -> Indexed:
    stamp = _stamp(store, window)
    every = store.papers_between(window.start, window.end)
    papers = trending(every[-MAX_PAPERS:])
    first = [p.first_seen for p in papers if p.first_seen is not None]
    whole = len(first) == len(every) == stamp[0] > 0
    seen = (min(first), max(first)) if whole else None
    days: dict[str, int] = {}
    for i, paper in enumerate(papers):
        day = f"{paper.first_seen:%Y-%m-%d}" if paper.first_seen else ""
        days[day] = days.get(day, 0) | 1 << i
    matcher = Matcher(papers, topics, now)
    made = Indexed(window, stamp, papers, matcher, clock.monotonic(), days, seen=seen)
    return made if before is None else _carry(before, made)


def _carry(before: Indexed, made: Indexed) -> Indexed:
    """`made` with the card parts and plain cards `before` made for the papers both hold
    unchanged: a window reloaded for a few new papers does not clean and tokenise its other
    papers again (~0.3 ms a paper, most of the first searches' cost after new papers). The
    copies are taken at once: the pages' thread may be adding to `before`'s meanwhile. The
    frames are not carried: their filler keeps every piece it made."""
    old = {p.id: p for p in before.papers}
    kept = {p.id for p in made.papers if old.get(p.id) == p}
    parts = {k: v for k, v in before.parts.copy().items() if k in kept}
    return replace(
        made, parts=parts, plain={k: v for k, v in before.plain.copy().items() if k in kept}
    )


WindowOf = Callable[[Store], Window]


def settle_heap(full: bool) -> None:
    """Leave what lives on (a new window's index: tens of thousands of lists) out of the
    collector's later passes. A full collection walked every index and cache: under load,
    stops of 100-600 ms close to once a second (24 in 30 s), the pages' worst latency. The
    young objects are collected first; a `full` settle (every HEAP_SETTLE seconds at most)
    also collects what was frozen before, so garbage frozen in a cycle lives until then."""
    if full:
        gc.unfreeze()
    gc.collect(2 if full else 1)
    gc.freeze()


def _check(store: Store, window_of: WindowOf) -> tuple[Window, tuple[int, datetime | None]]:
    window = window_of(store)
    return window, _stamp(store, window)


class Listings:
    """The indexed windows the pages read, each checked against the store at most every
    `fresh_seconds`, and rebuilt only when its papers changed (or its query cache is full).
    Pages built from one are cached by its key (see `lookup`). Lives in one event loop."""

    def __init__(
        self,
        topics: Mapping[str, Topic],
        fresh_seconds: float = FRESH_SECONDS,
        max_bytes: int = MAX_PAGE_BYTES,
    ) -> None:
        self.topics = topics
        self.fresh_seconds = fresh_seconds
        self.max_bytes = max_bytes
        self._indexed: OrderedDict[Hashable, Indexed] = OrderedDict()
        # value, size, and how to make it again over new papers
        self._pages: OrderedDict[Hashable, tuple[object, int, Recipe | None]] = OrderedDict()
        self._bytes = 0
        self._loading: dict[Hashable, asyncio.Future[Indexed]] = {}
        self._refreshing: set[Hashable] = set()
        self._pending: dict[Hashable, asyncio.Future[Any]] = {}
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest-pages")
        self._indexer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest-index")
        self._settled = clock.monotonic()  # the last full settle of the heap
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, store: StoreThread, name: Hashable, window_of: WindowOf) -> Indexed:
        """The papers and matcher of the window `window_of` gives (`name` keys it, e.g.
        ("day", date)). Only the first load is waited for; after that a stale one is served
        while it is checked (and reloaded if its papers changed) in the background, so a
        day's new papers never stall the pages."""
        found = self._indexed.get(name)
        if found is None:
            # one load per window, never cancelled by a request that stops waiting for it
            # (see `within`): else a load slower than PAGE_WAIT would never end
            loading = self._loading.get(name)
            if loading is None:
                loading = asyncio.ensure_future(self._refresh(store, name, window_of, None))
                self._loading[name] = loading
                loading.add_done_callback(partial(self._loaded, name))
            return await asyncio.shield(loading)
        if not self._usable(found) and name not in self._refreshing:
            self._refreshing.add(name)
            task = asyncio.create_task(self._refresh_quietly(store, name, window_of, found))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return found

    def _loaded(self, name: Hashable, done: asyncio.Future[Indexed]) -> None:
        self._loading.pop(name, None)
        if not done.cancelled() and done.exception() is not None:
            log.error("papers of %s not loaded: %s", name, done.exception())

    async def _refresh(
        self, store: StoreThread, name: Hashable, window_of: WindowOf, found: Indexed | None
    ) -> Indexed:
        window, stamp = await store.call(_check, window_of)
        same = found is not None and found.holds(window, stamp)
        if found is not None and same and found.matcher.distinct_queries < found.query_room:
            # the same papers: it keeps the window it was loaded for, so its key, and the
            # pages cached by that key, stay
            fresh = replace(found, checked=clock.monotonic())
        elif found is not None and same:
            # the same papers, their queries' cache full: a new matcher over the papers in
            # memory (its own thread: pages go on being built meanwhile), keeping the cards'
            # parts; the store is not asked
            matcher = await asyncio.get_running_loop().run_in_executor(
                self._indexer, Matcher, found.papers, self.topics, window.end
            )
            fresh = replace(found, matcher=matcher, checked=clock.monotonic())
        else:
            fresh = await store.call(_load, window, self.topics, window.end, found)
            if found is not None:
                await self._warm(name, found, fresh)
        self._indexed[name] = fresh
        self._indexed.move_to_end(name)
        while len(self._indexed) > 64:
            self._indexed.popitem(last=False)
        if found is None or fresh.matcher is not found.matcher:
            full = clock.monotonic() - self._settled > HEAP_SETTLE
            self._settled = clock.monotonic() if full else self._settled
            settle_heap(full)
        return fresh

    async def _refresh_quietly(
        self, store: StoreThread, name: Hashable, window_of: WindowOf, found: Indexed
    ) -> None:
        try:
            await self._refresh(store, name, window_of, found)
        except Exception as ex:  # the stale papers stay; the next request tries again
            log.error("papers of %s not refreshed: %s", name, ex)
        finally:
            self._refreshing.discard(name)

    async def refreshed(self) -> None:
        """Wait for the loads and checks under way (tests: a page once they are done shows
        what the store holds now)."""
        await asyncio.gather(*self._tasks, *self._loading.values(), return_exceptions=True)

    def last(self, name: Hashable) -> Indexed | None:
        """The window's papers as last loaded, however old (None if never): what a page
        shows when the database does not answer in time."""
        return self._indexed.get(name)

    async def within(
        self, store: StoreThread, name: Hashable, window_of: WindowOf, seconds: float
    ) -> Indexed | None:
        """`get`, waiting at most `seconds` for the database (the daily job may hold it while
        the reader opens); then, or when the database fails (logged), the last loaded papers,
        or None: the page and its form still answer."""
        try:
            return await asyncio.wait_for(self.get(store, name, window_of), seconds)
        except TimeoutError:
            log.warning("papers of %s: the database did not answer in %ss", name, seconds)
        except DigestError as ex:
            log.error("papers of %s: %s", name, ex)
        return self.last(name)

    def _usable(self, found: Indexed) -> bool:
        fresh = clock.monotonic() - found.checked < self.fresh_seconds
        return fresh and found.matcher.distinct_queries < found.query_room

    async def _warm(self, name: Hashable, before: Indexed, after: Indexed) -> None:
        """Build the pages last asked for over `before`'s papers over `after`'s, before
        `after` is served (at most WARM_PAGES, for WARM_SECONDS): new papers would else
        turn every popular search into a miss at once, all waiting on the pages' thread
        (under load, most of the slowest answers). One page at a time, so a new page asked
        meanwhile waits for one such build at most; the old pages are served until then."""
        recipes = [
            r
            for _, _, r in reversed(self._pages.values())
            if r is not None and r.name == name and r.over == before.key
        ]
        deadline = clock.monotonic() + WARM_SECONDS
        loop = asyncio.get_running_loop()
        for recipe in recipes[:WARM_PAGES]:
            key = recipe.key(after)
            if key in self._pages or key in self._pending:
                continue
            try:
                value = await loop.run_in_executor(self._builder, recipe.build, after)
            except Exception as ex:  # asked for, it fails again and says so to its asker
                log.error("page %r not built over new papers: %s", key, ex)
                return
            self._keep(key, value, replace(recipe, over=after.key))
            if clock.monotonic() > deadline:
                return

    async def lookup(
        self, key: Hashable, make: Callable[[], T], recipe: Recipe | None = None
    ) -> tuple[T, bool]:
        """What `make` builds for `key` (a window's key and what was asked), and whether it
        was cached: built once while it stays among the last asked for (MAX_PAGES, at most
        `max_bytes`). Built in the pages' own thread, so the event loop keeps answering
        cached pages meanwhile; everyone asking for the same new page at once waits for the
        one build. With its `recipe`, it is built again over new papers before they show."""
        if key in self._pages:
            self._pages.move_to_end(key)
            return self._pages[key][0], True  # type: ignore[return-value]
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().run_in_executor(self._builder, make)
            self._pending[key] = pending
            pending.add_done_callback(partial(self._settle, key, recipe))
        found: T = await asyncio.shield(pending)
        return found, False

    async def made(self, indexed: Indexed, recipe: Recipe) -> tuple[Any, bool]:
        """`lookup` of what `recipe` builds over `indexed`, kept with its recipe."""
        return await self.lookup(recipe.key(indexed), partial(recipe.build, indexed), recipe)

    def _settle(self, key: Hashable, recipe: Recipe | None, done: asyncio.Future[Any]) -> None:
        self._pending.pop(key, None)
        if not done.cancelled() and done.exception() is None:
            self._keep(key, done.result(), recipe)

    def _keep(self, key: Hashable, value: object, recipe: Recipe | None) -> None:
        size = len(value) if isinstance(value, str | bytes) else 8192  # a preview's data
        self._bytes += size - self._pages.pop(key, (None, 0, None))[1]
        self._pages[key] = (value, size, recipe)
        while len(self._pages) > MAX_PAGES or self._bytes > self.max_bytes:
            self._bytes -= self._pages.popitem(last=False)[1][1]

    def close(self) -> None:
        """Stop the pages' and the index's threads (at shutdown)."""
        self._builder.shutdown(wait=False)
        self._indexer.shutdown(wait=False)


def select(indexed: Indexed, query: str, topic: str | None, limit: int) -> Selection:
    """The window's papers a query and a topic (both, when both are given) select, best
    first, at most `limit`; without either, every paper by trending. A query that does not
    parse selects nothing and says where it fails, as `digest query check` does."""
    query = query.strip()
    if query:
        try:
            parse(query)
        except QueryError as ex:
            return Selection([], [], 0, ex.caret())
    if not query and not topic:
        return Selection([], indexed.papers[:limit], len(indexed.papers))
    sub = Subscriber(
        email="web@localhost",
        queries=[query] if query else [],
        topics=[topic] if topic else [],
        max_papers=limit,
    )
    if not (query and topic):
        found = indexed.matcher.for_subscriber(sub)
        return Selection(list(found), [], found.total)
    every = indexed.matcher.for_subscriber(replace(sub, max_papers=len(indexed.papers)))
    both = [m for m in every if len(m.selecting) == 2]
    return Selection(both[:limit], [], len(both))
