"""The routes' shared state and handlers: subscribe, confirm, unsubscribe, preferences."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from digest import subscribers as subs
from digest.config import Config
from digest.errors import SubscriberError, TokenError
from digest.models import Subscriber, Topic
from digest.pages import Pages
from digest.pipeline import send_confirmation
from digest.render import Renderer
from digest.send import Transport
from digest.store import Store
from digest.tokens import TokenExpired, Tokens, subscriber_links
from digest.web.forms import CSRF_COOKIE, csrf_for, csrf_ok, field, form_context, read_preferences
from digest.web.guard import RateLimiter

ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
Clock = Callable[[], datetime]
log = logging.getLogger("digest.web")


class Web:
    """The routes' shared state: config, store, renderer, pages, tokens, transport."""

    def __init__(
        self,
        config: Config,
        topics: dict[str, Topic],
        transport: Transport | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.topics = topics
        self.clock = clock or (lambda: datetime.now(UTC))
        self.tokens = Tokens(config.secret, config.old_secrets)
        self.renderer = Renderer(config, topics)
        self.brand = parseaddr(config.mail.from_)[0] or "Paper Digest"
        self.pages = Pages(config, self.brand)
        self.transport = transport
        self.limits = RateLimiter()
        self.store: Store | None = None
        self.stylesheet = self.pages.stylesheet()
        self.confirmations_failed = 0

    # plumbing -------------------------------------------------------------------

    def db(self) -> Store:
        if self.store is None:
            self.store = Store(self.config.database.path)
        return self.store

    def now(self) -> str:
        return self.clock().isoformat()

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.pages.render(name, **context), status_code=status)

    def message(self, title: str, *lines: str, status: int = 200, **extra: Any) -> HTMLResponse:
        context = {"button": None, "link": None, "csrf": "", **extra}
        return self.page("message", status, title=title, lines=list(lines), **context)

    def client_ip(self, request: Request) -> str:
        if self.config.web.trust_forwarded:
            forwarded = request.headers.get("x-forwarded-for", "")
            if forwarded:
                # the rightmost entry is the one our own proxy appended; the rest is the client's
                return forwarded.split(",")[-1].strip()
        return request.client.host if request.client else "unknown"

    def with_csrf(self, response: Response, token: str) -> Response:
        secure = self.config.web.base_url.startswith("https://")
        response.set_cookie(
            CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/"
        )
        return response

    def bad_token(self, ex: TokenError) -> HTMLResponse:
        if isinstance(ex, TokenExpired):
            return self.message(
                "This link has expired",
                f"{str(ex).capitalize()}. You can ask for a new one by subscribing again.",
                status=410,
                link={"href": "/", "label": "Subscribe again"},
            )
        return self.message(
            "This link does not work",
            "It may have been cut short or mistyped: copy the whole link from the email.",
            status=400,
            link={"href": "/", "label": "Go to the subscribe page"},
        )

    def subscriber_from(self, purpose: str, token: str, max_age: int | None = None) -> Subscriber:
        claims = self.tokens.read(purpose, token, max_age)
        sub = self.db().get_subscriber(claims.subscriber_id)
        if sub is None or not claims.is_for(sub.email):
            raise TokenError(f"this {purpose} link is not valid any more")
        return sub

    async def confirm_quietly(self, sub: Subscriber) -> None:
        """Sent after the response, so the page and its timing are the same whether or not
        an address is known. Any failure (a refused address, a message that cannot be built
        for it, a dead relay) is counted, logged in one line and recorded on the subscriber;
        it is never shown, and never escapes into the server."""
        shown = subs.for_confirmation(sub)  # topic names and a count: never the queries' text
        try:
            await asyncio.wait_for(
                send_confirmation(
                    self.config, self.renderer, self.tokens, shown, self.clock(), self.transport
                ),
                self.config.smtp.timeout * 3,
            )
        except Exception as ex:  # isolation: one address costs one email, never the server
            self.confirmations_failed += 1
            reason = f"{type(ex).__name__}: {ex}"[:300]
            log.warning("confirmation to %s failed: %s", sub.email, reason)
            try:
                self.db().record_event(
                    sub.id or 0, sub.email, self.now(), "confirmation failed", reason
                )
            except Exception as store_ex:
                log.error("confirmation failure for %s not recorded: %s", sub.email, store_ex)

    # routes ---------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        csrf = csrf_for(request)
        blank = Subscriber(email="")
        response = self.page(
            "subscribe", title="Subscribe", csrf=csrf, email="", **form_context(self.topics, blank)
        )
        return self.with_csrf(response, csrf)

    async def subscribe(self, request: Request) -> Response:
        form = await request.form()
        csrf = csrf_for(request)
        if not csrf_ok(request, form):
            return self.with_csrf(
                self.message("Please try again", "The form had expired. It has been reloaded.",
                             status=403, link={"href": "/", "label": "Back to the form"}),
                csrf,
            )  # fmt: skip
        raw_email = field(form, "email").strip()
        errors: dict[str, str] = {}
        try:
            email = subs.normalize_email(raw_email)
        except SubscriberError:
            email = raw_email
            errors["email"] = "This does not look like an email address."
        sub, more = read_preferences(self.topics, form, Subscriber(email=email))
        errors.update(more)
        if errors:
            queries_text = field(form, "queries")
            context = form_context(self.topics, sub, errors, queries_text)
            response = self.page(
                "subscribe", 422, title="Subscribe", csrf=csrf, email=raw_email, **context
            )
            return self.with_csrf(response, csrf)
        window = 3600.0
        per_ip = self.config.web.signups_per_ip_per_hour
        if not self.limits.allow(f"ip:{self.client_ip(request)}", per_ip, window):
            return self.message(
                "Too many attempts", "Please wait a while before trying again.", status=429
            )
        store = self.db()
        sub, send = subs.signup(store, self.topics, sub, self.now())
        per_address = self.config.web.confirmations_per_address_per_day
        response = self.check_inbox(sub.email)
        if send and self.limits.allow(f"address:{sub.email.lower()}", per_address, 86400.0):
            response.background = BackgroundTask(self.confirm_quietly, sub)
        return response

    def check_inbox(self, address: str) -> HTMLResponse:
        return self.message(
            "Check your inbox",
            f"If {address} can receive mail, a confirmation link is on its way. "
            "Nothing is sent until it is clicked.",
            f"The link works for {self.config.web.confirm_hours} hours.",
        )

    async def confirm_page(self, request: Request) -> Response:
        """A GET (or HEAD) never confirms: mail scanners open links. It shows a button."""
        token = request.path_params["token"]
        try:
            sub = self.subscriber_from("confirm", token, self.config.web.confirm_hours * 3600)
        except TokenError as ex:
            return self.bad_token(ex)
        if sub.status in ("active", "paused"):
            return self.subscribed_page(sub)
        if sub.status == "unsubscribed" and not subs.asked_to_come_back(self.db(), sub.id or 0):
            return self.stale_confirmation()
        return self.message(
            "Confirm your subscription",
            f"Start sending {self.brand} to {sub.email}?",
            button={"action": f"/c/{token}", "label": "Confirm my subscription",
                    "style": "primary", "fields": []},
        )  # fmt: skip

    async def confirm(self, request: Request) -> Response:
        """POST from the confirmation page: the owner's deliberate action."""
        token = request.path_params["token"]
        try:
            sub = self.subscriber_from("confirm", token, self.config.web.confirm_hours * 3600)
        except TokenError as ex:
            return self.bad_token(ex)
        try:
            sub = subs.confirm(self.db(), sub.id or 0, self.now())
        except SubscriberError:
            return self.stale_confirmation()
        return self.subscribed_page(sub)

    def stale_confirmation(self) -> HTMLResponse:
        return self.message(
            "This link does not work any more",
            "The address was unsubscribed after this link was sent. To come back, subscribe "
            "again and confirm with the new link.",
            status=410,
            link={"href": "/", "label": "Subscribe again"},
        )

    def subscribed_page(self, sub: Subscriber) -> HTMLResponse:
        links = subscriber_links(self.tokens, self.config.web.base_url, sub.id or 0, sub.email)
        interests = [self.topics[t].title for t in sub.topics if t in self.topics] + sub.queries
        when = f"every {sub.weekday}" if sub.cadence == "weekly" else "every day"
        return self.message(
            "You are subscribed",
            f"{sub.email} will get {when} at {sub.hour:02d}:00 ({sub.tz}) the new papers on: "
            + "; ".join(interests)
            + ".",
            "Each email has a link to change these settings or to unsubscribe.",
            link={"href": links["manage"], "label": "Change settings"},
        )

    async def unsubscribe_page(self, request: Request) -> Response:
        """A GET never unsubscribes: link scanners prefetch links."""
        token = request.path_params["token"]
        try:
            sub = self.subscriber_from("unsubscribe", token)
        except TokenError as ex:
            return self.bad_token(ex)
        if sub.status == "unsubscribed":
            return self.unsubscribed_page(token, sub)
        return self.message(
            "Unsubscribe?",
            f"Stop all emails to {sub.email}?",
            button={"action": f"/u/{token}", "label": "Unsubscribe", "style": "danger",
                    "fields": []},
        )  # fmt: skip

    def unsubscribed_page(self, token: str, sub: Subscriber) -> HTMLResponse:
        return self.message(
            "You are unsubscribed",
            f"{sub.email} will get no more emails from us.",
            "Clicked by mistake?",
            button={"action": f"/r/{token}", "label": "Subscribe again", "style": "secondary",
                    "fields": []},
        )  # fmt: skip

    async def unsubscribe(self, request: Request) -> Response:
        """POST: the page's button, or RFC 8058 one-click (answers 200 itself, no cookie)."""
        token = request.path_params["token"]
        body = await request.body()
        one_click = body.strip() == ONE_CLICK_BODY
        try:
            sub = self.subscriber_from("unsubscribe", token)
        except TokenError as ex:
            if one_click:
                status = 410 if isinstance(ex, TokenExpired) else 400
                return PlainTextResponse(str(ex), status_code=status)
            return self.bad_token(ex)
        if sub.status != "unsubscribed":
            cause = "one-click unsubscribe" if one_click else "unsubscribe page"
            subs.set_status(self.db(), sub.email, "unsubscribed", self.now(), cause)
        if one_click:
            return PlainTextResponse("Unsubscribed.", status_code=200)
        return self.unsubscribed_page(token, sub)

    async def resubscribe(self, request: Request) -> Response:
        """Coming back takes a new double opt-in: the unsubscribe token sits in every old
        email's headers, so it alone must never turn mail back on."""
        token = request.path_params["token"]
        try:
            sub = self.subscriber_from("unsubscribe", token)
        except TokenError as ex:
            return self.bad_token(ex)
        response = self.check_inbox(sub.email)
        if sub.status == "unsubscribed":
            cause = "asked to come back from the unsubscribe page"
            sub = subs.ask_to_come_back(self.db(), sub, {}, self.now(), cause)
            per_address = self.config.web.confirmations_per_address_per_day
            if self.limits.allow(f"address:{sub.email.lower()}", per_address, 86400.0):
                response.background = BackgroundTask(self.confirm_quietly, sub)
        return response

    async def manage(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            sub = self.subscriber_from("manage", token)
        except TokenError as ex:
            return self.bad_token(ex)
        csrf = csrf_for(request)
        if request.method == "GET":
            return self.with_csrf(self.manage_page(sub, token, csrf), csrf)
        form = await request.form()
        if not csrf_ok(request, form):
            return self.with_csrf(self.manage_page(sub, token, csrf, status=403,
                                                   notice="The form had expired; try again."),
                                  csrf)  # fmt: skip
        action = field(form, "action", "save")
        store, now = self.db(), self.now()
        if action == "delete":
            if field(form, "sure") != "yes":
                return self.manage_page(sub, token, csrf, 422, "Tick the box to confirm.")
            subs.erase(store, sub.email, now)
            return self.message(
                "Your data is deleted",
                f"{sub.email}, its settings and its history are erased. We keep only a one-way "
                "hash of the address so that it is not mailed again unless you subscribe anew.",
                link={"href": "/", "label": "Subscribe again"},
            )
        if action == "pause":
            weeks = field(form, "weeks", "2")
            valid = (
                weeks.isascii() and weeks.isdigit() and len(weeks) <= 2 and 1 <= int(weeks) <= 52
            )
            count = int(weeks) if valid else 2
            until = (self.clock() + timedelta(weeks=count)).isoformat()
            if sub.status == "active":
                sub = subs.set_status(store, sub.email, "paused", now, "paused on the web", until)
            return self.manage_page(sub, token, csrf, notice=f"Paused for {count} weeks.")
        if action == "resume":
            if sub.status == "paused":
                sub = subs.set_status(store, sub.email, "active", now, "resumed on the web")
            return self.manage_page(sub, token, csrf, notice="Emails resumed.")
        wanted, errors = read_preferences(self.topics, form, sub)
        if errors:
            context_text = field(form, "queries")
            return self.manage_page(wanted, token, csrf, 422, errors=errors, text=context_text)
        changes = {k: getattr(wanted, k) for k in subs.EDITABLE if k != "min_upvotes"}
        sub = subs.edit(store, self.topics, sub.email, changes, now, "edited on the web")
        return self.manage_page(sub, token, csrf, notice="Saved.")

    def manage_page(
        self,
        sub: Subscriber,
        token: str,
        csrf: str,
        status: int = 200,
        notice: str = "",
        errors: dict[str, str] | None = None,
        text: str = "",
    ) -> HTMLResponse:
        links = subscriber_links(self.tokens, self.config.web.base_url, sub.id or 0, sub.email)
        return self.page(
            "manage",
            status,
            title="Your settings",
            csrf=csrf,
            notice=notice,
            email=sub.email,
            sub_status=sub.status,
            paused_until=(sub.paused_until or "")[:10],
            unsubscribe_url=links["unsubscribe"],
            **form_context(self.topics, sub, errors, text),
        )

    async def css(self, request: Request) -> Response:
        return Response(self.stylesheet, media_type="text/css")

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok")
