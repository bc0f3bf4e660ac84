"""Emails as (subject, html, text): jinja2 templates, CSS inlined once per template at load,
cards cached across subscribers, subject lines. Knows nothing of SMTP or message headers.

Feed text is only ever escaped by the templates (autoescape); links that are not http(s) are
dropped; nothing here builds HTML out of feed text.
"""

from __future__ import annotations

import functools
import logging
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import premailer  # type: ignore[import-untyped]
from jinja2 import (
    ChoiceLoader,
    DictLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
)
from markupsafe import Markup

from digest.config import Config
from digest.errors import RenderError
from digest.match import Match, Reason
from digest.models import Paper, Subscriber, Topic
from digest.query import Term, highlight_spans
from digest.query_index import display

MAX_TITLE = 300
MAX_SNIPPET = 420
MAX_AUTHOR = 80
MAX_SUMMARY = 600
MAX_LABEL = 120
MAX_SUBJECT = 100
SUBJECT_TARGET = 78  # what most inboxes show; the list of names stops before it
WRAP = 76
CARD_CACHE = 10_000
CAUSES = {
    "weekend": "arXiv announces no new papers on weekends.",
    "holiday": "arXiv is closed for a holiday and announced no new papers.",
}
PREMAILER_OPTIONS: dict[str, Any] = {
    "allow_network": False,
    "strip_important": False,  # the @media rules need their !important to beat inline styles
    "disable_validation": True,
    "cssutils_logging_level": logging.CRITICAL,
}
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip
_ARXIV_ID = re.compile(r"\d{4}\.\d{4,5}|[a-z][a-z.-]*(\.[A-Z]{2})?/\d{7}")
_SPACE = re.compile(r"\s+")
_HIDDEN = dict.fromkeys(
    [*range(0, 32), 127, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF], " "
)
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_CSS_INCLUDE = re.compile(r"\{%-?\s*include\s+[\"']([^\"']+\.css)[\"']\s*-?%\}")
_OTHER_TEMPLATES = re.compile(r"\{%-?\s*(include|extends|import|from)\b")
_CARD = re.compile(r"[ \t]*\{#(-?)\s*card\s*-?#\}.*?\{#-?\s*endcard\s*(-?)#\}\n?", re.S)
_SENTINEL = "zjinja{:05d}z"
_TEXT = textwrap.TextWrapper(WRAP, "  ", "  ", break_on_hyphens=False)
_TITLE = textwrap.TextWrapper(WRAP, "* ", "  ", break_on_hyphens=False)


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


# ---------------------------------------------------------------- text helpers


def clean(text: str | None) -> str:
    """One line of plain text: control and bidi-override characters gone, spaces collapsed."""
    return _SPACE.sub(" ", (text or "").translate(_HIDDEN)).strip()


