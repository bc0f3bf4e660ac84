"""Cards and digests assembled from frames equal what jinja renders from the same templates,
byte for byte, on a random population with hostile feed text; templates the frames cannot
reproduce are rendered by jinja; the wrapping shortcut equals textwrap; an HTML line too long
for SMTP is folded at a space of its text (the same page), so the part goes 8bit."""

from __future__ import annotations

import random
import shutil
import textwrap
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from jinja2 import Environment
from jinja2.filters import do_wordwrap

from digest.config import Config, load_config, load_topics, parse_config
from digest.match import Match, Matcher, Recommended
from digest.models import Paper, Subscriber
from digest.render import Reading, Renderer
from digest.render.frames import FOLD_AT, fold
from digest.render.inline import wordwrap
from digest.render.text import quick_fill
from digest.sources import arxiv, hf
from tests.conftest import ARXIV_API, ARXIV_RSS, HF_JUNE, recording

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
EDITION = "2026-06-12"
TOPICS = load_topics(load_config(env={}).topics_path)
PROJECT = Path(__file__).parent.parent
HOSTILE = [
    "<script>alert('x')</script>", "R&D &amp; co", '"quoted" \'single\'', "a < b > c",
    "caf\u00e9 na\u00efve", "\u65e5\u672c\u8a9e\u30e2\u30c7\u30eb", "emoji \U0001f642 agents",
    "self-supervised world-model", "x" * 90, "\u00bd \u00b2 \u2192 \u2014 \u2026",
]  # fmt: skip


def config(**mail: str) -> Config:
    base = {"postal_address": "Paper Digest & Co, 1 <Example> Street, Paris"}
    return parse_config({"mail": {**base, **mail}}, None, {})


def hostile_papers(rng: random.Random, count: int) -> list[Paper]:
    """Papers whose every shown field carries markup, entities, quotes, scripts and long words."""
    out = []
    for n in range(count):
        words = rng.sample(HOSTILE, 4)
        out.append(
            Paper(
                id=f"2606.{n:05d}",
                title=f"{words[0]} diffusion {words[1]} agents",
                abstract=" ".join(
                    rng.choice([*HOSTILE, "model", "agent", "diffusion"])
                    for _ in range(rng.randint(0, 120))
                ),
                authors=[rng.choice(HOSTILE) for _ in range(rng.randint(0, 7))],
                arxiv_id=f"2606.{n:05d}" if n % 3 else None,
                link=f"https://example.org/p?a=1&b={n}" if n % 2 else "javascript:alert(1)",
                categories=rng.sample(["cs.LG", "cs.AI", "cs.CL", "stat.ML", "a<b"], 2),
                upvotes=rng.choice([None, 0, 1, 1234]),
                num_comments=rng.choice([0, 3]),
                github_repo=rng.choice([None, "https://github.com/x/y?q=<1>&r='2'"]),
                github_stars=rng.choice([0, 1500]),
                project_page=rng.choice([None, "https://proj.example.org/\u00e9"]),
                thumbnail=rng.choice([None, 'https://x.org/t.png?a=1&b="2"']),
                ai_summary=rng.choice(["", f"{words[2]} summary {words[3]}"]),
            )
        )
    return out


@pytest.fixture(scope="module")
def papers() -> list[Paper]:
    recorded = (
        hf.parse(recording(HF_JUNE), "hf")
        + arxiv.parse(recording(ARXIV_RSS), "arxiv")
        + arxiv.parse(recording(ARXIV_API), "arxiv-api")
    )
    return recorded + hostile_papers(random.Random(7), 60)


def population(rng: random.Random, papers: list[Paper], count: int) -> list[Subscriber]:
    words = sorted({w.lower() for p in papers for w in p.title.split() if w.isalpha()})
    shapes = ["{a}", "{a} OR {b}", "title:{a} OR {b}", '"{a} {b}" OR {a}', "{a} -{b}", "{p}*"]
    people = []
    for n in range(count):
        queries = []
        for _ in range(rng.randint(0, 3)):
            a, b = rng.sample(words, 2)
            queries.append(rng.choice(shapes).format(a=a, b=b, p=a[:4]))
        picked = rng.sample(sorted(TOPICS), rng.randint(0 if queries else 1, 2))
        people.append(
            Subscriber(
                f"p{n}-{rng.choice(['x', 'self-test', 'a.b'])}@example.org",
                id=n,
                topics=picked,
                queries=queries,
                max_papers=rng.choice([3, 10, 12, 45, 60]),
            )
        )
    return people


