"""CSS inlining once per template at load, with the jinja syntax protected while premailer
parses it; and where the templates are."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import premailer  # type: ignore[import-untyped]
from jinja2 import (
    Environment,
    StrictUndefined,
)

from digest.config import Config
from digest.errors import RenderError
from digest.render.text import _CARD, _JINJA, _SENTINEL, PREMAILER_OPTIONS


def inline_css(html: str) -> str:
    """premailer over one document, never fetching anything."""
    return str(premailer.Premailer(html, **PREMAILER_OPTIONS).transform(pretty_print=False))


def _protect(source: str, name: str) -> tuple[str, list[tuple[str, str]]]:
    """Swap each jinja tag for an alphanumeric sentinel (a comment for statements outside
    a tag) so an HTML parser keeps it in place; returns the sentinels and what they stand for."""
    if "zjinja" in source:
        raise RenderError(f"{name}: the text 'zjinja' is reserved for rendering")
    pieces: list[str] = []
    swaps: list[tuple[str, str]] = []
    in_tag, at = False, 0
    for m in _JINJA.finditer(source):
        literal = source[at : m.start()]
        for i, ch in enumerate(literal):
            if ch == "<" and (literal[i + 1 : i + 2].isalpha() or literal[i + 1 : i + 2] == "/"):
                in_tag = True
            elif ch == ">":
                in_tag = False
        token = m.group()
        sentinel = _SENTINEL.format(len(swaps))
        if token.startswith("{{"):
            marker = sentinel
        elif in_tag:
            raise RenderError(f"{name}: {token!r} inside an HTML tag: keep logic out of tags")
        else:
            marker = f"<!--{sentinel}-->"
        pieces += [literal, marker]
        swaps.append((marker, token))
        at = m.end()
    pieces.append(source[at:])
    return "".join(pieces), swaps


def _restore(html: str, swaps: list[tuple[str, str]], name: str) -> str:
    last = -1
    for marker, token in swaps:
        found = html.find(marker)
        if found <= last or html.count(marker) != 1:
            raise RenderError(
                f"{name}: CSS inlining moved or lost {token!r}; move it out of <head>, "
                "attributes other than values, or places HTML does not allow text"
            )
        last = found
    for marker, token in swaps:
        html = html.replace(marker, token, 1)
    return html


def _split_card(source: str, name: str) -> tuple[str, str]:
    """The part between `{# card #}` and `{# endcard #}` becomes a template of its own
    (rendered once per distinct card); the main template prints the cached result."""
    found = list(_CARD.finditer(source))
    if len(found) != 1:
        raise RenderError(f"{name}: needs exactly one {{# card #}} ... {{# endcard #}} section")
    region = found[0]
    # The markers' whitespace control, mirrored, so both ways print the same characters.
    printed = "{{" + region[1] + " card " + region[2] + "}}"
    return source[: region.start()] + printed + source[region.end() :], region[0]


def _autoescape(name: str | None) -> bool:
    return name is None or name.endswith((".html.j2", ".html"))


def _environment(loader: Any) -> Environment:
    return Environment(
        loader=loader,
        autoescape=_autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )


def templates_dir(config: Config) -> Path:
    """config.templates_dir; when left at its default and absent (an installed wheel),
    the templates shipped inside the package."""
    chosen = Path(config.templates_dir)
    default = next(f.default for f in fields(Config) if f.name == "templates_dir")
    shipped = Path(__file__).resolve().parent.parent / "templates"
    if not (chosen / "email").is_dir() and str(chosen) == default and (shipped / "email").is_dir():
        return shipped
    if not (chosen / "email").is_dir():
        raise RenderError(f"{chosen}/email: no email templates there (check templates_dir)")
    return chosen
