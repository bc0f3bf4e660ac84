"""Cards without a jinja render per card. The card template is rendered once per paper with a
placeholder in each place a match's own parts go (highlighted title and abstract, why), and
each card is that frame with the places filled by string joins, escaped as jinja escapes.

The template stays the one source of the markup: how a highlight or a why line is printed is
read from the template's own output on sample cards, and a `Filler` that cannot reproduce
the template on hostile samples refuses to exist (`Unusable`), so the caller renders with
jinja instead.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Sequence

from jinja2 import Template, TemplateError
from markupsafe import escape

from digest.render.cards import Card, PaperView, Segments, WhyLines

# A match's own parts of a card, in slot order; clean() keeps control characters out of feed
# text and safe_url out of links, so a placeholder cannot occur in what a card prints.
SLOTS = ("title", "abstract", "why", "text_abstract", "text_why", "why_line")
TITLE, ABSTRACT, WHY, TEXT_ABSTRACT, TEXT_WHY, WHY_LINE = range(len(SLOTS))
_MARKS = re.compile("\x1e(\\d+)\x1f")

Frame = tuple[tuple[str, ...], tuple[int, ...]]  # n + 1 fixed pieces around n slots


class Unusable(Exception):
    """The template prints a match's parts in a way a frame cannot reproduce."""


def _escape(text: str) -> str:
    return str(escape(text))


def mark(slot: int) -> str:
    """The placeholder of a slot, as it appears in a frame."""
    return f"\x1e{slot}\x1f"


def shape(card: Card) -> int:
    """Which of a card's own parts are empty, as bits: the template may branch on them, so a
    frame is kept per paper, compactness and shape."""
    parts = (card.title, card.abstract, card.why, card.text_abstract, card.text_why)
    bits = sum(1 << i for i, part in enumerate((*parts, card.why_line)) if part)
    return bits


def probe(card: Card) -> Card:
    """The card with each of the match's parts replaced by its placeholder (an empty part
    stays empty, so the template takes the same branches)."""
    return dataclasses.replace(
        card,
        title=[(mark(TITLE), False)] if card.title else [],
        abstract=[(mark(ABSTRACT), False)] if card.abstract else [],
        why=[(mark(WHY), [])] if card.why else [],
        text_abstract=mark(TEXT_ABSTRACT) if card.text_abstract else "",
        text_why=mark(TEXT_WHY) if card.text_why else "",
        why_line=mark(WHY_LINE) if card.why_line else "",
    )


FOLD_AT = 900  # octets: under SMTP's 998 with room for what an email puts beside a card
_TAGS = re.compile("(<[^>]*>)")
_VERBATIM = re.compile("<pre|<textarea|<script|<style|white-space", re.IGNORECASE)


