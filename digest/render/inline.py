"""Where the email templates are, and how they are loaded: CSS inlined once per template, with
the jinja syntax protected while premailer parses it, and each card section split off so a
card renders once for everyone who gets it. Renders no email itself.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import premailer  # type: ignore[import-untyped]
from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    DictLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    pass_environment,
)
from jinja2.filters import do_wordwrap

from digest.config import Config
from digest.errors import RenderError
from digest.render.text import quick_fill

PREMAILER_OPTIONS: dict[str, Any] = {
    "allow_network": False,
    "strip_important": False,  # the @media rules need their !important to beat inline styles
    "disable_validation": True,
    "cssutils_logging_level": logging.CRITICAL,
}

WITH_CARDS = ("email/digest.html.j2", "email/digest.txt.j2")
WITHOUT_CARDS = ("email/confirm.html.j2", "email/confirm.txt.j2")

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_CSS_INCLUDE = re.compile(r"\{%-?\s*include\s+[\"']([^\"']+\.css)[\"']\s*-?%\}")
_OTHER_TEMPLATES = re.compile(r"\{%-?\s*(include|extends|import|from)\b")
_CARD = re.compile(r"[ \t]*\{#(-?)\s*card\s*-?#\}.*?\{#-?\s*endcard\s*(-?)#\}\n?", re.S)
_SENTINEL = "zjinja{:05d}z"


def inline_css(html: str) -> str:
    """premailer over one document, never fetching anything: what every HTML email gets,
    since mail clients drop `<style>` blocks (the fast path does it once per template)."""
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
    """The jinja tags back in place of their sentinels, each found once and in order."""
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


def inline_template(loader: BaseLoader, name: str) -> str:
    """A template's source, its CSS included and inlined when it is HTML: done once at load,
    so each email costs only jinja.

    Raises:
        RenderError: the template or its CSS cannot be read, it includes other templates,
            or inlining would move or lose a jinja tag.
    """
    reader = Environment()
    try:
        source = loader.get_source(reader, name)[0]
        if not name.endswith(".html.j2"):
            return source
        source = _CSS_INCLUDE.sub(lambda m: loader.get_source(reader, m[1])[0], source)
    except TemplateError as ex:
        raise RenderError(f"{name}: {ex}") from ex
    if _OTHER_TEMPLATES.search(source):
        raise RenderError(f"{name}: HTML email templates must be self-contained")
    protected, swaps = _protect(source, name)
    return _restore(inline_css(protected), swaps, name)


def split_card(source: str, name: str) -> tuple[str, str]:
    """The part between `{# card #}` and `{# endcard #}` becomes a template of its own
    (rendered once per distinct card); the main template prints the cached result.
    Returns (main template, card template).

    Raises:
        RenderError: the template has no card section, or more than one.
    """
    found = list(_CARD.finditer(source))
    if len(found) != 1:
        raise RenderError(f"{name}: needs exactly one {{# card #}} ... {{# endcard #}} section")
    region = found[0]
    # The markers' whitespace control, mirrored, so both ways print the same characters.
    printed = "{{" + region[1] + " card " + region[2] + "}}"
    if name.endswith(".html.j2"):
        # A card is HTML already: printed as is, not copied by escaping it again; `+` keeps
        # lstrip_blocks and trim_blocks off these tags, as they are off a `{{ }}`.
        opening = "{%" + (region[1] or "+") + " autoescape false %}{{ card }}"
        printed = opening + "{% endautoescape " + (region[2] or "+") + "%}"
    return source[: region.start()] + printed + source[region.end() :], region[0]


def card_template(name: str) -> str:
    """The name a main template's card section is loaded under."""
    return name.replace("digest.", "digest.card.")


def _autoescape(name: str | None) -> bool:
    return name is None or name.endswith((".html.j2", ".html"))


def environment(loader: BaseLoader) -> Environment:
    """The one jinja configuration for emails: HTML autoescaped (feed text is only ever
    escaped here), a missing variable an error rather than a blank in a sent email."""
    return Environment(
        loader=loader,
        autoescape=_autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )


@dataclass(frozen=True, slots=True)
class Templates:
    """The email templates of one folder, two ways: `raw` as written (the naive reference
    renders and inlines whole emails with it) and `fast`, CSS inlined and cards split off."""

    folder: Path
    raw: Environment
    fast: Environment
    loaded: dict[str, Template]

    def environment(self, naive: bool) -> Environment:
        """Where to look an email's templates up: as written when `naive`, else prepared."""
        return self.raw if naive else self.fast


def load_templates(config: Config) -> Templates:
    """Read, inline and compile every email template once, so a mistake in one stops the
    run at start rather than after some emails went out.

    Raises:
        RenderError: a template is missing, does not compile, or cannot be inlined safely.
    """
    folder = templates_dir(config)
    files = FileSystemLoader(folder)
    processed: dict[str, str] = {}
    for name in WITH_CARDS:
        main, card = split_card(inline_template(files, name), name)
        processed[name] = main
        processed[card_template(name)] = card
    for name in WITHOUT_CARDS:
        processed[name] = inline_template(files, name)
    fast = environment(ChoiceLoader([DictLoader(processed), files]))
    fast.filters["wordwrap"] = wordwrap
    try:
        loaded = {n: fast.get_template(n) for n in processed}
    except TemplateError as ex:
        raise RenderError(f"email templates in {folder}: {ex}") from ex
    return Templates(folder, environment(files), fast, loaded)


@pass_environment
def wordwrap(
    env: Environment,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    """jinja's `wordwrap`, the same text, without textwrap when the text is one plain line
    (the footer of every digest is wrapped this way)."""
    if wrapstring is None and env.newline_sequence == "\n" and type(s) is str:
        lines = [
            quick_fill(line, width, break_long=break_long_words, hyphens=break_on_hyphens)
            if line
            else ""
            for line in s.splitlines()
        ]
        if None not in lines:
            return "\n".join(lines)  # type: ignore[arg-type]
    return str(do_wordwrap(env, s, width, break_long_words, wrapstring, break_on_hyphens))


def templates_dir(config: Config) -> Path:
    """config.templates_dir; when left at its default and absent (an installed wheel),
    the templates shipped inside the package.

    Raises:
        RenderError: the folder chosen has no `email/` templates.
    """
    chosen = Path(config.templates_dir)
    default = next(f.default for f in fields(Config) if f.name == "templates_dir")
    shipped = Path(__file__).resolve().parent.parent / "templates"
    if not (chosen / "email").is_dir() and str(chosen) == default and (shipped / "email").is_dir():
        return shipped
    if not (chosen / "email").is_dir():
        raise RenderError(f"{chosen}/email: no email templates there (check templates_dir)")
    return chosen
