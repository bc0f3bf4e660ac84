"""More like this, in a real browser: a real email's link opens a page with one button
(Chromium via playwright, uvicorn on 127.0.0.1), the preferences page then lists the paper, and
the next run's email has a "Recommended for you" section whose why names it. Screenshots of
each page go to tests/artifacts/recommend/."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import shutil
import socket
import threading
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from digest.config import load_config, load_topics
from digest.models import Subscriber
from digest.pipeline import Pipeline, RunReport
from digest.store import SignalKind, Store
from digest.web import create_app
from tests.conftest import DATA, HF_JUNE, app_config
from tests.smtp_server import Recorder, start

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts" / "recommend"
SECRET = "browser-test-secret-0123456789abcdef"
NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
ARXIV_API = "arxiv_api_query_cs.LG_OR_cs.AI_2026-04-30.xml"

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(
    not shutil.which(CHROMIUM), reason="Debian's chromium is not installed (make test installs it)"
)


class Site:
    """uvicorn serving the app on 127.0.0.1, a real SMTP server, and the two days' configs."""

    def __init__(self, tmp_path: Path) -> None:
        import uvicorn

        self.recorder = Recorder()
        self.smtp = start(self.recorder)
        self.listening = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.base = f"http://127.0.0.1:{self.listening.getsockname()[1]}"
        self.tmp_path = tmp_path
        config = load_config(
            self.config([("hf", "hf", DATA / HF_JUNE)]), env={"DIGEST_SECRET": SECRET}
        )
        app = create_app(config, load_topics(config.topics_path), clock=lambda: NOW)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.listening]}, daemon=True
        )
        self.thread.start()

    def config(self, sources: list[tuple[str, str, Any]]) -> Path:
        return app_config(self.tmp_path, sources, self.smtp.port, web={"base_url": self.base})

    def run(self, sources: list[tuple[str, str, Any]], now: datetime) -> RunReport:
        config = load_config(self.config(sources), env={"DIGEST_SECRET": SECRET})

        async def job() -> RunReport:
            with Store(config.database.path) as store:
                return await Pipeline(config, store, load_topics(config.topics_path), now).run()

        return _in_thread(job())

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.listening.close()
        self.smtp.stop()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    opened = Site(tmp_path)
    try:
        yield opened
    finally:
        opened.close()


def _in_thread(coro: Coroutine[Any, Any, RunReport]) -> RunReport:
    """playwright's sync API owns this thread's event loop; run ours beside it."""
    result: list[RunReport] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(coro)))
    thread.start()
    thread.join(timeout=120)
    return result[0]


def _html_and_text(data: bytes) -> tuple[str, str]:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    html, text = msg.get_body(("html",)), msg.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


def test_more_like_this_in_chromium_leads_to_a_recommended_section(site: Site) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with Store(site.tmp_path / "digest.db") as store:
        ada = Subscriber("ada@example.org", status="active", queries=["agent"], hour=0)
        store.add_subscriber(ada, NOW, "test")
    site.run([("hf", "hf", DATA / HF_JUNE)], NOW - timedelta(days=1))
    html, _ = _html_and_text(site.recorder.received[0].data)
    first = re.search(r'href="([^"]+/fb/more/[^"]+)"[^>]*>More like this</a>', html)
    assert first is not None, "no More like this link in the email's HTML"
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(first.group(1))
        page.screenshot(path=str(ARTIFACTS / "1-feedback-button.png"), full_page=True)
        with Store(site.tmp_path / "digest.db") as store:
            assert store.reader_signals(1) == []  # the GET recorded nothing
        page.get_by_role("button", name="More like this").click()
        page.wait_for_selector("#liked-link")
        page.screenshot(path=str(ARTIFACTS / "2-noted-and-similar.png"), full_page=True)
        with Store(site.tmp_path / "digest.db") as store:
            (signal,) = store.reader_signals(1)
        assert signal.kind is SignalKind.MORE
        page.click("#liked-link")
        liked = page.locator("#liked").inner_text()
        page.screenshot(path=str(ARTIFACTS / "3-preferences-list.png"), full_page=True)
        browser.close()
    assert signal.title in liked
    site.recorder.received.clear()
    site.run([("hf", "hf", DATA / HF_JUNE), ("api", "arxiv", DATA / ARXIV_API)], NOW)
    (received,) = site.recorder.received
    html, text = _html_and_text(received.data)
    assert "Recommended for you" in html and "== Recommended for you (" in text
    assert f"Like {' '.join(signal.title.split())[:40]}" in text
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.set_content(html)
        page.screenshot(path=str(ARTIFACTS / "4-next-email-recommended.png"), full_page=True)
        browser.close()
