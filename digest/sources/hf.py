"""Hugging Face Daily Papers: `GET /api/daily_papers?date=YYYY-MM-DD`, a JSON array per day.

Parses bytes into Papers; writes nothing. Every field is read with a fallback: the API adds and
drops optional fields from day to day (`ai_summary`, `githubRepo`, ...).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from digest.errors import SourceError
from digest.models import Paper, SourceResult
from digest.sources.common import (
    Batch,
    ItemError,
    SourceRequest,
    batch_result,
    clean_text,
    count_from_text,
    json_type,
    not_modified,
    parse_items,
    refuse_unsafe,
    some_papers,
    split_arxiv_id,
)
from digest.sources.http import Body, is_local

MAX_BACKFILL_DAYS = 92  # one request per day: a quarter is polite to the API and bounded
JSON = dict[str, "JSON"] | list["JSON"] | str | int | float | bool | None
JSONObject = dict[str, JSON]


class _HugeNumber(int):
    """A JSON integer too long to be a count: kept as a marker so only its item is refused."""


def _json_int(digits: str) -> int:
    """json's parse_int hook: a hostile 5,000-digit number would otherwise fail the whole body
    (int() refuses long strings), costing the source instead of one item."""
    if len(digits.lstrip("-")) > 19:
        return _HugeNumber(-1)
    return int(digits)


@dataclass(frozen=True, slots=True)
class DailyPaper:
    """One element of the API's array with every field read as its documented type, so the
    mapping to a Paper never sees raw JSON. `arxiv_id` is None when `id` is not an arXiv id."""

    raw_id: str
    title: str
    arxiv_id: str | None = None
    version: int | None = None
    summary: str | None = None
    authors: tuple[str, ...] = ()
    published: datetime | None = None
    submitted_on_daily_at: str | None = None
    upvotes: int | None = None
    num_comments: int | None = None
    github_repo: str | None = None
    github_stars: int | None = None
    project_page: str | None = None
    thumbnail: str | None = None
    ai_summary: str | None = None
    ai_keywords: tuple[str, ...] = ()


def _int(value: JSON, what: str) -> int | None:
    """A count as the API may send it (a number, or digits in a string); anything else is
    unknown (None), since the API drops and changes optional fields.

    Raises:
        ItemError: the number is far beyond 64 bits.
    """
    if isinstance(value, _HugeNumber):
        raise ItemError(f"{what} is a number far beyond 64 bits")
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return count_from_text(value.strip(), what)
    return None


def _str(value: JSON) -> str | None:
    """A text field, cleaned; None when absent, empty or not a string."""
    return clean_text(value) or None if isinstance(value, str) else None


def _time(value: JSON) -> datetime | None:
    """An ISO 8601 time with its zone, in UTC; None when absent, unreadable or without a zone
    (its age is unknown): the item is still worth showing, it only ranks as not fresh."""
    text = _str(value)
    try:
        at = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return None if at is None or at.utcoffset() is None else at.astimezone(UTC)


def _list(value: JSON, what: str) -> list[JSON]:
    """null is an absent list; any other non-list makes the item bad, not the source."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ItemError(f"{what} is {json_type(value)}, expected a list")
    return value


def _author(value: JSON) -> str:
    """An author as the API writes one (`{"name": ...}`) or a bare string.

    Raises:
        ItemError: neither an object nor a string.
    """
    if isinstance(value, dict):
        name = value.get("name")
        return clean_text(name) if isinstance(name, str) else ""
    if isinstance(value, str):
        return clean_text(value)
    raise ItemError(f"an author is {json_type(value)}, expected an object")


def _keyword(value: JSON) -> str:
    """One AI keyword.

    Raises:
        ItemError: not a string.
    """
    if not isinstance(value, str):
        raise ItemError(f"an ai_keyword is {json_type(value)}, expected a string")
    return clean_text(value)


def read_item(item: JSON) -> DailyPaper:
    """One element of the array, typed. Fields live under `paper`, some also on the item.

    Raises:
        ItemError: the element is not an object, has no id and title, or a field has a type
            no reading can use (authors that are not a list, a count beyond 64 bits...).
    """
    if not isinstance(item, dict):
        raise ItemError(f"is {json_type(item)}, expected an object")
    nested = item.get("paper")
    if nested is not None and not isinstance(nested, dict):
        raise ItemError(f"paper is {json_type(nested)}, expected an object")
    # today's API nests the paper; older answers and mirrors put its fields on the item
    paper: JSONObject = nested if nested is not None else item
    raw_id = _str(paper.get("id"))
    title = _str(paper.get("title")) or _str(item.get("title"))
    if not raw_id or not title:
        raise ItemError("has no id and title")
    ids = split_arxiv_id(raw_id)
    try:
        authors = tuple(a for a in map(_author, _list(paper.get("authors"), "authors")) if a)
        keywords = tuple(map(_keyword, _list(paper.get("ai_keywords"), "ai_keywords")))
        counts = (
            _int(paper.get("upvotes"), "upvotes"),
            _int(item.get("numComments"), "numComments"),
            _int(paper.get("githubStars"), "githubStars"),
        )
    except ItemError as ex:
        raise ItemError(f"{ids[0] if ids else raw_id}: {ex}") from None
    return DailyPaper(
        raw_id=raw_id,
        title=title,
        arxiv_id=ids[0] if ids else None,
        version=ids[1] if ids else None,
        summary=_str(paper.get("summary")) or _str(item.get("summary")),
        authors=authors,
        published=_time(paper.get("publishedAt")) or _time(item.get("publishedAt")),
        submitted_on_daily_at=_str(paper.get("submittedOnDailyAt"))
        or _str(item.get("submittedOnDailyAt")),
        upvotes=counts[0],
        num_comments=counts[1],
        github_repo=_str(paper.get("githubRepo")),
        github_stars=counts[2],
        project_page=_str(paper.get("projectPage")),
        thumbnail=_str(item.get("thumbnail")),
        ai_summary=_str(paper.get("ai_summary")),
        ai_keywords=keywords,
    )


