"""A person's whole journey in a real browser (Chromium via playwright) against uvicorn on
127.0.0.1, with emails read from a real SMTP server: subscribe, confirm from the email, change
a setting, unsubscribe through the digest's own link. The database is checked at each step and
each page is kept as a screenshot under tests/artifacts/."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.config import load_config, load_topics
from digest.pipeline import Pipeline
from digest.store import Store
from digest.web import create_app
from tests.conftest import DATA, HF_JUNE, app_config
from tests.smtp_server import Recorder, start

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts" / "web"
SECRET = "browser-test-secret"

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(
    not shutil.which(CHROMIUM), reason="Debian's chromium is not installed (make test installs it)"
)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Recorder, Path]]:
    import uvicorn

    recorder = Recorder()
    smtp = start(recorder)
    # bound and listening before uvicorn starts: the browser's first request waits in the
    # backlog instead of the test polling for the server
    listening = socket.create_server(("127.0.0.1", 0), backlog=64)
    base = f"http://127.0.0.1:{listening.getsockname()[1]}"
    config_path = app_config(
        tmp_path, [("hf", "hf", DATA / HF_JUNE)], smtp.port, web={"base_url": base}
    )
    config = load_config(config_path, env={"DIGEST_SECRET": SECRET})
    app = create_app(config, load_topics(config.topics_path))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    try:
        yield base, recorder, config_path
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listening.close()
        smtp.stop()


async def _daily_run(config_path: Path):  # type: ignore[no-untyped-def]
    config = load_config(config_path, env={"DIGEST_SECRET": SECRET})
    with Store(config.database.path) as store:
        store.update_subscriber(1, {"hour": 0}, datetime.now(UTC), "edited", "test: due now")
        pipeline = Pipeline(config, store, load_topics(config.topics_path), datetime.now(UTC))
        return await pipeline.run()


def _in_thread(coro):  # type: ignore[no-untyped-def]
    """playwright's sync API owns this thread's event loop; run ours beside it."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(coro)))
    thread.start()
    thread.join(timeout=60)
    return result[0]


def _link(message: bytes, pattern: str) -> str:
    msg = email.message_from_bytes(message, policy=email.policy.default)
    found = re.search(pattern, msg.get_body(("plain",)).get_content())
    assert found, "link not in the email"
    return found.group(0)


def _subscriber(config_path: Path) -> dict:
    config = load_config(config_path, env={})
    with Store(config.database.path) as store:
        sub = store.get_subscriber("ada@example.org")
        assert sub is not None
        return {"status": sub.status, "hour": sub.hour, "topics": sub.topics}


