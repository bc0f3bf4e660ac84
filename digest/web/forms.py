"""The web forms: reading what a client sent (any bytes, any size) into a Subscriber with
errors by field, and the CSRF token check. No routes, no responses."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any
from zoneinfo import available_timezones

from starlette.datastructures import FormData
from starlette.requests import Request

from digest import subscribers as subs
from digest.errors import QueryError, SubscriberError
from digest.models import WEEKDAYS, Subscriber, Topic
from digest.query import parse

CSRF_COOKIE = "digest_csrf"
CSRF_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")  # what token_urlsafe makes; anything else is new
# Left out of the form's list: Etc/GMT+5 means UTC-5 (POSIX signs), and names without a slash
# are legacy aliases (EST5EDT, GB). Sent anyway, they still validate.
ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/"))


def field(form: FormData, name: str, default: str = "") -> str:
    """A form value as text: a missing field, or a file where text belongs, is the default."""
    value = form.get(name, default)
    return value if isinstance(value, str) else default


def csrf_for(request: Request) -> str:
    """The visitor's CSRF token if it is one we could have made, else a fresh one (a
    cookie is whatever the client sends: non-ASCII, huge, or empty)."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return cookie if CSRF_SHAPE.fullmatch(cookie) else secrets.token_urlsafe(24)


def csrf_ok(request: Request, form: FormData) -> bool:
    """The form's token matches the cookie's, both shaped like ours (compared as bytes:
    compare_digest refuses non-ASCII text)."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = field(form, "csrf")
    if not (CSRF_SHAPE.fullmatch(cookie) and CSRF_SHAPE.fullmatch(sent)):
        return False
    return secrets.compare_digest(cookie.encode(), sent.encode())


def form_context(
    topics: Mapping[str, Topic],
    sub: Subscriber,
    errors: dict[str, str] | None = None,
    queries_text: str = "",
) -> dict[str, Any]:
    """What the preferences fields (templates/web/form_fields.html.j2) show."""
    return {
        "topics": list(topics.values()),
        "chosen_topics": sub.topics,
        "queries_text": queries_text or "\n".join(sub.queries),
        "cadence": sub.cadence,
        "weekday": sub.weekday,
        "weekdays": WEEKDAYS,
        "hour": sub.hour,
        "tz": sub.tz,
        "max_papers": sub.max_papers,
        "zones": ZONES,
        "errors": errors or {},
    }


def read_preferences(
    topics: Mapping[str, Topic], form: FormData, base: Subscriber
) -> tuple[Subscriber, dict[str, str]]:
    """The form's preferences over `base`; errors by field, each query checked with a caret.
    Any value a client sends is an answer (a 422 with a message), never an exception."""
    errors: dict[str, str] = {}
    lines = field(form, "queries").splitlines()
    queries = list(dict.fromkeys(q.strip() for q in lines if q.strip()))
    try:
        subs.check_query_limits("queries", queries)
    except SubscriberError as ex:
        errors["queries"] = str(ex).split(": ", 1)[-1]
    for query in [] if errors else queries:
        try:
            parse(query)
        except QueryError as ex:
            errors["queries"] = ex.caret()
            break

    def number(name: str, label: str, default: int) -> int:
        value = field(form, name).strip()
        if not value:
            return default
        # isdigit() alone accepts "²", which int() refuses; the length keeps int() cheap
        if value.isascii() and value.isdigit() and len(value) <= 4:
            return int(value)
        errors[name] = f"{label}: give a whole number"
        return default

    cadence = base.cadence
    try:
        cadence = subs.parse_cadence(base.email, field(form, "cadence", base.cadence))
    except SubscriberError as ex:
        errors["cadence"] = str(ex).split(": ", 1)[-1]
    sub = Subscriber(
        email=base.email,
        id=base.id,
        status=base.status,
        queries=queries,
        topics=[t for t in form.getlist("topic") if isinstance(t, str)],
        cadence=cadence,
        weekday=field(form, "weekday", base.weekday),
        hour=number("hour", "hour", base.hour),
        tz=field(form, "tz", base.tz).strip() or "UTC",
        max_papers=number("max_papers", "max papers", base.max_papers),
        min_upvotes=base.min_upvotes,
    )
    if not errors:
        try:
            subs.validate(sub, topics)
        except SubscriberError as ex:
            message = str(ex).split(": ", 1)[-1]
            errors[field_of(message)] = message
    return sub, errors


FIELD_OF_MESSAGE = (
    ("cadence", "cadence"),
    ("weekday", "weekday"),
    ("hour", "hour"),
    ("unknown time zone", "tz"),
    ("max papers", "max_papers"),
    ("unknown topic", "topics"),
    ("give at least one", "topics"),
    ("query", "queries"),
)


def field_of(message: str) -> str:
    """The form field a validation message is about, so the page shows it next to that
    field (`other` when it names none)."""
    return next((name for start, name in FIELD_OF_MESSAGE if message.startswith(start)), "other")
