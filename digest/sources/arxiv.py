"""arXiv: the RSS and Atom announcement feeds per category, and the API (Atom) for backfill.

Parses bytes into Papers; writes nothing. The feeds' quirks are handled here and only here: the
version lives in the id, not the link; the abstract carries an `arXiv:... Announce Type:` prefix;
`dc:creator` is one comma-joined string, sometimes with TeX accents.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from datetime import date, datetime

import httpx

from digest.models import Paper, SourceResult
from digest.sources.common import (
    Batch,
    ItemError,
    SourceRequest,
    as_utf8,
    batch_result,
    clean_text,
    entry_date,
    not_modified,
    parse_items,
    refuse_unsafe,
    some_papers,
    split_arxiv_id,
)
from digest.sources.parsed import FeedEntry, read_feed

_PREFIX = re.compile(
    r"^\s*arXiv:\S+\s+Announce Type:\s*(?P<type>[\w-]+)\s*Abstract:\s*", re.I | re.S
)
_TEX_ACCENTS = {
    "'": "\u0301",
    "`": "\u0300",
    "^": "\u0302",
    '"': "\u0308",
    "~": "\u0303",
    "c": "\u0327",
    "v": "\u030c",
    "=": "\u0304",
    ".": "\u0307",
    "u": "\u0306",
    "H": "\u030b",
}
# \'e, \'{e}, \c c: a letter accent needs a space or brace after it, or \cite would match
_TEX = re.compile(r"\\([`'^\"~=.]|[cvuH](?=[\s{]))\s*\{?\s*([A-Za-z])\}?")
_TEX_LETTERS = {
    r"\o": "ø",
    r"\O": "Ø",
    r"\ss": "ß",
    r"\aa": "å",
    r"\AA": "Å",
    r"\l": "ł",
    r"\L": "Ł",
}
# "A, B and C", "A, B, and C", "A and B": commas and "and" both separate names
_AND = re.compile(r",\s*(?:and\s+)?|\s+and\s+")
API_HOST = "export.arxiv.org"


def detex(name: str) -> str:
    """`Andr\\'e` -> `André`: authors' names as a reader writes them."""
    if "\\" not in name:
        return name
    out = _TEX.sub(
        lambda m: unicodedata.normalize("NFC", m.group(2) + _TEX_ACCENTS[m.group(1)]), name
    )
    for tex, letter in _TEX_LETTERS.items():
        out = re.sub(re.escape(tex) + r"(?![A-Za-z])\{?\}?", letter, out)
    return out.replace("{", "").replace("}", "")


def split_authors(entry: FeedEntry) -> list[str]:
    """The RSS writes all authors in one `dc:creator`; the API writes one `author` each."""
    names: list[str] = []
    authors = entry.authors
    for author in authors:
        raw = clean_text(author)
        if not raw:
            continue
        # only a lone creator is a joined list; a name among several stays whole
        parts = _AND.split(raw) if len(authors) == 1 else [raw]
        names.extend(detex(clean_text(p)) for p in parts if clean_text(p))
    return names


def parse_entry(entry: FeedEntry, source: str) -> Paper:
    """One entry -> a Paper.

    Raises:
        ItemError: no arXiv id, no title, an unusable date...: that entry is skipped.
    """
    raw_id = clean_text(entry.id or entry.link)
    ids = split_arxiv_id(raw_id) or split_arxiv_id(clean_text(entry.link))
    title = clean_text(entry.title)
    if ids is None:
        raise ItemError(f"{raw_id[:80]!r} is not an arXiv id")
    if not title:
        raise ItemError(f"{ids[0]}: has no title")
    arxiv_id, version = ids
    summary = entry.summary
    announce = entry.arxiv_announce_type
    prefix = _PREFIX.match(summary)
    if prefix:
        announce = announce or prefix.group("type")
        summary = summary[prefix.end() :]
    categories = [clean_text(term) for term in entry.tags]
    # the primary category first: it is the one pages show and `cat:` readers expect first
    primary = entry.arxiv_primary_category
    if primary and primary in categories:
        categories.remove(primary)
        categories.insert(0, primary)
    pdf = next((link.href for link in entry.links if link.title == "pdf"), None)
    suffix = f"v{version}" if version else ""
    return Paper(
        id=arxiv_id,
        arxiv_id=arxiv_id,
        version=version,
        title=title,
        abstract=clean_text(summary),
        authors=split_authors(entry),
        categories=list(dict.fromkeys(categories)),
        announce_type=clean_text(announce).lower() or None,
        published=_date(entry, arxiv_id),
        link=f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=pdf or f"https://arxiv.org/pdf/{arxiv_id}{suffix}",
        doi=clean_text(entry.arxiv_doi) or None,
        journal_ref=clean_text(entry.arxiv_journal_ref) or None,
        comment=clean_text(entry.arxiv_comment) or None,
        source=source,
        raw_id=raw_id,
    )


def _date(entry: FeedEntry, arxiv_id: str) -> datetime | None:
    """The entry's date; an unusable one is an ItemError naming the paper."""
    try:
        return entry_date(entry)
    except ItemError as ex:
        raise ItemError(f"{arxiv_id}: {ex}") from None


def parse_batch(content: bytes, source: str, url: str = "") -> Batch:
    """An arXiv RSS, Atom or API document -> papers and skipped entries.

    Raises:
        SourceError: unsafe or malformed XML (an error, not a guess), or a document none of
            whose entries is an arXiv paper.
    """
    content = as_utf8(source, url or source, content)
    refuse_unsafe(source, url or source, content)
    feed = read_feed(source, url or source, content, strict=True)
    return some_papers(
        parse_items(feed.entries, parse_entry, source),
        f"{source}: {url} has entries but none with an arXiv id; is it arXiv?",
    )


def parse(content: bytes, source: str, url: str = "") -> list[Paper]:
    """Only the papers: for callers that do not report skipped items (benchmarks, tools).

    Raises:
        SourceError: as `parse_batch`.
    """
    return parse_batch(content, source, url).papers


def with_date_range(url: str, since: date, until: date) -> str:
    """Narrow an API query to submissions between two days, for `collect --since`."""
    parsed = httpx.URL(url)
    query = parsed.params.get("search_query", "")
    if not query:
        return url
    window = f"submittedDate:[{since:%Y%m%d}0000 TO {until:%Y%m%d}2359]"
    return str(parsed.copy_set_param("search_query", f"({query}) AND {window}"))


async def collect(request: SourceRequest) -> SourceResult:
    """Fetch and parse one arXiv feed or API query. The feeds list the latest announcement
    only; `since` narrows API queries to a range of submission days.

    Raises:
        SourceError: the source cannot be fetched or is not an arXiv document.
    """
    url = request.source.url
    # only the API takes a date range: the announcement feeds always list the latest day
    if request.since is not None and API_HOST in url:
        url = with_date_range(url, request.since, request.day)
    body = await request.get(url)
    if body.not_modified:
        return not_modified(request, body)
    # parsing a large feed takes ~0.6 s: off the event loop, the other sources keep going
    batch = await asyncio.to_thread(parse_batch, body.content, request.name, body.final_url)
    note = None
    if not batch.papers and not batch.skipped:
        note = "feed is empty (arXiv announces nothing on weekends and holidays)"
    return batch_result(request, batch, body, note)
