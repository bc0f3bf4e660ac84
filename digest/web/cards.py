"""The web pages' cards without a jinja render per card: the web card template rendered once
per paper and shape with placeholders (digest.render.frames, as the emails' cards are), each
card that frame filled with its highlights and why. A first-time search prints up to a page
of cards; the template was a fifth of its cost. The template stays the one source of the
markup: a printer that cannot reproduce it on hostile samples renders each card with jinja."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from dataclasses import dataclass, field

from markupsafe import Markup

from digest.errors import RenderError
from digest.pages import Pages
from digest.render.cards import Card, Segments, WhyLines
from digest.render.frames import (
    ABSTRACT,
    SLOTS,
    TITLE,
    WHY,
    Filler,
    Frame,
    Unusable,
    fill,
    sample_view,
    shape,
)


@dataclass(slots=True)
class Frames:
    """One window's card frames ((paper id, shape) -> the card with placeholders) and the
    filler that made them: the markup it shares between frames goes with the window."""

    filler: Filler | None = None
    frames: dict[Hashable, Frame] = field(default_factory=dict)
    plain: dict[Hashable, str] = field(default_factory=dict)  # (paper id, slot) -> its HTML


_HOSTILE = "<I>&amp;</i> \"Q\" 'a' \u2192 \u00c9\u00e9 {{ x }} " + "Long words " * 9
_TITLES: list[Segments] = [[(_HOSTILE, True)], [("a ", False), ("b&", True), (" c", False)]]
_ABSTRACTS: list[Segments] = [[("x", True), (f" {_HOSTILE}", False), ("y", True)], []]
_WHYS: list[WhyLines] = [
    [("Topic <a&b>", [])],
    [(f"q {_HOSTILE}", [("diffus*", "title, abstract"), ("x & y", "")]), ("T", [("z", "")])],
    [],
]


def _sample() -> Card:
    view = sample_view(0)
    return Card(
        paper=view, title=[("T", True)], abstract=[("A", True)], why=[("W", [("w", "title")])],
        text_abstract="", text_why="", compact=False, why_line="", short_title=view.title,
        short_authors=view.authors, links=view.links[1:], text_links=[],
    )  # fmt: skip


class CardPrinter:
    """One web card template as per-paper frames and the printing of a card's own parts."""

    def __init__(self, pages: Pages) -> None:
        """The card template of `pages`, checked against frames once.

        Raises:
            RenderError: the template is missing or fails on a sample card.
        """
        self.pages = pages
        pages.render("card", card=_sample())  # RenderError names what is wrong
        self.template = pages.env.get_template("web/card.html.j2")
        self.modelled = True  # a why printed from the template's pieces (else by jinja)
        self.usable = self._usable()

    def _usable(self) -> bool:
        try:
            if self._faithful(self.filler()):
                return True
            self.modelled = False  # the why's pieces did not tell the whole story
            return self._faithful(self.filler())
        except (Unusable, RenderError):
            return False

    def filler(self) -> Filler:
        """A new filler of the template, as checked at load.

        Raises:
            Unusable: the template cannot be reproduced by frames.
        """
        filler = Filler(self.template, True, _sample())
        if not self.modelled:
            filler.model = None
        return filler

    def _faithful(self, filler: Filler) -> bool:
        """The filler prints hostile cards of every shape exactly as the template does."""
        sample = _sample()
        for index in (1, 2):
            for n, why in enumerate(_WHYS):
                for abstract in _ABSTRACTS:
                    card = dataclasses.replace(
                        sample, paper=sample_view(index), title=_TITLES[n % 2],
                        abstract=abstract, why=why,
                    )  # fmt: skip
                    got = self._filled(card, Frames(filler), n, None)
                    if got != self.pages.render("card", card=card):
                        return False
        return True

    def _filled(self, card: Card, frames: Frames, paper: Hashable, plain: Card | None) -> str:
        filler = frames.filler = frames.filler or self.filler()
        key = (paper, shape(card))
        frame = frames.frames.get(key)
        if frame is None:
            frame = frames.frames[key] = filler.frame(card)
        values = [""] * len(SLOTS)
        for slot, pieces in ((TITLE, card.title), (ABSTRACT, card.abstract)):
            if plain is not None and pieces is (plain.title if slot == TITLE else plain.abstract):
                found = frames.plain.get((paper, slot))
                if found is None:
                    found = frames.plain[paper, slot] = filler.segments(slot, pieces)
                values[slot] = found
            else:
                values[slot] = filler.segments(slot, pieces)
        values[WHY] = filler.why(card.why) if card.why else ""
        return fill(frame, values)

    def html(
        self, card: Card, frames: Frames, paper: Hashable, plain: Card | None = None
    ) -> Markup:
        """The card as the template prints it; `frames` keeps the frames of `paper` (its
        id: the caller keeps one `Frames` per state of the papers), and the printed title
        and abstract of its card with nothing picked, `plain` (those a match shares).

        Raises:
            RenderError: the template failed on this card.
        """
        if self.usable:
            try:
                return Markup(self._filled(card, frames, paper, plain))
            except Unusable:
                pass  # jinja says what failed
        return Markup(self.pages.render("card", card=card))
