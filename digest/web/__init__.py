"""The web app (Starlette): subscribe with double opt-in, confirm, unsubscribe (a page with a
button, and RFC 8058 one-click POST), preferences, delete my data.

Thin: every change goes through digest.subscribers and the store; emails through the renderer,
message builder and transport the daily job uses. A token never reaches a 500: forged,
truncated or wrong-purpose tokens get a 400 page, expired ones a 410 page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from digest.config import Config
from digest.errors import DigestError
from digest.models import Topic
from digest.send import Transport
from digest.web.guard import SecurityHeaders
from digest.web.routes import Clock, Web


def _guard(web: Web, handler: Callable[[Request], Awaitable[Response]]) -> Callable:
    """A DigestError in a route becomes a clear page, never a 500 with a traceback."""

    async def route(request: Request) -> Response:
        try:
            return await handler(request)
        except DigestError as ex:
            return web.message("Something went wrong", str(ex), status=503)

    return route


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

    routes = [
        Route("/", _guard(web, web.home), methods=["GET"]),
        Route("/subscribe", _guard(web, web.subscribe), methods=["POST"]),
        Route("/subscribe", lambda r: RedirectResponse("/", 303), methods=["GET"]),
        Route("/c/{token}", _guard(web, web.confirm), methods=["GET"]),
        Route("/u/{token}", _guard(web, web.unsubscribe_page), methods=["GET"]),
        Route("/u/{token}", _guard(web, web.unsubscribe), methods=["POST"]),
        Route("/r/{token}", _guard(web, web.resubscribe), methods=["POST"]),
        Route("/manage/{token}", _guard(web, web.manage), methods=["GET", "POST"]),
        Route("/static/web.css", web.css, methods=["GET"]),
        Route("/healthz", web.health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)], lifespan=lifespan)
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


__all__ = ["create_app", "serve"]
