"""Rendering emails: real matches from the recordings, escaping, inlining once = inlining each."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import os
import random
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from urllib.parse import urlsplit

import cssutils
import lxml.html
import pytest
from jinja2 import DictLoader
from markupsafe import Markup
from typer.testing import CliRunner

from digest.cli import app
from digest.config import Config, load_config, load_topics, parse_config
from digest.errors import RenderError
from digest.match import Match, Matcher
from digest.models import Paper, Subscriber
from digest.pipeline import Pipeline, RunReport
from digest.query import Term, highlight_spans, parse, terms_of, word_spans
from digest.query.highlight import TextWords
from digest.render import (
    RenderedEmail,
    Renderer,
    authors_line,
    paper_links,
    safe_url,
    snippet,
    subject_for,
)
from digest.render.cards import (
    CARD_CACHE,
    CARD_CACHE_MAX,
    CARD_CACHE_MIN,
    PaperWords,
    build_card,
    card_capacity,
    paper_words,
    view_paper,
)
from digest.render.inline import environment, split_card
from digest.render.text import MAX_SNIPPET, abstract_snippet, clean, edition_label, plural
from digest.sources import arxiv, hf
from digest.store import Store
from digest.subscribers import MAX_PAPERS_LIMIT
from tests.conftest import ARXIV_API, ARXIV_RSS, DATA, HF_JUNE, app_config, recording
from tests.smtp_server import Recorder

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
DAY = NOW.date()
EDITION = "2026-06-12"
TOPICS = load_topics(load_config(env={}).topics_path)
LINKS = {
    "unsubscribe": "https://digest.example.org/u/TOKEN-u",
    "manage": "https://digest.example.org/manage/TOKEN-m",
}
GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("DIGEST_REGEN_GOLDEN") == "1"  # read before the fixtures clear DIGEST_*
PROJECT = Path(__file__).parent.parent


def config(**mail: str) -> Config:
    base = {"postal_address": "Paper Digest, 1 Example Street, 75001 Paris, France"}
    return parse_config({"mail": {**base, **mail}}, None, {})


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(config(no_matches="note"), TOPICS)


@pytest.fixture(scope="module")
def papers() -> list[Paper]:
    return (
        hf.parse(recording(HF_JUNE), "hf")
        + arxiv.parse(recording(ARXIV_RSS), "arxiv")
        + arxiv.parse(recording(ARXIV_API), "arxiv-api")
    )


SUBSCRIBERS = {
    "one-topic": Subscriber("one@example.org", id=1, topics=["llm-agents"]),
    "topics-and-queries": Subscriber(
        "many@example.org",
        id=2,
        topics=["llm-agents", "reasoning"],
        queries=['diffusion OR "world model"', "cat:cs.LG"],
    ),
    "authors-and-categories": Subscriber(
        "who@example.org", id=3, queries=['author:"Peng Gao" OR cat:stat.ML OR upvotes>=100']
    ),
}


def matches_for(papers: list[Paper], sub: Subscriber) -> list[Match]:
    found = Matcher(papers, TOPICS, NOW).for_subscriber(sub)
    assert found, "the fixture subscriber should match something"
    return found


def render(renderer: Renderer, papers: list[Paper], case: str, **kw: bool) -> RenderedEmail:
    sub = SUBSCRIBERS[case]
    return renderer.digest(sub, matches_for(papers, sub), EDITION, DAY, len(papers), LINKS, **kw)


def tree(html: str) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(html)


def hrefs(html: str) -> list[str]:
    doc = tree(html)
    return [str(v) for v in doc.xpath("//@href | //@src")]


def all_emails(renderer: Renderer, papers: list[Paper]) -> dict[str, RenderedEmail]:
    emails = {case: render(renderer, papers, case) for case in SUBSCRIBERS}
    note = renderer.nothing_new(SUBSCRIBERS["one-topic"], EDITION, DAY, 0, "weekend", LINKS)
    assert note is not None
    emails["nothing-new"] = note
    emails["confirm"] = renderer.confirm(
        "new@example.org", "https://digest.example.org/c/TOKEN", ["robotics"], ["agent*"]
    )
    return emails


def test_the_html_parses_and_every_paper_has_its_titled_link(
    renderer: Renderer, papers: list[Paper]
) -> None:
    sub = SUBSCRIBERS["topics-and-queries"]
    matches = matches_for(papers, sub)
    email = renderer.digest(sub, matches, EDITION, DAY, len(papers), LINKS)
    doc = tree(email.html)
    titles = doc.find_class("title")
    assert len(titles) == len(matches) == 10
    by_href = {a.get("href"): a.text_content() for a in doc.find_class("title-link")}
    for m in matches:
        assert by_href[f"https://arxiv.org/abs/{m.paper.arxiv_id}"] == " ".join(
            m.paper.title.split()
        )
    assert doc.find(".//title").text == email.subject
    assert doc.find_class("summary")[0].text == "10 of 32 matches from 54 new papers"
    assert doc.find_class("address")[0].text.startswith("Paper Digest, 1 Example Street")


def test_no_css_rule_is_left_only_in_a_style_block_except_media_queries(
    renderer: Renderer, papers: list[Paper]
) -> None:
    for name, email in all_emails(renderer, papers).items():
        doc = tree(email.html)
        for style in doc.iter("style"):
            for rule in cssutils.parseString(style.text or ""):
                assert rule.type == rule.MEDIA_RULE, f"{name}: {rule.cssText} only in <style>"
        assert doc.xpath("//*[@class='card-body' or @class='footer'][not(@style)]") == []


def test_every_link_is_absolute_http_or_https(renderer: Renderer, papers: list[Paper]) -> None:
    for name, email in all_emails(renderer, papers).items():
        urls = hrefs(email.html)
        assert urls, name
        assert all(re.match(r"https?://[^/\s]+", u) for u in urls), name


def test_the_text_part_holds_every_title_and_link_and_wraps_prose(
    renderer: Renderer, papers: list[Paper]
) -> None:
    for name, email in all_emails(renderer, papers).items():
        flat = " ".join(email.text.split())
        for href in hrefs(email.html):
            assert href in email.text, f"{name}: {href} missing from the text part"
        for title in tree(email.html).find_class("title"):
            assert " ".join(title.text_content().split()) in flat, name
        for line in email.text.splitlines():
            assert len(line) < 78 or "://" in line, f"{name}: {line!r} is too long"
        assert "<" not in email.text, f"{name}: markup in the text part"
        assert email.text.endswith("\n")


@pytest.mark.parametrize("case", [*SUBSCRIBERS, "nothing-new", "confirm"])
def test_inlining_each_template_once_equals_inlining_each_whole_email(
    renderer: Renderer, papers: list[Paper], case: str
) -> None:
    if case == "nothing-new":
        sub = SUBSCRIBERS["one-topic"]
        ours = renderer.nothing_new(sub, EDITION, DAY, 12, "arxiv: HTTP 503", LINKS)
        naive = renderer.nothing_new(sub, EDITION, DAY, 12, "arxiv: HTTP 503", LINKS, naive=True)
        assert ours is not None and naive is not None
    elif case == "confirm":
        args = ("a@example.org", "https://digest.example.org/c/T", ["world-models"], ["x y"])
        ours, naive = renderer.confirm(*args), renderer.confirm(*args, naive=True)
    else:
        ours, naive = render(renderer, papers, case), render(renderer, papers, case, naive=True)
    assert ours.text == naive.text
    assert ours.subject == naive.subject
    assert elements(ours.html) == elements(naive.html)


def elements(html: str) -> list[tuple[object, ...]]:
    """Each element, comment and text run in document order, styles as declaration sets."""
    out: list[tuple[object, ...]] = []
    for el in tree(html).iter():
        attrs = dict(el.attrib)
        if "style" in attrs:
            attrs["style"] = sorted(d.strip() for d in attrs["style"].split(";") if d.strip())
        text = " ".join((el.text or "").split())
        tail = " ".join((el.tail or "").split())
        out.append((el.tag if isinstance(el.tag, str) else "#comment", attrs, text, tail))
    return out


def test_a_card_is_rendered_once_for_everyone_who_gets_it(papers: list[Paper]) -> None:
    fresh = Renderer(config(), TOPICS)
    people = [Subscriber(f"p{n}@example.org", id=n, topics=["llm-agents"]) for n in range(20)]
    matcher = Matcher(papers, TOPICS, NOW)
    emails = [fresh.digest(p, matcher.for_subscriber(p), EDITION, DAY, 54, LINKS) for p in people]
    assert fresh.cards_rendered == len(matcher.for_subscriber(people[0]))
    assert emails[0].html.replace("p0@", "p9@") == emails[9].html
    other = Subscriber("q@example.org", id=99, topics=["llm-agents", "reasoning"])
    fresh.digest(other, matcher.for_subscriber(other), EDITION, DAY, 54, LINKS)
    assert fresh.cards_rendered > len(matcher.for_subscriber(people[0]))


def test_a_paper_selected_twice_sits_under_its_first_reason_and_mentions_the_other(
    renderer: Renderer,
) -> None:
    papers = [
        Paper(id="2601.00001", title="Robot world model", arxiv_id="2601.00001"),
        Paper(id="2601.00002", title="A robot arm", arxiv_id="2601.00002"),
    ]
    sub = Subscriber("a@example.org", id=1, topics=["robotics"], queries=['"world model"'])
    matches = Matcher(papers, TOPICS, NOW).for_subscriber(sub)
    email = renderer.digest(sub, matches, EDITION, DAY, 2, LINKS)
    doc = tree(email.html)
    assert [g.text_content() for g in doc.find_class("group-title")] == ["Robotics · 2 papers"]
    why = doc.find_class("why")[0].text_content()
    assert why == 'Why: Robotics: robot (title); also "world model": world model (title)'
    assert "== Robotics (2 papers) ==" in email.text
    single = Subscriber("b@example.org", id=2, topics=["robotics"])
    alone = renderer.digest(single, matches[1:], EDITION, DAY, 2, LINKS)
    assert tree(alone.html).find_class("group-title") == []


HOSTILE = Paper(
    id="x1",
    title='<script>alert("t")</script> Diffusion <img src=x onerror="alert(1)"> & {{ 7*7 }}',
    abstract='Diffusion <b onmouseover="alert(2)">bold</b> <a href="javascript:alert(3)">x</a>',
    authors=["<img src=x onerror=alert(4)>", "Zoë \u202eevil\u202c"],
    link="javascript:alert(5)",
    pdf_url="data:text/html,<script>alert(6)</script>",
    github_repo=" JavaScript:alert(7)",
    github_stars=3,
    project_page="https://example.com/p?a=1&b=<2>",
    thumbnail="javascript:alert(8)",
    ai_summary="</p><script>alert(9)</script>",
    categories=["cs.LG<script>"],
)


def test_feed_text_is_escaped_and_only_http_links_survive(papers: list[Paper]) -> None:
    renderer = Renderer(config(), TOPICS, thumbnails=True)
    sub = Subscriber("a@example.org", id=1, queries=["diffusion"])
    matches = Matcher([HOSTILE], TOPICS, NOW).for_subscriber(sub)
    email = renderer.digest(sub, matches, EDITION, DAY, 1, LINKS)
    doc = tree(email.html)
    assert doc.xpath("//script | //img | //b | //a[not(@class)]") == []
    assert [a for el in doc.iter() for a in el.attrib if a.lower().startswith("on")] == []
    assert hrefs(email.html) == [
        "https://example.com/p?a=1&b=<2>",
        LINKS["manage"],
        LINKS["unsubscribe"],
    ]
    assert 'href="https://example.com/p?a=1&amp;b=&lt;2&gt;"' in email.html
    title = doc.find_class("title")[0].text_content()
    assert (
        title == '<script>alert("t")</script> Diffusion <img src=x onerror="alert(1)"> & {{ 7*7 }}'
    )
    assert "&lt;script&gt;" in email.html and "49" not in title
    assert "\u202e" not in email.html and "\u202e" not in email.text
    links = re.findall(r"^  (\w[\w ]*(?: \(.*\))?): +(\S+://\S*)$", email.text, re.M)
    assert links == [("Project page", "https://example.com/p?a=1&b=<2>")]
    assert HOSTILE.title in " ".join(email.text.split())  # plain text needs no escaping


def test_thumbnails_are_optional_and_carry_alt_text() -> None:
    paper = Paper(
        id="2601.00007",
        arxiv_id="2601.00007",
        title="Diffusion for robots",
        thumbnail="https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2601.00007.png",
    )
    sub = Subscriber("a@example.org", id=1, queries=["diffusion"])
    matches = Matcher([paper], TOPICS, NOW).for_subscriber(sub)
    with_images = Renderer(config(), TOPICS, thumbnails=True)
    (img,) = tree(with_images.digest(sub, matches, EDITION, DAY, 1, LINKS).html).iter("img")
    assert img.get("src") == paper.thumbnail
    assert img.get("alt") == "Figure: Diffusion for robots"
    assert not list(
        tree(Renderer(config(), TOPICS).digest(sub, matches, EDITION, DAY, 1, LINKS).html).iter(
            "img"
        )
    )


def test_a_huge_title_is_cut_and_long_words_do_not_break_the_layout(
    renderer: Renderer,
) -> None:
    paper = Paper(id="2601.00005", arxiv_id="2601.00005", title="diffusion " * 1000)
    sub = Subscriber("a@example.org", id=1, queries=["diffusion"])
    matches = Matcher([paper], TOPICS, NOW).for_subscriber(sub)
    email = renderer.digest(sub, matches, EDITION, DAY, 1, LINKS)
    title = tree(email.html).find_class("title")[0].text_content()
    assert len(title) <= 300 and title.endswith("…")
    assert len(email.html) < 40_000 and len(email.subject) <= 100


def test_non_latin_scripts_and_emoji_render_and_are_highlighted(renderer: Renderer) -> None:
    paper = Paper(
        id="2601.00009",
        arxiv_id="2601.00009",
        title="Диффузионные модели 🤖 для 世界モデル — نماذج",
        abstract="Мы изучаем диффузионные модели. 😀 日本語のテキスト。",
        authors=["Анна Иванова", "李明", "محمد"],
    )
    sub = Subscriber("a@example.org", id=1, queries=["диффузионные"])
    matches = Matcher([paper], TOPICS, NOW).for_subscriber(sub)
    email = renderer.digest(sub, matches, EDITION, DAY, 1, LINKS)
    doc = tree(email.html)
    assert [h.text for h in doc.find_class("hit")] == ["Диффузионные", "диффузионные"]
    assert "🤖" in email.html and "世界モデル" in email.text and "محمد" in email.text
    assert 'charset="utf-8"' in email.html


@pytest.mark.parametrize(
    ("count", "names", "edition", "expected"),
    [
        (7, ["diffusion", "world models"], "2026-11-24",
         "7 new papers: diffusion, world models - Tue 24 Nov"),
        (1, ["LLM agents"], "2026-11-24", "1 new paper: LLM agents - Tue 24 Nov"),
        (12, ["Reasoning in language models", "Efficient inference", "LLM agents"], "2026-11-24",
         "12 new papers: Reasoning in language models and 2 more - Tue 24 Nov"),
        (9, ["LLM agents", "Robotics", "World models", "Diffusion models"], "2026-11-24",
         "9 new papers: LLM agents, Robotics, World models and 1 more - Tue 24 Nov"),
        (3, [], "2026-W48", "3 new papers - week 48"),
        (2, ["a\r\nBcc: x@example.org", "b\u2028c"], "2026-11-24",
         "2 new papers: a Bcc: x@example.org, b c - Tue 24 Nov"),
    ],
)  # fmt: skip
def test_subject_lines(count: int, names: list[str], edition: str, expected: str) -> None:
    assert subject_for(count, names, edition, date(2026, 11, 24)) == expected


def test_a_subject_is_one_short_line_whatever_the_queries() -> None:
    names = ["x" * 500, "title:agent* -survey\n\n" * 20] * 5
    subject = subject_for(10, names, "2026-11-24", date(2026, 11, 24))
    assert len(subject) <= 100 and not re.search(r"[\r\n\x00-\x1f\u2028\u2029]", subject)


def test_nothing_new_follows_the_no_matches_policy() -> None:
    sub = SUBSCRIBERS["one-topic"]
    skip = Renderer(config(), TOPICS)
    assert skip.nothing_new(sub, EDITION, DAY, 30, "weekend", LINKS) is None
    note = Renderer(config(no_matches="note"), TOPICS)
    weekend = note.nothing_new(sub, "2026-06-13", date(2026, 6, 13), 0, "weekend", LINKS)
    assert weekend is not None
    assert weekend.subject == "Nothing new for you today - Sat 13 Jun"
    assert "arXiv announces no new papers on weekends." in weekend.text
    assert "No new papers arrived today." in weekend.text
    failed = note.nothing_new(sub, EDITION, DAY, 30, "the arXiv feed did not answer", LINKS)
    assert failed is not None
    assert "None of the 30 new papers matched" in failed.text
    assert "Why: the arXiv feed did not answer." in " ".join(failed.text.split())
    unknown = note.nothing_new(sub, "2026-W24", DAY, 30, None, LINKS)
    assert unknown is not None and "Why" not in unknown.text
    assert unknown.subject == "Nothing new for you this week - week 24"
    assert LINKS["unsubscribe"] in unknown.html and LINKS["unsubscribe"] in unknown.text


def test_the_confirm_email_asks_once_and_explains(renderer: Renderer) -> None:
    url = "https://digest.example.org/c/abc.DEF-123"
    email = renderer.confirm("new@example.org", url, ["robotics", "unknown-topic"], ["agent*"])
    assert email.subject == "Confirm your subscription to Paper Digest"
    assert [a.get("href") for a in tree(email.html).iter("a")] == [url, url]
    for text in ("Robotics", "unknown-topic", "agent*", "48 hours", url):
        assert text in email.html and text in email.text
    with pytest.raises(RenderError, match="confirm_url"):
        renderer.confirm("new@example.org", "javascript:alert(1)")


def test_an_email_without_valid_unsubscribe_and_manage_links_is_refused(
    renderer: Renderer, papers: list[Paper]
) -> None:
    sub = SUBSCRIBERS["one-topic"]
    matches = matches_for(papers, sub)
    with pytest.raises(RenderError, match="unsubscribe"):
        renderer.digest(sub, matches, EDITION, DAY, 1, {"manage": LINKS["manage"]})
    with pytest.raises(RenderError, match="manage"):
        renderer.digest(sub, matches, EDITION, DAY, 1, {**LINKS, "manage": "/manage/x"})
    with pytest.raises(RenderError, match="nothing_new"):
        renderer.digest(sub, [], EDITION, DAY, 1, LINKS)


@pytest.mark.parametrize(
    ("authors", "expected"),
    [
        ([], ""),
        (["A"], "A"),
        (["A", "B"], "A and B"),
        (["A", "B", "C", "D"], "A, B, C and D"),
        ([f"P{n}" for n in range(15)], "P0, P1, P2 and 12 more"),
        (["  Jean\n  Dupont ", ""], "Jean Dupont"),
    ],
)
def test_authors_are_shortened(authors: list[str], expected: str) -> None:
    assert authors_line(authors) == expected


def test_links_of_a_paper() -> None:
    paper = Paper(
        id="2606.13681",
        title="t",
        arxiv_id="2606.13681",
        pdf_url="https://arxiv.org/pdf/2606.13681v2",
        github_repo="https://github.com/a/b",
        github_stars=1234,
        project_page="ftp://example.org/x",
    )
    url, links = paper_links(paper)
    assert url == "https://arxiv.org/abs/2606.13681"
    assert links == [
        ("Abstract", "https://arxiv.org/abs/2606.13681"),
        ("PDF", "https://arxiv.org/pdf/2606.13681v2"),
        ("Hugging Face", "https://huggingface.co/papers/2606.13681"),
        ("Code (★ 1.2k)", "https://github.com/a/b"),
    ]
    feed_only = Paper(id="h", title="t", link="https://tldr.takara.ai/p/x")
    assert paper_links(feed_only) == (
        "https://tldr.takara.ai/p/x",
        [("Abstract", "https://tldr.takara.ai/p/x")],
    )
    assert paper_links(Paper(id="h", title="t", arxiv_id="../../evil")) == (None, [])


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://a.example/x?y=1", True),
        ("HTTP://A.EXAMPLE", True),
        ("javascript:alert(1)", False),
        ("jav\tascript:alert(1)", False),
        ("data:text/html,x", False),
        ("//evil.example/x", False),
        ("/relative", False),
        ("https://", False),
        ("https://a.example/x y", False),
        ("mailto:a@example.org", False),
    ],
)
def test_only_whole_http_links_survive(url: str, kept: bool) -> None:
    assert (safe_url(url) is not None) is kept


def test_the_snippet_starts_at_the_sentence_of_the_first_hit() -> None:
    text = (
        "Filler sentence number one goes here. " * 20 + "Here diffusion appears. " + "Tail. " * 100
    )
    start = text.index("diffusion")
    body, spans = snippet(text, [(start, start + 9)])
    assert body.startswith("…Here diffusion appears.") and body.endswith("…")
    assert [body[a:b] for a, b in spans] == ["diffusion"]
    assert len(body) <= 422


def test_templates_can_be_overridden_and_mistakes_are_named(tmp_path: Path) -> None:
    shutil.copytree(PROJECT / "templates", tmp_path / "templates")
    digest_html = tmp_path / "templates" / "email" / "digest.html.j2"
    source = digest_html.read_text(encoding="utf-8")
    digest_html.write_text(source.replace("Manage preferences", "Your settings"), "utf-8")
    custom = parse_config({"templates_dir": "templates"}, tmp_path / "digest.toml", {})
    sub = SUBSCRIBERS["one-topic"]
    papers = [Paper(id="2601.00001", title="LLM agent", arxiv_id="2601.00001")]
    matches = Matcher(papers, TOPICS, NOW).for_subscriber(sub)
    assert "Your settings" in Renderer(custom).digest(sub, matches, EDITION, DAY, 1, LINKS).html

    digest_html.write_text(source.replace('class="card"', 'class="{{ card.kind }}"'), "utf-8")
    with pytest.raises(RenderError, match="has no attribute 'kind'"):
        Renderer(custom).digest(sub, matches, EDITION, DAY, 1, LINKS)
    digest_html.write_text(source.replace("<td class=", "<td {% if x %}a{% endif %} class=", 1))
    with pytest.raises(RenderError, match="inside an HTML tag"):
        Renderer(custom)
    digest_html.write_text(source.replace("<title>{{ subject }}", "<title>{% if 1 %}x{% endif %}"))
    with pytest.raises(RenderError, match="moved or lost"):
        Renderer(custom)
    missing = parse_config({"templates_dir": "nowhere"}, tmp_path / "digest.toml", {})
    with pytest.raises(RenderError, match="nowhere/email"):
        Renderer(missing)


@pytest.mark.parametrize("part", ["html", "txt"])
def test_golden_digest(renderer: Renderer, papers: list[Paper], part: str) -> None:
    """A fixed digest, byte for byte: regenerate on purpose with DIGEST_REGEN_GOLDEN=1 and
    review the diff."""
    email = render(renderer, papers, "topics-and-queries")
    got = email.html if part == "html" else email.text
    golden = GOLDEN / f"digest-topics-and-queries.{part}"
    if REGEN:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(got, encoding="utf-8")
    assert got == golden.read_text(encoding="utf-8")


def test_preview_writes_the_subscribers_email_and_needs_the_secret(tmp_path: Path) -> None:
    runner = CliRunner()
    conf = tmp_path / "c.toml"
    conf.write_text(
        f'[[sources]]\nname = "hf"\nkind = "hf"\nurl = "{DATA / HF_JUNE}"\n'
        '[mail]\nno_matches = "note"\n',
        encoding="utf-8",
    )
    assert runner.invoke(app, ["collect", "-c", str(conf)]).exit_code == 0
    for email, topic in (("a/b@example.org", "llm-agents"), ("c@example.org", "egocentric-vision")):
        added = runner.invoke(app, ["subscribers", "add", email, "-t", topic, "--active"])
        assert added.exit_code == 0, added.output
    args = ["preview", "-c", str(conf), "--subscriber", "a/b@example.org", "--out", "out"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2  # our setup refuses: exit 2, as README promises
    assert refused.stderr.count("\n") == 1 and "DIGEST_SECRET is not set" in refused.stderr
    assert not (tmp_path / "out").exists()

    env = {"DIGEST_SECRET": "s" * 32}
    done = runner.invoke(app, args, env=env)
    assert done.exit_code == 0, done.output
    stem = f"{datetime.now(UTC).date().isoformat()}-a_b@example.org"
    html = (tmp_path / "out" / f"{stem}.html").read_text(encoding="utf-8")
    text = (tmp_path / "out" / f"{stem}.txt").read_text(encoding="utf-8")
    assert "EvoArena" in html and "EvoArena" in text
    assert re.search(r'href="http://127\.0\.0\.1:8000/u/[\w.-]+"', html)

    args[4] = "c@example.org"
    nothing = runner.invoke(app, args, env=env)
    assert nothing.exit_code == 0 and "wrote" in nothing.stdout
    assert (
        "None of the 30 new papers matched" in next((tmp_path / "out").glob("*c@*.txt")).read_text()
    )


def test_a_capped_digest_says_how_many_matched_and_links_to_the_rest(
    renderer: Renderer, papers: list[Paper]
) -> None:
    sub = Subscriber("cap@example.org", id=4, topics=["llm-agents"], max_papers=3)
    matches = matches_for(papers, sub)
    assert (len(matches), matches.total) == (3, 9)
    email = renderer.digest(sub, matches, EDITION, DAY, len(papers), LINKS)
    doc = tree(email.html)
    assert doc.find_class("summary")[0].text == "3 of 9 matches from 54 new papers"
    (more,) = doc.find_class("more")
    assert more.text_content() == (
        "6 more papers matched but did not fit your limit of 3. "
        "Raise your limit on the preferences page."
    )
    assert [a.get("href") for a in more.iter("a")] == [LINKS["manage"]]
    assert "\n3 of 9 matches from 54 new papers\n" in email.text
    assert (
        "6 more papers matched but did not fit your limit of 3.\n"
        f"Raise your limit on the preferences page:\n  {LINKS['manage']}\n"
    ) in email.text
    everything = Subscriber("all@example.org", id=5, topics=["llm-agents"], max_papers=20)
    whole = renderer.digest(
        everything, matches_for(papers, everything), EDITION, DAY, len(papers), LINKS
    )
    assert tree(whole.html).find_class("summary")[0].text == "9 matches from 54 new papers"
    assert not tree(whole.html).find_class("more") and "more papers matched" not in whole.text
    unknown = renderer.digest(sub, list(matches), EDITION, DAY, None, LINKS)
    assert tree(unknown.html).find_class("summary")[0].text == "3 matching papers"
    none = renderer.nothing_new(sub, EDITION, DAY, None, None, LINKS)
    assert none is not None and "None of the new papers matched what you follow" in none.text


def _pipeline_day(config_path: Path, now: datetime, **kw: bool) -> RunReport:
    config = load_config(config_path, env={"DIGEST_SECRET": "s" * 40})
    with Store(config.database.path) as store:
        return asyncio.run(Pipeline(config, store, TOPICS, now).run(**kw))


def _plain(data: bytes) -> str:
    message = message_from_bytes(data, policy=email_policy.default)
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def test_the_sent_email_states_its_own_editions_counts_even_when_sent_a_day_late(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    config = app_config(tmp_path, [("hf", "hf", DATA / HF_JUNE)], port)
    people = [
        Subscriber("now@example.org", status="active", topics=["llm-agents"], max_papers=3, hour=0),
        Subscriber("late@example.org", status="active", topics=["llm-agents"], max_papers=3),
    ]
    with Store(tmp_path / "digest.db") as store:
        store.add_subscribers_bulk(people[:1], NOW, "test")
    _pipeline_day(config, NOW)
    (sent_now,) = [_plain(r.data) for r in recorder.received]
    assert "\n3 of 8 matches from 30 new papers\n" in sent_now
    assert "5 more papers matched but did not fit your limit of 3." in sent_now

    recorder.received.clear()
    later = tmp_path / "later"
    later.mkdir()
    deferred = app_config(later, [("hf", "hf", DATA / HF_JUNE)], port)
    with Store(later / "digest.db") as store:
        store.add_subscribers_bulk(people[1:], NOW, "test")
    _pipeline_day(deferred, NOW, send=False)  # planned on the 12th, not sent
    _pipeline_day(deferred, NOW + timedelta(days=1))  # the 13th: nothing new that day
    (late,) = [_plain(r.data) for r in recorder.received if r.recipients == ["late@example.org"]]
    summary = late.splitlines()[1]
    assert "Friday 12 June 2026" in late.splitlines()[0]
    assert summary == "3 of 8 matches from 30 new papers", summary
    assert not re.search(r"\b0 new", late)


REAL_LINKS = {  # as long as the signed tokens digest makes
    "unsubscribe": "https://digest.example.org/u/"
    + "WzEsIjIzYTNiZDU0OWZjMiJd.aw1HOQ.C3EM_Rmsh6" * 3,
    "manage": "https://digest.example.org/manage/"
    + "WzEsIjIzYTNiZDU0OWZjMiJd.aw1HOQ.C3EM_Rmsh6" * 3,
}


def largest_digest(renderer: Renderer, papers: list[Paper]) -> tuple[list[Match], RenderedEmail]:
    """The most papers a subscriber may ask for, each with a long real abstract, an AI
    summary, code and a project page: the heaviest email digest can send."""
    by_length = sorted(papers, key=lambda p: -len(p.abstract))
    heavy = []
    for n in range(MAX_PAPERS_LIMIT * 2):
        real = by_length[n % 20]
        arxiv_id = f"2606.{90000 + n}"
        heavy.append(
            dataclasses.replace(
                real,
                id=arxiv_id,
                arxiv_id=arxiv_id,
                pdf_url=None,
                title=f"{real.title} ({n})",
                ai_summary=real.ai_summary or by_length[0].abstract[:600],
                github_repo=real.github_repo or f"https://github.com/example-lab/{arxiv_id}",
                github_stars=1234,
                project_page=real.project_page or f"https://example-lab.github.io/{arxiv_id}/",
                upvotes=500 - n,
            )
        )
    sub = Subscriber(
        "largest@example.org",
        id=8,
        topics=["llm-agents", "reasoning"],
        queries=["model OR learning OR data OR method"],
        max_papers=MAX_PAPERS_LIMIT,
    )
    matches = Matcher(heavy, TOPICS, NOW).for_subscriber(sub)
    assert len(matches) == MAX_PAPERS_LIMIT and matches.total > MAX_PAPERS_LIMIT
    return matches, renderer.digest(sub, matches, EDITION, DAY, len(heavy), REAL_LINKS)


def test_the_largest_allowed_digest_stays_under_gmails_clipping_size_with_its_footer(
    renderer: Renderer, papers: list[Paper]
) -> None:
    matches, email = largest_digest(renderer, papers)
    assert len(email.html.encode()) < 102_400
    doc = tree(email.html)
    titles = [a.text_content() for a in doc.find_class("title-link")]
    titles += [a.text_content() for a in doc.find_class("compact-title")]
    assert len(titles) == len(matches) == MAX_PAPERS_LIMIT
    (footer,) = doc.find_class("footer")
    assert [a.get("href") for a in footer.iter("a")] == [
        REAL_LINKS["manage"],
        REAL_LINKS["unsubscribe"],
    ]
    assert doc.find_class("address")[0].text.startswith("Paper Digest, 1 Example Street")
    assert len(doc.find_class("abstract")) == 5  # the first few in full, the rest compact
    ours = renderer.digest(
        Subscriber("largest@example.org", id=8, max_papers=MAX_PAPERS_LIMIT),
        matches[:10],
        EDITION,
        DAY,
        10,
        REAL_LINKS,
    )
    assert len(tree(ours.html).find_class("abstract")) == 10  # a usual digest: all in full


_URL = re.compile(r"https?://[^\s<>\"]+")


def text_urls(text: str) -> Counter[str]:
    return Counter(u.rstrip(".,;:)") for u in _URL.findall(text))


def html_urls(html: str) -> Counter[str]:
    """What a spam filter counts in the HTML part: every link, and URLs written in the text."""
    doc = tree(html)
    found = Counter(hrefs(html))
    for node in doc.xpath("//body//text()"):
        found.update(text_urls(str(node)))
    return found


def test_the_html_and_text_parts_carry_the_same_links_each_as_often(
    renderer: Renderer, papers: list[Paper]
) -> None:
    emails = all_emails(renderer, papers)
    del emails["confirm"]  # its own template (a separate change) shows its one link twice
    capped = Subscriber("cap@example.org", id=4, topics=["llm-agents"], max_papers=3)
    emails["capped"] = renderer.digest(capped, matches_for(papers, capped), EDITION, DAY, 54, LINKS)
    emails["largest"] = largest_digest(renderer, papers)[1]
    for name, rendered in emails.items():
        html, text = html_urls(rendered.html), text_urls(rendered.text)
        assert html == text, f"{name}: {html - text} only in html, {text - html} only in text"
    abstract = "https://arxiv.org/abs/2606.13681"
    assert html_urls(emails["topics-and-queries"].html)[abstract] == 1


WEB_LINKS = {
    **LINKS,
    "web": "https://digest.example.org/w/TOKEN-w",
    "feed": "https://digest.example.org/f/TOKEN-f",
}


def test_view_in_browser_is_in_both_parts_once_with_the_editions_own_url(
    renderer: Renderer, papers: list[Paper]
) -> None:
    """The footer's "View in your browser" link (issue 15) goes to this edition's page, in the
    HTML and the text part alike, so the parts still carry the same links each as often."""
    capped = Subscriber("cap@example.org", id=4, topics=["llm-agents"], max_papers=3)
    digest = renderer.digest(capped, matches_for(papers, capped), EDITION, DAY, 54, WEB_LINKS)
    note = renderer.nothing_new(capped, EDITION, DAY, 0, "weekend", WEB_LINKS)
    assert note is not None
    own = f"{WEB_LINKS['web']}/{EDITION}"
    for rendered in (digest, note):
        html, text = html_urls(rendered.html), text_urls(rendered.text)
        assert html == text, f"{html - text} only in html, {text - html} only in text"
        assert html[own] == 1 and f"View in your browser: {own}" in rendered.text
        (link,) = [a for a in tree(rendered.html).iter("a") if a.get("href") == own]
        assert link.text_content() == "View in your browser"
        assert WEB_LINKS["feed"] not in rendered.text  # the feed is for the preferences page
    plain = renderer.digest(capped, matches_for(papers, capped), EDITION, DAY, 54, LINKS)
    assert "View in your browser" not in plain.text + plain.html  # no link without one


HIDING = re.compile(
    r"display:\s*none|visibility:\s*hidden|opacity:\s*0(?:\.0*)?(?:;|$)|font-size:\s*[01]px"
    r"|max-height:\s*0(?:px)?(?:;|$)|line-height:\s*[01]px"
)


def declared(style: str, prop: str) -> str | None:
    found = re.findall(rf"(?:^|;)\s*{prop}\s*:\s*([^;]+)", style)
    return found[-1].strip().lower() if found else None


def test_no_text_is_hidden_or_coloured_like_its_background(
    renderer: Renderer, papers: list[Paper]
) -> None:
    """What SpamAssassin's HTML_FONT_LOW_CONTRAST looks for (the browser test measures real
    contrast in both colour schemes); this one reads the inlined styles themselves."""
    for name, rendered in all_emails(renderer, papers).items():
        doc = tree(rendered.html)
        assert not doc.find_class("preheader") or name == "confirm", name
        for el in doc.iter():
            if not isinstance(el.tag, str):
                continue
            style = el.get("style") or ""
            assert not HIDING.search(style), f"{name}: hidden {el.tag} {style}"
            color = declared(style, "color")
            if color is None or not " ".join(el.text_content().split()):
                continue
            background = None
            for ancestor in (el, *el.iterancestors()):
                background = declared(ancestor.get("style") or "", "background-color")
                if background:
                    break
            assert color != (background or "#ffffff"), f"{name}: {el.tag} {color} on itself"


SUBJECT_PAPERS = [
    Paper(
        id="2601.00001",
        arxiv_id="2601.00001",
        title="Kinematic motion forecasting and trajectory prediction with diffusion",
        abstract="A robot agent learns manipulation with a world-model.",
        authors=["Geoffrey Hinton"],
        categories=["cs.RO"],
        upvotes=30,
    ),
    Paper(id="2601.00002", arxiv_id="2601.00002", title="Robot locomotion"),
]


@pytest.mark.parametrize(
    ("queries", "topics", "expected"),
    [
        (['kinematic OR "motion forecasting" OR "trajectory prediction"'], [],
         "1 new paper: kinematic, motion forecasting… - Fri 12 Jun"),
        (['title:diffusion author:"Geoffrey Hinton" -survey'], [],
         "1 new paper: diffusion, Geoffrey Hinton - Fri 12 Jun"),
        (["agent* AND (robot OR manipulation) NOT simulation"], [],
         "1 new paper: agent, robot, manipulation - Fri 12 Jun"),
        (["cat:cs.RO AND abstract:(world-model) AND upvotes>=20"], [],
         "1 new paper: cs.RO, world-model, 20+ upvotes - Fri 12 Jun"),
        (['("trajectory prediction")'], ["robotics"],
         "2 new papers: Robotics, trajectory prediction - Fri 12 Jun"),
    ],
)  # fmt: skip
def test_the_subject_names_topics_and_queries_without_query_syntax(
    renderer: Renderer, queries: list[str], topics: list[str], expected: str
) -> None:
    sub = Subscriber("s@example.org", id=1, queries=queries, topics=topics)
    if topics:  # the second paper only under the topic, the first only under the query
        sub = Subscriber("s@example.org", id=1, queries=queries, topics=topics)
        matcher = Matcher(SUBJECT_PAPERS, TOPICS, NOW)
        by_query = Subscriber("q@example.org", queries=queries)
        by_topic = Subscriber("t@example.org", topics=topics)
        matches = [matcher.for_subscriber(by_topic)[-1], matcher.for_subscriber(by_query)[0]]
    else:
        matches = Matcher(SUBJECT_PAPERS[:1], TOPICS, NOW).for_subscriber(sub)
    email = renderer.digest(sub, matches, EDITION, DAY, 2, LINKS)
    assert email.subject == expected
    assert not re.search(r'["*():]|\b(OR|AND|NOT)\b', email.subject.split(": ", 1)[1])


# ---------------------------------------------------------------- the package's own shape

RENDER = PROJECT / "digest" / "render"


def definitions(path: Path) -> Iterator[tuple[str, ast.AST]]:
    """Module-level functions and classes with their methods, as (qualified name, node)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name, node
        if isinstance(node, ast.ClassDef):
            for inner in node.body:
                if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield f"{node.name}.{inner.name}", inner