def to_paper(record: DailyPaper, source: str) -> Paper:
    """A typed element as the Paper the rest of digest knows (links built from the arXiv id)."""
    arxiv_id = record.arxiv_id
    daily = record.submitted_on_daily_at
    return Paper(
        id=arxiv_id or record.raw_id,
        arxiv_id=arxiv_id,
        version=record.version,
        title=record.title,
        abstract=record.summary or "",
        authors=list(record.authors),
        published=record.published,
        link=f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else None,
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}" if arxiv_id else None,
        upvotes=record.upvotes,
        num_comments=record.num_comments,
        github_repo=record.github_repo,
        github_stars=record.github_stars,
        project_page=record.project_page,
        thumbnail=record.thumbnail,
        ai_summary=record.ai_summary,
        ai_keywords=[k for k in record.ai_keywords if k],
        hf_date=daily[:10] if daily else None,
        source=source,
        raw_id=record.raw_id,
    )


def parse_item(item: JSON, source: str) -> Paper:
    """One element of the array -> a Paper.

    Raises:
        ItemError: as `read_item`; that element is skipped.
    """
    return to_paper(read_item(item), source)


def load(content: bytes, source: str, where: str) -> JSON:
    """The body as JSON, counts too long to be counts kept as markers for their item.

    Raises:
        SourceError: not UTF-8, not JSON, or nested too deep to read.
    """
    try:
        data: JSON = json.loads(content.decode("utf-8"), parse_int=_json_int)
    except UnicodeDecodeError as ex:
        raise SourceError(f"{source}: {where} is not UTF-8 (byte {ex.start}): {ex.reason}") from ex
    except json.JSONDecodeError as ex:
        raise SourceError(
            f"{source}: {where} is not valid JSON (line {ex.lineno}, column {ex.colno}): {ex.msg}"
        ) from ex
    except (ValueError, RecursionError) as ex:
        raise SourceError(f"{source}: {where} is not JSON we can read: {ex}") from ex
    return data


def _items(data: JSON, source: str, where: str) -> list[JSON]:
    """The array of papers, also when wrapped in an object (`papers`, `items`, `data`)."""
    if isinstance(data, dict):
        for key in ("papers", "items", "data"):
            found = data.get(key)
            if isinstance(found, list):
                return found
        error = data.get("error") or data.get("message")
        detail = f": {clean_text(str(error))[:200]}" if error else ""
        raise SourceError(f"{source}: {where} answered a JSON object, not a list{detail}")
    if not isinstance(data, list):
        raise SourceError(f"{source}: {where} answered {json_type(data)}, expected a list")
    return data


def parse_batch(content: bytes, source: str, url: str = "") -> Batch:
    """The API's JSON array -> papers and skipped items.

    Raises:
        SourceError: bad JSON, an HTML page, an answer that is no array, or an array with no
            usable item at all; the message names the source.
    """
    where = url or source
    refuse_unsafe(source, where, content)
    data = _items(load(content, source, where), source, where)
    return some_papers(
        parse_items(data, parse_item, source),
        f"{source}: {where} has {len(data)} items but none with an id and title that could be read",
    )


def parse(content: bytes, source: str, url: str = "") -> list[Paper]:
    """Only the papers: for callers that do not report skipped items (benchmarks, tools).

    Raises:
        SourceError: as `parse_batch`.
    """
    return parse_batch(content, source, url).papers


async def collect(request: SourceRequest) -> SourceResult:
    """Fetch and parse one day (`date=`), or each day from `since` to `day` for a backfill;
    a local file is read whole.

    Raises:
        SourceError: a bad day range, or a day that cannot be fetched or read.
    """
    if is_local(request.source.url):  # a recorded day (demo, tests): no date parameter
        body = await request.get()
        batch = await asyncio.to_thread(parse_batch, body.content, request.name, body.url)
        return batch_result(request, batch, body, None)
    first = request.since or request.day
    if first > request.day:
        raise SourceError(f"{request.name}: --since {first} is after --date {request.day}")
    if (request.day - first).days > MAX_BACKFILL_DAYS:
        raise SourceError(
            f"{request.name}: --since {first} is more than {MAX_BACKFILL_DAYS} days back; "
            "backfill in smaller ranges"
        )
    batch = Batch()
    empty: list[str] = []
    last = Body(url=request.source.url)
    current = first
    while current <= request.day:
        last = await request.get(params={"date": current.isoformat()})
        if last.not_modified:
            if request.since is None:  # a backfill goes on: the other days may have changed
                return not_modified(request, last)
        else:
            found = await asyncio.to_thread(parse_batch, last.content, request.name, last.url)
            if not found.papers:
                empty.append(current.isoformat())
            batch.extend(found)
        current += timedelta(days=1)
    note = None
    if empty:
        shown = ", ".join(empty[:3]) + (" ..." if len(empty) > 3 else "")
        note = f"no papers listed for {shown} (a weekend, or not published yet)"
    return batch_result(request, batch, last, note)
