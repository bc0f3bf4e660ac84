""" "More like this" / "Less like this" behind signed links, and the preferences page's list of
what a reader liked and disliked (with Undo), their seeds and followed authors.

A GET only shows the paper and one button; the POST records (a link scanner that follows
every link in an email records nothing). Everything goes through the store's own thread:
parsing pasted seeds and finding similar papers never run on the event loop.
"""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from digest.errors import TokenError
from digest.models import Paper, Subscriber
from digest.plan import add_seeds, similar_papers
from digest.recommend.errors import RecommendError
from digest.render import safe_url
from digest.store import SignalKind, Store
from digest.tokens import subscriber_links
from digest.web.forms import field
from digest.web.state import Web

KINDS = {"more": SignalKind.MORE, "less": SignalKind.LESS}
LABELS = {"more": "More like this", "less": "Less like this"}
MAX_AUTHOR = 200


async def _claims(web: Web, request: Request) -> tuple[str, Subscriber, Paper]:
    """The link's kind, subscriber and paper, or TokenError (answered with the bad-link page)."""
    # The kind is in the path, not the signed token: one token serves both buttons.
    kind = request.path_params["kind"]
    if kind not in KINDS:
        raise TokenError("this feedback link is not valid")
    claims, paper_id = web.tokens.read_paper(request.path_params["token"])
    sub = await web.store.call(Store.get_subscriber, claims.subscriber_id)
    if sub is None or not claims.is_for(sub.email):
        raise TokenError("this feedback link is not valid any more")
    paper = await web.store.call(Store.get_paper, paper_id)
    if paper is None:
        raise TokenError("this feedback link names a paper we no longer have")
    return kind, sub, paper


async def feedback_page(web: Web, request: Request) -> Response:
    """GET: the paper and one button; nothing is recorded yet."""
    kind, _, paper = await _claims(web, request)
    token = request.path_params["token"]
    button = {
        "action": f"/fb/{kind}/{token}",
        "label": LABELS[kind],
        "fields": [],
        "style": "primary" if kind == "more" else "secondary",
    }
    return web.message(f"{LABELS[kind]}?", paper.title, button=button)


async def feedback(web: Web, request: Request) -> Response:
    """POST: record the opinion, then show the most similar papers of the last 7 days."""
    kind, sub, paper = await _claims(web, request)
    now = web.now()
    await web.store.call(Store.record_signals, sub.id or 0, [paper.id], KINDS[kind], now, "web")
    similar = await web.store.call(_similar, web, paper.id)
    links = subscriber_links(web.tokens, web.config.web.base_url, sub.id or 0, sub.email)
    return web.page(
        "feedback",
        title="Noted: " + LABELS[kind].lower(),
        paper=paper,
        kind=kind,
        similar=[(p.title, safe_url(p.link)) for p in similar],
        liked_url=links["manage"] + "?view=liked",
    )


def _similar(store: Store, web: Web, paper_id: str) -> list[Paper]:
    return similar_papers(web.config, store, web.clock(), paper_id)


async def liked_page(
    web: Web, sub: Subscriber, token: str, csrf: str, notice: str = "", status: int = 200
) -> Response:
    """What the reader liked and disliked (each with Undo), their seeds, followed authors,
    and the forms to add seeds and authors."""
    signals = await web.store.call(Store.reader_signals, sub.id or 0)
    authors = await web.store.call(Store.followed_authors, sub.id or 0)
    response = web.page(
        "liked",
        status,
        title="What you like",
        email=sub.email,
        csrf=csrf,
        notice=notice,
        manage_url=f"/manage/{token}",
        more=[s for s in signals if s.kind is SignalKind.MORE],
        less=[s for s in signals if s.kind is SignalKind.LESS],
        seeds=[s for s in signals if s.kind is SignalKind.SEED],
        authors=authors,
    )
    return web.with_csrf(response, csrf)


async def act(web: Web, sub: Subscriber, token: str, csrf: str, form: FormData) -> Response:
    """One of the list's forms: undo, seed, follow, unfollow."""
    action = field(form, "action")
    sid, now = sub.id or 0, web.now()
    if action == "undo":
        done = await web.store.call(Store.remove_signal, sid, field(form, "paper")[:100])
        notice = "Undone." if done else "Nothing to undo."
    elif action == "seed":
        text = field(form, "seeds").encode("utf-8")
        try:
            notice = await web.store.call(add_seeds, sub, text, "pasted", now, "web")
        except RecommendError as ex:
            return await liked_page(web, sub, token, csrf, str(ex), 422)
    elif action == "follow":
        author = " ".join(field(form, "author").split())[:MAX_AUTHOR]
        if author:
            await web.store.call(Store.follow_authors, sid, [author], now)
        notice = f"Following {author}." if author else "Type an author's name."
    else:
        await web.store.call(Store.unfollow_author, sid, field(form, "author"))
        notice = "Unfollowed."
    return await liked_page(web, sub, token, csrf, notice)
