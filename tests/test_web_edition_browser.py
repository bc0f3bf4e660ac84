"""The web edition in a real browser (Chromium via playwright) against uvicorn on 127.0.0.1,
after a real daily run mailed a real SMTP server: the home page searched with a good and a bad
query, topic chips, day navigation; the live preview as a query is typed, and its Preview
button with JavaScript off; the view-in-browser page reached from the email's own link; the
Atom feed; and WCAG AA contrast of every text, light and dark, at 375 and 1280 px. Each page
is kept as a screenshot under tests/artifacts/edition/."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest

from digest import subscribers as subs
from digest.config import load_config, load_topics
from digest.models import Subscriber
from digest.pipeline import Pipeline
from digest.store import Store
from digest.web import create_app
from tests.conftest import DATA, HF_JUNE, app_config
from tests.smtp_server import Recorder, start

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts" / "edition"
SECRET = "edition-browser-secret"
QUERY = "llm OR language OR model"

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(
    not shutil.which(CHROMIUM), reason="Debian's chromium is not installed (make test installs it)"
)


@dataclass
class Site:
    base: str
    message: email.message.EmailMessage

    def link(self, pattern: str) -> str:
        text = self.message.get_body(("plain",)).get_content()
        found = re.search(pattern, text)
        assert found, "link not in the email"
        return found.group(1)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    import uvicorn

    recorder = Recorder()
    smtp = start(recorder)
    listening = socket.create_server(("127.0.0.1", 0), backlog=128)
    base = f"http://127.0.0.1:{listening.getsockname()[1]}"
    config_path = app_config(
        tmp_path, [("hf", "hf", DATA / HF_JUNE)], smtp.port, web={"base_url": base}
    )
    config = load_config(config_path, env={"DIGEST_SECRET": SECRET})
    topics = load_topics(config.topics_path)
    now = datetime.now(UTC)
    with Store(config.database.path) as store:
        subs.add(store, topics, Subscriber("ada@example.org", status="active", hour=0,
                 queries=[QUERY], max_papers=3), now)  # fmt: skip
        asyncio.run(Pipeline(config, store, topics, now).run())
    (received,) = recorder.received
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    server = uvicorn.Server(uvicorn.Config(create_app(config, topics), log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    try:
        yield Site(base, message)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listening.close()
        smtp.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield launched
        launched.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def test_home_searches_with_good_and_bad_queries_chips_and_day_navigation(
    site: Site, browser: Any
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(site.base + "/")
    assert page.locator(".card").count() == 30
    shot(page, "1-home")
    page.fill("#q", "title:agent*")
    page.click("#search button")
    assert "q=title%3Aagent*" in page.url
    found = page.locator(".card").count()
    assert 0 < found < 30 and page.locator(".card .title mark").count() >= found
    shot(page, "2-search")
    page.fill("#q", "diffusion AND (video")
    page.click("#search button")
    error = page.inner_text("#q-error")
    assert error.startswith("diffusion AND (video\n") and "^" in error
    assert page.locator(".card").count() == 0
    shot(page, "3-bad-query")
    page.goto(site.base + "/")
    page.click(".chips a:text('LLM agents')")
    assert page.url.endswith("/?topic=llm-agents")
    assert page.inner_text(".chip.active") == "LLM agents"
    chosen = page.locator(".card").count()
    assert 0 < chosen < 30
    shot(page, "4-chip")
    page.click("a.pager-prev")
    assert "/d/" in page.url and "topic=llm-agents" in page.url
    assert page.locator(".card").count() == 0 and page.is_visible("#empty")
    shot(page, "5-previous-day")
    page.click("a.pager-next")
    assert page.locator(".card").count() == chosen
    page.click("a.pager-week")
    assert page.inner_text("h1").startswith("Week ") and page.locator(".card").count() == chosen
    shot(page, "6-week")


def test_the_live_preview_follows_typing_and_the_button_works_without_javascript(
    site: Site, browser: Any
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(site.base + "/")
    assert page.get_attribute("#subscribe", "data-live") == "on"
    page.fill("#queries", "title:agent*")
    page.wait_for_selector("#preview-total")
    first = page.inner_text("#preview-total")
    assert "would have matched" in first and page.locator(".preview-top li").count() > 0
    assert page.locator(".preview-top mark").count() > 0
    page.fill("#queries", QUERY)
    page.wait_for_function(
        "first => document.querySelector('#preview-total')?.textContent !== first", arg=first
    )
    assert page.inner_text("#preview-total") != first
    shot(page, "7-live-preview")
    page.fill("#queries", "diffusion AND (video")
    page.wait_for_selector("#preview-error")
    assert "unclosed parenthesis" in page.inner_text("#preview-error")

    context = browser.new_context(java_script_enabled=False, viewport={"width": 375, "height": 800})
    plain = context.new_page()
    plain.goto(site.base + "/")
    assert plain.get_attribute("#subscribe", "data-live") is None
    plain.check("input[name=topic][value=llm-agents]")
    plain.click("#preview-button")
    assert "would have matched" in plain.inner_text("#preview-total")
    assert plain.is_checked("input[name=topic][value=llm-agents]")
    shot(plain, "8-preview-without-javascript")
    context.close()


def test_view_in_browser_from_the_emails_own_link_and_the_atom_feed(
    site: Site, browser: Any
) -> None:
    web = site.link(r"View in your browser: (\S+)")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(web)
    summary = page.inner_text("#summary")
    shown, matched = (int(n) for n in re.findall(r"\d+", summary)[:2])
    assert shown == 3 and page.locator("#email .card").count() == 3
    assert page.inner_text("#more").startswith(f"{matched - 3} more papers matched")
    assert page.locator("#left-out .card").count() == matched - 3
    shot(page, "9-view-in-browser")
    page.click("text=Your Atom feed")
    response = page.request.get(page.url)
    assert response.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(response.body())
    assert not parsed.bozo and len(parsed.entries) == 3
    assert all(e.get("id") and e.get("title") and e.get("updated") and e.get("link")
               for e in parsed.entries)  # fmt: skip


CONTRAST = """() => {
  const parse = c => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92
    : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g)
    + 0.0722 * f(c.b); };
  const background = el => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; } }
    let base = {r: 255, g: 255, b: 255};
    for (let i = layers.length - 1; i >= 0; i--) { const c = layers[i];
      base = {r: c.r * c.a + base.r * (1 - c.a), g: c.g * c.a + base.g * (1 - c.a),
              b: c.b * c.a + base.b * (1 - c.a)}; }
    return base; };
  const bad = []; let checked = 0;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) { const node = walker.currentNode; const el = node.parentElement;
    if (!node.textContent.trim() || el.closest('datalist, script, style, select')) continue;
    const st = getComputedStyle(el); if (!el.getClientRects().length) continue;
    const fg = parse(st.color); const bg = background(el);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(st.fontSize); const bold = parseInt(st.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5; checked++;
    if (ratio < need) bad.push(`${node.textContent.trim().slice(0, 30)}: ${ratio.toFixed(2)}`
                               + ` ${st.color} on ${JSON.stringify(bg)}`); }
  return {bad, checked};
}"""


@pytest.mark.parametrize("width", [375, 1280])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_text_meets_wcag_aa_contrast(
    site: Site, browser: Any, width: int, scheme: str
) -> None:
    context = browser.new_context(color_scheme=scheme, viewport={"width": width, "height": 900})
    page = context.new_page()
    pages = {
        "home": site.base + "/?q=title%3Aagent*&topic=llm-agents",
        "bad-query": site.base + "/?q=diffusion+AND+%28video",
        "view": site.link(r"View in your browser: (\S+)"),
        "manage": site.link(r"Manage preferences: (\S+)"),
        "404": site.base + "/no/such/page",
    }
    for name, url in pages.items():
        page.goto(url)
        if name == "home":
            page.fill("#queries", "title:agent*")
            page.wait_for_selector("#preview-total")
        result = page.evaluate(CONTRAST)
        assert result["checked"] >= 3, name
        assert not result["bad"], f"{name} {scheme} {width}: {result['bad'][:5]}"
        shot(page, f"contrast-{name}-{scheme}-{width}")
    context.close()
