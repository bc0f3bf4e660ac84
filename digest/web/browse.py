"""The web edition: today's papers at `/`, a day at `/d/YYYY-MM-DD`, a week at
`/week/YYYY-Www`, each searchable with the filter language (`?q=`) and by topic (`?topic=`),
beside the subscribe form. Works without JavaScript. Built from digest.web.listing's cached
windows; a listing's HTML is cached by what it shows."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from hashlib import blake2b
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from digest.edition import Edition
from digest.models import Subscriber
from digest.render import edition_label, plural
from digest.web.forms import csrf_for, form_context
from digest.web.listing import (
    PAGE_WAIT,
    Indexed,
    Recipe,
    WindowOf,
    day_window,
    select,
    week_window,
)
from digest.web.state import Web

LIMIT = 60  # cards on one page: what a page costs stays bounded whatever a day holds
MAX_QUERY = 2000  # characters of ?q= read (the parser refuses what is longer than it allows)


@dataclass(frozen=True, slots=True)
class Span:
    """What one page covers: a day or a week, its path, heading and neighbours."""

    name: Hashable
    path: str
    title: str
    unit: str
    window_of: WindowOf
    nav: list[tuple[str, str, str]]  # (rel, href, label)


def _day_path(day: date, today: date) -> str:
    return "/" if day == today else f"/d/{day.isoformat()}"


def _week_name(day: date) -> str:
    return Edition.weekly(day).name


def day_span(day: date, now: datetime) -> Span:
    """Today or an earlier day, with links to the day before, the day after and its week."""
    today = now.date()
    before, after = day - timedelta(days=1), day + timedelta(days=1)
    nav = [("prev", _day_path(before, today), f"← {before:%a %d %b}")]
    nav.append(("week", f"/week/{_week_name(day)}", f"Week {day.isocalendar()[1]}"))
    if after <= today:
        nav.append(("next", _day_path(after, today), f"{after:%a %d %b} →"))
    return Span(
        ("day", day),
        _day_path(day, today),
        edition_label(day.isoformat(), day, long=True),
        "day",
        partial(day_window, day=day, now=now),
        nav,
    )


def week_span(monday: date, now: datetime) -> Span:
    """An ISO week, with links to the weeks around it and to its last day."""
    name = _week_name(monday)
    before, after = monday - timedelta(days=7), monday + timedelta(days=7)
    nav = [("prev", f"/week/{_week_name(before)}", f"← Week {before.isocalendar()[1]}")]
    last = min(monday + timedelta(days=6), now.date())
    nav.append(("day", _day_path(last, now.date()), f"{last:%a %d %b}"))
    if after <= now.date():
        nav.append(("next", f"/week/{_week_name(after)}", f"Week {after.isocalendar()[1]} →"))
    title = edition_label(name, monday, long=True)
    window_of = partial(week_window, monday=monday, now=now)
    return Span(("week", monday), f"/week/{name}", title, "week", window_of, nav)


async def home(web: Web, request: Request) -> Response:
    """Today's edition, ranked like the email, with the subscribe form."""
    now = web.clock()
    return await show(web, request, day_span(now.date(), now))


async def day(web: Web, request: Request) -> Response:
    """One day's edition; a day that is not a date, or not yet, is a 404 page."""
    now = web.clock()
    try:  # the edition's own name rule: YYYY-MM-DD only (not 20260612, not 2026-W49-1)
        edition = Edition.parse(request.path_params["day"])
    except ValueError:
        edition = None
    if edition is None or edition.cadence != "daily" or edition.day > now.date():
        return _no_edition(web, "There is no edition on that day.")
    return await show(web, request, day_span(edition.day, now))


async def week(web: Web, request: Request) -> Response:
    """One ISO week's papers (`/week/2026-W48`)."""
    now = web.clock()
    try:
        edition = Edition.parse(request.path_params["week"])
    except ValueError:
        edition = None
    if edition is None or edition.cadence != "weekly" or edition.day > now.date():
        return _no_edition(web, "There is no such week.")
    return await show(web, request, week_span(edition.day, now))


def _no_edition(web: Web, line: str) -> Response:
    """The 404 page of an edition that does not exist, linking today's."""
    return web.message("Page not found", line, status=404,
                       link={"href": "/", "label": "Today's papers"})  # fmt: skip


def _href(path: str, q: str, topic: str | None) -> str:
    params = {k: v for k, v in (("q", q), ("topic", topic)) if v}
    return f"{path}?{urlencode(params)}" if params else path


def _chips(web: Web, path: str, q: str, topic: str | None) -> list[dict[str, Any]]:
    chips = [{"title": "All", "href": _href(path, q, None), "active": topic is None}]
    for name, t in web.topics.items():
        active = name == topic
        href = _href(path, q, None if active else name)
        chips.append({"title": t.title, "href": href, "active": active})
    return chips


