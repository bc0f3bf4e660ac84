"""The routes' shared state and handlers: subscribe, confirm, unsubscribe, preferences."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import Any
from zoneinfo import available_timezones

from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from digest import subscribers as subs
from digest.config import Config
from digest.errors import DigestError, QueryError, SubscriberError, TokenError
from digest.models import WEEKDAYS, Subscriber, Topic
from digest.pages import Pages
from digest.pipeline import send_confirmation
from digest.query import parse
from digest.render import Renderer
from digest.send import Transport
from digest.store import Store
from digest.tokens import TokenExpired, Tokens, subscriber_links
from digest.web.guard import RateLimiter

CSRF_COOKIE = "digest_csrf"
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/"))
Clock = Callable[[], datetime]


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

    def csrf_for(self, request: Request) -> str:
        return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)

    def with_csrf(self, response: Response, token: str) -> Response:
        secure = self.config.web.base_url.startswith("https://")
        response.set_cookie(
            CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/"
        )
        return response

    def csrf_ok(self, request: Request, form: FormData) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = str(form.get("csrf", ""))
        return bool(cookie) and secrets.compare_digest(cookie, sent)

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

    def form_context(
        self, sub: Subscriber, errors: dict[str, str] | None = None, queries_text: str = ""
    ) -> dict[str, Any]:
        return {
            "topics": list(self.topics.values()),
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

    def read_preferences(self, form: FormData, base: Subscriber) -> tuple[Subscriber, dict]:
        """The form's preferences over `base`; errors by field, each query checked with a caret."""
        errors: dict[str, str] = {}
        queries = [q.strip() for q in str(form.get("queries", "")).splitlines() if q.strip()]
        for query in queries:
            try:
                parse(query)
            except QueryError as ex:
                errors["queries"] = ex.caret()
                break

        def number(name: str, default: int) -> int:
            value = str(form.get(name, "")).strip()
            return int(value) if value.isascii() and value.isdigit() else default

        sub = Subscriber(
            email=base.email,
            id=base.id,
            status=base.status,
            queries=queries,
            topics=[str(t) for t in form.getlist("topic")],
            cadence=str(form.get("cadence", base.cadence)),
            weekday=str(form.get("weekday", base.weekday)),
            hour=number("hour", base.hour),
            tz=str(form.get("tz", base.tz)).strip() or "UTC",
            max_papers=number("max_papers", base.max_papers),
            min_upvotes=base.min_upvotes,
        )
        if not errors:
            try:
                subs.validate(sub, self.topics)
            except SubscriberError as ex:
                errors["other"] = str(ex).split(": ", 1)[-1]
        return sub, errors

    async def confirm_quietly(self, sub: Subscriber) -> None:
        """Sent after the response, so the page and its timing are the same whether or not
        an address is known; a failure is recorded on the subscriber, never shown."""
        try:
            await asyncio.wait_for(
                send_confirmation(
                    self.config, self.renderer, self.tokens, sub, self.clock(), self.transport
                ),
                self.config.smtp.timeout * 3,
            )
        except (DigestError, TimeoutError, OSError) as ex:
            self.db().record_event(
                sub.id or 0, sub.email, self.now(), "confirmation failed", str(ex)[:300]
            )

    # routes ---------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        csrf = self.csrf_for(request)
        blank = Subscriber(email="")
        response = self.page(
            "subscribe", title="Subscribe", csrf=csrf, email="", **self.form_context(blank)
        )
        return self.with_csrf(response, csrf)

    async def subscribe(self, request: Request) -> Response:
        form = await request.form()
        csrf = self.csrf_for(request)
        if not self.csrf_ok(request, form):
            return self.with_csrf(
                self.message("Please try again", "The form had expired. It has been reloaded.",
                             status=403, link={"href": "/", "label": "Back to the form"}),
                csrf,
            )  # fmt: skip
        raw_email = str(form.get("email", "")).strip()
        errors: dict[str, str] = {}
        try:
            email = subs.normalize_email(raw_email)
        except SubscriberError:
            email = raw_email
            errors["email"] = "This does not look like an email address."
        sub, more = self.read_preferences(form, Subscriber(email=email))
        errors.update(more)
        if errors:
            queries_text = str(form.get("queries", ""))
            context = self.form_context(sub, errors, queries_text)
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

    async def confirm(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            sub = self.subscriber_from("confirm", token, self.config.web.confirm_hours * 3600)
        except TokenError as ex:
            return self.bad_token(ex)
        sub = subs.confirm(self.db(), sub.id or 0, self.now())
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
            sub = self.db().update_subscriber(
                sub.id or 0, {"status": "pending"}, self.now(), "pending", "asked to come back"
            )
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
        csrf = self.csrf_for(request)
        if request.method == "GET":
            return self.with_csrf(self.manage_page(sub, token, csrf), csrf)
        form = await request.form()
        if not self.csrf_ok(request, form):
            return self.with_csrf(self.manage_page(sub, token, csrf, status=403,
                                                   notice="The form had expired; try again."),
                                  csrf)  # fmt: skip
        action = str(form.get("action", "save"))
        store, now = self.db(), self.now()
        if action == "delete":
            if form.get("sure") != "yes":
                return self.manage_page(sub, token, csrf, 422, "Tick the box to confirm.")
            subs.erase(store, sub.email, now)
            return self.message(
                "Your data is deleted",
                f"{sub.email}, its settings and its history are erased. We keep only a one-way "
                "hash of the address so that it is not mailed again unless you subscribe anew.",
                link={"href": "/", "label": "Subscribe again"},
            )
        if action == "pause":
            weeks = str(form.get("weeks", "2"))
            valid = weeks.isascii() and weeks.isdigit() and 1 <= int(weeks) <= 52
            count = int(weeks) if valid else 2
            until = (self.clock() + timedelta(weeks=count)).isoformat()
            if sub.status == "active":
                sub = subs.set_status(store, sub.email, "paused", now, "paused on the web", until)
            return self.manage_page(sub, token, csrf, notice=f"Paused for {count} weeks.")
        if action == "resume":
            if sub.status == "paused":
                sub = subs.set_status(store, sub.email, "active", now, "resumed on the web")
            return self.manage_page(sub, token, csrf, notice="Emails resumed.")
        wanted, errors = self.read_preferences(form, sub)
        if errors:
            context_text = str(form.get("queries", ""))
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
            **self.form_context(sub, errors, text),
        )

    async def css(self, request: Request) -> Response:
        return Response(self.stylesheet, media_type="text/css")

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok")
