"""arXiv: the RSS and Atom announcement feeds per category, and the API (Atom) for backfill.

Parses bytes into Papers; writes nothing. The feeds' quirks are handled here and only here: the
version lives in the id, not the link; the abstract carries an `arXiv:... Announce Type:` prefix;
`dc:creator` is one comma-joined string, sometimes with TeX accents.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from datetime import date
from typing import Any

import httpx

from digest.config import CollectConfig, SourceConfig
from digest.errors import SourceError
from digest.models import FetchResult, Paper
from digest.sources.common import (
    Batch,
    ItemError,
    SourceResult,
    as_utf8,
    clean_text,
    entry_date,
    parse_feed,
    parse_items,
    refuse_unsafe,
    split_arxiv_id,
)
from digest.sources.http import Body, Sleep, fetch

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


def split_authors(entry: Any) -> list[str]:
    """The RSS writes all authors in one `dc:creator`; the API writes one `author` each."""
    names: list[str] = []
    authors = entry.get("authors") or []
    for author in authors:
        raw = clean_text(author.get("name"))
        if not raw:
            continue
        parts = _AND.split(raw) if len(authors) == 1 else [raw]
        names.extend(detex(clean_text(p)) for p in parts if clean_text(p))
    return names


def parse_entry(entry: Any, source: str) -> Paper:
    """One entry -> a Paper, or ItemError (no arXiv id, no title, an unusable date...)."""
    raw_id = clean_text(entry.get("id") or entry.get("link"))
    ids = split_arxiv_id(raw_id) or split_arxiv_id(clean_text(entry.get("link")))
    title = clean_text(entry.get("title"))
    if ids is None:
        raise ItemError(f"{raw_id[:80]!r} is not an arXiv id")
    if not title:
        raise ItemError(f"{ids[0]}: has no title")
    arxiv_id, version = ids
    summary = str(entry.get("summary") or "")
    announce = entry.get("arxiv_announce_type")
    prefix = _PREFIX.match(summary)
    if prefix:
        announce = announce or prefix.group("type")
        summary = summary[prefix.end() :]
    categories = [clean_text(t.get("term")) for t in entry.get("tags") or [] if t.get("term")]
    primary = (entry.get("arxiv_primary_category") or {}).get("term")
    if primary and primary in categories:
        categories.remove(primary)
        categories.insert(0, primary)
    pdf = next(
        (link.get("href") for link in entry.get("links") or [] if link.get("title") == "pdf"),
        None,
    )
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
        doi=clean_text(entry.get("arxiv_doi")) or None,
        journal_ref=clean_text(entry.get("arxiv_journal_ref")) or None,
        comment=clean_text(entry.get("arxiv_comment")) or None,
        source=source,
        raw_id=raw_id,
    )


def _date(entry: Any, arxiv_id: str) -> str | None:
    try:
        return entry_date(entry)
    except ItemError as ex:
        raise ItemError(f"{arxiv_id}: {ex}") from None


def parse_batch(content: bytes, source: str, url: str = "") -> Batch:
    """An arXiv RSS, Atom or API document -> papers and skipped entries. Malformed XML is an
    error, not a guess; so is a document none of whose entries is an arXiv paper."""
    content = as_utf8(source, url or source, content)
    refuse_unsafe(source, url or source, content)
    feed = parse_feed(source, url or source, content, strict=True)
    batch = parse_items(feed.entries, parse_entry, source)
    if feed.entries and not batch.papers:
        raise SourceError(
            f"{source}: {url} has entries but none with an arXiv id; is it arXiv? "
            f"({batch.reasons[0]})"
        )
    return batch


def parse(content: bytes, source: str, url: str = "") -> list[Paper]:
    """Only the papers: for callers that do not report skipped items (benchmarks, tools)."""
    return parse_batch(content, source, url).papers


def with_date_range(url: str, since: date, until: date) -> str:
    """Narrow an API query to submissions between two days, for `collect --since`."""
    parsed = httpx.URL(url)
    query = parsed.params.get("search_query", "")
    if not query:
        return url
    window = f"submittedDate:[{since:%Y%m%d}0000 TO {until:%Y%m%d}2359]"
    return str(parsed.copy_set_param("search_query", f"({query}) AND {window}"))


async def collect(
    src: SourceConfig,
    client: httpx.AsyncClient,
    settings: CollectConfig,
    day: date,
    since: date | None,
    cached: Body | None,
    sleep: Sleep,
) -> FetchResult:
    """The feeds list the latest announcement only; `since` narrows API queries."""
    url = src.url
    if since is not None and API_HOST in url:
        url = with_date_range(url, since, day)
    body = await fetch(
        client, src.name, url, settings, cached=cached, timeout=src.timeout, sleep=sleep
    )
    if body.not_modified:
        return SourceResult(
            src.name,
            url=body.url,
            etag=body.etag,
            last_modified=body.last_modified,
            not_modified=True,
            note="not modified since last run",
        )
    batch = await asyncio.to_thread(parse_batch, body.content, src.name, body.final_url)
    note = None
    if not batch.papers and not batch.skipped:
        note = "feed is empty (arXiv announces nothing on weekends and holidays)"
    return SourceResult(
        src.name,
        batch.papers,
        body.url,
        body.etag,
        body.last_modified,
        note=note,
        skipped=batch.skipped,
        skip_reasons=batch.reasons,
    )
