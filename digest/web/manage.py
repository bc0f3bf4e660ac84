"""The preferences page behind a subscriber's manage link: show it (GET), and one handler per
action its forms POST (save, pause, resume, delete my data)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from digest import subscribers as subs
from digest.models import Subscriber, SubscriberStatus
from digest.web import feedback, replies
from digest.web.forms import csrf_for, csrf_ok, field, read_preferences
from digest.web.preview import preview_of
from digest.web.state import Web

KEPT = ("min_upvotes", "recommend")  # not fields of the form's preferences


@dataclass(frozen=True)
class Posted:
    """A manage form sent by the link's owner: who, their link, their CSRF token, the form."""

    sub: Subscriber
    token: str
    csrf: str
    form: FormData


async def show(web: Web, request: Request) -> Response:
    """GET: the subscriber's settings, with the CSRF cookie the forms need."""
    token: str = request.path_params["token"]
    sub = await web.subscriber_from("manage", token)
    csrf = csrf_for(request)
    if request.query_params.get("view") == "liked":
        return await feedback.liked_page(web, sub, token, csrf)
    return web.with_csrf(replies.manage(web, sub, token, csrf), csrf)


async def change(web: Web, request: Request) -> Response:
    """POST: the form's `action` picks the handler; an unknown or missing one saves."""
    token: str = request.path_params["token"]
    sub = await web.subscriber_from("manage", token)
    csrf = csrf_for(request)
    form = await request.form()
    if not csrf_ok(request, form):
        notice = "The form had expired; try again."
        return web.with_csrf(replies.manage(web, sub, token, csrf, 403, notice), csrf)
    action = ACTIONS.get(field(form, "action", "save"), save)
    return await action(web, Posted(sub, token, csrf, form))


async def save(web: Web, posted: Posted) -> Response:
    """New preferences: a 422 naming each field's fault, else saved."""
    wanted, errors = read_preferences(web.topics, posted.form, posted.sub)
    recommend = field(posted.form, "recommend").strip()
    count = recommend_count(recommend)
    if recommend and count is None:
        errors["recommend"] = f"recommendations: a whole number from 0 to {subs.MAX_RECOMMEND}"
    if errors:
        text = field(posted.form, "queries")
        return replies.manage(web, wanted, posted.token, posted.csrf, 422, errors=errors, text=text)
    changes = {k: getattr(wanted, k) for k in subs.EDITABLE if k not in KEPT}
    if count is not None:
        changes["recommend"] = count  # an empty box keeps the current count
    cause = "edited on the web"
    sub = await web.store.call(subs.edit, web.topics, posted.sub.email, changes, web.now(), cause)
    return replies.manage(web, sub, posted.token, posted.csrf, notice="Saved.")


def recommend_count(value: str) -> int | None:
    """The recommendations per email as typed, 0 to MAX_RECOMMEND; None for anything else."""
    valid = value.isascii() and value.isdigit() and len(value) <= 2
    return int(value) if valid and int(value) <= subs.MAX_RECOMMEND else None


def pause_weeks(value: str) -> int:
    """The weeks a pause lasts: 1 to 52 as typed, else the default of 2 (any text a client
    sends is an answer, never an exception)."""
    valid = value.isascii() and value.isdigit() and len(value) <= 2 and 1 <= int(value) <= 52
    return int(value) if valid else 2


async def pause(web: Web, posted: Posted) -> Response:
    """No emails for a few weeks; resumes by itself. Pausing a paused account changes nothing."""
    sub, count = posted.sub, pause_weeks(field(posted.form, "weeks", "2"))
    until = web.clock() + timedelta(weeks=count)
    if sub.status is SubscriberStatus.ACTIVE:
        cause = "paused on the web"
        paused = SubscriberStatus.PAUSED
        sub = await web.store.call(subs.set_status, sub.email, paused, web.now(), cause, until)
    notice = f"Paused for {count} weeks."
    return replies.manage(web, sub, posted.token, posted.csrf, notice=notice)


async def resume(web: Web, posted: Posted) -> Response:
    """Emails again from the next edition."""
    sub = posted.sub
    if sub.status is SubscriberStatus.PAUSED:
        cause = "resumed on the web"
        active = SubscriberStatus.ACTIVE
        sub = await web.store.call(subs.set_status, sub.email, active, web.now(), cause)
    return replies.manage(web, sub, posted.token, posted.csrf, notice="Emails resumed.")


async def preview(web: Web, posted: Posted) -> Response:
    """The Preview button without JavaScript: the form as sent (not saved), with what it
    would bring."""
    topics = [t for t in posted.form.getlist("topic") if isinstance(t, str)]
    queries = field(posted.form, "queries").splitlines()
    shown = await preview_of(web, topics, queries)
    wanted, _ = read_preferences(web.topics, posted.form, posted.sub)
    text = field(posted.form, "queries")
    return replies.manage(web, wanted, posted.token, posted.csrf, text=text, preview=shown)


async def delete(web: Web, posted: Posted) -> Response:
    """Erase the subscriber and their history, once the box is ticked."""
    sub = posted.sub
    if field(posted.form, "sure") != "yes":
        return replies.manage(web, sub, posted.token, posted.csrf, 422, "Tick the box to confirm.")
    await web.store.call(subs.erase, sub.email, web.now())
    return web.message(
        "Your data is deleted",
        f"{sub.email}, its settings and its history are erased. We keep only a one-way "
        "hash of the address so that it is not mailed again unless you subscribe anew.",
        link=replies.SUBSCRIBE_AGAIN,
    )


async def reading(web: Web, posted: Posted) -> Response:
    """The "What you like" list's forms: undo, seed, follow, unfollow (digest.web.feedback)."""
    return await feedback.act(web, posted.sub, posted.token, posted.csrf, posted.form)


ACTIONS: dict[str, Callable[[Web, Posted], Awaitable[Response]]] = {
    "undo": reading,
    "seed": reading,
    "follow": reading,
    "unfollow": reading,
    "save": save,
    "pause": pause,
    "resume": resume,
    "delete": delete,
    "preview": preview,
}