def fold(html: str) -> str:
    """`html` with each line over FOLD_AT octets broken at spaces of its text (never inside
    a tag), so the email's part goes 8bit instead of quoted-printable. A newline is the same
    white space as a space there; a space beside a non-ASCII character (where CSS may drop a
    line break between CJK characters) or HTML that keeps white space is left alone."""
    lines = html.split("\n")
    if all(len(line) <= FOLD_AT // 4 or len(line.encode()) <= FOLD_AT for line in lines):
        return html
    if _VERBATIM.search(html):
        return html
    return "\n".join(_fold_line(line) for line in lines)


def _fold_line(line: str) -> str:
    """One line folded greedily: the runs between breakable spaces (tags included) are
    packed onto lines of at most FOLD_AT octets where they fit."""
    if len(line.encode()) <= FOLD_AT:
        return line
    units: list[str] = []
    unit: list[str] = []
    for n, run in enumerate(_TAGS.split(line)):
        if n % 2:  # a tag: never broken
            unit.append(run)
            continue
        words = run.split(" ")
        unit.append(words[0])
        for before, word in itertools.pairwise(words):
            if _breakable(before, word):
                units.append("".join(unit))
                unit = [word]
            else:
                unit += (" ", word)
    units.append("".join(unit))
    out = [units[0]]
    width = len(units[0].encode())
    for unit_text in units[1:]:
        size = len(unit_text.encode())
        if width + 1 + size > FOLD_AT:
            out += ("\n", unit_text)
            width = size
        else:
            out += (" ", unit_text)
            width += 1 + size
    return "".join(out)


def _breakable(before: str, after: str) -> bool:
    """A space between ASCII characters (an empty word: a space or a tag's edge is there)."""
    return (before[-1:] or " ").isascii() and (after[:1] or " ").isascii()


def fill(frame: Frame, values: Sequence[str]) -> str:
    """A frame with its slots filled from `values` (indexed by slot)."""
    pieces, slots = frame
    out = [pieces[0]]
    for slot, piece in zip(slots, pieces[1:], strict=True):
        out += (values[slot], piece)
    return "".join(out)


class Filler:
    """One card template (the HTML or the text part) as frames and the printing of each
    slot, worked out from `sample` (a full card, every part present) at load.

    Raises:
        Unusable: (from the constructor) the template cannot be reproduced by frames.
    """

    def __init__(self, template: Template, escaped: bool, sample: Card) -> None:
        self.template = template
        self.escaped = escaped
        self._pieces: dict[str, str] = {}
        self._sample = probe(sample)
        base = self._render(self._sample)
        self.uses = frozenset(int(n) for n in _MARKS.findall(base))
        self._wraps = {s: self._wrap(base, s) for s in (TITLE, ABSTRACT) if s in self.uses}
        self._why = self._edges(base, WHY) if WHY in self.uses else ("", "")
        self.model = self._why_model() if WHY in self.uses else None

    def _render(self, card: Card) -> str:
        try:
            return self.template.render(card=card)
        except TemplateError as ex:
            raise Unusable(str(ex)) from ex

    def _edges(self, base: str, slot: int) -> tuple[str, str]:
        """What the sample prints before and after a slot printed once."""
        if base.count(mark(slot)) != 1:
            raise Unusable(f"{SLOTS[slot]} is printed {base.count(mark(slot))} times")
        head, tail = base.split(mark(slot))
        return head, tail

    def _wrap(self, base: str, slot: int) -> tuple[str, str]:
        """What the template prints around a highlighted piece of a segments slot, read off
        a sample with a plain, a highlighted and a plain piece."""
        head, tail = self._edges(base, slot)
        left, hit, right = mark(7), mark(8), mark(9)
        field = SLOTS[slot]
        pieces = [(left, False), (hit, True), (right, False)]
        three = dataclasses.replace(
            self._sample, title=pieces if slot == TITLE else self._sample.title,
            abstract=pieces if slot == ABSTRACT else self._sample.abstract,
        )  # fmt: skip
        out = self._render(three)
        if not (out.startswith(head + left) and out.endswith(right + tail)):
            raise Unusable(f"{field}: plain pieces are not printed as they are")
        middle = out[len(head) + len(left) : len(out) - len(tail) - len(right)]
        if middle.count(hit) != 1:
            raise Unusable(f"{field}: a highlighted piece is not printed once")
        before, after = middle.split(hit)
        return before, after

    def text(self, value: str) -> str:
        """A plain slot as the template prints a string: escaped in HTML."""
        return str(escape(value)) if self.escaped else value

    def segments(self, slot: int, pieces: Segments) -> str:
        """A title or abstract slot: plain pieces as they are, hits wrapped."""
        if slot not in self._wraps:
            return ""
        before, after = self._wraps[slot]
        if self.escaped:
            return "".join(
                f"{before}{escape(text)}{after}" if hit else str(escape(text))
                for text, hit in pieces
            )
        return "".join(f"{before}{text}{after}" if hit else text for text, hit in pieces)

    def why(self, lines: WhyLines) -> str:
        """The why slot: by the template's own pieces when they were read off the samples,
        else rendered by the template on the sample card and cut out of it (the caller
        keeps each distinct why)."""
        if WHY not in self.uses:
            return ""
        if self.model is None:
            return self._why_rendered(lines)
        sep, colon, comma, last, where, where_comma, where_last = self.model
        esc = _escape if self.escaped else str
        out = []
        for n, (label, terms) in enumerate(lines):
            out.append(esc(label))
            if terms:
                out.append(colon)
                for k, (term, at) in enumerate(terms):
                    more = k < len(terms) - 1
                    if at:
                        out += (esc(term), where, esc(at), where_comma if more else where_last)
                    else:
                        out += (esc(term), comma if more else last)
            if n < len(lines) - 1:
                out.append(sep)
        return "".join(out)

    def _why_rendered(self, lines: WhyLines) -> str:
        out = self._render(dataclasses.replace(self._sample, why=lines))
        head, tail = self._why
        if not (out.startswith(head) and out.endswith(tail)):
            raise Unusable("why: the card around it changed")
        return out[len(head) : len(out) - len(tail)]

    def _why_model(self) -> tuple[str, ...] | None:
        """The fixed pieces a why is printed with (between reasons, before the terms,
        between terms, after the last, around a term's fields), read off sample whys whose
        labels, terms and fields are placeholders; None when the samples do not read as
        such pieces."""
        a, b, t, u, w = (mark(n) for n in range(10, 15))

        def pieces(lines: WhyLines, marks: list[int]) -> list[str] | None:
            found = _MARKS.split(self._why_rendered(lines))
            if [int(n) for n in found[1::2]] != marks or found[0]:
                return None
            return found[2::2]

        seen = [
            pieces([(a, [])], [10]),
            pieces([(a, []), (b, [])], [10, 11]),
            pieces([(a, [(t, ""), (u, "")])], [10, 12, 13]),
            pieces([(a, [(t, w), (u, "")])], [10, 12, 14, 13]),
            pieces([(a, [(u, ""), (t, w)])], [10, 13, 12, 14]),
        ]
        kept = [p for p in seen if p is not None]
        if len(kept) != len(seen):
            return None
        one, two, plain, mixed, ending = kept
        if one != [""] or two[1] != "" or mixed[::3] != plain[::2]:
            return None
        if ending[:3] != [*plain[:2], mixed[1]]:
            return None
        # sep, colon, comma, last, where, where_comma, where_last
        return two[0], plain[0], plain[1], plain[2], mixed[1], mixed[2], ending[3]

    def frame(self, card: Card) -> Frame:
        """The card's frame: `card` carries the paper's parts, the match's parts only decide
        which are empty.

        Raises:
            Unusable: the template failed on this paper (the caller reports jinja's error
                as a RenderError naming the card).
        """
        found = _MARKS.split(self._render(probe(card)))
        pieces = tuple(self._pieces.setdefault(p, p) for p in found[::2])  # shared markup once
        return pieces, tuple(int(n) for n in found[1::2])


def sample_view(index: int) -> PaperView:
    """Papers for working out and checking fillers: every part present, feed-like hostile
    text (quotes, ampersands, angle brackets, non-Latin script)."""
    hostile = ["<b>A & B</b> \"q\" 'a'", "Caf\u00e9 \u65e5\u672c\u8a9e \u2192 x\u00b2"][index % 2]
    return PaperView(
        url=f"https://arxiv.org/abs/2601.0000{index}",
        title=f"Title {index} {hostile}",
        authors=f"Ada {index} & <Grace>",
        meta=[f"{index} upvotes", "cs.LG"],
        abstract=f"Abstract {index} {hostile}",
        ai_summary=f"Summary {index} {hostile}" if index % 2 == 0 else "",
        links=[
            ("Abstract", f"https://arxiv.org/abs/2601.0000{index}"),
            ("PDF", f"https://arxiv.org/pdf/2601.0000{index}?a=1&b=2"),
            ("Code (\u2605 1k)", "https://github.com/x/y"),
        ],
        thumbnail=f"https://x.org/{index}.png?a=1&b='2'" if index % 2 == 0 else None,
        thumbnail_alt=f"Figure: Title {index} {hostile}",
        text_title=f"* Title {index} {hostile}",
        text_authors=f"  Ada {index} & <Grace>",
        text_summary=f"  AI summary: {hostile}" if index % 2 == 0 else "",
    )


def _checks(compact: bool) -> list[tuple[Segments, Segments, WhyLines, str, str, str]]:
    """A match's parts in the shapes and with the text that tell a faithful filler from one
    that only looks right: hits first, last, adjacent; empty parts; several reasons."""
    hostile = "<I>&amp;</i> \"Q\" 'a' \u2192 \u00c9\u00e9 " + "Long words " * 9
    whys: list[WhyLines] = [
        [("Topic <a&b>", [])],
        [(f"q {hostile}", [("diffus*", "title, abstract"), ("x & y", "")]), ("T", [("z", "")])],
        [],
    ]
    titles: list[Segments] = [[(hostile, True)], [("a ", False), ("b&", True), (" c", False)], []]
    abstracts: list[Segments] = [[("x", True), (f" {hostile}", False), ("y", True)], []]
    out = []
    for n, why in enumerate(whys):
        title, abstract = titles[n % len(titles)], abstracts[n % len(abstracts)]
        text_abstract = "" if compact or not abstract else f"  {hostile}\n  more"
        line = f"Why: {hostile}" if compact else ""
        out.append(
            (title, [] if compact else abstract, why, text_abstract, f"Why: {hostile}", line)
        )
    return out


def _faithful(fillers: tuple[Filler, Filler], sample: Card) -> bool:
    """Each filler prints the check cards exactly as its template does."""
    for index in (1, 2):
        for compact in (False, True):
            for title, abstract, why, text_abstract, text_why, line in _checks(compact):
                card = dataclasses.replace(
                    sample, paper=sample_view(index), title=title, abstract=abstract, why=why,
                    text_abstract=text_abstract, text_why=text_why, why_line=line, compact=compact,
                )  # fmt: skip
                for f in fillers:
                    values = (
                        f.segments(TITLE, title), f.segments(ABSTRACT, abstract),
                        f.why(why) if why else "", f.text(text_abstract), f.text(text_why),
                        f.text(line),
                    )  # fmt: skip
                    if fill(f.frame(card), values) != f.template.render(card=card):
                        return False
    return True


def fillers(html: Template, text: Template) -> tuple[Filler, Filler] | None:
    """Fillers for the two card templates, or None when either cannot be reproduced by
    frames (the cards are then rendered by jinja one by one)."""
    view = sample_view(0)
    sample = Card(
        paper=view, title=[("T", True)], abstract=[("A", True)], why=[("W", [("w", "title")])],
        text_abstract="  A", text_why="Why: W", compact=False, why_line="",
        short_title=view.title, short_authors=view.authors, links=view.links[1:],
        text_links=view.links,
    )  # fmt: skip
    try:
        found = (Filler(html, True, sample), Filler(text, False, sample))
        if _faithful(found, sample):
            return found
        for f in found:  # the why pieces did not tell the whole story: let jinja print it
            f.model = None
        return found if _faithful(found, sample) else None
    except (Unusable, TemplateError):
        return None
