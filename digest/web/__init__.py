"""The web app (Starlette): the web edition (today's papers, a day, a week, searchable), the
live preview of a filter, subscribe with double opt-in, confirm, unsubscribe (a page with a
button, and RFC 8058 one-click POST), preferences, delete my data, and behind signed links
each email as a page and a personal Atom feed; and the bounce and complaint webhooks of
SES (through SNS), Postmark and Mailgun (digest.web.hooks).

Thin: every change goes through digest.subscribers and the store, in the store's own thread
(digest.web.state); emails through the renderer, message builder and transport the daily job
uses. No request reaches a 5xx of ours except a real fault (then a plain 500 page with the
same security headers, logged): forged, truncated or wrong-purpose tokens get a 400 page,
expired ones a 410 page, a database fault a 503, bodies over BODY_LIMIT a 413.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from digest.bounces.webhooks import MAX_BODY
from digest.config import Config
from digest.errors import DigestError, TokenError
from digest.models import Topic
from digest.send import Transport
from digest.web import browse, faults, feedback, hooks, manage, preview, routes, views
from digest.web.guard import SecurityHeaders
from digest.web.state import Clock, Fetch, Web

BODY_LIMIT = 64 * 1024  # the largest honest form (20 queries of 200 characters) is ~5 KB
Handler = Callable[[Web, Request], Awaitable[Response]]


def _routes(web: Web) -> list[BaseRoute]:
    def get(path: str, handler: Handler) -> Route:
        return Route(path, partial(handler, web), methods=["GET"])

    def post(path: str, handler: Handler) -> Route:
        # the limit per route, so a 413 is answered inside SecurityHeaders and carries its headers
        return Route(path, partial(handler, web), methods=["POST"], max_body_size=BODY_LIMIT)

    def hook(path: str, handler: Handler) -> Route:
        return Route(path, partial(handler, web), methods=["POST"], max_body_size=MAX_BODY)

    return [
        get("/", browse.home),
        get("/d/{day}", browse.day),
        get("/week/{week}", browse.week),
        get("/preview.json", preview.endpoint),
        get("/w/{token}", views.email_page),
        get("/w/{token}/{edition}", views.email_page),
        get("/f/{token}", views.feed),
        post("/subscribe", routes.subscribe),
        Route("/subscribe", lambda r: RedirectResponse("/", 303), methods=["GET"]),
        get("/c/{token}", routes.confirm_page),
        post("/c/{token}", routes.confirm),
        get("/u/{token}", routes.unsubscribe_page),
        post("/u/{token}", routes.unsubscribe),
        post("/r/{token}", routes.resubscribe),
        get("/fb/{kind}/{token}", feedback.feedback_page),
        post("/fb/{kind}/{token}", feedback.feedback),
        get("/manage/{token}", manage.show),
        post("/manage/{token}", manage.change),
        get("/static/web.css", routes.css),
        get("/static/preview.js", routes.script),
        get("/healthz", routes.health),
        hook("/hooks/ses", hooks.ses),
        hook("/hooks/postmark", hooks.postmark),
        hook("/hooks/mailgun", hooks.mailgun),
    ]


def create_app(
    config: Config,
    topics: dict[str, Topic],
    transport: Transport | None = None,
    clock: Clock | None = None,
    fetch: Fetch | None = None,
) -> Starlette:
    """The app `digest serve` runs; tests pass a transport (the outbox, a local SMTP server),
    a clock, and the GET the SES webhook fetches SNS's certificate and SubscribeURL with.

    Raises:
        TokenError: no usable secret to sign links with.
        RenderError: the web templates cannot be found.
    """
    web = Web(config, topics, transport, clock, fetch)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await web.store.aclose()
        await web.reader.aclose()
        web.listings.close()

    table = _routes(web)
    app = Starlette(
        routes=table,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={
            TokenError: partial(faults.token_refused, web),
            DigestError: partial(faults.our_fault, web),
            404: partial(faults.not_found_or_slash, web, table),
        },
        lifespan=lifespan,
    )
    # Starlette's slash redirect builds its Location from the Host header; the 404 handler
    # (faults.not_found_or_slash) redirects with a path instead.
    app.router.redirect_slashes = False
    app.state.web = web
    return app


def serve(config: Config, topics: dict[str, Topic], host: str, port: int) -> None:
    """Run the app under uvicorn until stopped (`digest serve`)."""
    import gc

    import uvicorn

    app = create_app(config, topics)
    # what is loaded by now (modules, templates, config) lives as long as the process: out
    # of the collector's sight, a full collection no longer walks it (it took ~100 ms on a
    # busy 2-core machine, a stall every few seconds under load)
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=config.web.trust_forwarded,
        forwarded_allow_ips="*" if config.web.trust_forwarded else None,
        server_header=False,
        log_level="info",
    )


__all__ = ["BODY_LIMIT", "create_app", "serve"]
