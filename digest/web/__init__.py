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

import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import TYPE_CHECKING, NoReturn

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
log = logging.getLogger("digest.web")
if TYPE_CHECKING:
    import uvicorn  # imported when serving: other commands never load it


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


def serve(config: Config, topics: dict[str, Topic], host: str, port: int, workers: int = 1) -> None:
    """Run the app under uvicorn until stopped (`digest serve`), in `workers` processes
    forked from this one after the app is built (they share its loaded templates and code
    pages, and one listening socket); each keeps its own caches and rate limits."""
    import gc

    import uvicorn

    app = create_app(config, topics)
    settings = uvicorn.Config(
        app,
        host=host,
        port=port,
        proxy_headers=config.web.trust_forwarded,
        forwarded_allow_ips="*" if config.web.trust_forwarded else None,
        server_header=False,
        log_level="info",
    )
    # what is loaded by now (modules, templates, config) lives as long as the process: out
    # of the collector's sight, a full collection no longer walks it (it took ~100 ms on a
    # busy 2-core machine, a stall every few seconds under load)
    gc.collect()
    gc.freeze()
    # a full collection walks every window's index and cache (100-500 ms under load): at
    # most one per 1,000 young collections, not one per 10 (see listing.settle_heap)
    gc.set_threshold(700, 10, 1000)
    if workers <= 1:
        server = uvicorn.Server(settings)
        server.run()
        if not server.started:  # as uvicorn.run: the port taken, the app's startup failed
            raise SystemExit(3)
        return
    _supervise(settings, settings.bind_socket(), workers)


def _worker(settings: uvicorn.Config, sock: socket.socket) -> NoReturn:
    """A forked worker: uvicorn on the shared socket until SIGTERM; exit 3 if it never
    started (the supervisor then stops rather than fork again and again)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    import uvicorn

    server = uvicorn.Server(settings)
    try:
        server.run(sockets=[sock])
    finally:
        os._exit(0 if server.started else 3)


def _supervise(settings: uvicorn.Config, sock: socket.socket, workers: int) -> None:
    """Fork `workers` workers, start another when one dies, and pass SIGTERM/SIGINT on."""
    children: set[int] = set()
    stopping = False

    def fork() -> None:
        pid = os.fork()
        if pid == 0:
            _worker(settings, sock)
        children.add(pid)

    def stop(sig: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    for _ in range(workers):
        fork()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while children:
        pid, status = os.wait()
        children.discard(pid)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3:
            stop(signal.SIGTERM, None)  # a worker could not start: neither will another
        elif not stopping:
            log.error("web worker %d ended (status %d): starting another", pid, status)
            time.sleep(1.0)  # a worker dying at once must not become a busy loop of forks
            fork()
    sock.close()


__all__ = ["BODY_LIMIT", "create_app", "serve"]
