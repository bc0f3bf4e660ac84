"""The pages more than one handler answers with: what a visitor reads after each step, and the
refusals (a bad link, a stale confirmation, an expired form). Plain values in, a response
out; no store, no request."""

from __future__ import annotations

from typing import Any

from starlette.responses import HTMLResponse

from digest.errors import TokenError
from digest.models import Subscriber
from digest.tokens import TokenExpired, subscriber_links
from digest.web.forms import form_context
from digest.web.state import Web

SUBSCRIBE_AGAIN = {"href": "/", "label": "Subscribe again"}
TO_THE_FORM = {"href": "/", "label": "Go to the subscribe page"}


def bad_token(web: Web, ex: TokenError) -> HTMLResponse:
    """An expired link (410) says how to get a new one; any other bad link (400) says to
    copy the whole link. Neither says whether the address is known."""
    if isinstance(ex, TokenExpired):
        return web.message(
            "This link has expired",
            f"{str(ex).capitalize()}. You can ask for a new one by subscribing again.",
            status=410,
            link=SUBSCRIBE_AGAIN,
        )
    return web.message(
        "This link does not work",
        "It may have been cut short or mistyped: copy the whole link from the email.",
        status=400,
        link=TO_THE_FORM,
    )


def check_inbox(web: Web, address: str) -> HTMLResponse:
    """The same answer whether or not the address is known, so the form tells no one."""
    return web.message(
        "Check your inbox",
        f"If {address} can receive mail, a confirmation link is on its way. "
        "Nothing is sent until it is clicked.",
        f"The link works for {web.config.web.confirm_hours} hours.",
    )


def stale_confirmation(web: Web) -> HTMLResponse:
    """A confirmation link from before an unsubscribe must not undo it (410)."""
    return web.message(
        "This link does not work any more",
        "The address was unsubscribed after this link was sent. To come back, subscribe "
        "again and confirm with the new link.",
        status=410,
        link=SUBSCRIBE_AGAIN,
    )


def subscribed(web: Web, sub: Subscriber) -> HTMLResponse:
    """What the subscriber will get and when, with the link to change it."""
    links = subscriber_links(web.tokens, web.config.web.base_url, sub.id or 0, sub.email)
    interests = [web.topics[t].title for t in sub.topics if t in web.topics] + sub.queries
    when = f"every {sub.weekday}" if sub.cadence == "weekly" else "every day"
    return web.message(
        "You are subscribed",
        f"{sub.email} will get {when} at {sub.hour:02d}:00 ({sub.tz}) the new papers on: "
        + "; ".join(interests)
        + ".",
        "Each email has a link to change these settings or to unsubscribe.",
        link={"href": links["manage"], "label": "Change settings"},
    )


def unsubscribed(web: Web, token: str, sub: Subscriber) -> HTMLResponse:
    """Done, with a way back for a click made by mistake (a new double opt-in)."""
    return web.message(
        "You are unsubscribed",
        f"{sub.email} will get no more emails from us.",
        "Clicked by mistake?",
        button={"action": f"/r/{token}", "label": "Subscribe again", "style": "secondary",
                "fields": []},
    )  # fmt: skip


def form_expired(web: Web) -> HTMLResponse:
    """The subscribe form's CSRF check failed (an old tab, or another site posting)."""
    return web.message(
        "Please try again",
        "The form had expired. It has been reloaded.",
        status=403,
        link={"href": "/", "label": "Back to the form"},
    )


def manage(
    web: Web,
    sub: Subscriber,
    token: str,
    csrf: str,
    status: int = 200,
    notice: str = "",
    errors: dict[str, str] | None = None,
    text: str = "",
    preview: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The preferences page for `sub`, with a notice of what was just done or the errors
    of what was sent (`text` keeps the queries as typed), and a preview if one was asked
    for. An unsubscribed person is offered to subscribe again instead of pause/unsubscribe."""
    links = subscriber_links(web.tokens, web.config.web.base_url, sub.id or 0, sub.email)
    unsubscribe_token = links["unsubscribe"].rsplit("/", 1)[-1]
    return web.page(
        "manage",
        status,
        title="Your settings",
        csrf=csrf,
        notice=notice,
        email=sub.email,
        sub_status=sub.status,
        paused_until=f"{sub.paused_until:%Y-%m-%d}" if sub.paused_until else "",
        unsubscribe_url=links["unsubscribe"],
        resubscribe_action=f"/r/{unsubscribe_token}",
        feed_url=links["feed"],
        web_url=links["web"],
        preview=preview,
        recommend=sub.recommend,
        **form_context(web.topics, sub, errors, text),
    )
