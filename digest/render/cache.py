"""The cards of a run: each paper's frames made once, each distinct why and highlight worked out
once, and a card assembled from them by string joins (see `frames`); a small cache of whole
cards in front for the many who get exactly the same card."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from sys import getsizeof

from jinja2 import Template, TemplateError
from markupsafe import Markup

from digest.errors import RenderError
from digest.match import Match, Reason
from digest.models import Paper
from digest.query import Term
from digest.render.cards import (
    CARD_CACHE,
    CARD_CACHE_BYTES,
    PAPER_CACHE,
    Card,
    PaperView,
    PaperWords,
    RenderedCard,
    Why,
    abstract_parts,
    build_card,
    card_links,
    hitting_in,
    paper_words,
    remember,
    title_segments,
    view_paper,
    why_of,
)
from digest.render.frames import (
    ABSTRACT,
    TEXT_ABSTRACT,
    TEXT_WHY,
    TITLE,
    WHY,
    WHY_LINE,
    Frame,
    Unusable,
    fill,
    fillers,
    fold,
)
from digest.render.text import MAX_COMPACT_AUTHORS, MAX_COMPACT_TITLE, segments, shorten

PART_CACHE = 8_192  # distinct whys, and distinct highlights, kept (~0.2-3 KB each)

_PaperKey = tuple[str, datetime | None]  # (paper id, updated_at)
_Printed = tuple[str, str]  # one slot as the HTML part and the text part print it


@dataclass(frozen=True, slots=True)
class _Highlight:
    """A field's highlighted segments for one set of hitting terms, printed."""

    shown: bool  # the segments are not empty
    printed: _Printed
    text: str  # the text part's wrapped paragraph (the abstract's), "" for the title
    text_printed: _Printed


@dataclass(slots=True)
class _PaperParts:
    """What every card of one paper shares: its view, its words, its frames."""

    view: PaperView
    words: PaperWords | None = None
    frames: dict[tuple[bool, int], tuple[Frame, Frame]] = field(default_factory=dict)
    plain_title: _Highlight | None = None  # the title as a compact card shows it


@dataclass(frozen=True, slots=True)
class _WhyPrinted:
    why: Why
    lines: _Printed
    text: _Printed
    line: _Printed


