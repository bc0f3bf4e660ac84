"""Hugging Face Daily Papers: `GET /api/daily_papers?date=YYYY-MM-DD`, a JSON array per day.

Parses bytes into Papers; writes nothing. Every field is read with a fallback: the API adds and
drops optional fields from day to day (`ai_summary`, `githubRepo`, ...).
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from typing import Any

import httpx

from digest.config import CollectConfig, SourceConfig
from digest.errors import SourceError
from digest.models import FetchResult, Paper
from digest.sources.common import (
    Batch,
    ItemError,
    SourceResult,
    clean_text,
    count_from_text,
    json_type,
    parse_items,
    refuse_unsafe,
    split_arxiv_id,
)
from digest.sources.http import Body, Sleep, fetch, is_local

MAX_BACKFILL_DAYS = 92


class _HugeNumber(int):
    """A JSON integer too long to be a count: kept as a marker so only its item is refused."""


def _json_int(digits: str) -> int:
    if len(digits.lstrip("-")) > 19:
        return _HugeNumber(-1)
    return int(digits)


def _int(value: Any, what: str) -> int | None:
    if isinstance(value, _HugeNumber):
        raise ItemError(f"{what} is a number far beyond 64 bits")
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return count_from_text(value.strip(), what)
    return None


def _str(value: Any) -> str | None:
    return clean_text(value) or None if isinstance(value, str) else None


def _list(value: Any, what: str) -> list[Any]:
    """null is an absent list; any other non-list makes the item bad, not the source."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ItemError(f"{what} is {json_type(value)}, expected a list")
    return value


def _author(value: Any) -> str:
    if isinstance(value, dict):
        return clean_text(value.get("name")) if isinstance(value.get("name"), str) else ""
    if isinstance(value, str):
        return clean_text(value)
    raise ItemError(f"an author is {json_type(value)}, expected an object")


def parse_item(item: Any, source: str) -> Paper:
    """One element of the array -> a Paper, or ItemError saying why it cannot be one."""
    if not isinstance(item, dict):
        raise ItemError(f"is {json_type(item)}, expected an object")
    nested = item.get("paper")
    if nested is not None and not isinstance(nested, dict):
        raise ItemError(f"paper is {json_type(nested)}, expected an object")
    paper = nested if nested is not None else item
    raw_id = _str(paper.get("id"))
    title = _str(paper.get("title")) or _str(item.get("title"))
    if not raw_id or not title:
        raise ItemError("has no id and title")
    ids = split_arxiv_id(raw_id)
    arxiv_id, version = ids if ids else (raw_id, None)
    where = f"{arxiv_id}: "
    try:
        authors = [a for a in map(_author, _list(paper.get("authors"), "authors")) if a]
        keywords = []
        for keyword in _list(paper.get("ai_keywords"), "ai_keywords"):
            if not isinstance(keyword, str):
                raise ItemError(f"an ai_keyword is {json_type(keyword)}, expected a string")
            keywords.append(clean_text(keyword))
        upvotes = _int(paper.get("upvotes"), "upvotes")
        num_comments = _int(item.get("numComments"), "numComments")
        github_stars = _int(paper.get("githubStars"), "githubStars")
    except ItemError as ex:
        raise ItemError(where + str(ex)) from None
    daily = _str(paper.get("submittedOnDailyAt")) or _str(item.get("submittedOnDailyAt"))
    return Paper(
        id=arxiv_id,
        arxiv_id=arxiv_id if ids else None,
        version=version,
        title=title,
        abstract=_str(paper.get("summary")) or _str(item.get("summary")) or "",
        authors=authors,
        published=_str(paper.get("publishedAt")) or _str(item.get("publishedAt")),
        link=f"https://arxiv.org/abs/{arxiv_id}" if ids else None,
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}" if ids else None,
        upvotes=upvotes,
        num_comments=num_comments,
        github_repo=_str(paper.get("githubRepo")),
        github_stars=github_stars,
        project_page=_str(paper.get("projectPage")),
        thumbnail=_str(item.get("thumbnail")),
        ai_summary=_str(paper.get("ai_summary")),
        ai_keywords=[k for k in keywords if k],
        hf_date=daily[:10] if daily else None,
        source=source,
        raw_id=raw_id,
    )


