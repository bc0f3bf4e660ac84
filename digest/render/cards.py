"""What one paper's card shows (its links, why it is there, its highlighted segments), and the
cache that renders each distinct card once per run, whoever gets it."""

from __future__ import annotations

import functools
import re
import sys
import textwrap
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

from jinja2 import Template, TemplateError
from markupsafe import Markup

from digest.errors import RenderError
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
    safe_url,
    segments,
    shorten,
)

WRAP = 76
CARD_CACHE = 20_000  # rendered cards kept when the edition's size is not known
CARD_CACHE_MIN = 1_000
CARD_CACHE_MAX = 40_000
# A card's two parts take ~4-8 KB (an ellipsis makes a str 2 bytes a character): whatever the
# count, the cache holds at most this much, so a large edition's run keeps a flat, small RSS.
CARD_CACHE_BYTES = 128 * 2**20
PAPER_CACHE = 10_000  # papers' views and words, per cache: an edition's papers fit
COMPACT_LINKS = ("PDF", "Code")  # a compact card's links besides its title's

_ARXIV_ID = re.compile(r"\d{4}\.\d{4,5}|[a-z][a-z.-]*(\.[A-Z]{2})?/\d{7}")
_TEXT = textwrap.TextWrapper(WRAP, "  ", "  ", break_on_hyphens=False)
_TITLE = textwrap.TextWrapper(WRAP, "* ", "  ", break_on_hyphens=False)
# A snippet or why line recurs on the cards of one paper for other people: wrapped once.
_fill = functools.lru_cache(maxsize=8192)(_TEXT.fill)


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
        text_title=_TITLE.fill(title),
        text_authors=_TEXT.fill(authors),
        text_summary=_TEXT.fill(f"AI summary: {summary}") if summary else "",
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