def test_subscribe_confirm_manage_unsubscribe_in_a_browser(
    site: tuple[str, Recorder, Path],
) -> None:
    base, recorder, config_path = site
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 800, "height": 1000})
        page.goto(base + "/")
        page.screenshot(path=ARTIFACTS / "1-subscribe.png", full_page=True)
        page.fill("#email", "ada@example.org")
        page.check("input[name=topic][value=llm-agents]")
        page.fill("#queries", "diffusion AND (video")
        page.click("#subscribe button[type=submit]")
        assert "unclosed parenthesis" in page.inner_text("#queries-error")
        page.screenshot(path=ARTIFACTS / "2-query-error.png", full_page=True)
        page.fill("#queries", '"world model" OR title:diffusion')
        page.click("#subscribe button[type=submit]")
        assert page.inner_text("h1") == "Check your inbox"
        page.screenshot(path=ARTIFACTS / "3-check-inbox.png", full_page=True)
        assert _subscriber(config_path)["status"] == "pending"

        (confirmation,) = recorder.received
        page.goto(_link(confirmation.data, re.escape(base) + r"/c/\S+"))
        assert page.inner_text("h1") == "Confirm your subscription"
        assert _subscriber(config_path)["status"] == "pending"  # opening the link is not enough
        page.screenshot(path=ARTIFACTS / "4-confirm.png", full_page=True)
        page.click("button[type=submit]")
        assert page.inner_text("h1") == "You are subscribed"
        page.screenshot(path=ARTIFACTS / "4-confirmed.png", full_page=True)
        assert _subscriber(config_path)["status"] == "active"

        page.click("text=Change settings")
        page.select_option("select[name=hour]", "6")
        page.click("#preferences button[type=submit]")
        assert page.inner_text("#notice") == "Saved."
        page.screenshot(path=ARTIFACTS / "5-manage.png", full_page=True)
        assert _subscriber(config_path)["hour"] == 6

        # The daily job mails her; she unsubscribes through that email's link.
        report = _in_thread(_daily_run(config_path))
        assert report.send.sent == 1
        digest = recorder.received[-1].data
        header = email.message_from_bytes(digest, policy=email.policy.default)
        unsubscribe_url = re.search(r"<(http[^>]+)>", header["List-Unsubscribe"]).group(1)
        page.goto(unsubscribe_url)
        assert page.inner_text("h1") == "Unsubscribe?"
        assert _subscriber(config_path)["status"] == "active"  # a GET changes nothing
        page.screenshot(path=ARTIFACTS / "6-unsubscribe.png", full_page=True)
        page.click("button.danger")
        assert page.inner_text("h1") == "You are unsubscribed"
        page.screenshot(path=ARTIFACTS / "7-unsubscribed.png", full_page=True)
        assert _subscriber(config_path)["status"] == "unsubscribed"

        dark = browser.new_page(viewport={"width": 375, "height": 800}, color_scheme="dark")
        dark.goto(base + "/")
        assert dark.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        dark.screenshot(path=ARTIFACTS / "8-subscribe-phone-dark.png", full_page=True)
        # an internationalised address goes through the browser's own form checks too
        dark.fill("#email", "j\u00f6rg@m\u00fcnchen.de")
        dark.check("input[name=topic][value=robotics]")
        dark.click("#subscribe button[type=submit]")
        assert dark.inner_text("h1") == "Check your inbox"
        browser.close()


CONTRAST_JS = """() => {
  const parse = (c) => { const p = c.match(/[\\d.]+/g).map(Number);
                         return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = (c) => { const f = (v) => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const background = (el) => { for (; el; el = el.parentElement) {
      const c = parse(getComputedStyle(el).backgroundColor); if (c.a > 0) return c; }
    return parse(getComputedStyle(document.documentElement).backgroundColor); };
  const found = [];
  for (const el of document.querySelectorAll("body *")) {
    if (el.tagName === "OPTION") continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const a = lum(parse(getComputedStyle(el).color)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    found.push([el.tagName + " " + el.textContent.trim().slice(0, 30), ratio]);
  }
  return found;
}"""


def test_every_text_on_the_pages_meets_wcag_aa_in_both_schemes(
    site: tuple[str, Recorder, Path],
) -> None:
    """White button text on the dark scheme's light accent measured about 2.3:1."""
    from digest import subscribers as subs
    from digest.models import Subscriber
    from digest.tokens import Tokens

    base, _, config_path = site
    config = load_config(config_path, env={})
    with Store(config.database.path) as store:
        ada = subs.add(
            store,
            load_topics(config.topics_path),
            Subscriber("ada@example.org", status="active", topics=["robotics"]),
            datetime.now(UTC),
        )
        bob = subs.add(store, load_topics(config.topics_path),
                       Subscriber("bob@example.org", topics=["robotics"]),
                       datetime.now(UTC))  # fmt: skip
    tokens = Tokens(SECRET)
    paths = [
        "/",
        f"/u/{tokens.make('unsubscribe', ada.id or 0, ada.email)}",
        f"/c/{tokens.make('confirm', bob.id or 0, bob.email)}",
        f"/manage/{tokens.make('manage', ada.id or 0, ada.email)}",
        "/u/not-a-token",
    ]
    low: list[str] = []
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for scheme in ("light", "dark"):
            page = browser.new_page(color_scheme=scheme)
            for path in paths:
                page.goto(base + path)
                low += [f"{scheme} {path[:12]} {what}: {ratio:.2f}"
                        for what, ratio in page.evaluate(CONTRAST_JS) if ratio < 4.5]  # fmt: skip
        browser.close()
    assert low == []
