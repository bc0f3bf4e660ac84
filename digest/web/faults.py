"""Errors mapped to pages once, as the app's exception handlers, so handlers raise and never
wrap: a bad link is the visitor's (400/410), a DigestError is ours (503), an unknown path a
404 page. They answer inside SecurityHeaders, so every one carries its headers; an unexpected
exception is answered by SecurityHeaders itself (Starlette's 500 is sent outside it)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Match

from digest.errors import DigestError, TokenError
from digest.web import replies
from digest.web.state import Web

log = logging.getLogger("digest.web")


async def token_refused(web: Web, request: Request, ex: Exception) -> Response:
    """A link's token that is forged, cut short, expired or for an erased address."""
    if not isinstance(ex, TokenError):
        raise ex
    return replies.bad_token(web, ex)


async def our_fault(web: Web, request: Request, ex: Exception) -> Response:
    """A DigestError in a route (a locked or unreadable database, a broken template) is our
    fault, not the visitor's: a 503 page that says so, and one log line with the detail (a
    file path or an address is for the operator, not the page)."""
    if not isinstance(ex, DigestError):
        raise ex
    log.error("%s %s: %s", request.method, request.url.path[:200], ex)
    return web.message(
        "Something went wrong",
        "Our fault, not yours. Please try again in a few minutes.",
        status=503,
    )


async def not_found_or_slash(
    web: Web, routes: Sequence[BaseRoute], request: Request, ex: Exception
) -> Response:
    """A 404 page, or a redirect to the same path with or without its trailing slash when
    that one exists. Starlette's own redirect builds an absolute Location from the Host
    header; ours is a path (relative to whatever host the browser used), and never `//...`."""
    if not isinstance(ex, HTTPException) or ex.status_code != 404:
        raise ex
    scope = request.scope
    path: str = scope["path"]
    other = path.rstrip("/") if path.endswith("/") else path + "/"
    if (
        path != "/"
        and other.startswith("/")
        # a Location of //host or /\host is another site to a browser: an open redirect
        and not other.startswith(("//", "/\\"))
        and any(route.matches({**scope, "path": other})[0] is not Match.NONE for route in routes)
    ):
        query: bytes = scope.get("query_string", b"")
        suffix = "?" + query.decode("ascii") if query and query.isascii() else ""
        return RedirectResponse(other + suffix, status_code=307)
    return web.message(
        "Page not found", "There is no page here.", status=404, link=replies.TO_THE_FORM
    )
