"""feedparser behind typed records: the only module that touches its untyped results.

Turns a feed's bytes into a `ParsedFeed` of `FeedEntry` records whose fields have one type each,
so the source parsers never handle `Any`. Decides nothing about papers; writes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import feedparser  # type: ignore[import-untyped]

from digest.errors import SourceError

# bozo flags that do not mean broken XML: a charset header that disagrees, a text/plain type
_BENIGN = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


@dataclass(frozen=True, slots=True)
class TextDetail:
    """A text construct (`title_detail`, `summary_detail`, a `content` item): its text and
    whether the feed declared it plain text or HTML."""

    value: str = ""
    type: str = ""


@dataclass(frozen=True, slots=True)
class Link:
    """One `<link>` of an entry: its address and the title arXiv uses to mark the PDF."""

    href: str = ""
    title: str = ""


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One item or entry as feedparser read it; text fields are "" when absent.

    `authors` keeps one name per author element ("" for one with no name): arXiv's RSS writes
    every author in one element, and only the count tells the two dialects apart.
    `published` / `updated` are the raw texts and `*_parsed` feedparser's reading of them.
    """

    id: str = ""
    link: str = ""
    title: str = ""
    title_detail: TextDetail | None = None
    summary: str = ""
    summary_detail: TextDetail | None = None
    content: tuple[TextDetail, ...] = ()
    author: str = ""
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()
    published: str = ""
    published_parsed: time.struct_time | None = None
    updated: str = ""
    updated_parsed: time.struct_time | None = None
    arxiv_announce_type: str = ""
    arxiv_primary_category: str = ""
    arxiv_doi: str = ""
    arxiv_journal_ref: str = ""
    arxiv_comment: str = ""
    prism_doi: str = ""
    dc_identifier: str = ""


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A whole document: its dialect (`rss20`, `atom10`, ... or "") and its entries."""

    version: str
    entries: list[FeedEntry]


def read_feed(name: str, url: str, content: bytes, strict: bool) -> ParsedFeed:
    """feedparser on bytes, never a URL (it would fetch one itself, with no timeout or cap).

    `strict` turns malformed XML into an error; otherwise a document is refused only when its
    faults left no entry. An http(s) `url` is the document's address, against which relative
    links are resolved.

    Raises:
        SourceError: the body is empty, is not RSS or Atom, or is malformed (see `strict`).
    """
    if not content.strip():
        raise SourceError(f"{name}: {url} returned an empty body; expected a feed")
    start = content.lstrip()[:1]
    # JSON, plain text or a stray error message: refused before feedparser guesses at it
    if start != b"<" and not content.startswith(b"\xef\xbb\xbf"):
        shown = start.decode("latin-1")
        raise SourceError(f"{name}: {url} is not an RSS or Atom feed (it starts with {shown!r})")
    headers = {"content-location": url} if url.startswith(("http://", "https://")) else None
    # no sanitising (text is escaped by the templates) and links resolved via content-location
    parsed = feedparser.parse(
        content, sanitize_html=False, resolve_relative_uris=False, response_headers=headers
    )
    raw_entries = parsed.get("entries") or []
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if problem is not None and not isinstance(problem, _BENIGN):
        where, detail = "", str(problem)
        if hasattr(problem, "getLineNumber"):
            where = f" at line {problem.getLineNumber()}, column {problem.getColumnNumber()}"
            detail = problem.getMessage()
        if strict or not raw_entries:
            raise SourceError(f"{name}: {url} is not a well-formed feed{where}: {detail}")
    version = _text(parsed, "version")
    if not version and not raw_entries:
        raise SourceError(f"{name}: {url} is not an RSS or Atom feed (no channel or feed element)")
    return ParsedFeed(version, [_entry(raw) for raw in raw_entries if isinstance(raw, dict)])


Raw = dict[str, object]


def _text(raw: Raw, key: str) -> str:
    """A text field. `dict.get`, not feedparser's own `get`, which answers a missing `updated`
    with `published` (and a warning)."""
    value = dict.get(raw, key)
    if isinstance(value, str):
        return value
    return str(value) if value else ""


def _dicts(raw: Raw, key: str) -> list[Raw]:
    """A list field's dict elements; anything else in it (or a non-list) is dropped."""
    value = dict.get(raw, key)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def _detail(value: object) -> TextDetail | None:
    """A text construct typed, or None when feedparser gave none."""
    if not isinstance(value, dict):
        return None
    return TextDetail(_text(value, "value"), _text(value, "type"))


def _when(raw: Raw, key: str) -> time.struct_time | None:
    """feedparser's parsed date, or None when it could not read one."""
    value = dict.get(raw, key)
    return value if isinstance(value, time.struct_time) else None


def _primary(value: object) -> str:
    """arXiv's `<arxiv:primary_category term="..."/>`; feedparser keeps an element with text
    and no attribute as a string."""
    if isinstance(value, dict):
        return _text(value, "term")
    return value if isinstance(value, str) else ""


def _entry(raw: Raw) -> FeedEntry:
    """One of feedparser's entry dicts as a typed record: the one place its keys are named."""
    return FeedEntry(
        id=_text(raw, "id"),
        link=_text(raw, "link"),
        title=_text(raw, "title"),
        title_detail=_detail(dict.get(raw, "title_detail")),
        summary=_text(raw, "summary"),
        summary_detail=_detail(dict.get(raw, "summary_detail")),
        content=tuple(d for d in map(_detail, _dicts(raw, "content")) if d is not None),
        author=_text(raw, "author"),
        authors=tuple(_text(a, "name") for a in _dicts(raw, "authors")),
        tags=tuple(t for t in (_text(tag, "term") for tag in _dicts(raw, "tags")) if t),
        links=tuple(Link(_text(x, "href"), _text(x, "title")) for x in _dicts(raw, "links")),
        published=_text(raw, "published"),
        published_parsed=_when(raw, "published_parsed"),
        updated=_text(raw, "updated"),
        updated_parsed=_when(raw, "updated_parsed"),
        arxiv_announce_type=_text(raw, "arxiv_announce_type"),
        arxiv_primary_category=_primary(dict.get(raw, "arxiv_primary_category")),
        arxiv_doi=_text(raw, "arxiv_doi"),
        arxiv_journal_ref=_text(raw, "arxiv_journal_ref"),
        arxiv_comment=_text(raw, "arxiv_comment"),
        prism_doi=_text(raw, "prism_doi"),
        dc_identifier=_text(raw, "dc_identifier"),
    )