def parse_batch(content: bytes, source: str, url: str = "") -> Batch:
    """The API's JSON array -> papers and skipped items. Bad JSON, an HTML page, or an array
    with no usable item at all is an error naming the source."""
    where = url or source
    refuse_unsafe(source, where, content)
    try:
        data = json.loads(content.decode("utf-8"), parse_int=_json_int)
    except UnicodeDecodeError as ex:
        raise SourceError(f"{source}: {where} is not UTF-8 (byte {ex.start}): {ex.reason}") from ex
    except json.JSONDecodeError as ex:
        raise SourceError(
            f"{source}: {where} is not valid JSON (line {ex.lineno}, column {ex.colno}): {ex.msg}"
        ) from ex
    except (ValueError, RecursionError) as ex:
        raise SourceError(f"{source}: {where} is not JSON we can read: {ex}") from ex
    if isinstance(data, dict):
        for key in ("papers", "items", "data"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            error = data.get("error") or data.get("message")
            detail = f": {clean_text(error)[:200]}" if error else ""
            raise SourceError(f"{source}: {where} answered a JSON object, not a list{detail}")
    if not isinstance(data, list):
        raise SourceError(f"{source}: {where} answered {json_type(data)}, expected a list")
    batch = parse_items(data, parse_item, source)
    if data and not batch.papers:
        raise SourceError(
            f"{source}: {where} has {len(data)} items but none with an id and title "
            f"that could be read ({batch.reasons[0]})"
        )
    return batch


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
    """One day (`date=`), or each day from `since` to `day` for a backfill."""
    if is_local(src.url):
        body = await fetch(client, src.name, src.url, settings)
        batch = await asyncio.to_thread(parse_batch, body.content, src.name, src.url)
        return _result(src.name, batch, src.url)
    first = since or day
    if first > day:
        raise SourceError(f"{src.name}: --since {first} is after --date {day}")
    if (day - first).days > MAX_BACKFILL_DAYS:
        raise SourceError(
            f"{src.name}: --since {first} is more than {MAX_BACKFILL_DAYS} days back; "
            "backfill in smaller ranges"
        )
    batch = Batch()
    empty: list[str] = []
    last = Body(url=src.url)
    current = first
    while current <= day:
        last = await fetch(
            client,
            src.name,
            src.url,
            settings,
            params={"date": current.isoformat()},
            cached=cached,
            timeout=src.timeout,
            sleep=sleep,
        )
        if last.not_modified:
            if since is None:
                return SourceResult(
                    src.name,
                    url=last.url,
                    etag=last.etag,
                    last_modified=last.last_modified,
                    not_modified=True,
                    note="not modified since last run",
                )
        else:
            found = await asyncio.to_thread(parse_batch, last.content, src.name, last.url)
            if not found.papers:
                empty.append(current.isoformat())
            batch.extend(found)
        current += timedelta(days=1)
    note = None
    if empty:
        shown = ", ".join(empty[:3]) + (" ..." if len(empty) > 3 else "")
        note = f"no papers listed for {shown} (a weekend, or not published yet)"
    return _result(src.name, batch, last.url, last.etag, last.last_modified, note)


def _result(
    name: str,
    batch: Batch,
    url: str,
    etag: str | None = None,
    last_modified: str | None = None,
    note: str | None = None,
) -> SourceResult:
    return SourceResult(
        name,
        batch.papers,
        url,
        etag,
        last_modified,
        note=note,
        skipped=batch.skipped,
        skip_reasons=batch.reasons,
    )
