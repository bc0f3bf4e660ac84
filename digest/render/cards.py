"""What one paper's card shows: its links, why it is there, its highlighted segments."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from digest.match import Match, Reason
from digest.models import Paper
from digest.query import Term, highlight_spans
from digest.query_index import display
from digest.render.text import (
    _ARXIV_ID,
    _TEXT,
    _TITLE,
    MAX_COMPACT_AUTHORS,
    MAX_COMPACT_TITLE,
    MAX_LABEL,
    MAX_SUMMARY,
    MAX_TITLE,
    MAX_WHY,
    _count,
    _short_number,
    abstract_snippet,
    authors_line,
    clean,
    safe_url,
    segments,
    shorten,
)

COMPACT_LINKS = ("PDF", "Code")  # a compact card's links besides its title's


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


def build_card(
    match: Match,
    thumbnails: bool = False,
    view: PaperView | None = None,
    *,
    compact: bool = False,
) -> Card:
    """A paper's card for one set of reasons; `view` is the paper's part, if already known."""
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
        body, spans = abstract_snippet(view.abstract, abstract_terms)
        title_spans = highlight_spans(view.title, title_terms, "title") if title_terms else []
    shown = {url for _, url in links}
    return Card(
        paper=view,
        title=segments(view.title, title_spans),
        abstract=segments(body, spans),
        why=why,
        text_abstract=_TEXT.fill(body),
        text_why=_TEXT.fill(f"Why: {text_why}"),
        compact=compact,
        why_line=shorten(f"Why: {text_why}", MAX_WHY) if compact else "",
        short_title=shorten(view.title, MAX_COMPACT_TITLE),
        short_authors=shorten(view.authors, MAX_COMPACT_AUTHORS),
        links=links,
        text_links=[(lb, url) for lb, url in view.links if url == view.url or url in shown],
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