def render_listing(web: Web, indexed: Indexed, q: str, topic: str | None, unit: str) -> Markup:
    """The cards a page lists and the line that counts them, as HTML."""
    chosen = select(indexed, q, topic, LIMIT)
    new = len(indexed.papers)
    if chosen.error:
        count = ""
    elif q.strip() or topic:
        count = f"{plural(chosen.total, 'paper')} of {new:,} match"
    else:
        count = f"{plural(new, 'new paper')} this {unit}, most upvoted first"
    papers = [m.paper for m in chosen.matches] + chosen.papers
    made = [indexed.card(m) for m in chosen.matches] + [
        indexed.plain_card(p) for p in chosen.papers
    ]
    frames, plain = indexed.frames, indexed.plain_card
    cards = [web.cards.html(c, frames, p.id, plain(p)) for p, c in zip(papers, made, strict=True)]
    shown = len(cards)
    more = f"Showing the first {shown}; narrow the search to see the rest." if (
        chosen.total > shown) else ""  # fmt: skip
    html = web.pages.render(
        "listing", error=chosen.error, count=count, cards=cards, more=more, unit=unit
    )
    return Markup(html)  # rendered by our autoescaping templates


CSRF_SLOT = "csrfslot0000000000000000000000000"  # stands for the visitor's token in a cached page


def render_page(web: Web, span: Span, listing: Markup, q: str, topic: str | None) -> str:
    """The whole page but the visitor's CSRF token (CSRF_SLOT): built once per listing."""
    nav = [{"rel": rel, "href": _href(href, q, topic), "label": label}
           for rel, href, label in span.nav]  # fmt: skip
    return web.pages.render(
        "edition",
        title=span.title,
        layout="wide",
        path=span.path,
        unit=span.unit,
        q=q,
        topic=topic or "",
        chips=_chips(web, span.path, q, topic),
        nav=nav,
        listing=listing,
        signup=_signup(web),
        preview=None,
    )


def render_built(
    web: Web, span: Span, listing: Callable[[], Markup], q: str, topic: str | None
) -> bytes:
    """`render_page` with its listing built first (both in the pages' thread), encoded once
    for every visitor (encoding a page took longer than the rest of answering from cache)."""
    return render_page(web, span, listing(), q, topic).encode()


def _page_key(span: Span, q: str, topic: str | None, indexed: Indexed) -> Hashable:
    return ("page", span.name, span.title, indexed.key, q, topic)


def _page_over(web: Web, span: Span, q: str, topic: str | None, indexed: Indexed) -> bytes:
    listing = partial(render_listing, web, indexed, q, topic, span.unit)
    return render_built(web, span, listing, q, topic)


def _signup(web: Web) -> Markup:
    """The subscribe form beside every edition page, its CSRF token a slot: the same on
    every page, rendered once (its time zone list made up a third of a page's cost)."""
    found = web.fragments.get("signup")
    if found is None:
        context = form_context(web.topics, Subscriber(email=""))
        html = web.pages.render("subscribe_form", csrf=CSRF_SLOT, email="", preview=None, **context)
        found = web.fragments["signup"] = Markup(html)  # rendered by our autoescaping templates
    return found


def _etag(web: Web, key: Hashable, csrf: str) -> str:
    """The page's entity tag: its cache key (which holds the papers' state), the visitor's
    CSRF token (the one part of the page that is theirs) and this server's start."""
    digest = blake2b(f"{web.salt}|{key!r}|{csrf}".encode(), digest_size=12).hexdigest()
    return f'"{digest}"'


def _unchanged(request: Request, etag: str) -> bool:
    """The browser already has this page (If-None-Match names its tag; weak tags compare
    too, as RFC 9110 says for GET)."""
    wanted = request.headers.get("if-none-match", "")
    return any(tag.strip().removeprefix("W/") == etag for tag in wanted.split(",")) or (
        wanted.strip() == "*"
    )


async def show(web: Web, request: Request, span: Span) -> Response:
    """A day's or a week's page: search box, topic chips, navigation, cards, the form. Pages
    are cached whole by what they show; only the visitor's CSRF token is put in per request.
    A browser that has the page already (its ETag) gets a 304: nothing to build or send."""
    q = request.query_params.get("q", "")[:MAX_QUERY]
    asked = request.query_params.get("topic", "")
    topic = asked if asked in web.topics else None
    csrf = csrf_for(request)
    indexed = await web.listings.within(web.reader, span.name, span.window_of, PAGE_WAIT)
    if indexed is None:
        busy = "The papers are being updated: reload in a minute."
        page = web.pages.render("listing", error="", count="", cards=[], unit=span.unit, more=busy)
        html = render_page(web, span, Markup(page), q, topic)
        response = HTMLResponse(html.replace(CSRF_SLOT, csrf), headers={"x-cache": "miss"})
        return web.with_csrf(response, csrf)
    key = _page_key(span, q, topic, indexed)
    headers = {"etag": _etag(web, key, csrf), "cache-control": "private, no-cache"}
    if _unchanged(request, headers["etag"]):
        return Response(status_code=304, headers={**headers, "x-cache": "hit"})
    over = partial(_page_over, web, span, q, topic)
    recipe = Recipe(span.name, indexed.key, partial(_page_key, span, q, topic), over)
    built, hit = await web.listings.made(indexed, recipe)
    headers["x-cache"] = "hit" if hit else "miss"
    body = built.replace(CSRF_SLOT.encode(), csrf.encode())
    return web.with_csrf(HTMLResponse(body, headers=headers), csrf)