def _hitting(match: Match, field: str) -> list[Term]:
    """The highlight terms that hit this field of this paper: the others cannot highlight,
    and skipping them saves most of the highlighting work."""
    shown = {h.term for r in match.reasons for h in r.hits if h.field == field}
    return [t for t in match.terms if _display(t) in shown] if shown else []


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
    why = why_lines(match.reasons)
    text_why = "; also ".join(
        label + (": " + ", ".join(f"{t} ({w})" if w else t for t, w in ts) if ts else "")
        for label, ts in why
    )
    links = [(label, url) for label, url in view.links if url != view.url]
    body = ""
    spans: list[tuple[int, int]] = []
    title_spans: list[tuple[int, int]] = []
    if compact:
        links = [(label, url) for label, url in links if label.startswith(COMPACT_LINKS)]
    else:
        title_terms, abstract_terms = _hitting(match, "title"), _hitting(match, "abstract")
        body, spans = abstract_snippet(
            view.abstract, abstract_terms, words.abstract if words else None
        )
        title_spans = (
            highlight_spans(view.title, title_terms, "title", words=words.title if words else None)
            if title_terms
            else []
        )
    shown = {url for _, url in links}
    return Card(
        paper=view,
        title=segments(view.title, title_spans),
        abstract=segments(body, spans),
        why=why,
        text_abstract=_fill(body),
        text_why=_fill(f"Why: {text_why}"),
        compact=compact,
        why_line=shorten(f"Why: {text_why}", MAX_WHY) if compact else "",
        short_title=shorten(view.title, MAX_COMPACT_TITLE),
        short_authors=shorten(view.authors, MAX_COMPACT_AUTHORS),
        links=links,
        text_links=[(lb, url) for lb, url in view.links if url == view.url or url in shown],
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


def _remember(cache: dict[_K, _V], key: _K, value: _V, limit: int = PAPER_CACHE) -> _V:
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


class CardCache:
    """Cards rendered once per run, for everyone who gets them; least recently used first out.

    Keyed by (Match.key, paper.updated_at, compact) and Match.terms: everyone whose queries
    picked a paper for the same reasons gets the same card. A paper id (and its updated_at)
    must stand for one paper's content while the cache lives: build one per run. `hits` and
    `rendered` count lookups answered from the cache and cards rendered (`hit_rate`).
    """

    def __init__(
        self, html: Template, text: Template, thumbnails: bool = False, capacity: int = CARD_CACHE
    ) -> None:
        self.html = html
        self.text = text
        self.thumbnails = thumbnails
        self.capacity = max(1, capacity)
        self.max_bytes = CARD_CACHE_BYTES
        self.bytes = 0  # what the kept cards' text takes, as sys.getsizeof counts it
        self.rendered = 0
        self.hits = 0
        self._cards: OrderedDict[tuple[object, ...], tuple[tuple[Term, ...], RenderedCard, int]]
        self._cards = OrderedDict()
        self._papers: dict[tuple[str, datetime | None], PaperView] = {}
        self._words: dict[tuple[str, datetime | None], PaperWords] = {}
        self._groups: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, str], str]] = {}

    @property
    def hit_rate(self) -> float:
        """The share of card lookups answered without rendering (0.0 before any)."""
        looked = self.hits + self.rendered
        return self.hits / looked if looked else 0.0

    def resize(self, capacity: int) -> None:
        """Keep up to `capacity` cards from now on (see `card_capacity`), the least recently
        used dropped first."""
        self.capacity = max(1, capacity)
        self._trim()

    def _trim(self) -> None:
        """Drop the least recently used cards until both the count and the bytes fit (the
        newest card always stays)."""
        cards = self._cards
        while len(cards) > self.capacity or (self.bytes > self.max_bytes and len(cards) > 1):
            self.bytes -= cards.popitem(last=False)[1][2]

    def card(
        self, match: Match, compact: bool, key: tuple[str, tuple[str, ...]] | None = None
    ) -> RenderedCard:
        """The match's card, rendered now only if no one got the same card recently; `key`
        is `match.key` when the caller already has it.

        Raises:
            RenderError: the card templates fail on this paper.
        """
        paper = match.paper
        key = key or match.key
        terms = match.terms
        at = (key, paper.updated_at, compact)
        found = self._cards.get(at)
        # the terms are checked, not hashed: the matcher hands out one tuple per set of reasons
        if found is not None and (found[0] is terms or found[0] == terms):
            self._cards.move_to_end(at)
            self.hits += 1
            return found[1]
        view, words = self._paper(paper, compact)
        card = build_card(match, self.thumbnails, view, compact=compact, words=words)
        try:
            html = Markup(self.html.render(card=card))
            text = self.text.render(card=card)
        except TemplateError as ex:
            raise RenderError(f"email/digest card: {ex}") from ex
        group, label = self.group_of(match, key)
        self.rendered += 1
        rendered = RenderedCard(html, text, card.paper.title, group, label)
        size = sys.getsizeof(html) + sys.getsizeof(text)
        self.bytes += size - (found[2] if found is not None else 0)
        self._cards[at] = (terms, rendered, size)
        self._cards.move_to_end(at)
        self._trim()
        return rendered

    def _paper(self, paper: Paper, compact: bool) -> tuple[PaperView, PaperWords | None]:
        """The paper's view, and its words when a full card highlights them: once per paper."""
        at = (paper.id, paper.updated_at)
        view = self._papers.get(at)
        if view is None:
            view = _remember(self._papers, at, view_paper(paper, self.thumbnails))
        if compact:
            return view, None
        words = self._words.get(at)
        if words is None:
            words = _remember(self._words, at, paper_words(view))
        return view, words

    def group_of(
        self, match: Match, key: tuple[str, tuple[str, ...]] | None = None
    ) -> tuple[tuple[str, str], str]:
        """The paper's first reason ((kind, name), label): its card goes under it. `key` is
        `match.key` when the caller already has it."""
        key = key or match.key
        found = self._groups.get(key)
        if found is None:
            first = match.reasons[0] if match.reasons else Reason("query", "", "", ())
            group = ((first.kind, first.name), first.label)
            found = _remember(self._groups, key, group, max(PAPER_CACHE, self.capacity))
        return found
