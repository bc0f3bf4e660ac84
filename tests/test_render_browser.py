"""The emails in a real browser: Debian's Chromium driven by playwright, at phone and desktop
widths, light and dark. Nothing may be wider than the screen. Screenshots are kept in
tests/artifacts/ (ignored by git) for a human to look at."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from digest.config import load_config, load_topics, parse_config
from digest.match import Matcher
from digest.models import Paper, Subscriber
from digest.render import Renderer
from digest.sources import hf
from tests.conftest import HF_JUNE, recording

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
LINKS = {
    "unsubscribe": "https://digest.example.org/u/TOKEN-u",
    "manage": "https://digest.example.org/manage/TOKEN-m",
}

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: `apt-get install chromium` (make test does it as root)",
)

STRESS = [
    Paper(
        id="2606.99001",
        arxiv_id="2606.99001",
        title="Stress: " + "Supercalifragilisticexpialidocious" * 12,
        abstract="A stress case. " + "https://example.org/" + "very-long-path-segment" * 20,
        authors=["Wolfeschlegelsteinhausenbergerdorff" * 3, "B. Author"],
        project_page="https://example.org/" + "p" * 300,
        github_repo="https://github.com/example/" + "r" * 120,
        github_stars=123456,
        categories=["cs.CV", "cs.RO", "cs.LG", "cs.AI", "stat.ML", "eess.IV"],
        upvotes=900_000,
    ),
    Paper(
        id="2606.99002",
        arxiv_id="2606.99002",
        title='Stress <script>alert("x")</script> 多言語 العربية Ελληνικά 🤖🧪 emoji',
        abstract="Stress. " + "日本語のテキストは空白なしで長く続くことがあるので確かめる" * 4,
        authors=["李明", "محمد", "Ζωή"],
        upvotes=800_000,
    ),
]


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    """One page for every case: a new browser context costs ~0.4 s, a media switch nothing."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        opened = browser.new_page()
        opened.route("**/*", lambda route: route.abort())  # never the network; images blocked
        yield opened
        browser.close()


@pytest.fixture(scope="module")
def emails() -> dict[str, str]:
    topics = load_topics(load_config(env={}).topics_path)
    config = parse_config(
        {"mail": {"postal_address": "Paper Digest, 1 Example St, Paris"}}, None, {}
    )
    renderer = Renderer(config, topics)
    papers = hf.parse(recording(HF_JUNE), "hf") + STRESS
    sub = Subscriber("reader@example.org", id=7, topics=["llm-agents"], queries=["stress"])
    sub.max_papers = 6
    matches = Matcher(papers, topics, NOW).for_subscriber(sub)
    assert {m.paper.id for m in matches} >= {p.id for p in STRESS}
    digest = renderer.digest(sub, matches, "2026-06-12", NOW.date(), len(papers), LINKS)
    confirm = renderer.confirm(
        "reader@example.org", "https://digest.example.org/c/" + "T" * 120, ["robotics"]
    )
    many = Subscriber("many@example.org", id=8, queries=["model OR learning OR agent*"])
    many.max_papers = 14  # compact cards past the tenth, and a line about the rest
    long = renderer.digest(
        many, Matcher(papers, topics, NOW).for_subscriber(many), "2026-06-12", NOW.date(), 32, LINKS
    )
    assert "more papers matched" in long.text and "compact" in long.html
    noted = Renderer(parse_config({"mail": {"no_matches": "note"}}, None, {}), topics)
    note = noted.nothing_new(sub, "2026-06-13", NOW.date(), 0, "weekend", LINKS)
    assert note is not None
    return {"digest": digest.html, "confirm": confirm.html, "long": long.html, "note": note.html}


WIDEST = """() => Math.max(...[...document.querySelectorAll('body *')]
    .map(e => e.getBoundingClientRect().right))"""
BACKGROUND = "s => getComputedStyle(document.querySelector(s)).backgroundColor"


def luminance(rgb: str) -> float:
    r, g, b = (int(x) for x in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 800])
@pytest.mark.parametrize("kind", ["digest", "confirm", "long"])
def test_the_email_fits_the_screen_in_light_and_dark(
    page: Any, emails: dict[str, str], kind: str, width: int, scheme: str
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.emulate_media(color_scheme=scheme)
    page.set_content(emails[kind])
    inner = page.evaluate("innerWidth")
    assert inner == width
    assert page.evaluate("document.documentElement.scrollWidth") <= inner
    assert page.evaluate(WIDEST) <= inner + 0.5
    card = luminance(page.evaluate(BACKGROUND, ".card"))
    body = luminance(page.evaluate(BACKGROUND, "body"))
    if scheme == "dark":
        assert card < 0.2 and body < 0.2
    else:
        assert card > 0.9 and body > 0.9
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{kind}-{width}-{scheme}.png"), full_page=True)


CONTRASTS = """() => {
  const rgb = c => c.match(/[\\d.]+/g).map(Number);
  const channel = v => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  const lum = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return rgb(getComputedStyle(document.documentElement).backgroundColor);
  };
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const [hi, lo] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))]
      .sort((a, b) => b - a);
    out.push([el.tagName + "." + el.className, el.textContent.trim().slice(0, 40),
              (hi + 0.05) / (lo + 0.05)]);
  }
  return out;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("kind", ["digest", "confirm", "long", "note"])
def test_every_text_meets_wcag_aa_contrast_in_light_and_dark(
    page: Any, emails: dict[str, str], kind: str, scheme: str
) -> None:
    """Each element holding text, hidden ones included (a preheader coloured like its
    background is what SpamAssassin's HTML_FONT_LOW_CONTRAST flags), against the background
    actually painted behind it: at least 4.5:1 (WCAG AA)."""
    page.set_viewport_size({"width": 800, "height": 900})
    page.emulate_media(color_scheme=scheme)
    page.set_content(emails[kind])
    measured = page.evaluate(CONTRASTS)
    assert len(measured) > 5
    low = [(where, text, round(ratio, 2)) for where, text, ratio in measured if ratio < 4.5]
    assert low == []
