"""Any RSS or Atom feed by URL: journals, bioRxiv, blogs, aggregators.

Parses bytes into Papers; writes nothing. An item whose link or guid names an arXiv paper is
keyed by its arXiv id, so it merges with HF and arXiv; anything else by a hash of its link.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from digest.config import CollectConfig, SourceConfig
from digest.models import FetchResult, Paper
from digest.sources.common import (
    clean_text,
    entry_date,
    html_to_text,
    link_key,
    parse_feed,
    refuse_unsafe,
    split_arxiv_id,
)
from digest.sources.http import Body, Sleep, fetch


def _text(detail: Any, fallback: Any) -> str:
    value = str((detail or {}).get("value") or fallback or "")
    kind = str((detail or {}).get("type") or "")
    return html_to_text(value) if "html" in kind else clean_text(value)


def _authors(entry: Any) -> list[str]:
    names = [clean_text(a.get("name")) for a in entry.get("authors") or []]
    names = [n for n in names if n]
    if not names and entry.get("author"):
        names = [clean_text(entry.get("author"))]
    return names


def parse_entry(entry: Any, source: str) -> Paper | None:
    link = clean_text(entry.get("link"))
    guid = clean_text(entry.get("id"))
    title = _text(entry.get("title_detail"), entry.get("title"))
    if not title or not (link or guid):
        return None
    ids = split_arxiv_id(link) if link else None
    if ids is None and guid:
        ids = split_arxiv_id(guid) if ("arxiv" in guid.lower() or "/" in guid) else None
    content = entry.get("content") or []
    summary_detail = entry.get("summary_detail") or (content[0] if content else None)
    categories = [clean_text(t.get("term")) for t in entry.get("tags") or [] if t.get("term")]
    key = ids[0] if ids else link_key(link or guid)
    return Paper(
        id=key,
        arxiv_id=ids[0] if ids else None,
        version=ids[1] if ids else None,
        title=title,
        abstract=_text(summary_detail, entry.get("summary")),
        authors=_authors(entry),
        categories=list(dict.fromkeys(c for c in categories if c)),
        published=entry_date(entry),
        link=link or (guid if guid.startswith(("http://", "https://")) else None),
        doi=clean_text(entry.get("prism_doi") or entry.get("dc_identifier")) or None,
        source=source,
        raw_id=guid or link,
    )


def parse(content: bytes, source: str, url: str = "") -> list[Paper]:
    """A feed's bytes -> Papers. Lenient with markup (feeds in the wild are), strict with safety."""
    refuse_unsafe(source, url or source, content)
    feed = parse_feed(source, url or source, content, strict=False)
    return [p for e in feed.entries if (p := parse_entry(e, source)) is not None]


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
        return FetchResult(
            src.name,
            url=body.url,
            etag=body.etag,
            last_modified=body.last_modified,
            not_modified=True,
            note="not modified since last run",
        )
    papers = parse(body.content, src.name, body.url)
    return FetchResult(
        src.name,
        papers,
        body.url,
        body.etag,
        body.last_modified,
        note=None if papers else "feed has no items",
    )
