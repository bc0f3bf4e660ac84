"""The handlers of the signup and leave paths: subscribe, confirm, unsubscribe, come back.

Each takes the shared `Web` first (bound with functools.partial in create_app). A bad link
raises TokenError from `web.subscriber_from` and a store fault a DigestError: the app's
exception handlers answer both (digest.web.faults). Every store call goes through
`web.store.call`, off the event loop."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from digest import subscribers as subs
from digest.errors import SubscriberError, TokenError
from digest.models import Subscriber, SubscriberStatus
from digest.tokens import TokenExpired
from digest.web import replies
from digest.web.forms import csrf_for, csrf_ok, field, form_context, read_preferences
from digest.web.preview import preview_of
from digest.web.state import Web

ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"


async def subscribe(web: Web, request: Request) -> Response:
    """The form sent: a 422 naming each field's fault, else the same "check your inbox"
    answer for any address (the confirmation goes out after the response)."""
    form = await request.form()
    csrf = csrf_for(request)
    if not csrf_ok(request, form):
        return web.with_csrf(replies.form_expired(web), csrf)
    if field(form, "action") == "preview":
        return await preview_page(web, request, form, csrf)
    raw_email = field(form, "email").strip()
    errors: dict[str, str] = {}
    try:
        email = subs.normalize_email(raw_email)
    except SubscriberError:
        email = raw_email
        errors["email"] = "This does not look like an email address."
    sub, more = read_preferences(web.topics, form, Subscriber(email=email))
    errors.update(more)
    if errors:
        context = form_context(web.topics, sub, errors, field(form, "queries"))
        response = web.page(
            "subscribe",
            422,
            title="Subscribe",
            csrf=csrf,
            email=raw_email,
            preview=None,
            **context,
        )
        return web.with_csrf(response, csrf)
    # Only a valid form counts against the limit: an invalid one mails nobody.
    per_ip = web.config.web.signups_per_ip_per_hour
    if not web.limits.allow(f"ip:{web.client_ip(request)}", per_ip, 3600.0):
        return web.message(
            "Too many attempts", "Please wait a while before trying again.", status=429
        )
    sub, send = await web.store.call(subs.signup, web.topics, sub, web.now())
    response = replies.check_inbox(web, sub.email)
    if send:
        web.confirm_later(response, sub)
    return response


async def preview_page(web: Web, request: Request, form: FormData, csrf: str) -> Response:
    """The Preview button without JavaScript: the form as sent, with what it would bring."""
    topics = [t for t in form.getlist("topic") if isinstance(t, str)]
    queries = field(form, "queries").splitlines()
    shown = await preview_of(web, topics, queries)
    sub, _ = read_preferences(web.topics, form, Subscriber(email=""))
    context = form_context(web.topics, sub, None, field(form, "queries"))
    email = field(form, "email").strip()
    response = web.page(
        "subscribe", title="Subscribe", csrf=csrf, email=email, preview=shown, **context
    )
    return web.with_csrf(response, csrf)


def _confirm_max_age(web: Web) -> int:
    return web.config.web.confirm_hours * 3600


async def confirm_page(web: Web, request: Request) -> Response:
    """A GET (or HEAD) never confirms: mail scanners open links. It shows a button."""
    token: str = request.path_params["token"]
    sub = await web.subscriber_from("confirm", token, _confirm_max_age(web))
    if sub.status in (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED):
        return replies.subscribed(web, sub)
    if sub.status is SubscriberStatus.UNSUBSCRIBED and not await web.store.call(
        subs.asked_to_come_back, sub.id or 0
    ):
        return replies.stale_confirmation(web)
    return web.message(
        "Confirm your subscription",
        f"Start sending {web.brand} to {sub.email}?",
        button={"action": f"/c/{token}", "label": "Confirm my subscription",
                "style": "primary", "fields": []},
    )  # fmt: skip


async def confirm(web: Web, request: Request) -> Response:
    """POST from the confirmation page: the owner's deliberate action."""
    sub = await web.subscriber_from("confirm", request.path_params["token"], _confirm_max_age(web))
    try:
        sub = await web.store.call(subs.confirm, sub.id or 0, web.now())
    except SubscriberError:
        return replies.stale_confirmation(web)
    return replies.subscribed(web, sub)


async def unsubscribe_page(web: Web, request: Request) -> Response:
    """A GET never unsubscribes: link scanners prefetch links."""
    token: str = request.path_params["token"]
    sub = await web.subscriber_from("unsubscribe", token)
    if sub.status is SubscriberStatus.UNSUBSCRIBED:
        return replies.unsubscribed(web, token, sub)
    return web.message(
        "Unsubscribe?",
        f"Stop all emails to {sub.email}?",
        button={"action": f"/u/{token}", "label": "Unsubscribe", "style": "danger",
                "fields": []},
    )  # fmt: skip


async def unsubscribe(web: Web, request: Request) -> Response:
    """POST: the page's button, or RFC 8058 one-click (answers 200 itself, no cookie)."""
    token: str = request.path_params["token"]
    # RFC 8058: the mail client POSTs exactly this body, with no cookie and no CSRF field;
    # the signed token in the URL is the whole proof, so no form check applies here.
    one_click = (await request.body()).strip() == ONE_CLICK_BODY
    try:
        sub = await web.subscriber_from("unsubscribe", token)
    except TokenError as ex:
        if not one_click:
            raise
        status = 410 if isinstance(ex, TokenExpired) else 400
        return PlainTextResponse(str(ex), status_code=status)  # for a mail client, not a page
    if sub.status is not SubscriberStatus.UNSUBSCRIBED:
        cause = "one-click unsubscribe" if one_click else "unsubscribe page"
        gone = SubscriberStatus.UNSUBSCRIBED
        await web.store.call(subs.set_status, sub.email, gone, web.now(), cause)
    if one_click:
        return PlainTextResponse("Unsubscribed.", status_code=200)
    return replies.unsubscribed(web, token, sub)


async def resubscribe(web: Web, request: Request) -> Response:
    """Coming back takes a new double opt-in: the unsubscribe token sits in every old
    email's headers, so it alone must never turn mail back on."""
    sub = await web.subscriber_from("unsubscribe", request.path_params["token"])
    response = replies.check_inbox(web, sub.email)
    if sub.status is SubscriberStatus.UNSUBSCRIBED:
        cause = "asked to come back from the unsubscribe page"
        sub = await web.store.call(subs.ask_to_come_back, sub, {}, web.now(), cause)
        web.confirm_later(response, sub)
    return response


async def css(web: Web, request: Request) -> Response:
    """The one stylesheet (the CSP allows styles from 'self' only)."""
    return Response(web.stylesheet, media_type="text/css")


async def script(web: Web, request: Request) -> Response:
    """The forms' live preview script (the CSP allows scripts from 'self' only)."""
    return Response(web.script, media_type="text/javascript")


async def health(web: Web, request: Request) -> Response:
    """For a load balancer or a monitor: the process answers (the database is not asked)."""
    return PlainTextResponse("ok")
