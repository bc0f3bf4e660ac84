"""What every collector shares: the request it answers, the result it gives, the per-item guard
that makes one bad item cost that item (never its source), arXiv ids, plain text from feed markup
and the safety checks run before any parser sees a body. Writes nothing."""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from typing import TypeVar

import httpx

from digest.config import CollectConfig, SourceConfig
from digest.errors import SourceError
from digest.models import Paper, SourceResult
from digest.sources.http import Body, Sleep, fetch
from digest.sources.parsed import FeedEntry

INT64_MAX = 2**63 - 1
# int64 holds every 18-digit number; a longer one is refused before int() is even tried
_MAX_DIGITS = 18
REASONS_KEPT = 10
Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class SourceRequest:
    """One source to collect in one run, with everything its collector may use: the limits,
    the day (`since`: first day of a backfill), the HTTP client and the sleep its retries wait
    with (both injected so tests need no network and no waiting), and `cached`, the validators
    of the last success for a conditional GET."""

    source: SourceConfig
    settings: CollectConfig
    day: date
    client: httpx.AsyncClient
    since: date | None = None
    cached: Body | None = None
    sleep: Sleep = asyncio.sleep

    @property
    def name(self) -> str:
        """The source's configured name, which every message about it starts with."""
        return self.source.name

    async def get(self, url: str | None = None, params: dict[str, str] | None = None) -> Body:
        """GET `url` (default: the source's own) under this source's timeout and limits.

        Raises:
            SourceError: see `digest.sources.http.fetch`.
        """
        return await fetch(
            self.client,
            self.source.name,
            url or self.source.url,
            self.settings,
            params=params,
            cached=self.cached,
            timeout=self.source.timeout,
            sleep=self.sleep,
        )


class ItemError(ValueError):
    """One item of a source cannot be used; the message says why. Costs that item only."""


@dataclass
class Batch:
    """A parsed body: the usable papers, and how many items were skipped and why (the first few)."""

    papers: list[Paper] = field(default_factory=list)
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)

    def skip(self, reason: str, count: int = 1) -> None:
        """Count `count` lost items; the first few reasons are kept for the report."""
        self.skipped += count
        if len(self.reasons) < REASONS_KEPT:
            self.reasons.append(reason)

    def extend(self, other: Batch) -> None:
        """Add another day's batch (a backfill reads one body per day)."""
        self.papers.extend(other.papers)
        self.skipped += other.skipped
        self.reasons.extend(other.reasons[: REASONS_KEPT - len(self.reasons)])


def not_modified(request: SourceRequest, body: Body) -> SourceResult:
    """The result of a 304: nothing new, and the validators to send again next time."""
    return SourceResult(
        request.name,
        url=body.url,
        etag=body.etag,
        last_modified=body.last_modified,
        not_modified=True,
        note="not modified since last run",
    )


def batch_result(
    request: SourceRequest, batch: Batch, body: Body, note: str | None
) -> SourceResult:
    """A parsed batch as the collector's result: its papers, what was skipped and why, and
    the validators of the body it came from."""
    return SourceResult(
        request.name,
        batch.papers,
        body.url,
        body.etag,
        body.last_modified,
        note=note,
        skipped=batch.skipped,
        skip_reasons=batch.reasons,
    )


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages about hostile input."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def parse_items(
    items: Iterable[Item], parse_one: Callable[[Item, str], Paper], source: str
) -> Batch:
    """Each item under its own guard: a bad one is counted with its reason, the rest are kept.
    Every paper is also checked to fit the store (SQLite integers are 64-bit)."""
    batch = Batch()
    for number, item in enumerate(items, 1):
        try:
            paper = parse_one(item, source)
            check_storable(paper)
        except ItemError as ex:
            batch.skip(f"item {number}: {ex}")
        except Exception as ex:  # hostile data meeting a parser's blind spot costs one item
            batch.skip(f"item {number}: unexpected {type(ex).__name__}: {ex}"[:300])
        else:
            batch.papers.append(paper)
    return batch


def some_papers(batch: Batch, complaint: str) -> Batch:
    """`batch`, unless it had items and every one was skipped: such a body is most likely not
    what the source was meant to be.

    Raises:
        SourceError: `complaint`, followed by the first reason an item was skipped.
    """
    if batch.skipped and not batch.papers:
        raise SourceError(f"{complaint} ({batch.reasons[0]})")
    return batch


