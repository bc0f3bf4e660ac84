""" "See your email before you subscribe": which papers of the last seven days a set of topics
and queries would have brought, a count per day and the top few with why and highlights.
One computation serves the JSON endpoint the forms' script calls and the no-JavaScript
Preview button. Its cost is bounded: seven days of papers, indexed once for everyone, and
the form's own limits on queries; it is rate-limited per client."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, timedelta
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from digest import subscribers as subs
from digest.errors import QueryError, SubscriberError
from digest.match import Match
from digest.models import Subscriber
from digest.query import parse
from digest.render import plural
from digest.web.listing import PAGE_WAIT, Indexed, Recipe, recent_window
from digest.web.state import Web

DAYS = 7
TOP = 5
PER_MINUTE = 120  # previews per client per minute: typing with a pause fires a few


def _problem(topics: Sequence[str], queries: Sequence[str]) -> str:
    """Why these interests cannot be previewed (as the form would say it), or ""."""
    try:
        subs.check_query_limits("queries", list(queries))
    except SubscriberError as ex:
        return str(ex).split(": ", 1)[-1]
    for query in queries:
        try:
            parse(query)
        except QueryError as ex:
            return ex.caret()
    if not topics and not queries:
        return "Pick a topic or write a query to see what it would bring."
    return ""


def _item(indexed: Indexed, match: Match) -> dict[str, Any]:
    card = indexed.card(match)
    why = "; also ".join(
        label + (": " + ", ".join(f"{t} ({w})" if w else t for t, w in terms) if terms else "")
        for label, terms in card.why
    )
    return {
        "id": match.paper.id,
        "title": card.title,
        "url": card.paper.url,
        "authors": card.paper.authors,
        "meta": " · ".join(card.paper.meta),
        "abstract": card.abstract,
        "why": why,
        "day": f"{match.paper.first_seen:%Y-%m-%d}" if match.paper.first_seen else "",
    }


def compute(
    indexed: Indexed, today: date, topics: Sequence[str], queries: Sequence[str]
) -> dict[str, Any]:
    """The preview as plain data (JSON as sent, and the no-JavaScript page's context)."""
    error = _problem(topics, queries)
    if error:
        return {"error": error, "total": 0, "summary": "", "days": [], "top": []}
    sub = Subscriber(
        email="preview@localhost", topics=list(topics), queries=list(queries), max_papers=TOP
    )
    found = indexed.matcher.for_subscriber(sub)  # the top few, ranked as the email ranks
    selected = indexed.selected(sub)
    days = []
    for back in range(DAYS - 1, -1, -1):
        day = today - timedelta(days=back)
        count = (selected & indexed.days.get(day.isoformat(), 0)).bit_count()
        days.append({"day": day.isoformat(), "label": f"{day:%a %d %b}", "count": count})
    total = selected.bit_count()
    summary = (
        f"{plural(total, 'paper')} of the last {DAYS} days would have matched"
        f" ({plural(len(indexed.papers), 'new paper')})"
    )
    return {"error": "", "total": total, "summary": summary, "days": days,
            "top": [_item(indexed, m) for m in found[:TOP]]}  # fmt: skip


def _made(
    encode: bool, today: date, topics: Sequence[str], queries: Sequence[str], indexed: Indexed
) -> Any:
    """`compute` over `indexed`, as JSON text if `encode`."""
    found = compute(indexed, today, topics, queries)
    return json.dumps(found, ensure_ascii=False) if encode else found


def _key(
    encode: bool, topics: Sequence[str], queries: Sequence[str], indexed: Indexed
) -> tuple[Any, ...]:
    return ("preview.json" if encode else "preview", indexed.key, topics, queries)


BUSY = {"error": "The papers are being updated: try again in a minute.", "total": 0,
        "summary": "", "days": [], "top": []}  # fmt: skip


async def _cached(
    web: Web, topics: Sequence[str], queries: Sequence[str], encode: bool
) -> tuple[Any, bool]:
    """The preview (as data, or as its JSON if `encode`) and whether it came from the cache:
    built once per distinct set of interests while the last seven days' papers stay the
    same, from their index shared by everyone."""
    now = web.clock()
    known = tuple(t for t in dict.fromkeys(topics) if t in web.topics)
    wanted = tuple(dict.fromkeys(q.strip() for q in queries if q.strip()))
    name = ("recent", now.date())
    indexed = await web.listings.within(
        web.reader, name, lambda store: recent_window(now, DAYS), PAGE_WAIT
    )
    if indexed is None:
        return (json.dumps(BUSY) if encode else dict(BUSY)), False
    over = partial(_made, encode, now.date(), known, wanted)
    recipe = Recipe(name, indexed.key, partial(_key, encode, known, wanted), over)
    return await web.listings.made(indexed, recipe)


async def preview_of(web: Web, topics: Sequence[str], queries: Sequence[str]) -> dict[str, Any]:
    """The preview of these interests (the no-JavaScript Preview button's page)."""
    found: dict[str, Any] = (await _cached(web, topics, queries, encode=False))[0]
    return found


async def endpoint(web: Web, request: Request) -> Response:
    """GET /preview.json?topic=..&queries=..: the preview as JSON, for the forms' script."""
    if not web.limits.allow(f"preview:{web.client_ip(request)}", PER_MINUTE, 60.0):
        body = {"error": "Too many previews; wait a minute.", "total": 0, "days": [], "top": []}
        return Response(json.dumps(body), status_code=429, media_type="application/json")
    params = request.query_params
    topics = [t[:100] for t in params.getlist("topic")[:100]]
    queries = params.get("queries", "")[:20_000].splitlines()
    body, hit = await _cached(web, topics, queries, encode=True)
    return Response(
        body,
        media_type="application/json",
        headers={"cache-control": "no-store", "x-cache": "hit" if hit else "miss"},
    )
