"""The web app (Starlette): subscribe with double opt-in, confirm, unsubscribe (a page with a
button, and RFC 8058 one-click POST), preferences, delete my data.

Thin: every change goes through digest.subscribers and the store; emails through the renderer,
message builder and transport the daily job uses. No request reaches a 5xx of ours except a
real fault (then a plain 500 page with the same security headers, logged): forged, truncated
or wrong-purpose tokens get a 400 page, expired ones a 410 page, bodies over BODY_LIMIT a 413.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from digest.config import Config
from digest.errors import DigestError
from digest.models import Topic
from digest.send import Transport
from digest.web.guard import SecurityHeaders
from digest.web.routes import Clock, Web

log = logging.getLogger("digest.web")
BODY_LIMIT = 64 * 1024  # the largest honest form (20 queries of 200 characters) is ~5 KB


def _guard(web: Web, handler: Callable[[Request], Awaitable[Response]]) -> Callable:
    """A DigestError in a route (a locked or unreadable database, a broken template) is our
    fault, not the visitor's: a 503 page that says so, and one log line with the detail (a
    file path or an address is for the operator, not the page)."""

    async def route(request: Request) -> Response:
        try:
            return await handler(request)
        except DigestError as ex:
            log.error("%s %s: %s", request.method, request.url.path[:200], ex)
            return web.message(
                "Something went wrong",
                "Our fault, not yours. Please try again in a few minutes.",
                status=503,
            )

    return route


def _not_found_or_slash(web: Web, routes: list[Route]) -> ASGIApp:
    """Starlette's own trailing-slash redirect builds an absolute Location from the Host
    header; ours is a path (relative to whatever host the browser used), and never `//...`."""

    async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        response: Response
        if (
            path != "/"
            and other.startswith("/")
            and not other.startswith(("//", "/\\"))
            and any(
                route.matches({**scope, "path": other})[0] is not Match.NONE for route in routes
            )
        ):
            query = scope.get("query_string", b"")
            suffix = "?" + query.decode("ascii") if query and query.isascii() else ""
            response = RedirectResponse(other + suffix, status_code=307)
        else:
            link = {"href": "/", "label": "Go to the subscribe page"}
            response = web.message("Page not found", "There is no page here.", status=404,
                                   link=link)  # fmt: skip
        await response(scope, receive, send)

    return fallback


def create_app(
    config: Config,
    topics: dict[str, Topic],
    transport: Transport | None = None,
    clock: Clock | None = None,
) -> Starlette:
    web = Web(config, topics, transport, clock)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if web.store is not None:
            web.store.close()

    def post(path: str, handler: Callable[[Request], Awaitable[Response]]) -> Route:
        # per route, so a 413 is answered inside SecurityHeaders and carries its headers
        return Route(path, _guard(web, handler), methods=["POST"], max_body_size=BODY_LIMIT)

    routes = [
        Route("/", _guard(web, web.home), methods=["GET"]),
        post("/subscribe", web.subscribe),
        Route("/subscribe", lambda r: RedirectResponse("/", 303), methods=["GET"]),
        Route("/c/{token}", _guard(web, web.confirm_page), methods=["GET"]),
        post("/c/{token}", web.confirm),
        Route("/u/{token}", _guard(web, web.unsubscribe_page), methods=["GET"]),
        post("/u/{token}", web.unsubscribe),
        post("/r/{token}", web.resubscribe),
        Route("/manage/{token}", _guard(web, web.manage), methods=["GET"]),
        post("/manage/{token}", web.manage),
        Route("/static/web.css", web.css, methods=["GET"]),
        Route("/healthz", web.health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)], lifespan=lifespan)
    app.router.redirect_slashes = False
    app.router.default = _not_found_or_slash(web, routes)
    app.state.web = web
    return app


def serve(config: Config, topics: dict[str, Topic], host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        create_app(config, topics),
        host=host,
        port=port,
        proxy_headers=config.web.trust_forwarded,
        forwarded_allow_ips="*" if config.web.trust_forwarded else None,
        server_header=False,
        log_level="info",
    )


__all__ = ["BODY_LIMIT", "create_app", "serve"]