def shorten(text: str, limit: int) -> str:
    """Cut at a word boundary near `limit` characters, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def safe_url(url: str | None) -> str | None:
    """The URL if it is absolute http(s) and whole; anything else (javascript:, data:,
    relative, with spaces or control characters) is dropped."""
    url = (url or "").strip()
    if not url or len(url) > 2000 or url != url.translate(_HIDDEN) or " " in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def authors_line(authors: Sequence[str]) -> str:
    """`A, B, C and 12 more`; up to four names are all shown."""
    names = [shorten(clean(a), MAX_AUTHOR) for a in authors]
    names = [n for n in names if n]
    if len(names) > 4:
        return f"{', '.join(names[:3])} and {len(names) - 3} more"
    return and_list(names)


def and_list(items: Sequence[str]) -> str:
    """`A`, `A and B`, `A, B and C`."""
    return f"{', '.join(items[:-1])} and {items[-1]}" if len(items) > 1 else "".join(items)


def segments(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[str, bool]]:
    """The text cut into (piece, is_hit) runs, for the templates' highlight loop; hits apart
    by a space read as one (`LLM agents`, not `LLM` `agents`)."""
    joined: list[tuple[int, int]] = []
    for start, end in spans:
        if joined and not text[joined[-1][1] : start].strip():
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    out: list[tuple[str, bool]] = []
    at = 0
    for start, end in joined:
        if start > at:
            out.append((text[at:start], False))
        out.append((text[start:end], True))
        at = end
    if at < len(text):
        out.append((text[at:], False))
    return out


def snippet(text: str, spans: Sequence[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """About MAX_SNIPPET characters of an abstract, from the sentence of the first hit when
    it lies further on, with the hits shifted into the snippet."""
    if len(text) <= MAX_SNIPPET + 60:
        return text, list(spans)
    start = 0
    if spans and spans[0][1] > MAX_SNIPPET - 60:
        first = spans[0][0]
        dot = text.rfind(". ", max(0, first - 200), first)
        start = dot + 2 if dot >= 0 else max(0, text.rfind(" ", 0, max(first - 60, 1)) + 1)
    end = start + MAX_SNIPPET
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start + MAX_SNIPPET // 2 else end
    prefix = "…" if start else ""
    body = prefix + text[start:end].strip() + ("…" if end < len(text) else "")
    shift = len(prefix) - start - (len(text[start:end]) - len(text[start:end].lstrip()))
    kept = [(max(a, start) + shift, min(b, end) + shift) for a, b in spans if b > start and a < end]
    return body, kept


def abstract_snippet(text: str, terms: Sequence[Term]) -> tuple[str, list[tuple[int, int]]]:
    """The snippet and its highlights; the head alone is searched first, since a hit there
    decides the snippet and tokenizing a whole abstract costs most of a card."""
    if not terms:
        return snippet(text, [])
    if len(text) > MAX_SNIPPET + 60:
        space = text.rfind(" ", 0, MAX_SNIPPET)
        head = text[: space if space > MAX_SNIPPET // 2 else MAX_SNIPPET]
        spans = highlight_spans(head, terms, "abstract")
        if spans and spans[0][1] <= MAX_SNIPPET - 60:
            return snippet(text, spans)
    return snippet(text, highlight_spans(text, terms, "abstract"))


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _short_number(n: int) -> str:
    return f"{n / 1000:.1f}k".replace(".0k", "k") if n >= 1000 else str(n)


def _when(edition_name: str, edition_date: date, long: bool) -> str:
    week = re.fullmatch(r"(\d{4})-W(\d{2})", edition_name)
    if week:
        return f"Week {int(week[2])}, {week[1]}" if long else f"week {int(week[2])}"
    d = edition_date
    if long:
        return f"{_DAYS[d.weekday()]} {d.day} {_MONTHS[d.month - 1]} {d.year}"
    return f"{_DAYS[d.weekday()][:3]} {d.day} {_MONTHS[d.month - 1][:3]}"


def subject_for(count: int, names: Sequence[str], edition_name: str, edition_date: date) -> str:
    """`7 new papers: diffusion, world models - Tue 24 Nov`: one line, the names cut to fit
    about SUBJECT_TARGET characters (`and 2 more`), never over MAX_SUBJECT."""
    when = _when(edition_name, edition_date, long=False)
    head = f"{_count(count, 'new paper')}"
    shown: list[str] = []
    budget = SUBJECT_TARGET - len(head) - len(when) - 5
    cleaned = [shorten(clean(n), 40) for n in names]
    for n, name in enumerate(cleaned):
        rest = len(cleaned) - n - 1
        if len(", ".join([*shown, name])) > budget - (len(f" and {rest} more") if rest else 0):
            break
        shown.append(name)
    listed = ", ".join(shown)
    if len(shown) < len(cleaned):
        listed = f"{listed} and {len(cleaned) - len(shown)} more" if shown else ""
    subject = f"{head}: {listed} - {when}" if listed else f"{head} - {when}"
    return shorten(clean(subject), MAX_SUBJECT)


# ---------------------------------------------------------------- cards


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
    kept = [(label, url) for label, url in links if url]
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
    title = shorten(clean(paper.title), MAX_TITLE) or "(untitled)"
    summary = shorten(clean(paper.ai_summary), MAX_SUMMARY)
    url, links = paper_links(paper)
    meta = []
    if paper.upvotes is not None:
        meta.append(_count(paper.upvotes, "upvote"))
    if paper.num_comments:
        meta.append(_count(paper.num_comments, "comment"))
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
    """A paper's card for one set of reasons: the paper's part plus highlights and why."""

    paper: PaperView
    title: list[tuple[str, bool]]
    abstract: list[tuple[str, bool]]
    why: list[tuple[str, list[tuple[str, str]]]]
    text_abstract: str
    text_why: str


def _hitting(match: Match, field: str) -> list[Term]:
    """The highlight terms that hit this field of this paper: the others cannot highlight,
    and skipping them saves most of the highlighting work."""
    shown = {h.term for r in match.reasons for h in r.hits if h.field == field}
    return [t for t in match.terms if _display(t) in shown] if shown else []


_display = functools.lru_cache(maxsize=4096)(display)


def build_card(match: Match, thumbnails: bool = False, view: PaperView | None = None) -> Card:
    """A paper's card for one set of reasons; `view` is the paper's part, if already known."""
    view = view or view_paper(match.paper, thumbnails)
    title_terms, abstract_terms = _hitting(match, "title"), _hitting(match, "abstract")
    body, spans = abstract_snippet(view.abstract, abstract_terms)
    title_spans = highlight_spans(view.title, title_terms, "title") if title_terms else []
    why = why_lines(match.reasons)
    text_why = "; also ".join(
        label + (": " + ", ".join(f"{t} ({w})" if w else t for t, w in ts) if ts else "")
        for label, ts in why
    )
    return Card(
        paper=view,
        title=segments(view.title, title_spans),
        abstract=segments(body, spans),
        why=why,
        text_abstract=_TEXT.fill(body),
        text_why=_TEXT.fill(f"Why: {text_why}"),
    )


@dataclass(frozen=True, slots=True)
class _Rendered:
    html: Markup
    text: str
    title: str
    group: tuple[str, str]  # the first reason's (kind, name): the card goes under it
    label: str


@dataclass(frozen=True, slots=True)
class Group:
    label: str | None
    count: str
    cards: list[Any]


# ---------------------------------------------------------------- inlining at load


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
    shipped = Path(__file__).resolve().parent / "templates"
    if not (chosen / "email").is_dir() and str(chosen) == default and (shipped / "email").is_dir():
        return shipped
    if not (chosen / "email").is_dir():
        raise RenderError(f"{chosen}/email: no email templates there (check templates_dir)")
    return chosen


# ---------------------------------------------------------------- the renderer


class Renderer:
    """Built once per run: templates read, CSS inlined, then only jinja per email.

    Cards are cached by (Match.key, Match.terms, paper.updated_at): everyone whose queries
    picked a paper for the same reasons gets the same card, rendered once. A paper id (and
    its updated_at) must stand for one paper's content while a Renderer lives: build one per
    run. `naive=True` renders and inlines each whole email: the reference that tests compare
    against and the bench measures.
    """

    def __init__(
        self,
        config: Config,
        topics: Mapping[str, Topic] | None = None,
        *,
        thumbnails: bool = False,
    ) -> None:
        self.config = config
        self.topics = dict(topics or {})
        self.thumbnails = thumbnails
        self.brand = clean(parseaddr(config.mail.from_)[0]) or "Paper Digest"
        self.cards_rendered = 0
        self._cards: dict[tuple[object, ...], _Rendered] = {}
        self._papers: dict[tuple[str, str | None], PaperView] = {}
        folder = templates_dir(config)
        self.raw = _environment(FileSystemLoader(folder))
        processed: dict[str, str] = {}
        for name in ("email/digest.html.j2", "email/digest.txt.j2"):
            main, card = _split_card(self._prepared(name), name)
            processed[name] = main
            processed[name.replace("digest.", "digest.card.")] = card
        for name in ("email/confirm.html.j2", "email/confirm.txt.j2"):
            processed[name] = self._prepared(name)
        self.env = _environment(ChoiceLoader([DictLoader(processed), FileSystemLoader(folder)]))
        try:
            self._t = {n: self.env.get_template(n) for n in processed}
        except TemplateError as ex:
            raise RenderError(f"email templates in {folder}: {ex}") from ex

    def _prepared(self, name: str) -> str:
        """A template's source, its CSS inlined when it is HTML (once, here)."""
        try:
            source = self.raw.loader.get_source(self.raw, name)[0]  # type: ignore[union-attr]
            if not name.endswith(".html.j2"):
                return source
            source = _CSS_INCLUDE.sub(
                lambda m: self.raw.loader.get_source(self.raw, m[1])[0],  # type: ignore[union-attr]
                source,
            )
        except TemplateError as ex:
            raise RenderError(f"{name}: {ex}") from ex
        if _OTHER_TEMPLATES.search(source):
            raise RenderError(f"{name}: HTML email templates must be self-contained")
        protected, swaps = _protect(source, name)
        return _restore(inline_css(protected), swaps, name)

    def _card(self, match: Match) -> _Rendered:
        paper = match.paper
        key = (match.key, match.terms, paper.updated_at)
        found = self._cards.get(key)
        if found is None:
            view = self._papers.get((paper.id, paper.updated_at))
            if view is None:
                if len(self._papers) >= CARD_CACHE:
                    del self._papers[next(iter(self._papers))]
                view = view_paper(paper, self.thumbnails)
                self._papers[(paper.id, paper.updated_at)] = view
            card = build_card(match, self.thumbnails, view)
            try:
                html = Markup(self._t["email/digest.card.html.j2"].render(card=card))
                text = self._t["email/digest.card.txt.j2"].render(card=card)
            except TemplateError as ex:
                raise RenderError(f"email/digest card: {ex}") from ex
            first = match.reasons[0] if match.reasons else Reason("query", "", "", ())
            found = _Rendered(html, text, card.paper.title, (first.kind, first.name), first.label)
            if len(self._cards) >= CARD_CACHE:
                del self._cards[next(iter(self._cards))]
            self._cards[key] = found
            self.cards_rendered += 1
        return found

    def interests(self, sub: Subscriber) -> list[str]:
        """What the subscriber asked for, as they would read it."""
        topics = [self.topics[t].title if t in self.topics else t for t in sub.topics]
        return [shorten(clean(x), MAX_LABEL) for x in [*topics, *sub.queries]]

    def _grouped(
        self, sub: Subscriber, matches: Sequence[Match]
    ) -> list[tuple[str, list[tuple[Match, _Rendered]]]]:
        """Each paper under its first reason (its cached card knows which), groups in the
        subscriber's order: topics, then queries."""
        groups: dict[tuple[str, str], tuple[str, list[tuple[Match, _Rendered]]]] = {}
        for m in matches:
            card = self._card(m)
            groups.setdefault(card.group, (card.label, []))[1].append((m, card))
        if len(groups) == 1:
            return list(groups.values())
        order = {("topic", t): i for i, t in enumerate(sub.topics)}
        order.update({("query", q): len(order) + i for i, q in enumerate(sub.queries)})
        ranked = sorted(groups.items(), key=lambda kv: order.get(kv[0], len(order)))
        return [value for _, value in ranked]

    def _context(
        self, sub: Subscriber, edition_name: str, edition_date: date, links: Mapping[str, str]
    ) -> dict[str, Any]:
        checked = {k: safe_url(links.get(k)) for k in ("manage", "unsubscribe")}
        missing = [k for k, v in checked.items() if v is None]
        if missing:
            raise RenderError(f"links: no valid http(s) URL for {' and '.join(missing)}")
        return {
            "brand": self.brand,
            "headline": _when(edition_name, edition_date, long=True),
            "email": sub.email,
            "interests": and_list(self.interests(sub)),
            "links": checked,
            "postal_address": clean(self.config.mail.postal_address),
            "note": [],
        }

    def digest(
        self,
        sub: Subscriber,
        matches: Sequence[Match],
        edition_name: str,
        edition_date: date,
        new_papers: int,
        links: Mapping[str, str],
        *,
        naive: bool = False,
    ) -> RenderedEmail:
        """One subscriber's digest. `naive` renders card by card and inlines the whole email
        (the reference the fast path must equal)."""
        if not matches:
            raise RenderError(f"{sub.email}: no matches to render (use nothing_new)")
        grouped = self._grouped(sub, matches)
        labelled = len(sub.topics) + len(sub.queries) > 1
        html_groups, text_groups, titles = [], [], []
        for label, members in grouped:
            html_cards: list[Any]
            text_cards: list[Any]
            if naive:
                cards = [build_card(m, self.thumbnails) for m, _ in members]
                html_cards = text_cards = cards
            else:
                html_cards, text_cards = [r.html for _, r in members], [r.text for _, r in members]
            titles += [r.title for _, r in members]
            name = shorten(clean(label), MAX_LABEL) if labelled else None
            html_groups.append(Group(name, _count(len(members), "paper"), html_cards))
            text_groups.append(Group(name, _count(len(members), "paper"), text_cards))
        names = [label for label, _ in grouped]
        subject = subject_for(len(matches), names, edition_name, edition_date)
        ctx = self._context(sub, edition_name, edition_date, links)
        ctx["subject"] = subject
        ctx["summary"] = f"{_count(len(matches), 'paper')} matched out of {new_papers:,} new"
        ctx["preheader"] = shorten(" · ".join(titles), 150)
        return self._render("digest", ctx, html_groups, text_groups, naive)

    def _render(
        self,
        kind: str,
        ctx: dict[str, Any],
        html_groups: list[Group],
        text_groups: list[Group],
        naive: bool,
    ) -> RenderedEmail:
        env = self.raw if naive else self.env
        try:
            html = env.get_template(f"email/{kind}.html.j2").render(ctx, groups=html_groups)
            text = env.get_template(f"email/{kind}.txt.j2").render(ctx, groups=text_groups)
        except TemplateError as ex:
            raise RenderError(f"email/{kind}: {ex}") from ex
        if naive:
            html = inline_css(html)
        return RenderedEmail(ctx["subject"], html, text)

    def nothing_new(
        self,
        sub: Subscriber,
        edition_name: str,
        edition_date: date,
        new_papers: int,
        cause: str | None,
        links: Mapping[str, str],
        *,
        naive: bool = False,
    ) -> RenderedEmail | None:
        """None under the `skip` policy; else a short note saying why when the cause is known:
        `weekend`, `holiday`, or any other text (e.g. which source failed)."""
        if self.config.mail.no_matches != "note":
            return None
        ctx = self._context(sub, edition_name, edition_date, links)
        weekly = "-W" in edition_name
        when = "this week" if weekly else "today"
        ctx["subject"] = shorten(
            f"Nothing new for you {when} - {_when(edition_name, edition_date, long=False)}",
            MAX_SUBJECT,
        )
        ctx["summary"] = f"Nothing new for you {when}"
        first = (
            f"None of the {new_papers:,} new papers matched what you follow {when}."
            if new_papers
            else f"No new papers arrived {when}."
        )
        why = CAUSES.get(cause or "") or (
            f"Why: {shorten(clean(cause), 300).rstrip('.')}." if cause else ""
        )
        ctx["note"] = [first, why] if why else [first]
        ctx["preheader"] = " ".join(ctx["note"])
        return self._render("digest", ctx, [], [], naive)

    def confirm(
        self,
        email: str,
        confirm_url: str,
        topics: Sequence[str] = (),
        queries: Sequence[str] = (),
        *,
        naive: bool = False,
    ) -> RenderedEmail:
        """The double opt-in email. `topics` are the names (or titles) asked for."""
        url = safe_url(confirm_url)
        if url is None:
            raise RenderError("confirm_url: not an absolute http(s) URL")
        titles = [self.topics[t].title if t in self.topics else t for t in topics]
        ctx = {
            "subject": f"Confirm your subscription to {self.brand}",
            "preheader": f"One click and {self.brand} starts arriving.",
            "brand": self.brand,
            "email": email,
            "interests": [shorten(clean(x), MAX_LABEL) for x in [*titles, *queries]],
            "confirm_url": url,
            "valid_hours": self.config.web.confirm_hours,
            "postal_address": clean(self.config.mail.postal_address),
        }
        return self._render("confirm", ctx, [], [], naive)
