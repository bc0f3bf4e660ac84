"""Hugging Face Daily Papers: `GET /api/daily_papers?date=YYYY-MM-DD`, a JSON array per day.

Parses bytes into Papers; writes nothing. Every field is read with a fallback: the API adds and
drops optional fields from day to day (`ai_summary`, `githubRepo`, ...).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import httpx

from digest.config import CollectConfig, SourceConfig
from digest.errors import SourceError
from digest.models import FetchResult, Paper
from digest.sources.common import clean_text, refuse_unsafe, split_arxiv_id
from digest.sources.http import Body, Sleep, fetch, is_local

MAX_BACKFILL_DAYS = 92


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _str(value: Any) -> str | None:
    return clean_text(value) or None if isinstance(value, str) else None


def parse_item(item: Any, source: str) -> Paper | None:
    if not isinstance(item, dict):
        return None
    paper = item.get("paper") if isinstance(item.get("paper"), dict) else item
    raw_id = _str(paper.get("id"))
    title = _str(paper.get("title")) or _str(item.get("title"))
    if not raw_id or not title:
        return None
    ids = split_arxiv_id(raw_id)
    arxiv_id, version = ids if ids else (raw_id, None)
    authors = [
        clean_text(a.get("name"))
        for a in paper.get("authors") or []
        if isinstance(a, dict) and clean_text(a.get("name"))
    ]
    keywords = [clean_text(k) for k in paper.get("ai_keywords") or [] if isinstance(k, str)]
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
        upvotes=_int(paper.get("upvotes")),
        num_comments=_int(item.get("numComments")),
        github_repo=_str(paper.get("githubRepo")),
        github_stars=_int(paper.get("githubStars")),
        project_page=_str(paper.get("projectPage")),
        thumbnail=_str(item.get("thumbnail")),
        ai_summary=_str(paper.get("ai_summary")),
        ai_keywords=[k for k in keywords if k],
        hf_date=daily[:10] if daily else None,
        source=source,
        raw_id=raw_id,
    )


def parse(content: bytes, source: str, url: str = "") -> list[Paper]:
    """The API's JSON array -> Papers; bad JSON or an HTML page is an error naming the source."""
    where = url or source
    refuse_unsafe(source, where, content)
    try:
        data = json.loads(content.decode("utf-8"))
    except UnicodeDecodeError as ex:
        raise SourceError(f"{source}: {where} is not UTF-8 (byte {ex.start}): {ex.reason}") from ex
    except json.JSONDecodeError as ex:
        raise SourceError(
            f"{source}: {where} is not valid JSON (line {ex.lineno}, column {ex.colno}): {ex.msg}"
        ) from ex
    if isinstance(data, dict):
        for key in ("papers", "items", "data"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            error = data.get("error") or data.get("message")
            detail = f": {error}" if error else ""
            raise SourceError(f"{source}: {where} answered a JSON object, not a list{detail}")
    if not isinstance(data, list):
        raise SourceError(f"{source}: {where} answered {type(data).__name__}, expected a list")
    papers = [p for item in data if (p := parse_item(item, source)) is not None]
    if data and not papers:
        raise SourceError(f"{source}: {where} has {len(data)} items but none with an id and title")
    return papers


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
        return FetchResult(src.name, parse(body.content, src.name, src.url), src.url)
    first = since or day
    if first > day:
        raise SourceError(f"{src.name}: --since {first} is after --date {day}")
    if (day - first).days > MAX_BACKFILL_DAYS:
        raise SourceError(
            f"{src.name}: --since {first} is more than {MAX_BACKFILL_DAYS} days back; "
            "backfill in smaller ranges"
        )
    papers: list[Paper] = []
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
                return FetchResult(
                    src.name,
                    url=last.url,
                    etag=last.etag,
                    last_modified=last.last_modified,
                    not_modified=True,
                    note="not modified since last run",
                )
        else:
            found = parse(last.content, src.name, last.url)
            if not found:
                empty.append(current.isoformat())
            papers.extend(found)
        current += timedelta(days=1)
    note = None
    if empty:
        shown = ", ".join(empty[:3]) + (" ..." if len(empty) > 3 else "")
        note = f"no papers listed for {shown} (a weekend, or not published yet)"
    return FetchResult(src.name, papers, last.url, last.etag, last.last_modified, note=note)