def is_public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def raises_render_error(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Raise)
        and isinstance(n.exc, ast.Call)
        and isinstance(n.exc.func, ast.Name)
        and n.exc.func.id == "RenderError"
        for n in ast.walk(node)
    )


@pytest.mark.parametrize("path", sorted(RENDER.glob("*.py")), ids=lambda p: p.name)
def test_no_render_function_is_over_60_lines_and_no_class_over_250(path: Path) -> None:
    for name, node in definitions(path):
        assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        size = (node.end_lineno or node.lineno) - node.lineno + 1
        limit = 250 if isinstance(node, ast.ClassDef) else 60
        assert size <= limit, f"{path.name}: {name} is {size} lines (at most {limit})"


@pytest.mark.parametrize("path", sorted(RENDER.glob("*.py")), ids=lambda p: p.name)
def test_every_public_render_name_says_what_it_is_for_and_what_a_caller_must_handle(
    path: Path,
) -> None:
    for name, node in definitions(path):
        assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        if not is_public(name):
            continue
        doc = ast.get_docstring(node)
        assert doc, f"{path.name}: {name} has no docstring"
        if not isinstance(node, ast.ClassDef) and raises_render_error(node):
            assert "Raises:" in doc and "RenderError" in doc, f"{path.name}: {name} hides a raise"