def reading(rng: random.Random, papers: list[Paper]) -> Reading | None:
    kind = rng.randrange(3)
    if kind == 0:
        return None

    def feedback(pid: str) -> tuple[str, str]:
        return f"https://d.example.org/m/{pid}?a=1&b=2", f"https://d.example.org/l/{pid}"

    recs = [Recommended(p, 0.5, f"Like <{p.title}> & more") for p in rng.sample(papers, kind - 1)]
    return Reading(recs, feedback)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("thumbnails", [False, True])
def test_digests_from_frames_equal_jinja_byte_for_byte(
    papers: list[Paper], seed: int, thumbnails: bool
) -> None:
    rng = random.Random(seed)
    fast = Renderer(config(), TOPICS, thumbnails=thumbnails)
    reference = Renderer(config(), TOPICS, thumbnails=thumbnails, frames=False)
    matcher = Matcher(papers, TOPICS, NOW)
    links = {"manage": "https://d.example.org/m?a=1&b=2", "unsubscribe": "https://d.example.org/u"}
    compared = 0
    for sub in population(rng, papers, 120):
        matches = matcher.for_subscriber(sub)
        read = reading(rng, papers)
        if not matches and not (read and read.recommended):
            continue
        mine = dict(links, web="https://d.example.org/w/T") if rng.random() < 0.5 else links
        args = (sub, matches, EDITION, NOW.date(), rng.choice([None, len(papers)]), mine)
        got = fast.digest(*args, reading=read)
        expected = reference.digest(*args, reading=read)
        assert (got.subject, got.html, got.text) == (expected.subject, expected.html, expected.text)
        compared += 1
    note = (EDITION, NOW.date(), 0, "weekend", links)
    sub = Subscriber("n@example.org", id=1, topics=["llm-agents"])
    assert fast.nothing_new(sub, *note) == reference.nothing_new(sub, *note)
    assert compared > 80
    assert fast.cards.fast and fast.frames is not None and fast.frames.refused == 0
    assert fast.frames.made < compared  # shapes are shared by emails
    assert fast.cards_rendered > 100


def test_every_card_from_frames_equals_the_card_template(papers: list[Paper]) -> None:
    fast = Renderer(config(), TOPICS).cards
    reference = Renderer(config(), TOPICS, frames=False).cards
    matcher = Matcher(papers, TOPICS, NOW)
    seen: list[Match] = []
    for sub in population(random.Random(11), papers, 150):
        seen += matcher.for_subscriber(sub)
    for compact in (False, True, False):  # the third pass comes from the caches
        for match in seen:
            got, expected = fast.card(match, compact), reference.card(match, compact)
            assert (got.html, got.text) == (expected.html, expected.text)
            assert type(got.html) is type(expected.html)
    assert len(seen) > 300


@pytest.mark.parametrize(
    ("part", "old", "new"),
    [
        ("digest.html.j2", "{{ card.why_line }}", "{{ card.why_line|upper }}"),
        ("digest.html.j2", '<span class="hit">{{ text }}</span>', "<b>{{ text|lower }}</b>"),
        ("digest.html.j2", "{% if not loop.last %}; also {% endif %}", "{{ loop.index }}. "),
        ("digest.txt.j2", "{{ card.text_why }}", "{{ card.text_why|wordwrap(30) }}"),
        ("digest.html.j2", "because {{ email }}", "because {{ email|upper }}"),
        ("digest.txt.j2", "{{ summary }}", "{{ summary|center(90) }}"),
    ],
)
def test_templates_the_frames_cannot_reproduce_are_rendered_by_jinja(
    tmp_path: Path, papers: list[Paper], part: str, old: str, new: str
) -> None:
    shutil.copytree(PROJECT / "templates", tmp_path / "templates")
    path = tmp_path / "templates" / "email" / part
    source = path.read_text(encoding="utf-8")
    assert old in source
    path.write_text(source.replace(old, new), encoding="utf-8")
    custom = replace(config(), templates_dir=str(tmp_path / "templates"))
    fast, reference = Renderer(custom, TOPICS), Renderer(custom, TOPICS, frames=False)
    matcher = Matcher(papers, TOPICS, NOW)
    links = {"manage": "https://d.example.org/m", "unsubscribe": "https://d.example.org/u"}
    for sub in population(random.Random(3), papers, 40):
        matches = matcher.for_subscriber(sub)
        if matches:
            args = (sub, matches, EDITION, NOW.date(), 9, links)
            assert fast.digest(*args) == reference.digest(*args)
    assert fast.frames is not None
    assert not fast.cards.fast or fast.frames.refused > 0