def check_storable(paper: Paper) -> None:
    """Counts and versions must be non-negative 64-bit integers for SQLite.

    Raises:
        ItemError: one of them is not an integer or out of range (that item is refused).
    """
    counts = (
        ("version", paper.version),
        ("upvotes", paper.upvotes),
        ("num_comments", paper.num_comments),
        ("github_stars", paper.github_stars),
    )
    for name, value in counts:
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ItemError(f"{paper.id}: {name} is {json_type(value)}, expected an integer")
        if not 0 <= value <= INT64_MAX:
            raise ItemError(f"{paper.id}: {name} {short_number(value)} is out of range")


def short_number(value: int) -> str:
    """A number as a message may quote it: a hostile one of a million digits is cut short."""
    text = str(value)
    return text if len(text) <= 20 else f"{text[:12]}... ({len(text)} digits)"


def count_from_text(digits: str, what: str) -> int:
    """An integer from a string of digits, refusing absurd lengths before converting (Python
    caps int() of a long string, and no count has 19 digits).

    Raises:
        ItemError: too many digits to be a count.
    """
    if len(digits) > _MAX_DIGITS:
        raise ItemError(f"{what} {digits[:12]}... ({len(digits)} digits) is out of range")
    return int(digits)


ARXIV_ID = re.compile(r"(\d{4}\.\d{4,5})(?:v(\d+))?$|([a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v(\d+))?$")
_ARXIV_IN_URL = re.compile(
    r"(?:arxiv\.org/(?:abs|pdf|html)/|huggingface\.co/papers/|/p/|/papers?/|/abs/)"
    r"((?:\d{4}\.\d{4,5})|(?:[a-z\-]+(?:\.[A-Z]{2})?/\d{7}))(?:v(\d+))?(?:\.pdf)?/?(?:[?#].*)?$"
)
_SPACE = re.compile(r"\s+")
# named, decimal or hex entities of plausible length: a stray "&" in a title is left alone
_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")
_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S)


def split_arxiv_id(raw: str) -> tuple[str, int | None] | None:
    """`2508.13426v1`, `oai:arXiv.org:2508.13426v1`, `http://arxiv.org/abs/hep-th/9901001v2`
    and the like -> (id without version, version)."""
    tail = raw.strip().rsplit(":", 1)[-1] if raw.startswith("oai:") else raw.strip()
    # a URL first: its path names the paper even when a query string or ".pdf" follows
    found = _ARXIV_IN_URL.search(tail)
    if found:
        return found.group(1), _version(found.group(1), found.group(2))
    found = ARXIV_ID.search(tail)
    if not found:
        return None
    if found.group(1):
        return found.group(1), _version(found.group(1), found.group(2))
    return found.group(3), _version(found.group(3), found.group(4))


def _version(arxiv_id: str, digits: str | None) -> int | None:
    """Raises ItemError for an absurd version (v99999999999999999999999): that item is bad."""
    if not digits:
        return None
    if len(digits) > _MAX_DIGITS:
        raise ItemError(f"{arxiv_id}: version v{short_number(int(digits[:40]))} is out of range")
    return int(digits)


def link_key(link: str) -> str:
    """A stable id for a paper with no arXiv id: a hash of its link."""
    return "h:" + hashlib.sha256(link.strip().encode("utf-8")).hexdigest()[:16]


