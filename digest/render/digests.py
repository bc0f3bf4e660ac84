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


def _fill(frame: Frame, values: Sequence[str], wrapped: Sequence[str]) -> str:
    pieces, slots = frame
    out = [pieces[0]]
    for slot, piece in zip(slots, pieces[1:], strict=True):
        out += (wrapped[slot - _WRAPPED] if slot >= _WRAPPED else values[slot], piece)
    return "".join(out)


def leaves(
    ctx: Mapping[str, Any], html_groups: Sequence[Group], text_groups: Sequence[Group]
) -> tuple[tuple[object, ...], list[Leaf], list[str], list[str]] | None:
    """(shape, values, HTML cards, text cards) of a digest's context, in one fixed order;
    None for a context this module does not know (then jinja renders it)."""
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
    html_cards: list[str] = []
    text_cards: list[str] = []
    for group, text in zip(html_groups, text_groups, strict=True):
        values += (group.label, group.count)
        html_cards += group.cards
        text_cards += text.cards
    if not all(v is None or type(v) is str for v in values):
        return None
    shape = (
        len(ctx["note"]),
        tuple(len(pairs) for pairs in ctx["feedback"]),
        len(ctx["recommended"]),
        tuple(len(g.cards) for g in html_groups),
        tuple(v if not v else True for v in values),
    )
    return shape, values, html_cards, text_cards


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
        shape, values, html_cards, text_cards = found
        if shape not in self._frames:
            return self._first(shape, ctx, html_groups, text_groups, values)
        frames = self._frames[shape]
        if frames is None:
            return None
        return self._filled(frames, values, html_cards, text_cards)

    def _filled(
        self,
        frames: tuple[tuple[Frame, Wraps], ...],
        values: list[Leaf],
        html_cards: list[str],
        text_cards: list[str],
    ) -> tuple[str, str]:
        text_values = [v or "" for v in values]
        text_values += text_cards
        html_values: list[str] = [escape(v) if v else "" for v in values]
        html_values += html_cards
        parts = []
        for (frame, wraps), filled in zip(frames, (html_values, text_values), strict=True):
            wrapped = [wordwrap(self._env, _fill(f, filled, ()), *args) for f, args in wraps]
            parts.append(_fill(frame, filled, wrapped))
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
        real = (html.render(ctx, groups=html_groups), text.render(ctx, groups=text_groups))
        frames = self._make(ctx, html_groups, text_groups, values)
        if frames is not None:
            cards = [[c for g in groups for c in g.cards] for groups in (html_groups, text_groups)]
            if self._filled(frames, values, *cards) != real:
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
