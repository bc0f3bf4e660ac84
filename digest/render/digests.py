"""A digest's two parts without a jinja render per email. Emails of one shape (the same number
of groups and cards, the same empty values) differ only in the values printed, so the main
templates are rendered once per shape with a placeholder for each value, and each email is
that frame filled with its values, escaped as jinja escapes them.

What the templates wrap (`wordwrap`) is recorded while the frame is made and wrapped per
email. A shape whose frame does not survive longer placeholders (a value's length changed
the markup) or does not reproduce the first email of the shape is rendered by jinja.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import Environment, Template, TemplateError, pass_environment
from markupsafe import Markup, escape

from digest.render.cache import CardParts
from digest.render.cards import Group, remember
from digest.render.inline import environment, wordwrap

SHAPES = 512  # frames kept: an edition's emails come in a few hundred shapes
_SCALARS = ("subject", "brand", "headline", "summary", "email", "interests", "postal_address")
_LINKS = ("manage", "unsubscribe", "web")
_RECOMMENDED = ("title", "url", "authors", "why", "more", "less")
_KEYS = frozenset((*_SCALARS, "more", "links", "note", "feedback", "recommended"))
_MARKS = re.compile("\x1e(\\d+)~*\x1f")
_WRAPPED = 1_000_000  # slots at or above stand for a recorded wordwrap call

Leaf = str | None
Frame = tuple[tuple[str, ...], tuple[int, ...]]
Wraps = tuple[tuple[Frame, tuple[Any, ...]], ...]


class _Recorder(threading.local):
    calls: list[tuple[str, tuple[Any, ...]]]


_recorded = _Recorder()


@pass_environment
def _record(env: Environment, s: str, *args: Any) -> str:
    """`wordwrap` while a frame is made: its input kept, a placeholder printed instead."""
    _recorded.calls.append((str(s), args))
    return f"\x1e{_WRAPPED + len(_recorded.calls) - 1}\x1f"


def _split(out: str, shared: dict[str, str]) -> Frame:
    """A rendered probe as a frame; pieces equal to one seen before are that one (the head,
    the footer and each card's surroundings are the same in every shape)."""
    found = _MARKS.split(out)
    pieces = tuple(shared.setdefault(p, p) for p in found[::2])
    return pieces, tuple(int(n) for n in found[1::2])


def _fill(
    frame: Frame,
    values: Sequence[str],
    wrapped: Sequence[str],
    cards: Sequence[CardParts] = (),
    part: int = 0,
) -> str:
    """A frame filled: slots past `values` are cards, whose own frames are spliced in (one
    join per email, not one per card)."""
    pieces, slots = frame
    out = [pieces[0]]
    first = len(values)
    for slot, piece in zip(slots, pieces[1:], strict=True):
        if slot < first:
            out.append(values[slot])
        elif slot >= _WRAPPED:
            out.append(wrapped[slot - _WRAPPED])
        else:
            card = cards[slot - first]
            (inner, at), strings = card.frames[part], card.values[part]
            out.append(inner[0])
            for n, after in zip(at, inner[1:], strict=True):
                out += (strings[n], after)
        out.append(piece)
    return "".join(out)


def filled(groups: Sequence[Group], part: int) -> list[Group]:
    """The groups with their cards as text (`part` 0: HTML, 1: text), for jinja."""
    out = []
    for g in groups:
        cards: list[Any] = g.cards
        if any(type(c) is CardParts for c in cards):
            cards = [_text(c, part) if type(c) is CardParts else c for c in cards]
        out.append(Group(g.label, g.count, cards))
    return out


def _text(card: CardParts, part: int) -> str:
    return card.html() if part == 0 else card.text()


def leaves(
    ctx: Mapping[str, Any], html_groups: Sequence[Group], text_groups: Sequence[Group]
) -> tuple[tuple[object, ...], list[Leaf], list[CardParts]] | None:
    """(shape, values, cards) of a digest's context, in one fixed order; None for a context
    this module does not know (then jinja renders it)."""
    if ctx.keys() != _KEYS or ctx["links"].keys() != set(_LINKS):
        return None
    values: list[Leaf] = [ctx[k] for k in _SCALARS]
    values.append(ctx["more"])
    links = ctx["links"]
    values += [links[k] for k in _LINKS]
    values += ctx["note"]
    for pairs in ctx["feedback"]:
        for more, less in pairs:
            values += (more, less)
    for rec in ctx["recommended"]:
        if rec.keys() != set(_RECOMMENDED):
            return None
        values += [rec[k] for k in _RECOMMENDED]
    cards: list[CardParts] = []
    for group, text in zip(html_groups, text_groups, strict=True):
        values += (group.label, group.count)
        if group.cards is not text.cards:  # the Renderer's frames path shares one list
            return None
        cards += group.cards
    if not all(v is None or type(v) is str for v in values):
        return None
    if not all(type(c) is CardParts for c in cards):
        return None
    shape = (
        len(ctx["note"]),
        tuple(len(pairs) for pairs in ctx["feedback"]),
        len(ctx["recommended"]),
        tuple(len(g.cards) for g in html_groups),
        tuple(v if not v else True for v in values),
    )
    return shape, values, cards


class DigestFrames:
    """The digest templates as frames, one per shape of email, made on first use."""

    def __init__(self, html: Template, text: Template, fast: Environment) -> None:
        self._real = (html, text)
        self._env = fast
        probe = environment(fast.loader)  # type: ignore[arg-type]
        probe.filters["wordwrap"] = _record
        self._probe = (probe.get_template(html.name or ""), probe.get_template(text.name or ""))
        self._frames: dict[tuple[object, ...], tuple[tuple[Frame, Wraps], ...] | None] = {}
        self._pieces: dict[str, str] = {}
        self.made = 0  # shapes seen, for tests and the bench
        self.refused = 0  # shapes the frames could not reproduce (rendered by jinja)

    def render(
        self, ctx: Mapping[str, Any], html_groups: list[Group], text_groups: list[Group]
    ) -> tuple[str, str] | None:
        """The email's HTML and text parts, or None: render this one with jinja."""
        found = leaves(ctx, html_groups, text_groups)
        if found is None:
            return None
        shape, values, cards = found
        if shape not in self._frames:
            return self._first(shape, ctx, html_groups, text_groups, values)
        frames = self._frames[shape]
        if frames is None:
            return None
        return self._filled(frames, values, cards)

    def _filled(
        self, frames: tuple[tuple[Frame, Wraps], ...], values: list[Leaf], cards: list[CardParts]
    ) -> tuple[str, str]:
        text_values = [v or "" for v in values]
        html_values: list[str] = [escape(v) if v else "" for v in values]
        parts = []
        for part, ((frame, wraps), given) in enumerate(
            zip(frames, (html_values, text_values), strict=True)
        ):
            wrapped = [
                wordwrap(self._env, _fill(f, given, (), cards, part), *args) for f, args in wraps
            ]
            parts.append(_fill(frame, given, wrapped, cards, part))
        return parts[0], parts[1]

    def _first(
        self,
        shape: tuple[object, ...],
        ctx: Mapping[str, Any],
        html_groups: list[Group],
        text_groups: list[Group],
        values: list[Leaf],
    ) -> tuple[str, str] | None:
        """Make the shape's frames and check them on this email (its jinja render is the
        one returned either way)."""
        self.made += 1
        html, text = self._real
        real = (
            html.render(ctx, groups=filled(html_groups, 0)),
            text.render(ctx, groups=filled(text_groups, 1)),
        )
        frames = self._make(ctx, html_groups, text_groups, values)
        if frames is not None:
            cards = [c for g in html_groups for c in g.cards]
            if self._filled(frames, values, cards) != real:
                frames = None
        self.refused += frames is None
        remember(self._frames, shape, frames, SHAPES)
        return real

    def _make(
        self,
        ctx: Mapping[str, Any],
        html_groups: list[Group],
        text_groups: list[Group],
        values: list[Leaf],
    ) -> tuple[tuple[Frame, Wraps], ...] | None:
        """The frames of the email's shape, or None when a placeholder's length shows."""
        short = self._probed(ctx, html_groups, text_groups, values, 0)
        long = self._probed(ctx, html_groups, text_groups, values, 40)
        if short is None or short != long:
            return None
        nested = any(s >= _WRAPPED for _, wraps in short for (_, slots), _ in wraps for s in slots)
        return None if nested else short

    def _probed(
        self,
        ctx: Mapping[str, Any],
        html_groups: list[Group],
        text_groups: list[Group],
        values: list[Leaf],
        pad: int,
    ) -> tuple[tuple[Frame, Wraps], ...] | None:
        marks = [f"\x1e{n}{'~' * pad}\x1f" if v else v for n, v in enumerate(values)]
        count = sum(len(g.cards) for g in html_groups)
        cards = [Markup(f"\x1e{len(values) + n}{'~' * pad}\x1f") for n in range(count)]
        probe_ctx, probe_groups = _marked(ctx, marks, html_groups, cards)
        out = []
        try:
            for template in self._probe:
                _recorded.calls = []
                frame = _split(template.render(probe_ctx, groups=probe_groups), self._pieces)
                wraps = tuple((_split(s, self._pieces), args) for s, args in _recorded.calls)
                out.append((frame, wraps))
        except TemplateError:
            return None
        return tuple(out)


def _marked(
    ctx: Mapping[str, Any], marks: list[Leaf], groups: Sequence[Group], cards: list[Markup]
) -> tuple[dict[str, Any], list[Group]]:
    """The context and groups with each value replaced by its placeholder (the order of
    `leaves`); an empty value stays as it is."""
    at = iter(marks)
    probe: dict[str, Any] = {k: next(at) for k in _SCALARS}
    probe["more"] = next(at)
    probe["links"] = {k: next(at) for k in _LINKS}
    probe["note"] = [next(at) for _ in ctx["note"]]
    probe["feedback"] = [[(next(at), next(at)) for _ in pairs] for pairs in ctx["feedback"]]
    probe["recommended"] = [{k: next(at) for k in _RECOMMENDED} for _ in ctx["recommended"]]
    shown = iter(cards)
    probe_groups = [
        Group(next(at), next(at), [next(shown) for _ in g.cards])  # type: ignore[arg-type]
        for g in groups
    ]
    return probe, probe_groups
