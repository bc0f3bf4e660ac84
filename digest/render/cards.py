"""What one paper's card shows (its links, why it is there, its highlighted segments), and the
cache that renders each distinct card once per run, whoever gets it."""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from markupsafe import Markup

from digest.match import Match, Reason
from digest.models import Paper
from digest.query import Term, display, highlight_spans
from digest.query.highlight import TextWords
from digest.render.text import (
    MAX_COMPACT_AUTHORS,
    MAX_COMPACT_TITLE,
    MAX_LABEL,
    MAX_SUMMARY,
    MAX_TITLE,
    MAX_WHY,
    abstract_snippet,
    authors_line,
    clean,
    plural,
    quick_fill,
    safe_url,
    segments,
    shorten,
)

WRAP = 76
# Cards are kept as their paper's frames and the strings that fill them (see `cache`): a few
# hundred bytes each, their why and highlights shared with other cards.
CARD_CACHE = 20_000  # cards kept when the edition's size is not known
CARD_CACHE_MIN = 1_000
CARD_CACHE_MAX = 40_000
# What the kept cards take of their own, at most (a card rendered by jinja, when the templates
# cannot be reproduced by frames, counts its whole text: ~4-8 KB).
CARD_CACHE_BYTES = 32 * 2**20
PAPER_CACHE = 10_000  # papers' views and words, per cache: an edition's papers fit
COMPACT_LINKS = ("PDF", "Code")  # a compact card's links besides its title's

_ARXIV_ID = re.compile(r"\d{4}\.\d{4,5}|[a-z][a-z.-]*(\.[A-Z]{2})?/\d{7}")
_TEXT = textwrap.TextWrapper(WRAP, "  ", "  ", break_on_hyphens=False)
_TITLE = textwrap.TextWrapper(WRAP, "* ", "  ", break_on_hyphens=False)
# A snippet or why line recurs on the cards of one paper for other people: wrapped once.


def _wrapped(text: str) -> str:
    """A paragraph of the text part, indented by two spaces."""
    quick = quick_fill(text, WRAP, "  ", "  ")
    return _TEXT.fill(text) if quick is None else quick


_fill = functools.lru_cache(maxsize=1024)(_wrapped)