def clean_text(value: str | None) -> str:
    """Collapse whitespace and decode entities left over from double escaping (`&amp;nbsp;`);
    `<` and `&` stay as they are (escaping is the renderer's job)."""
    text = value or ""
    if "&" in text:
        text = _ENTITY.sub(lambda m: html.unescape(m.group()), text)
    return _SPACE.sub(" ", text).strip()


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment, minus scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Enter a script or style (its text is dropped); a block tag becomes a space."""
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in ("p", "br", "div", "li"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        """Leave a script or style; a stray closing tag never makes the count negative."""
        if tag in ("script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        """Keep text outside scripts and styles."""
        if not self.skip:
            self.parts.append(data)


def html_to_text(value: str) -> str:
    """Feed summaries declared as HTML become plain text: tags dropped, entities decoded."""
    parser = _TextExtractor()
    parser.feed(value)
    parser.close()
    return clean_text("".join(parser.parts))


# Up to a declaration's `>`, its internal subset's `[` or a quoted literal (which may hold
# "<" or ">"); more prolog items than a feed ever has are searched for a declaration whole.
_UNQUOTED = re.compile(rb"[^\"'>\[]*")
_DECLARED_ENTITY = re.compile(rb"<!ENTITY", re.I)
_PROLOG_ITEMS = 10_000


def _declares_entities(content: bytes) -> bool:
    """Whether the prolog, everything before the root element, declares an entity.

    Walks the markup in order as an XML parser would (comments and processing instructions
    skipped whole, a DOCTYPE's quoted literals too, its internal subset entered), so no
    comment, however long, hides a declaration after it, and `<x` inside one is not taken
    for the root. Stops at the root: an item quoting `<!ENTITY` in CDATA is no declaration.
    Bounded: past `_PROLOG_ITEMS` steps it looks for `<!ENTITY` anywhere after, in C.
    """
    at, declaring = 0, False
    for _ in range(_PROLOG_ITEMS):
        if declaring:
            unquoted = _UNQUOTED.match(content, at)
            at = unquoted.end() if unquoted else at
            mark = content[at : at + 1]
            declaring = mark in (b'"', b"'")
            if declaring:
                at = content.find(mark, at + 1) + 1
            elif mark not in (b">", b"["):
                return False  # no end: nothing after it is parsed
        elif (at := content.find(b"<", at)) < 0:
            return False
        elif content.startswith(b"<!--", at):
            at = content.find(b"-->", at + 4) + 1
        elif content.startswith(b"<?", at):
            at = content.find(b"?>", at + 2) + 1
        elif not content.startswith(b"<!", at):
            return False  # the root element: the prolog is over
        elif content[at + 2 : at + 8].upper() == b"ENTITY":
            return True
        else:
            at, declaring = at + 2, True
        if at <= 0:  # an unterminated comment, instruction or literal runs to the end
            return False
    return _DECLARED_ENTITY.search(content, at) is not None


def refuse_unsafe(name: str, url: str, content: bytes, content_type: str = "") -> None:
    """Entity declarations can expand without bound (billion laughs); HTML is not a feed.

    Raises:
        SourceError: the body declares XML entities or is an HTML page.
    """
    if _declares_entities(content):
        raise SourceError(
            f"{name}: {url} declares XML entities (<!ENTITY); refused as unsafe to parse"
        )
    if "text/html" in content_type.lower() or _HTML_START.match(content[:4096]):
        raise SourceError(
            f"{name}: {url} returned an HTML page, not a feed; check the URL "
            "(a login page, an error page or a moved feed?)"
        )


# UTF-32 first: its little-endian BOM starts with UTF-16's. Without a BOM, the first "<"
# (and "?" of "<?xml") spread over 2 or 4 bytes tells the width and the byte order.
_WIDE = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)
_DECLARED = re.compile(r"^(\s*<\?xml[^>]*?)\s+encoding\s*=\s*([\"'])[^\"']*\2", re.S)


def as_utf8(name: str, url: str, content: bytes) -> bytes:
    """UTF-16 and UTF-32 documents (with a BOM, or starting `<` in either) become UTF-8, so the
    safety checks and the parser see the same characters the server meant.

    Raises:
        SourceError: the body starts like UTF-16/32 but does not decode as such.
    """
    for mark, codec in _WIDE:
        if content.startswith(mark):
            try:
                text = content.decode(codec)
            except UnicodeDecodeError as ex:
                raise SourceError(f"{name}: {url} starts like {codec} but is not: {ex}") from ex
            # the bytes are UTF-8 now: a declared encoding="utf-16" would make the parser lie
            text = _DECLARED.sub(r"\1", text.lstrip("\ufeff"), count=1)
            return text.encode("utf-8")
    return content


def entry_date(entry: FeedEntry) -> datetime | None:
    """An entry's publication time in UTC, or None when it gives none.

    Raises:
        ItemError: a date is given but unusable (year 0, a date no format reads): storing the
            item undated would misplace it.
    """
    problem = None
    dates = (
        (entry.published, entry.published_parsed),
        (entry.updated, entry.updated_parsed),
    )
    for text, value in dates:
        raw = clean_text(text)[:40]
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), UTC)
            except (ValueError, OverflowError, OSError) as ex:
                problem = problem or f"date {raw!r} is out of range ({ex})"
        elif raw:
            problem = problem or f"date {raw!r} is not a date"
    if problem:
        raise ItemError(problem)
    return None