VOCABULARY = [
    "a", "bb", "ccc", "word", "x" * 30, "y" * 74, "z" * 75, "w" * 80, "self-supervised",
    "a-b", "--", "\u00e9t\u00e9", "\u00a0", "\t", "", " ", "\u2028", "\n", "-x", "x-", "\u3000",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(20))
def test_the_wrapping_shortcut_equals_textwrap_and_jinjas_wordwrap(seed: int) -> None:
    rng = random.Random(seed)
    env = Environment()
    indented = textwrap.TextWrapper(76, "  ", "  ", break_on_hyphens=False)
    title = textwrap.TextWrapper(76, "* ", "  ", break_on_hyphens=False)
    taken = 0
    for _ in range(2000):
        if rng.random() < 0.4:
            text = rng.choice([" ", "  ", ""]).join(rng.choices(VOCABULARY, k=rng.randint(0, 30)))
        else:
            plain = VOCABULARY[:5] * 6 + VOCABULARY[5:9] + VOCABULARY[11:12]
            text = " ".join(rng.choices(plain, k=rng.randint(1, 40)))
        for wrapper in (indented, title):
            quick = quick_fill(text, 76, wrapper.initial_indent, wrapper.subsequent_indent)
            assert quick is None or quick == wrapper.fill(text), text
            taken += quick is not None
        width = rng.choice([20, 76, 79])
        for long_words in (False, True):
            assert wordwrap(env, text, width, long_words) == do_wordwrap(
                env, text, width, long_words
            )
    assert taken > 600


def _octets(html: str) -> int:
    return max(len(line.encode()) for line in html.split("\n"))


def test_an_html_line_too_long_for_smtp_is_folded_at_a_space_of_text(papers: list[Paper]) -> None:
    """Recorded abstracts with many highlights make lines over 998 octets (quoted-printable
    for the whole part); ours break them at spaces of text: the same page once white space
    is collapsed, and the emails equal jinja's byte for byte (both fold the card)."""
    matcher = Matcher(papers[:-60], TOPICS, NOW)  # the recorded papers: real abstracts
    fast, naive = Renderer(config(), TOPICS), Renderer(config(), TOPICS)
    links = {"manage": "https://d.example.org/m", "unsubscribe": "https://d.example.org/u"}
    folded = 0
    for n, query in enumerate(['diffusion OR "world model"', "llm OR agents OR language"]):
        sub = Subscriber(f"f{n}@example.org", id=n, topics=["llm-agents"], queries=[query])
        args = (sub, matcher.for_subscriber(sub), EDITION, NOW.date(), 54, links)
        ours, unfolded = fast.digest(*args), naive.digest(*args, naive=True)
        folded += _octets(unfolded.html) > 998
        assert _octets(ours.html) <= 998
    assert folded, "no recorded email had a long line: the case is not exercised"


@pytest.mark.parametrize("seed", range(20))
def test_folding_only_turns_spaces_of_text_into_newlines(seed: int) -> None:
    rng = random.Random(seed)
    words = ["model", "agents", "R&amp;D", "\u65e5\u672c", "caf\u00e9", "x" * 40, "", "a.b"]
    tags = ['<span class="hit" style="color:#1b1f24; border-radius:2px">', "</span>", "<br>"]
    runs = [rng.choice(tags) if rng.random() < 0.2 else rng.choice(words) for _ in range(600)]
    line = "".join(r if r.startswith("<") or rng.random() < 0.2 else r + " " for r in runs)
    html = f'<p style="margin:0 0 10px 0">{line}</p>\n<td>short</td>'
    got = fold(html)
    assert got.replace("\n", " ") == html.replace("\n", " ")  # only spaces became newlines
    assert got.count("\n") > html.count("\n")
    assert _octets(got) <= FOLD_AT + 40 * 4  # a line ends at the first space past the limit
    for at in (i for i, c in enumerate(got) if c == "\n"):
        assert got[at - 1 : at].isascii() and got[at + 1 : at + 2].isascii()
        assert got.rfind("<", 0, at) <= got.rfind(">", 0, at)  # never inside a tag
    kept = f"<pre>{line}</pre>"
    assert fold(kept) is kept  # white space that shows is left alone
