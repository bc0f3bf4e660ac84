"""What every handler shares: config, tokens, pages, rate limits, and the one thread that owns
the web app's database connection. No routes here, and no SQLite call on the event loop."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parseaddr
from functools import partial
from typing import Any, ParamSpec, TypeVar

from markupsafe import Markup
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from digest import subscribers as subs
from digest.config import Config
from digest.errors import TokenError
from digest.models import Subscriber, Topic
from digest.pages import Pages
from digest.pipeline import send_confirmation
from digest.render import Renderer
from digest.send import Transport
from digest.sources.http import fetch_small
from digest.store import Store
from digest.tokens import Tokens
from digest.web.cards import CardPrinter
from digest.web.forms import CSRF_COOKIE
from digest.web.guard import RateLimiter
from digest.web.listing import Listings
from digest.web.store_thread import StoreThread

Clock = Callable[[], datetime]
Fetch = Callable[[str], bytes]  # a GET of a small document, run in a worker thread
P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger("digest.web")


class Web:
    """The handlers' shared state: config, store, renderer, pages, tokens, transport."""

    def __init__(
        self,
        config: Config,
        topics: dict[str, Topic],
        transport: Transport | None = None,
        clock: Clock | None = None,
        fetch: Fetch | None = None,
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
        self.store = StoreThread(config.database.path)
        # the pages' reads have a connection and thread of their own: a write waiting for
        # the daily job's lock (a signup, an unsubscribe) never holds up a page
        self.reader = StoreThread(config.database.path)
        self.fragments: dict[str, Markup] = {}  # parts of pages the same for everyone
        self.salt = secrets.token_hex(8)  # in every ETag: a new server's pages are new
        self.stylesheet = self.pages.stylesheet()
        self.script = self.pages.script()
        self.listings = Listings(topics)
        self._cards: CardPrinter | None = None
        self.confirmations_failed = 0
        self.fetch = fetch or partial(fetch_small, user_agent=config.collect.user_agent)
        self.certificates: dict[str, bytes] = {}
        self.webhooks: Counter[str] = Counter()  # answers per "provider status"

    @property
    def cards(self) -> CardPrinter:
        """The web card template as frames (made at first use, like every page's template).

        Raises:
            RenderError: the template is missing or broken.
        """
        if self._cards is None:
            self._cards = CardPrinter(self.pages)
        return self._cards

    def sns_certificate(self, url: str) -> bytes:
        """SNS's signing certificate at `url` (checked on the SNS host by the caller), fetched
        once per process: SNS signs with one certificate for months. Called in a thread."""
        pem = self.certificates.get(url)
        if pem is None:
            pem = self.fetch(url)
            if len(self.certificates) >= 16:
                self.certificates.clear()
            self.certificates[url] = pem
        return pem

    def now(self) -> datetime:
        """The injected clock's time (what the store records)."""
        return self.clock()

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        """The page templates/web/<name>.html.j2 as a response."""
        return HTMLResponse(self.pages.render(name, **context), status_code=status)

    def message(self, title: str, *lines: str, status: int = 200, **extra: Any) -> HTMLResponse:
        """A page of a title, a few lines, and optionally a button (a POST) or a link."""
        context = {"button": None, "link": None, "csrf": "", **extra}
        return self.page("message", status, title=title, lines=list(lines), **context)

    def client_ip(self, request: Request) -> str:
        """The address rate limits count: the hop our own proxy appended, if we trust one."""
        if self.config.web.trust_forwarded:
            forwarded = request.headers.get("x-forwarded-for", "")
            if forwarded:
                # the rightmost entry is the one our own proxy appended; the rest is the client's
                return forwarded.split(",")[-1].strip()
        return request.client.host if request.client else "unknown"

    def with_csrf(self, response: Response, token: str) -> Response:
        """The response with the CSRF cookie its form's hidden field must match."""
        secure = self.config.web.base_url.startswith("https://")
        response.set_cookie(
            CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/"
        )
        return response

    async def subscriber_from(
        self, purpose: str, token: str, max_age: int | None = None
    ) -> Subscriber:
        """The subscriber a link's token is for. Every handler of a token link starts here;
        the app answers the TokenError with the bad-link page (digest.web.faults).

        Raises:
            TokenError: forged, cut short, for another purpose, expired (TokenExpired), or
                for an address that was erased or changed since.
        """
        claims = self.tokens.read(purpose, token, max_age)
        sub = await self.store.call(Store.get_subscriber, claims.subscriber_id)
        if sub is None or not claims.is_for(sub.email):
            raise TokenError(f"this {purpose} link is not valid any more")
        return sub

    def confirm_later(self, response: Response, sub: Subscriber) -> None:
        """Send the confirmation email after `response`, unless this address has had its
        share today (a form anyone can submit must not become a way to mail someone)."""
        per_address = self.config.web.confirmations_per_address_per_day
        if self.limits.allow(f"address:{sub.email.lower()}", per_address, 86400.0):
            response.background = BackgroundTask(self.confirm_quietly, sub)

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
                await self.store.call(
                    Store.record_event,
                    sub.id or 0,
                    sub.email,
                    self.now(),
                    "confirmation failed",
                    reason,
                )
            except Exception as store_ex:
                log.error("confirmation failure for %s not recorded: %s", sub.email, store_ex)
