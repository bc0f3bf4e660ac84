"""The web edition's windows under time and new papers (issue 15, speed under load): today's
window before the daily run ends now and starts a day before, so it moves on every check;
while it holds the same papers its cached pages (and their ETags) stay. A window reloaded for
new papers keeps the card parts of its unchanged papers, its pages asked for before are built
over the new papers before they show, and they are those a server that never saw the old
papers builds. A real SQLite file filled by a real collect, the real app through httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from digest.edition import Window
from digest.store import Store
from digest.web import create_app
from digest.web.listing import Indexed, Listings, day_window
from tests.test_web_cache import BASE, Site, titles

COOKIE = "csrf-token-of-one-visitor-0123456789abcdef"  # shaped like ours: every app takes it


class Moving(Site):
    """The cache tests' site with a clock the test moves forward."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.time = self.later
        self.app = self.fresh_app()
        self.listings = self.app.state.web.listings
        self.listings.fresh_seconds = 0.0

    def fresh_app(self) -> Starlette:
        return create_app(self.config, self.topics, clock=lambda: self.time)

    def indexed(self) -> Indexed:
        found = self.listings.last(("day", self.time.date()))
        assert found is not None
        return found


def _client(app: Starlette) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
    client = httpx.AsyncClient(transport=transport, base_url=BASE)
    client.cookies.set("digest_csrf", COOKIE)
    return client


@pytest.fixture
def built(tmp_path: Path) -> Moving:
    return Moving(tmp_path)  # collects with asyncio.run: outside the test's event loop


@pytest.fixture
async def moving(built: Moving) -> AsyncIterator[tuple[Moving, httpx.AsyncClient]]:
    site = built
    async with _client(site.app) as client:
        yield site, client
    await site.app.state.web.store.aclose()
    await site.app.state.web.reader.aclose()


async def _settled(site: Moving, client: httpx.AsyncClient, path: str = "/") -> httpx.Response:
    """The page once the store checks its request started are done (fresh_seconds 0),
    and no check left under way (one begun before a change to the store may miss it)."""
    await client.get(path)
    await site.listings.refreshed()
    page = await client.get(path)
    await site.listings.refreshed()
    return page


async def test_todays_page_stays_cached_while_its_window_moves_over_the_same_papers(
    moving: tuple[Moving, httpx.AsyncClient],
) -> None:
    site, client = moving
    first = await _settled(site, client)
    loaded = site.indexed()
    site.time += timedelta(seconds=30)
    page = await _settled(site, client)
    with Store(site.config.database.path) as store:
        moved = day_window(store, site.time.date(), site.time)
    assert moved.start > loaded.window.start  # no edition yet: the window did move
    assert site.indexed() is not loaded and site.indexed().matcher is loaded.matcher
    assert page.headers["x-cache"] == "hit" and page.headers["etag"] == first.headers["etag"]
    assert page.text == first.text
    same = await client.get("/", headers={"if-none-match": first.headers["etag"]})
    assert same.status_code == 304


def _window(indexed: Indexed, start: datetime) -> Window:
    return Window(start, indexed.window.end + timedelta(minutes=1))


async def test_a_moved_window_holds_the_same_papers_only_if_it_covers_them_all(
    moving: tuple[Moving, httpx.AsyncClient],
) -> None:
    site, client = moving
    await _settled(site, client)
    indexed = site.indexed()
    assert indexed.seen is not None and len(indexed.papers) == indexed.stamp[0] > 5
    earliest = indexed.seen[0]
    assert indexed.holds(indexed.window, indexed.stamp)
    assert indexed.holds(_window(indexed, earliest - timedelta(seconds=1)), indexed.stamp)
    assert not indexed.holds(_window(indexed, earliest), indexed.stamp)  # (start, end]
    count, latest = indexed.stamp
    assert not indexed.holds(indexed.window, (count + 1, latest))
    assert latest is not None
    assert not indexed.holds(indexed.window, (count, latest + timedelta(seconds=1)))


async def test_a_reloaded_window_keeps_unchanged_papers_parts_and_builds_the_same_pages(
    moving: tuple[Moving, httpx.AsyncClient],
) -> None:
    site, client = moving
    await _settled(site, client, "/?q=model")
    before = site.indexed()
    shown = [p for p in before.papers if p.id in before.parts]
    assert len(shown) > 5
    kept, changed = shown[0], shown[1]
    with Store(site.config.database.path) as store:
        bumped = replace(changed, upvotes=(changed.upvotes or 0) + 500, sources=[],
                         first_seen=None)  # fmt: skip
        store.upsert_papers("hf", [bumped], site.now + timedelta(minutes=2))
    site.store_paper("Zebra world models everywhere", upvotes=10_000)
    search = await _settled(site, client, "/?q=model")
    after = site.indexed()
    assert after is not before and after.stamp != before.stamp
    assert after.parts[kept.id] is before.parts[kept.id]
    assert after.plain[kept.id] is before.plain[kept.id]
    assert changed.id not in after.parts or after.parts[changed.id] is not before.parts[changed.id]
    assert "Zebra world models everywhere" in titles(search)
    assert search.headers["x-cache"] == "hit"  # built over the new papers before they showed
    home = await client.get("/")
    other = site.fresh_app()  # a server that never saw the papers before the change
    try:
        async with _client(other) as fresh:
            assert (await fresh.get("/?q=model")).text == search.text
            assert (await fresh.get("/")).text == home.text
    finally:
        await other.state.web.store.aclose()
        await other.state.web.reader.aclose()


def test_a_matcher_remembers_more_queries_over_fewer_papers(tmp_path: Path) -> None:
    site = Moving(tmp_path)
    listings: Listings = site.listings
    assert listings is site.app.state.web.listings
    with Store(site.config.database.path) as store:
        window = day_window(store, site.time.date(), site.time)
        papers = store.papers_between(window.start, window.end)
    small = replace(_loaded(site), papers=papers[:10])
    big = replace(small, papers=papers * 20_000)
    assert small.query_room == 4096 and 256 <= big.query_room < small.query_room


def _loaded(site: Moving) -> Indexed:
    from digest.web.listing import _load

    with Store(site.config.database.path) as store:
        window = day_window(store, site.time.date(), site.time)
        return _load(store, window, site.topics, window.end)
