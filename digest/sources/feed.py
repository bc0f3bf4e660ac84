"""Any RSS or Atom feed by URL: journals, bioRxiv, blogs, aggregators.

Parses bytes into Papers; writes nothing. An item whose link or guid names an arXiv paper is
keyed by its arXiv id, so it merges with HF and arXiv; anything else by a hash of its link.
"""

from __future__ import annotations

import asyncio

from digest.models import Paper, SourceResult
from digest.sources.common import (
    Batch,
    ItemError,
    SourceRequest,
    as_utf8,
    batch_result,
    clean_text,
    entry_date,
    html_to_text,
    link_key,
    not_modified,
    parse_items,
    refuse_unsafe,
    split_arxiv_id,
)
from digest.sources.parsed import FeedEntry, TextDetail, read_feed


def _text(detail: TextDetail | None, fallback: str = "") -> str:
    """A text construct as plain text: HTML only when the feed declares it HTML."""
    value = (detail.value if detail else "") or fallback
    kind = detail.type if detail else ""
    return html_to_text(value) if "html" in kind else clean_text(value)


def _abstract(entry: FeedEntry) -> str:
    """The summary, else the full content: an Atom entry may carry an empty <summary>."""
    for detail in (entry.summary_detail, *entry.content):
        text = _text(detail)
        if text:
            return text
    return clean_text(entry.summary)


def _authors(entry: FeedEntry) -> list[str]:
    """Every named author; RSS's single `author` when no list is given."""
    names = [n for n in map(clean_text, entry.authors) if n]
    if not names and entry.author:
        names = [clean_text(entry.author)]
    return names


def _web(url: str) -> str | None:
    """An absolute http(s) URL, or None: a relative link left unresolved is no address."""
    return url if url.lower().startswith(("http://", "https://")) and len(url) > 8 else None


def parse_entry(entry: FeedEntry, source: str) -> Paper:
    """One item -> a Paper. Links were resolved against the document's URL and xml:base by
    the parser; one that is still not absolute is keyed by this source alone, so it can never
    merge with another feed's item that happens to carry the same text.

    Raises:
        ItemError: no title, no link or id, or an unusable date: that item is skipped.
    """
    raw_link = clean_text(entry.link)
    guid = clean_text(entry.id)
    title = _text(entry.title_detail, entry.title)
    if not title:
        raise ItemError(f"{(raw_link or guid)[:80]!r} has no title")
    if not (raw_link or guid):
        raise ItemError(f"{title[:60]!r} has no link or id")
    link = _web(raw_link) or _web(guid)
    ids = split_arxiv_id(link or raw_link) if (link or raw_link) else None
    # a guid is often an opaque string: only one that looks like a URL or says arxiv is read
    if ids is None and guid:
        ids = split_arxiv_id(guid) if ("arxiv" in guid.lower() or "/" in guid) else None
    categories = [clean_text(term) for term in entry.tags]
    if ids:
        key = ids[0]
    elif link:
        key = link_key(link)
    else:  # an unresolved relative link: scoped to this source, so it never merges elsewhere
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
        doi=clean_text(entry.prism_doi or entry.dc_identifier) or None,
        source=source,
        raw_id=guid or raw_link,
    )


def parse_batch(content: bytes, source: str, url: str = "") -> Batch:
    """A feed's bytes -> papers and skipped items. Lenient with markup (feeds in the wild are),
    strict with safety. `url` is the document's address, for relative links.

    Raises:
        SourceError: an unsafe body, or one that is not a feed at all.
    """
    content = as_utf8(source, url or source, content)
    refuse_unsafe(source, url or source, content)
    # not strict: real feeds are often not well-formed XML, and feedparser recovers
    feed = read_feed(source, url or source, content, strict=False)
    return parse_items(feed.entries, parse_entry, source)


def parse(content: bytes, source: str, url: str = "") -> list[Paper]:
    """Only the papers: for callers that do not report skipped items (benchmarks, tools).

    Raises:
        SourceError: as `parse_batch`.
    """
    return parse_batch(content, source, url).papers


async def collect(request: SourceRequest) -> SourceResult:
    """Fetch and parse one feed. A feed lists what it lists: `day` and `since` cannot reach
    further back.

    Raises:
        SourceError: the feed cannot be fetched or is not a feed.
    """
    body = await request.get()
    if body.not_modified:
        return not_modified(request, body)
    batch = await asyncio.to_thread(parse_batch, body.content, request.name, body.final_url)
    note = None if batch.papers or batch.skipped else "feed has no items"
    return batch_result(request, batch, body, note)
