"""Any RSS or Atom feed by URL: journals, bioRxiv, blogs, aggregators.

Parses bytes into Papers; writes nothing. An item whose link or guid names an arXiv paper is
keyed by its arXiv id, so it merges with HF and arXiv; anything else by a hash of its link.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import httpx

from digest.config import CollectConfig, SourceConfig
from digest.models import FetchResult, Paper
from digest.sources.common import (
    Batch,
    ItemError,
    SourceResult,
    as_utf8,
    clean_text,
    entry_date,
    html_to_text,
    link_key,
    parse_feed,
    parse_items,
    refuse_unsafe,
    split_arxiv_id,
)
from digest.sources.http import Body, Sleep, fetch


def _text(detail: Any, fallback: Any) -> str:
    value = str((detail or {}).get("value") or fallback or "")
    kind = str((detail or {}).get("type") or "")
    return html_to_text(value) if "html" in kind else clean_text(value)


def _abstract(entry: Any) -> str:
    """The summary, else the full content: an Atom entry may carry an empty <summary>."""
    candidates = [entry.get("summary_detail"), *(entry.get("content") or [])]
    for detail in candidates:
        text = _text(detail, None)
        if text:
            return text
    return clean_text(entry.get("summary"))


def _authors(entry: Any) -> list[str]:
    names = [clean_text(a.get("name")) for a in entry.get("authors") or []]
    names = [n for n in names if n]
    if not names and entry.get("author"):
        names = [clean_text(entry.get("author"))]
    return names


def _web(url: str) -> str | None:
    """An absolute http(s) URL, or None: a relative link left unresolved is no address."""
    return url if url.lower().startswith(("http://", "https://")) and len(url) > 8 else None


def parse_entry(entry: Any, source: str) -> Paper:
    """One item -> a Paper, or ItemError. Links were resolved against the document's URL and
    xml:base by the parser; one that is still not absolute is keyed by this source alone, so
    it can never merge with another feed's item that happens to carry the same text."""
    raw_link = clean_text(entry.get("link"))
    guid = clean_text(entry.get("id"))
    title = _text(entry.get("title_detail"), entry.get("title"))
    if not title:
        raise ItemError(f"{(raw_link or guid)[:80]!r} has no title")
    if not (raw_link or guid):
        raise ItemError(f"{title[:60]!r} has no link or id")
    link = _web(raw_link) or _web(guid)
    ids = split_arxiv_id(link or raw_link) if (link or raw_link) else None
    if ids is None and guid:
        ids = split_arxiv_id(guid) if ("arxiv" in guid.lower() or "/" in guid) else None
    categories = [clean_text(t.get("term")) for t in entry.get("tags") or [] if t.get("term")]
    if ids:
        key = ids[0]
    elif link:
        key = link_key(link)
    else:
        key = link_key(f"{source}\n{raw_link or guid}")
    try:
        published = entry_date(entry)
    except ItemError as ex:
        raise ItemError(f"{title[:60]!r}: {ex}") from None
    return Paper(
        id=key,
        arxiv_id=ids[0] if ids else None,
        version=ids[1] if ids else None,
        title=title,
        abstract=_abstract(entry),
        authors=_authors(entry),
        categories=list(dict.fromkeys(c for c in categories if c)),
        published=published,
        link=link,
        doi=clean_text(entry.get("prism_doi") or entry.get("dc_identifier")) or None,
        source=source,
        raw_id=guid or raw_link,
    )


def parse_batch(content: bytes, source: str, url: str = "") -> Batch:
    """A feed's bytes -> papers and skipped items. Lenient with markup (feeds in the wild are),
    strict with safety. `url` is the document's address, for relative links."""
    content = as_utf8(source, url or source, content)
    refuse_unsafe(source, url or source, content)
    feed = parse_feed(source, url or source, content, strict=False)
    return parse_items(feed.entries, parse_entry, source)


def parse(content: bytes, source: str, url: str = "") -> list[Paper]:
    """Only the papers: for callers that do not report skipped items (benchmarks, tools)."""
    return parse_batch(content, source, url).papers


async def collect(
    src: SourceConfig,
    client: httpx.AsyncClient,
    settings: CollectConfig,
    day: date,
    since: date | None,
    cached: Body | None,
    sleep: Sleep,
) -> FetchResult:
    """A feed lists what it lists: `day` and `since` cannot reach further back."""
    body = await fetch(
        client, src.name, src.url, settings, cached=cached, timeout=src.timeout, sleep=sleep
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
    return SourceResult(
        src.name,
        batch.papers,
        body.url,
        body.etag,
        body.last_modified,
        note=None if batch.papers or batch.skipped else "feed has no items",
        skipped=batch.skipped,
        skip_reasons=batch.reasons,
    )
