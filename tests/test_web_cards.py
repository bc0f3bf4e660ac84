"""The web pages' cards (issue 15, a first-time search cheaper): printed from per-paper frames
filled with each match's highlights and why, with no text part built, they are byte for byte
what the card template prints for the email's own card of the same match. A real SQLite
file filled by a real collect from a recorded HF response; the real app's state."""

from __future__ import annotations

import random
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from digest.models import Subscriber
from digest.pages import Pages
from digest.render import Card, build_card, paper_card
from digest.render.frames import sample_view
from digest.web.browse import day_span
from digest.web.cards import CardPrinter, Frames
from digest.web.listing import Indexed
from digest.web.state import Web
from tests.test_web_cache import ROOT, Site


@pytest.fixture
def made(tmp_path: Path) -> Site:
    return Site(tmp_path)


def _queries(indexed: Indexed, seed: int = 3) -> list[str]:
    """Words of the papers' own titles and abstracts (hits in the title, the abstract, both,
    neither), phrases, prefixes, NOT, fields and upvotes."""
    rng = random.Random(seed)
    words = [
        w.strip(".,:;()") for p in indexed.papers for w in (p.title + " " + p.abstract).split()
    ]
    words = [w for w in words if w.isalpha() and len(w) > 3]
    out = ["model", "diffusion video", '"language model"', "agent*", "title:learning",
           "abstract:(robot OR manipulation)", "model -survey", "upvotes>=5",
           "cat:cs.*"]  # fmt: skip
    for _ in range(40):
        picked = rng.sample(words, rng.choice((1, 1, 2, 3)))
        out.append(" OR ".join(picked) if rng.random() < 0.3 else " ".join(picked))
    return out


async def _indexed(site: Site) -> tuple[Web, Indexed]:
    web: Web = site.app.state.web
    span = day_span(site.later.date(), site.later)
    indexed = await web.listings.get(web.reader, span.name, span.window_of)
    return web, indexed


@pytest.mark.asyncio
async def test_web_cards_print_as_the_template_prints_the_emails_card(made: Site) -> None:
    web, indexed = await _indexed(made)
    template = web.pages.env.get_template("web/card.html.j2")
    assert web.cards.usable
    printed = 0
    try:
        for query in _queries(indexed):
            found = indexed.matcher.for_subscriber(_searcher(query, len(indexed.papers)))
            for match in found:
                plain = indexed.plain_card(match.paper)
                got = web.cards.html(indexed.card(match), indexed.frames, match.paper.id, plain)
                assert got == template.render(card=build_card(match, True)), query
                printed += 1
        for paper in indexed.papers:
            plain = indexed.plain_card(paper)
            got = web.cards.html(plain, indexed.frames, paper.id, plain)
            assert got == template.render(card=paper_card(paper, True))
    finally:
        await web.store.aclose()
        await web.reader.aclose()
    assert printed > 200  # highlights in titles and abstracts, whys of every shape


def _searcher(query: str, limit: int) -> Subscriber:
    return Subscriber(email="web@localhost", queries=[query], max_papers=limit)


def test_a_template_frames_cannot_reproduce_is_printed_by_jinja(made: Site, tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    twice = (
        "<h3>{% for t, h in card.title %}{{ t }}{% endfor %}</h3>"
        "<p>{{ card.title|length }}{% for t, h in card.title %}{{ t }}{% endfor %}</p>"
    )
    (folder / "web" / "card.html.j2").write_text(twice, encoding="utf-8")
    pages = Pages(replace(made.config, templates_dir=str(folder)), "Brand")
    printer = CardPrinter(pages)
    assert not printer.usable
    view = sample_view(1)
    card = Card(
        paper=view, title=[("a <b>", False), ("c&", True)], abstract=[], why=[],
        text_abstract="", text_why="", compact=False, why_line="", short_title="",
        short_authors="", links=[], text_links=[],
    )  # fmt: skip
    printed = printer.html(card, Frames(), "x")
    assert printed == pages.render("card", card=card)
    assert printed == "<h3>a &lt;b&gt;c&amp;</h3><p>2a &lt;b&gt;c&amp;</p>"
