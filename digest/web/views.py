"""What a subscriber reads outside their inbox, behind signed links: an email as a page (the
papers it carried, then every match its cap left out, with the same explanations) at
`/w/TOKEN[/EDITION]`, and their personal Atom feed at `/f/TOKEN`. Read-only: a GET here
changes nothing, so a link scanner opening them is harmless."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from digest.edition import Edition
from digest.match import EditionMatchers, Match
from digest.models import Paper, Subscriber, Topic
from digest.render import Card, build_card, edition_label, paper_links, plural, summary_line
from digest.store import Store
from digest.tokens import Tokens, feedback_links, subscriber_links
from digest.web.atom import Entry, feed_xml
from digest.web.state import Web

FEED_EMAILS = 10  # the latest emails a feed carries


@dataclass(frozen=True, slots=True)
class EmailView:
    """One sent email: its edition, the papers it showed and those its cap left out."""

    edition: Edition
    row: dict[str, Any]
    shown: list[Match]
    left_out: list[Match]


def email_of(
    store: Store, topics: dict[str, Topic], sub: Subscriber, edition: str | None, now: datetime
) -> EmailView | None:
    """The subscriber's sent email of an edition (their latest without one), rebuilt as the
    send did, and what matched beyond their cap: never a paper an earlier email carried,
    and no more than the email said had matched."""
    rows = store.sent_deliveries(sub.id or 0, 1, edition)
    if not rows:
        return None
    row = rows[0]
    parsed = Edition.parse(row["edition"])
    matchers = EditionMatchers(store, topics, now)
    papers: list[str] = row["papers"]
    shown = matchers.matches_for(sub, parsed, papers) if papers else []
    matcher = matchers.of(parsed)
    skip = store.sent_in_other_editions(sub.id or 0, parsed.name) | set(papers)
    everyone = replace(sub, max_papers=max(len(matcher.papers), 1))
    left_out = list(matcher.for_subscriber(everyone, skip))
    if row["matched"] is not None:
        left_out = left_out[: max(row["matched"] - len(shown), 0)]
    return EmailView(parsed, row, shown, left_out)


def _not_found(web: Web, line: str) -> Response:
    return web.message("No email here", line, status=404,
                       link={"href": "/", "label": "Today's papers"})  # fmt: skip


def _with_feedback(
    tokens: Tokens, sub: Subscriber, matches: list[Match]
) -> list[tuple[Card, tuple[str, str]]]:
    """Each paper's card with its "More like this" / "Less like this" URLs, signed for this
    subscriber and this paper as the email's are. Relative: this app serves both pages, so
    the links work under whatever host name the page was opened."""
    return [
        (build_card(m, True), feedback_links(tokens, "", sub.id or 0, sub.email, m.paper.id))
        for m in matches
    ]


async def email_page(web: Web, request: Request) -> Response:
    """An email as a page, with "N more matched" and every one of them below it."""
    sub = await web.subscriber_from("web", request.path_params["token"])
    edition: str | None = request.path_params.get("edition")
    if edition is not None:
        try:
            edition = Edition.parse(edition).name
        except ValueError:
            return _not_found(web, "There is no edition of that name.")
    found = await web.reader.call(email_of, web.topics, sub, edition, web.clock())
    if found is None:
        return _not_found(web, "No email was sent to you for this edition yet.")
    row, shown, left_out = found.row, found.shown, found.left_out
    matched = row["matched"] if row["matched"] is not None else len(shown) + len(left_out)
    links = subscriber_links(web.tokens, web.config.web.base_url, sub.id or 0, sub.email)
    return web.page(
        "email",
        title=edition_label(found.edition.name, found.edition.day, long=True),
        layout="wide",
        summary=summary_line(len(shown), matched, row["new_papers"]),
        cards=_with_feedback(web.tokens, sub, shown),
        more=f"{plural(len(left_out), 'more paper')} matched" if left_out else "",
        limit=sub.max_papers,
        extra_cards=_with_feedback(web.tokens, sub, left_out),
        manage_url=links["manage"],
        feed_url=links["feed"],
    )


def _entries(store: Store, sub_id: int) -> list[tuple[dict[str, Any], list[Paper]]]:
    rows = store.sent_deliveries(sub_id, FEED_EMAILS)
    ids = [p for row in rows for p in row["papers"]]
    papers = {p.id: p for p in store.papers_by_id(ids)}
    return [(row, [papers[i] for i in row["papers"] if i in papers]) for row in rows]


def _entry(web: Web, row: dict[str, Any], paper: Paper) -> Entry:
    url, _ = paper_links(paper)
    summary = paper.ai_summary or paper.abstract
    return Entry(
        id=f"urn:digest:{quote(row['edition'], safe='')}:{quote(paper.id, safe='')}",
        title=paper.title,
        updated=row["sent_at"].isoformat() if row["sent_at"] else "",
        link=url,
        summary=summary[:2000],
        categories=paper.categories[:6],
    )


async def feed(web: Web, request: Request) -> Response:
    """The subscriber's personal Atom feed: the papers of their latest emails, newest first."""
    token: str = request.path_params["token"]
    sub = await web.subscriber_from("feed", token)
    sent = await web.reader.call(_entries, sub.id or 0)
    links = subscriber_links(web.tokens, web.config.web.base_url, sub.id or 0, sub.email)
    entries = [_entry(web, row, paper) for row, papers in sent for paper in papers]
    updated: datetime = sent[0][0]["sent_at"] if sent else (sub.created_at or web.now())
    body = feed_xml(
        feed_id=f"urn:digest:feed:{sub.id}",
        title=f"{web.brand}: papers for {sub.email}",
        updated=updated.isoformat(),
        self_url=links["feed"],
        alternate_url=links["web"],
        author=web.brand,
        entries=entries,
    )
    return Response(body, media_type="application/atom+xml; charset=utf-8")