class CardCache:
    """Cards assembled once per run for everyone who gets them; least recently used first out.

    Keyed by (Match.key, paper.updated_at, compact): everyone whose queries picked a paper
    for the same reasons gets the same card. A paper id (and its updated_at) must stand for
    one paper's content, and a topic's name for one set of terms, while the cache lives:
    build one per run. `hits` and
    `rendered` count lookups answered from the cache and cards assembled (`hit_rate`). When
    the card templates cannot be reproduced by frames (`fast` is False), each card is
    rendered by jinja.
    """

    def __init__(
        self,
        html: Template,
        text: Template,
        thumbnails: bool = False,
        capacity: int = CARD_CACHE,
        *,
        frames: bool = True,
    ) -> None:
        self.html = html
        self.text = text
        self.thumbnails = thumbnails
        self.capacity = max(1, capacity)
        self.max_bytes = CARD_CACHE_BYTES
        self.bytes = 0  # what the kept cards take of their own (their parts are shared)
        self.rendered = 0
        self.hits = 0
        self._cards: OrderedDict[tuple[object, ...], CardParts]
        self._cards = OrderedDict()
        self._fillers = fillers(html, text) if frames else None
        self._papers: dict[_PaperKey, _PaperParts] = {}
        self._whys: dict[tuple[Reason, ...], _WhyPrinted] = {}
        self._highlights: dict[tuple[_PaperKey, str, tuple[Term, ...]], _Highlight] = {}
        self._groups: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, str], str]] = {}

    @property
    def fast(self) -> bool:
        """Cards are assembled from frames (else rendered by jinja one by one)."""
        return self._fillers is not None

    @property
    def hit_rate(self) -> float:
        """The share of card lookups answered without assembling (0.0 before any)."""
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
            self.bytes -= cards.popitem(last=False)[1].size

    def card(
        self, match: Match, compact: bool, key: tuple[str, tuple[str, ...]] | None = None
    ) -> RenderedCard:
        """The match's card, assembled now only if no one got the same card recently; `key`
        is `match.key` when the caller already has it.

        Raises:
            RenderError: the card templates fail on this paper.
        """
        return _card(self.parts(match, compact, key))

    def parts(
        self, match: Match, compact: bool, key: tuple[str, tuple[str, ...]] | None = None
    ) -> CardParts:
        """The match's card as frames and their strings, unfilled: a digest's frame takes
        them as they are, without making the card's text first (see `card`).

        Raises:
            RenderError: the card templates fail on this paper.
        """
        paper = match.paper
        at = (key or match.key, paper.updated_at, compact)
        found = self._cards.get(at)
        if found is not None:
            self._cards.move_to_end(at)
            self.hits += 1
            return found
        terms = match.terms
        parts = self._paper(paper)
        try:
            frames, values, size = _folded(*self._assemble(match, parts, compact, terms))
        except (TemplateError, Unusable) as ex:
            raise RenderError(f"email/digest card: {ex}") from ex
        group, label = self.group_of(match, at[0])
        self.rendered += 1
        kept = CardParts(frames, values, parts.view.title, group, label, size)
        self.bytes += size
        self._cards[at] = kept
        self._cards.move_to_end(at)
        self._trim()
        return kept

    def _assemble(
        self, match: Match, parts: _PaperParts, compact: bool, terms: tuple[Term, ...]
    ) -> tuple[tuple[Frame, Frame], tuple[tuple[str, ...], tuple[str, ...]], int]:
        """The card's two parts as its paper's frames and the strings that fill them (its
        why and highlights, shared with other cards), and what it takes of its own."""
        if self._fillers is None:
            if parts.words is None and not compact:
                parts.words = paper_words(parts.view)
            card = build_card(
                match, self.thumbnails, parts.view, compact=compact, words=parts.words
            )
            html, text = self.html.render(card=card), self.text.render(card=card)
            return (((html,), ()), ((text,), ())), ((), ()), getsizeof(html) + getsizeof(text)
        reasons = match.reasons
        why = self._why(reasons)
        if compact:
            assert parts.plain_title is not None
            title, abstract = parts.plain_title, _NONE
        else:
            paper = match.paper
            title = self._highlight(paper, parts, "title", hitting_in(reasons, terms, "title"))
            abstract = self._highlight(
                paper, parts, "abstract", hitting_in(reasons, terms, "abstract")
            )
        bits = (
            title.shown | abstract.shown << ABSTRACT | bool(why.why.lines) << WHY
            | bool(abstract.text) << TEXT_ABSTRACT | bool(why.why.text) << TEXT_WHY
            | (compact and bool(why.why.line)) << WHY_LINE
        )  # fmt: skip
        frames = parts.frames.get((compact, bits))
        if frames is None:
            frames = self._frames(parts, compact, bits)
        line = why.line if compact else ("", "")
        html_values: tuple[str, ...] = (title.printed[0], abstract.printed[0], why.lines[0])
        text_values: tuple[str, ...] = (title.printed[1], abstract.printed[1], why.lines[1])
        html_values += (abstract.text_printed[0], why.text[0], line[0])
        text_values += (abstract.text_printed[1], why.text[1], line[1])
        values = (html_values, text_values)
        return frames, values, 2 * getsizeof(html_values) + _PARTS_SIZE

    def _frames(self, parts: _PaperParts, compact: bool, bits: int) -> tuple[Frame, Frame]:
        """The paper's frames for cards of this compactness and shape, made once."""
        assert self._fillers is not None
        view = parts.view
        links, text_links = card_links(view, compact)
        some = [("x", False)]
        shaped = Card(
            paper=view,
            title=some if bits >> TITLE & 1 else [],
            abstract=some if bits >> ABSTRACT & 1 else [],
            why=[("x", [])] if bits >> WHY & 1 else [],
            text_abstract="x" if bits >> TEXT_ABSTRACT & 1 else "",
            text_why="x" if bits >> TEXT_WHY & 1 else "",
            compact=compact,
            why_line="x" if bits >> WHY_LINE & 1 else "",
            short_title=shorten(view.title, MAX_COMPACT_TITLE),
            short_authors=shorten(view.authors, MAX_COMPACT_AUTHORS),
            links=links,
            text_links=text_links,
        )
        html, text = self._fillers
        frames = (html.frame(shaped), text.frame(shaped))
        parts.frames[(compact, bits)] = frames
        return frames

    def _why(self, reasons: tuple[Reason, ...]) -> _WhyPrinted:
        """A set of reasons as every card prints them: once per distinct set."""
        found = self._whys.get(reasons)
        if found is None:
            assert self._fillers is not None
            html, text = self._fillers
            why = why_of(reasons)
            found = _WhyPrinted(
                why,
                (html.why(why.lines), text.why(why.lines)) if why.lines else ("", ""),
                (html.text(why.text), text.text(why.text)),
                (html.text(why.line), text.text(why.line)),
            )
            remember(self._whys, reasons, found, PART_CACHE)
        return found

    def _highlight(
        self, paper: Paper, parts: _PaperParts, name: str, terms: tuple[Term, ...]
    ) -> _Highlight:
        """A field of the paper highlighted for the terms that hit it: once per distinct
        set of terms."""
        at = ((paper.id, paper.updated_at), name, terms)
        found = self._highlights.get(at)
        if found is None:
            found = remember(
                self._highlights, at, self._highlighted(parts, name, terms), PART_CACHE
            )
        return found

    def _highlighted(self, parts: _PaperParts, name: str, terms: tuple[Term, ...]) -> _Highlight:
        assert self._fillers is not None
        html, text = self._fillers
        if parts.words is None:
            parts.words = paper_words(parts.view)
        slot, body = TITLE, ""
        if name == "title":
            pieces = title_segments(parts.view, terms, parts.words)
        else:
            slot = ABSTRACT
            pieces, body = abstract_parts(parts.view, terms, parts.words)
        return _Highlight(
            bool(pieces),
            (html.segments(slot, pieces), text.segments(slot, pieces)),
            body,
            (html.text(body), text.text(body)),
        )

    def _paper(self, paper: Paper) -> _PaperParts:
        """What every card of the paper shares: once per paper."""
        at = (paper.id, paper.updated_at)
        found = self._papers.get(at)
        if found is None:
            view = view_paper(paper, self.thumbnails)
            found = _PaperParts(view)
            if self._fillers is not None:
                plain = segments(view.title, [])
                html, text = self._fillers
                printed = (html.segments(TITLE, plain), text.segments(TITLE, plain))
                found.plain_title = _Highlight(bool(plain), printed, "", ("", ""))
            remember(self._papers, at, found)
        return found

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
            found = remember(self._groups, key, group, max(PAPER_CACHE, self.capacity))
        return found