@pytest.mark.parametrize(
    ("n", "word", "expected"),
    [(0, "paper", "0 papers"), (1, "paper", "1 paper"), (1204, "upvote", "1,204 upvotes")],
)
def test_counts_read_as_words(n: int, word: str, expected: str) -> None:
    assert plural(n, word) == expected


@pytest.mark.parametrize(
    ("name", "day", "long", "expected"),
    [
        ("2026-11-24", date(2026, 11, 24), True, "Tuesday 24 November 2026"),
        ("2026-11-24", date(2026, 11, 24), False, "Tue 24 Nov"),
        ("2026-W48", date(2026, 11, 23), True, "Week 48, 2026"),
        ("2026-W48", date(2026, 11, 23), False, "week 48"),
    ],
)
def test_an_edition_is_named_by_its_day_or_its_week(
    name: str, day: date, long: bool, expected: str
) -> None:
    assert edition_label(name, day, long) == expected


def scanned_spans(text: str, terms: list[Term], field: str) -> list[tuple[int, int]]:
    """Highlighting as it was before words were kept per paper: every term tried at every
    word of a fresh tokenisation. The reference the kept words must equal."""
    tokens = word_spans(text)
    spans: list[tuple[int, int]] = []
    for term in terms:
        if term.field not in ("any", field):
            continue
        n, last = len(term.words), len(term.words) - 1
        for j in range(len(tokens) - last):
            for k, word in enumerate(term.words):
                surface, stem_, _, _ = tokens[j + k]
                if not (surface.startswith(word) if term.prefix and k == last else stem_ == word):
                    break
            else:
                spans.append((tokens[j][2], tokens[j + n - 1][3]))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def snippet_as_it_was(text: str, terms: list[Term]) -> tuple[str, list[tuple[int, int]]]:
    """The abstract's snippet as before words were kept: the head tokenised on its own."""
    if not terms:
        return snippet(text, [])
    if len(text) > MAX_SNIPPET + 60:
        space = text.rfind(" ", 0, MAX_SNIPPET)
        head = text[: space if space > MAX_SNIPPET // 2 else MAX_SNIPPET]
        spans = scanned_spans(head, terms, "abstract")
        if spans and spans[0][1] <= MAX_SNIPPET - 60:
            return snippet(text, spans)
    return snippet(text, scanned_spans(text, terms, "abstract"))


VOCABULARY = [
    *("model", "models", "model's", "Models", "diffusion", "diffusions", "world", "worlds"),
    *("agent", "agents", "LLM", "LLMs", "studies", "study", "analyses", "analysis", "Straße"),
    *("STRASSE", "café", "cafés", "naïve", "ﬁne-tuning", "fine", "tuning", "½", "x²", "3D"),
    *("3d-aware", "world-model", "emoji🙂", "日本語", "模型", "l'agent", "agent’s", "co-operate"),
]
QUERIES = [
    *("model", '"world model"', "diffus*", "agent", "studies OR analysis", "strasse", "cafe"),
    *("naive", '"fine tuning"', "3d*", '"agent model*"', "llm", "title:world"),
]


@pytest.mark.parametrize("seed", range(100))
def test_highlights_from_words_kept_per_paper_equal_fresh_ones_on_random_text(seed: int) -> None:
    rng = random.Random(seed)
    seps = (" ", " ", " ", ", ", ". ", " - ", "'", "\u2019", "'s_", "(", ") ", "_", "\uff3f")
    text = "".join(rng.choice(VOCABULARY) + rng.choice(seps) for _ in range(rng.randint(1, 160)))
    text = clean(text)
    terms = [t for q in rng.sample(QUERIES, 4) for t in terms_of(parse(q)) if isinstance(t, Term)]
    kept = TextWords(text)
    for field in ("title", "abstract"):
        expected = scanned_spans(text, terms, field)
        assert highlight_spans(text, terms, field, words=kept) == expected
        assert highlight_spans(text, terms, field) == expected
    for cut in [rng.randint(0, len(text)) for _ in range(25)]:
        assert kept.head(cut).words == word_spans(text[:cut])
        assert kept.head(cut).text == text[:cut]
    expected_snippet = snippet_as_it_was(text, terms)
    kept = TextWords(text)  # as a card cache holds it: the head searched first, then all
    for some in (terms, terms[:1], terms[::-1], terms):
        assert abstract_snippet(text, some, kept) == snippet_as_it_was(text, some)
    assert abstract_snippet(text, terms, TextWords("other text")) == expected_snippet
    assert abstract_snippet(text, terms) == expected_snippet


def test_cards_built_from_the_papers_kept_words_equal_cards_built_fresh(
    papers: list[Paper],
) -> None:
    matcher = Matcher(papers, TOPICS, NOW)
    kept: dict[str, PaperWords] = {}  # one per paper, shared by every card of it, as a run does
    for sub in [*SUBSCRIBERS.values(), Subscriber("x@example.org", queries=["model OR agent*"])]:
        for match in matcher.for_subscriber(sub):
            view = view_paper(match.paper)
            words = kept.setdefault(match.paper.id, paper_words(view))
            assert build_card(match, view=view, words=words) == build_card(match)


def test_the_card_cache_drops_the_least_recently_used_card_and_counts_its_hits(
    papers: list[Paper],
) -> None:
    fresh = Renderer(config(), TOPICS)
    cache = fresh.cards
    cache.resize(2)
    first, second, third = matches_for(papers, SUBSCRIBERS["topics-and-queries"])[:3]
    for match in (first, second, first, third, first):  # `first` stays in use: `second` goes
        cache.card(match, False)
    assert (cache.rendered, cache.hits) == (3, 2)
    cache.card(second, False)
    assert (cache.rendered, cache.hits) == (4, 2)
    assert cache.hit_rate == 2 / 6


def test_the_card_cache_keeps_no_more_bytes_than_its_budget_but_the_newest_card(
    papers: list[Paper],
) -> None:
    cache = Renderer(config(), TOPICS).cards
    first, second = matches_for(papers, SUBSCRIBERS["topics-and-queries"])[:2]
    cache.card(first, False)
    cache.max_bytes = cache.bytes + 1  # room for about one card
    for match in (second, first, second):
        cache.card(match, False)
    assert (cache.rendered, cache.hits) == (4, 0)
    cache.card(second, False)  # the newest card always stays
    assert (cache.rendered, cache.hits) == (4, 1)
    cache.max_bytes = 10**9
    for match in (first, second, first):
        cache.card(match, False)
    assert (cache.rendered, cache.hits) == (5, 3)


def test_the_card_cache_is_sized_from_the_edition_within_its_cap() -> None:
    between = (CARD_CACHE_MIN + CARD_CACHE_MAX) // 2
    assert card_capacity(None) == CARD_CACHE
    assert card_capacity(between) == between
    assert card_capacity(3) == CARD_CACHE_MIN
    assert card_capacity(10**9) == CARD_CACHE_MAX
    sized = Renderer(config(), TOPICS, expected_cards=between + 1)
    assert sized.cards.capacity == between + 1
    sized.expect_cards(10**7)
    assert sized.cards.capacity == CARD_CACHE_MAX


def test_the_hit_rate_of_the_card_cache_is_reported(papers: list[Paper]) -> None:
    fresh = Renderer(config(), TOPICS)
    assert fresh.cards_hit_rate == 0.0
    matcher = Matcher(papers, TOPICS, NOW)
    people = [Subscriber(f"p{n}@example.org", id=n, topics=["llm-agents"]) for n in range(4)]
    for person in people:
        fresh.digest(person, matcher.for_subscriber(person), EDITION, DAY, 54, LINKS)
    assert fresh.cards_hit_rate == 3 / 4


HIDDEN = dict.fromkeys([*range(32), 127, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF])


def checked_whole(url: str) -> str | None:
    """safe_url as it was: every URL split whole, the reference the shortcut must equal."""
    url = url.strip()
    if not url or len(url) > 2000 or url != url.translate(HIDDEN) or " " in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None


@pytest.mark.parametrize(
    "url",
    [
        "https://digest.example.org/u/TOKEN", "http://x.org", "https://x.org?q=1", "http://x.org#a",
        "https://user:pw@x.org:8080/p", "http://[::1]/x", "http://[::1/x", "http://::1]/x",
        "https://\u2100.com/a", "https://exa\u0301mple.org/", "HTTP://X.ORG/a", "http:///path",
        "http://?x", "http://#x", "https://", "http://x.org:99999/", "https://x.org/a b",
        "javascript://x.org/%0aalert(1)", "https:/x.org/a", "http://x.org\u202e/a", "ftp://x.org",
    ],
)  # fmt: skip
def test_links_checked_by_their_host_once_equal_links_checked_whole(url: str) -> None:
    assert safe_url(url) == checked_whole(url)
    assert safe_url(url) == checked_whole(url)  # the second time from the host's memo


@pytest.mark.parametrize(
    ("opening", "closing"),
    [("{# card #}", "{# endcard #}"), ("{#- card #}", "{# endcard -#}"),
     ("  {#- card -#}", "{#- endcard -#}"), ("{# card #}\n", "{# endcard #}\n\n")],
)  # fmt: skip
def test_a_split_off_card_prints_exactly_what_the_whole_template_prints(
    opening: str, closing: str
) -> None:
    source = (
        "<ul>\n{% for card in cards %}\n"
        f"{opening}\n  <li>{{{{ card.name }}}}</li>\n{closing}\n"
        "{% endfor %}\n</ul>\n"
    )
    main, card = split_card(source, "email/x.html.j2")
    env = environment(DictLoader({"email/x.html.j2": main, "email/x.card.html.j2": card}))
    whole = environment(DictLoader({"email/x.html.j2": source}))
    people = [{"name": "<b>A & B</b>"}, {"name": "C"}]
    rendered = [Markup(env.get_template("email/x.card.html.j2").render(card=p)) for p in people]
    expected = whole.get_template("email/x.html.j2").render(cards=people)
    assert env.get_template("email/x.html.j2").render(cards=rendered) == expected
    assert "&lt;b&gt;A &amp; B&lt;/b&gt;" in expected