def why_lines(reasons: Sequence[Reason]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per reason: its label and `(term, "title, abstract")` pairs, fields grouped by term."""
    out = []
    for reason in reasons:
        grouped: dict[str, list[str]] = {}
        for hit in reason.hits:
            fields_ = grouped.setdefault(shorten(clean(hit.term), 60), [])
            if hit.field != "upvotes" and hit.field not in fields_:
                fields_.append(hit.field)
        terms = [(term, ", ".join(where)) for term, where in grouped.items()]
        out.append((shorten(clean(reason.label), MAX_LABEL), terms))
    return out


def _short_number(n: int) -> str:
    return f"{n / 1000:.1f}k".replace(".0k", "k") if n >= 1000 else str(n)


def paper_links(paper: Paper) -> tuple[str | None, list[tuple[str, str]]]:
    """(the title's URL, [(label, url)]): only well-formed http(s) links survive."""
    arxiv = paper.arxiv_id if paper.arxiv_id and _ARXIV_ID.fullmatch(paper.arxiv_id) else None
    abstract = f"https://arxiv.org/abs/{arxiv}" if arxiv else safe_url(paper.link)
    pdf = safe_url(paper.pdf_url) or (f"https://arxiv.org/pdf/{arxiv}" if arxiv else None)
    code = safe_url(paper.github_repo)
    stars = f" (★ {_short_number(paper.github_stars)})" if code and paper.github_stars else ""
    links = [
        ("Abstract", abstract),
        ("PDF", pdf),
        ("Hugging Face", f"https://huggingface.co/papers/{quote(arxiv)}" if arxiv else None),
        (f"Code{stars}", code),
        ("Project page", safe_url(paper.project_page)),
    ]
    kept: list[tuple[str, str]] = []
    for label, url in links:
        if url and all(url != seen for _, seen in kept):  # one URL, one link: spam filters count
            kept.append((label, url))
    return abstract or pdf, kept


@dataclass(frozen=True, slots=True)
class PaperView:
    """What a card shows of the paper itself, whoever it is for: worked out once per paper."""

    url: str | None
    title: str
    authors: str
    meta: list[str]
    abstract: str
    ai_summary: str
    links: list[tuple[str, str]]
    thumbnail: str | None
    thumbnail_alt: str
    text_title: str
    text_authors: str
    text_summary: str


def view_paper(paper: Paper, thumbnails: bool = False) -> PaperView:
    """The paper's part of every card it appears on: cleaned, cut and wrapped once."""
    return _view(paper, thumbnails, True)


def web_view_paper(paper: Paper) -> PaperView:
    """`view_paper` for the web pages: thumbnails, and no text part (nothing wrapped)."""
    return _view(paper, True, False)


def _view(paper: Paper, thumbnails: bool, text: bool) -> PaperView:
    title = shorten(clean(paper.title), MAX_TITLE) or "(untitled)"
    summary = shorten(clean(paper.ai_summary), MAX_SUMMARY)
    url, links = paper_links(paper)
    meta = []
    if paper.upvotes is not None:
        meta.append(plural(paper.upvotes, "upvote"))
    if paper.num_comments:
        meta.append(plural(paper.num_comments, "comment"))
    meta += [clean(c) for c in paper.categories[:6] if clean(c)]
    authors = authors_line(paper.authors)
    return PaperView(
        url=url,
        title=title,
        authors=authors,
        meta=meta,
        abstract=clean(paper.abstract),
        ai_summary=summary,
        links=links,
        thumbnail=safe_url(paper.thumbnail) if thumbnails else None,
        thumbnail_alt=f"Figure: {shorten(title, 80)}",
        text_title=_TITLE.fill(title) if text else "",
        text_authors=_TEXT.fill(authors) if text else "",
        text_summary=_TEXT.fill(f"AI summary: {summary}") if summary and text else "",
    )


@dataclass(frozen=True, slots=True)
class Card:
    """A paper's card for one set of reasons: the paper's part plus highlights and why.

    `links` are the HTML links under the title (the title's own URL left out: it is the
    title's link), `text_links` the text part's, the title's URL included: both parts carry
    the same URLs, each once, so spam filters see no odd link count. A `compact` card (past
    the first few of a long email) shows title, authors, why and fewer links, no abstract,
    so the largest allowed digest stays under Gmail's clipping size."""

    paper: PaperView
    title: list[tuple[str, bool]]
    abstract: list[tuple[str, bool]]
    why: list[tuple[str, list[tuple[str, str]]]]
    text_abstract: str
    text_why: str
    compact: bool
    why_line: str
    short_title: str
    short_authors: str
    links: list[tuple[str, str]]
    text_links: list[tuple[str, str]]


def hitting(match: Match, field: str) -> tuple[Term, ...]:
    """The highlight terms that hit this field of this paper: the others cannot highlight,
    and skipping them saves most of the highlighting work."""
    return hitting_in(match.reasons, match.terms, field)


def hitting_in(reasons: Sequence[Reason], terms: Sequence[Term], field: str) -> tuple[Term, ...]:
    """`hitting` for a match's reasons and terms already at hand."""
    shown = {h.term for r in reasons for h in r.hits if h.field == field}
    return tuple(t for t in terms if _display(t) in shown) if shown else ()


_display = functools.lru_cache(maxsize=4096)(display)


@dataclass(frozen=True, slots=True)
class PaperWords:
    """A paper's shown title and abstract, tokenised once per edition for every card that
    highlights them."""

    title: TextWords
    abstract: TextWords


def paper_words(view: PaperView) -> PaperWords:
    """The words of what a card shows of the paper (its cleaned, cut title and abstract)."""
    return PaperWords(TextWords(view.title), TextWords(view.abstract))


Segments = list[tuple[str, bool]]  # a text cut into (piece, is_hit) runs
WhyLines = list[tuple[str, list[tuple[str, str]]]]  # per reason: label, (term, where) pairs


@dataclass(frozen=True, slots=True)
class Why:
    """Why a paper is there, as each part of a card says it: worked out once per distinct
    set of reasons, which many papers and people share."""

    lines: WhyLines
    text: str  # the text part's wrapped "Why: ..." paragraph
    line: str  # a compact card's one "Why:" line


def why_of(reasons: Sequence[Reason]) -> Why:
    """The why lines of a set of reasons, in every form a card prints them."""
    lines = why_lines(reasons)
    said = "; also ".join(
        label + (": " + ", ".join(f"{t} ({w})" if w else t for t, w in ts) if ts else "")
        for label, ts in lines
    )
    return Why(lines, _fill(f"Why: {said}"), shorten(f"Why: {said}", MAX_WHY))


def card_links(
    view: PaperView, compact: bool
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(the HTML part's links, the text part's): the paper's and compactness' alone."""
    links = [(label, url) for label, url in view.links if url != view.url]
    if compact:
        links = [(label, url) for label, url in links if label.startswith(COMPACT_LINKS)]
    shown = {url for _, url in links}
    return links, [(lb, url) for lb, url in view.links if url == view.url or url in shown]


def title_segments(view: PaperView, terms: Sequence[Term], words: PaperWords | None) -> Segments:
    """The title cut into highlighted and plain runs for the terms that hit it."""
    spans = (
        highlight_spans(view.title, terms, "title", words=words.title if words else None)
        if terms
        else []
    )
    return segments(view.title, spans)


def abstract_parts(
    view: PaperView, terms: Sequence[Term], words: PaperWords | None
) -> tuple[Segments, str]:
    """The abstract's snippet as highlighted runs, and as the text part's wrapped paragraph."""
    body, spans = abstract_snippet(view.abstract, terms, words.abstract if words else None)
    return segments(body, spans), _fill(body)


def build_card(
    match: Match,
    thumbnails: bool = False,
    view: PaperView | None = None,
    *,
    compact: bool = False,
    words: PaperWords | None = None,
) -> Card:
    """A paper's card for one set of reasons; `view` is the paper's part and `words` its
    tokenised text, if already known."""
    view = view or view_paper(match.paper, thumbnails)
    why = why_of(match.reasons)
    links, text_links = card_links(view, compact)
    title, text_abstract = segments(view.title, []), _fill("")
    abstract: Segments = []
    if not compact:
        title = title_segments(view, hitting(match, "title"), words)
        abstract, text_abstract = abstract_parts(view, hitting(match, "abstract"), words)
    return Card(
        paper=view,
        title=title,
        abstract=abstract,
        why=why.lines,
        text_abstract=text_abstract,
        text_why=why.text,
        compact=compact,
        why_line=why.line if compact else "",
        short_title=shorten(view.title, MAX_COMPACT_TITLE),
        short_authors=shorten(view.authors, MAX_COMPACT_AUTHORS),
        links=links,
        text_links=text_links,
    )


def paper_card(paper: Paper, thumbnails: bool = False) -> Card:
    """The card of a paper that no query picked (a web page before any search): the same
    parts as an email's card, with nothing highlighted and no why."""
    view = view_paper(paper, thumbnails)
    body, _ = abstract_snippet(view.abstract, [])
    links = [(label, url) for label, url in view.links if url != view.url]
    return Card(
        paper=view,
        title=segments(view.title, []),
        abstract=segments(body, []),
        why=[],
        text_abstract=_TEXT.fill(body),
        text_why="",
        compact=False,
        why_line="",
        short_title=shorten(view.title, MAX_COMPACT_TITLE),
        short_authors=shorten(view.authors, MAX_COMPACT_AUTHORS),
        links=links,
        text_links=list(view.links),
    )


@dataclass(frozen=True, slots=True)
class RenderedCard:
    """A card as both parts print it, and the group it goes under in a digest."""

    html: Markup
    text: str
    title: str
    group: tuple[str, str]  # the first reason's (kind, name): the card goes under it
    label: str


@dataclass(frozen=True, slots=True)
class Group:
    """A digest's section: the cards under one topic or query, with its label (None when the
    subscriber follows only one thing) and how many papers it holds."""

    label: str | None
    count: str
    cards: list[Any]


_K = TypeVar("_K")
_V = TypeVar("_V")


def remember(cache: dict[_K, _V], key: _K, value: _V, limit: int = PAPER_CACHE) -> _V:
    """Store a value, dropping the oldest entry once the cache holds `limit`: memory stays
    bounded however many distinct papers a run sees."""
    if len(cache) >= limit:
        del cache[next(iter(cache))]
    cache[key] = value
    return value


def card_capacity(expected: int | None) -> int:
    """How many rendered cards to keep for an edition expected to show `expected` distinct
    cards (distinct paper, reasons and compactness): all of them, within CARD_CACHE_MIN and
    CARD_CACHE_MAX; CARD_CACHE when the number is not known."""
    if expected is None:
        return CARD_CACHE
    return max(CARD_CACHE_MIN, min(CARD_CACHE_MAX, expected))


def web_plain_card(view: PaperView) -> Card:
    """`paper_card`'s HTML part from the paper's view, for the web pages (no text part)."""
    body, _ = abstract_snippet(view.abstract, [])
    links = [(label, url) for label, url in view.links if url != view.url]
    return Card(view, segments(view.title, []), segments(body, []), [], "", "", False, "",
                shorten(view.title, MAX_COMPACT_TITLE), shorten(view.authors, MAX_COMPACT_AUTHORS),
                links, [])  # fmt: skip


def web_card(match: Match, view: PaperView, words: PaperWords | None, plain: Card) -> Card:
    """`build_card`'s HTML part for the web pages, which print no text part: nothing is
    wrapped (a sixth of a card's cost), and a title or abstract no term hits is `plain`'s
    (the paper's card with nothing picked, made once per paper)."""
    reasons, terms = match.reasons, match.terms
    title_terms = hitting_in(reasons, terms, "title")
    abstract_terms = hitting_in(reasons, terms, "abstract")
    title = title_segments(view, title_terms, words) if title_terms else plain.title
    abstract = plain.abstract
    if abstract_terms:
        body, spans = abstract_snippet(
            view.abstract, abstract_terms, words.abstract if words else None
        )
        abstract = segments(body, spans)
    why = why_lines(reasons)
    return Card(view, title, abstract, why, "", "", False, "", plain.short_title,
                plain.short_authors, plain.links, [])  # fmt: skip