_NONE = _Highlight(False, ("", ""), "", ("", ""))


@dataclass(frozen=True, slots=True)
class CardParts:
    """A card as the cache keeps it: frames and the strings that fill them, not the card's
    text, so a kept card costs a few hundred bytes whatever its length."""

    frames: tuple[Frame, Frame]
    values: tuple[tuple[str, ...], tuple[str, ...]]
    title: str
    group: tuple[str, str]
    label: str
    size: int

    def html(self) -> Markup:
        """The card's HTML part, filled."""
        return Markup(fill(self.frames[0], self.values[0]))

    def text(self) -> str:
        """The card's text part, filled."""
        return fill(self.frames[1], self.values[1])


_PARTS_SIZE = 200  # a CardParts and its key, roughly


def _folded(
    frames: tuple[Frame, Frame], values: tuple[tuple[str, ...], tuple[str, ...]], size: int
) -> tuple[tuple[Frame, Frame], tuple[tuple[str, ...], tuple[str, ...]], int]:
    """The card with its HTML lines folded (see `fold`); a folded HTML part is kept whole."""
    html = fill(frames[0], values[0])
    folded = fold(html)
    if folded is html:
        return frames, values, size
    return (((folded,), ()), frames[1]), ((), values[1]), size + getsizeof(folded)


def _card(kept: CardParts) -> RenderedCard:
    return RenderedCard(kept.html(), kept.text(), kept.title, kept.group, kept.label)
