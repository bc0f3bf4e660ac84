"""The web edition's caches (issue 15, speed under load): pages, searches and previews are
built once per state of the stored papers, so a page changes as soon as new papers are stored
(and its ETag with it); a browser that has the page gets a 304; `digest serve --workers N`
answers from N forked processes and stops on SIGTERM. A real SQLite file filled by a real
collect from a recorded HF response; the real app through httpx, and the real CLI."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
from lxml import html as lxml_html

from digest.collect import collect
from digest.config import Config, load_config, load_topics
from digest.store import Store
from digest.web import create_app
from digest.web.listing import Listings
from tests.conftest import DATA, HF_JUNE, app_config, subprocess_env

SECRET = "cache-test-secret-0123456789abcdef"
BASE = "https://digest.example.org"
ROOT = Path(__file__).resolve().parent.parent


class Site:
    """The app over a database of today's papers collected from a recorded HF response, its
    checks of the store made on every request (fresh_seconds 0), so a test needs no waiting."""

    def __init__(self, tmp_path: Path) -> None:
        self.config_path = app_config(tmp_path, [("hf", "hf", DATA / HF_JUNE)])
        self.config: Config = load_config(self.config_path, env={"DIGEST_SECRET": SECRET})
        self.topics = load_topics(self.config.topics_path)
        self.now = datetime.now(UTC)
        with Store(self.config.database.path) as store:
            collect(self.config, store, self.now)  # collected, no edition yet: today's papers
        self.later = later = self.now + timedelta(minutes=5)
        self.app = create_app(self.config, self.topics, clock=lambda: later)
        self.listings: Listings = self.app.state.web.listings
        self.listings.fresh_seconds = 0.0

    def store_paper(self, title: str, upvotes: int) -> str:
        """A new paper of today, most upvoted of all, stored as `digest collect` would."""
        with Store(self.config.database.path) as store:
            model = store.list_papers(limit=1)[0]
            paper = replace(model, id="2611.99999", title=title, upvotes=upvotes, sources=[],
                            first_seen=None, abstract="A new model of everything.")  # fmt: skip
            store.upsert_papers("hf", [paper], self.now + timedelta(minutes=1))
        return paper.id


@pytest.fixture
def made(tmp_path: Path) -> Site:
    return Site(tmp_path)


@pytest.fixture
async def site(made: Site) -> AsyncIterator[tuple[Site, httpx.AsyncClient]]:
    transport = httpx.ASGITransport(app=made.app, client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield made, client
    await made.app.state.web.store.aclose()
    await made.app.state.web.reader.aclose()


def titles(response: httpx.Response) -> list[str]:
    page = lxml_html.fromstring(response.text)
    return [" ".join(h.text_content().split()) for h in page.cssselect(".card .title")]


async def test_a_page_and_its_etag_change_once_new_papers_are_stored(
    site: tuple[Site, httpx.AsyncClient],
) -> None:
    made, client = site
    first = await client.get("/")
    again = await client.get("/")
    assert first.headers["x-cache"] == "miss" and again.headers["x-cache"] == "hit"
    assert again.text == first.text and again.headers["etag"] == first.headers["etag"]
    await made.listings.refreshed()  # checks begun before the new paper settle first
    made.store_paper("Zebra world models everywhere", upvotes=10_000)
    stale = await client.get("/")  # the store is checked in the background meanwhile
    assert "Zebra world models everywhere" not in titles(stale)
    await made.listings.refreshed()
    new = await client.get("/")
    assert titles(new)[0] == "Zebra world models everywhere"
    # built over the new papers before they were shown, as a page asked for before
    assert new.headers["x-cache"] == "hit" and new.headers["etag"] != first.headers["etag"]
    old_tag = await client.get("/", headers={"if-none-match": first.headers["etag"]})
    assert old_tag.status_code == 200 and titles(old_tag)[0] == "Zebra world models everywhere"


async def test_a_search_and_a_preview_see_new_papers_once_stored(
    site: tuple[Site, httpx.AsyncClient],
) -> None:
    made, client = site
    search = await client.get("/", params={"q": "zebra"})
    preview = await client.get("/preview.json", params={"queries": "zebra"})
    assert titles(search) == [] and preview.json()["total"] == 0
    assert (await client.get("/preview.json", params={"queries": "zebra"})).headers[
        "x-cache"
    ] == "hit"
    await made.listings.refreshed()
    made.store_paper("Zebra world models everywhere", upvotes=3)
    await client.get("/", params={"q": "zebra"})
    await client.get("/preview.json", params={"queries": "zebra"})
    await made.listings.refreshed()
    search = await client.get("/", params={"q": "zebra"})
    preview = await client.get("/preview.json", params={"queries": "zebra"})
    assert titles(search) == ["Zebra world models everywhere"]
    assert preview.json()["total"] == 1 and preview.headers["x-cache"] == "hit"  # built before
    assert "Zebra" in json.dumps(preview.json()["top"][0]["title"])


async def test_a_browser_with_the_page_gets_a_304_and_nobody_elses_page(
    site: tuple[Site, httpx.AsyncClient],
) -> None:
    _, client = site
    page = await client.get("/", params={"q": "model"})
    assert page.headers["cache-control"] == "private, no-cache"
    tag, cookie = page.headers["etag"], page.cookies["digest_csrf"]
    assert cookie in page.text  # the visitor's own CSRF token is part of the page
    same = await client.get("/", params={"q": "model"}, headers={"if-none-match": f"W/{tag}"})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == tag
    assert "content-security-policy" in same.headers
    other_query = await client.get("/", params={"q": "agent"}, headers={"if-none-match": tag})
    assert other_query.status_code == 200 and other_query.headers["etag"] != tag
    client.cookies.clear()  # another visitor, another CSRF token: not the same page
    stranger = await client.get("/", params={"q": "model"}, headers={"if-none-match": tag})
    assert stranger.status_code == 200 and stranger.headers["etag"] != tag
    assert cookie not in stranger.text


async def test_a_first_load_slower_than_a_page_waits_still_ends_and_serves(
    site: tuple[Site, httpx.AsyncClient],
) -> None:
    made, client = site
    web = made.app.state.web
    gate = threading.Event()
    held = asyncio.ensure_future(web.reader.call(lambda store: gate.wait(30)))  # a slow database
    busy = await client.get("/")
    assert "The papers are being updated" in busy.text and busy.headers["x-cache"] == "miss"
    gate.set()
    await held
    await made.listings.refreshed()  # the load the page stopped waiting for went on
    assert made.listings.last(("day", made.later.date())) is not None
    page = await client.get("/")
    assert "The papers are being updated" not in page.text and len(titles(page)) > 5


async def test_the_page_cache_keeps_the_latest_pages_within_its_size() -> None:
    listings = Listings({}, max_bytes=100)
    built: list[str] = []

    def page(name: str) -> bytes:
        built.append(name)
        return name.encode() * 40

    for name in ("a", "b", "c", "b"):  # 40 bytes each: two fit
        await listings.lookup(name, partial(page, name))
    assert built == ["a", "b", "c"]
    assert (await listings.lookup("b", partial(page, "b"))) == (b"b" * 40, True)
    assert (await listings.lookup("a", partial(page, "a"))) == (b"a" * 40, False)
    assert built == ["a", "b", "c", "a"]
    listings.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_workers_answers_from_each_and_stops_on_sigterm(
    made: Site, tmp_path: Path
) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "digest", "serve", "--config", str(made.config_path),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=subprocess_env(SECRET), cwd=ROOT, stdout=out,
                                  stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count("Application startup complete") < 2:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            pages = [client.get("/", headers={"connection": "close"}) for _ in range(6)]
        assert {p.status_code for p in pages} == {200}
        assert all('class="card"' in p.text for p in pages)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    text = log.read_text()
    assert text.count("Started server process") == 2
    assert text.count("Finished server process") == 2
