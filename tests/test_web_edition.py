"""The web edition through httpx against the ASGI app (issue 15): today's papers ranked like
the email, search with the filter language, topic chips, days and weeks, the live preview
(JSON and the no-JavaScript button), each email as a page with what its cap left out, the
personal Atom feed, per-field form errors, what the CSP lets run, and (issue 16) the "More/Less
like this" links of each paper on that page. A real SQLite file filled by a real daily run from
a recorded HF response; emails land in a real outbox."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import httpx
import pytest
from lxml import html as lxml_html
from typer.testing import CliRunner

from digest import subscribers as subs
from digest.cli import app as cli_app
from digest.config import Config, load_config, load_topics
from digest.errors import QueryError
from digest.models import Subscriber
from digest.pipeline import Pipeline
from digest.query import parse
from digest.send import OutboxTransport
from digest.store import SignalKind, Store
from digest.tokens import Tokens
from digest.web import create_app
from digest.web.atom import ATOM, Entry, feed_xml
from digest.web.preview import PER_MINUTE
from tests.conftest import DATA, HF_JUNE, app_config

SECRET = "edition-test-secret"
BASE = "https://digest.example.org"
QUERY = "llm OR language OR model"
BAD = "diffusion AND (video"


@dataclass
class Edition:
    """A database after one real daily run, and the email it sent."""

    config: Config
    config_path: Path
    now: datetime
    message: email.message.EmailMessage
    sub: Subscriber

    def tokens(self) -> Tokens:
        return Tokens(SECRET)


@pytest.fixture
def edition(tmp_path: Path) -> Edition:
    config_path = app_config(tmp_path, [("hf", "hf", DATA / HF_JUNE)])
    config = load_config(config_path, env={"DIGEST_SECRET": SECRET})
    topics = load_topics(config.topics_path)
    now = datetime.now(UTC)
    with Store(config.database.path) as store:
        sub = subs.add(
            store, topics,
            Subscriber("ada@example.org", status="active", queries=[QUERY], hour=0, max_papers=3),
            now,
        )  # fmt: skip
        outbox = OutboxTransport(tmp_path / "outbox")
        asyncio.run(Pipeline(config, store, topics, now, transport=outbox).run())
    (path,) = (tmp_path / "outbox" / "new").iterdir()
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return Edition(config, config_path, now, message, sub)


@pytest.fixture
async def client(edition: Edition) -> AsyncIterator[httpx.AsyncClient]:
    later = edition.now + timedelta(minutes=1)
    app = create_app(edition.config, load_topics(edition.config.topics_path), clock=lambda: later)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as opened:
        yield opened
    await app.state.web.store.aclose()
    await app.state.web.reader.aclose()


def doc(response: httpx.Response) -> lxml_html.HtmlElement:
    return lxml_html.fromstring(response.text)


def card_titles(page: lxml_html.HtmlElement, under: str = "") -> list[str]:
    return [" ".join(h.text_content().split()) for h in page.cssselect(f"{under} .card .title")]


def stored_papers(edition: Edition) -> list:  # type: ignore[type-arg]
    with Store(edition.config.database.path) as store:
        return store.list_papers(limit=None)


async def test_home_is_todays_edition_most_upvoted_first_beside_the_subscribe_form(
    edition: Edition, client: httpx.AsyncClient
) -> None:
    response = await client.get("/")
    assert response.status_code == 200 and "digest_csrf" in response.cookies
    page = doc(response)
    papers = stored_papers(edition)
    ranked = sorted(papers, key=lambda p: (-(p.upvotes or 0), p.published is None))
    titles = card_titles(page)
    assert len(titles) == len(papers) == 30
    assert [max(p.upvotes or 0 for p in papers if " ".join(p.title.split()) == t) for t in titles]\
        == sorted((p.upvotes or 0 for p in ranked), reverse=True)  # fmt: skip
    assert page.cssselect("#count")[0].text_content().startswith("30 new papers this day")
    assert page.cssselect("form#subscribe input[name=email]")
    assert page.cssselect("a.pager-prev") and not page.cssselect("a.pager-next")


async def test_a_search_highlights_what_matched_and_says_why(client: httpx.AsyncClient) -> None:
    page = doc(await client.get("/", params={"q": "title:agent*"}))
    titles = card_titles(page)
    assert titles and all("agent" in t.lower() for t in titles)
    marks = [m.text_content().lower() for m in page.cssselect(".card .title mark")]
    assert marks and all(m.startswith("agent") for m in marks)
    assert all(w.text_content().startswith("Why: title:agent*") for w in page.cssselect(".why"))
    assert re.fullmatch(r"\d+ papers? of 30 match", page.cssselect("#count")[0].text_content())


async def test_a_bad_query_shows_the_same_caret_as_digest_query_check(
    edition: Edition, client: httpx.AsyncClient
) -> None:
    page = doc(await client.get("/", params={"q": BAD}))
    shown = page.cssselect("#q-error")[0].text_content()
    with pytest.raises(QueryError) as raised:
        parse(BAD)
    assert shown == raised.value.caret()
    checked = CliRunner().invoke(cli_app, ["query", "check", BAD])
    assert checked.exit_code == 1 and checked.stderr.strip() == shown.strip()
    assert not page.cssselect(".card") and page.cssselect("#q")[0].get("value") == BAD


async def test_topic_chips_select_a_topic_and_combine_with_the_query(
    client: httpx.AsyncClient,
) -> None:
    page = doc(await client.get("/"))
    chips = {a.text_content(): a.get("href") for a in page.cssselect(".chips a")}
    assert chips["All"] == "/" and chips["LLM agents"] == "/?topic=llm-agents"
    agents = doc(await client.get(chips["LLM agents"]))
    (active,) = agents.cssselect(".chip.active")
    assert active.text_content() == "LLM agents" and active.get("href") == "/"
    agent_titles = card_titles(agents)
    assert 0 < len(agent_titles) < 30
    assert all("LLM agents" in w.text_content() for w in agents.cssselect(".why"))
    both = doc(await client.get("/", params={"topic": "llm-agents", "q": "title:web"}))
    both_titles = card_titles(both)
    assert both_titles and set(both_titles) < set(agent_titles)
    assert all("web" in t.lower() for t in both_titles)
    unknown = doc(await client.get("/", params={"topic": "no-such-topic"}))
    assert len(card_titles(unknown)) == 30


async def test_each_day_and_week_has_a_page_with_previous_and_next(
    edition: Edition, client: httpx.AsyncClient
) -> None:
    today = edition.now.date()
    yesterday = today - timedelta(days=1)
    page = doc(await client.get(f"/d/{yesterday.isoformat()}", params={"q": "llm"}))
    assert not page.cssselect(".card") and page.cssselect("#empty")
    (after,) = page.cssselect("a.pager-next")
    assert after.get("href") == "/?q=llm"
    before = page.cssselect("a.pager-prev")[0].get("href")
    assert before == f"/d/{(yesterday - timedelta(days=1)).isoformat()}?q=llm"
    week = doc(await client.get("/")).cssselect("a.pager-week")[0].get("href")
    assert week == f"/week/{today.isocalendar()[0]}-W{today.isocalendar()[1]:02d}"
    this_week = doc(await client.get(week))
    assert len(card_titles(this_week)) == 30
    assert this_week.cssselect("h1")[0].text_content().startswith("Week ")
    for bad in [f"/d/{(today + timedelta(days=1)).isoformat()}", "/d/2026-13-01", "/d/x",
                "/d/2026-W49-1", "/d/20260612", "/d/2026-W49", "/week/2026-W60",
                "/week/2026-11-02", "/no/such/page"]:  # fmt: skip
        response = await client.get(bad)
        assert response.status_code == 404, bad
        assert '<link rel="stylesheet" href="/static/web.css">' in response.text


async def test_the_preview_counts_per_day_and_shows_the_top_few_with_why(
    edition: Edition, client: httpx.AsyncClient
) -> None:
    response = await client.get("/preview.json", params={"queries": "title:agent*"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["error"] == "" and data["total"] > 0
    assert [d["day"] for d in data["days"]][-1] == edition.now.date().isoformat()
    assert len(data["days"]) == 7 and sum(d["count"] for d in data["days"]) == data["total"]
    assert 0 < len(data["top"]) <= 5
    for item in data["top"]:
        assert item["why"].startswith("title:agent*")
        assert any(hit and text.lower().startswith("agent") for text, hit in item["title"])
    both = {"topic": "llm-agents", "queries": "title:agent*"}
    wider = (await client.get("/preview.json", params=both)).json()
    assert wider["total"] >= data["total"]
    bad = (await client.get("/preview.json", params={"queries": BAD})).json()
    assert bad["error"] == doc(await client.get("/", params={"q": BAD})).cssselect(
        "#q-error")[0].text_content()  # fmt: skip
    nothing = (await client.get("/preview.json")).json()
    assert nothing["error"].startswith("Pick a topic")


async def test_the_preview_is_rate_limited_per_client(client: httpx.AsyncClient) -> None:
    codes = [
        (await client.get("/preview.json", params={"queries": f"q{i}"})).status_code
        for i in range(PER_MINUTE + 1)
    ]
    assert codes[:PER_MINUTE] == [200] * PER_MINUTE and codes[-1] == 429


async def test_the_preview_button_works_without_javascript_on_both_forms(
    edition: Edition, client: httpx.AsyncClient
) -> None:
    await client.get("/")
    csrf = client.cookies["digest_csrf"]
    form = {"csrf": csrf, "email": "", "topic": ["llm-agents"], "queries": "title:agent*",
            "cadence": "daily", "weekday": "mon", "hour": "8", "tz": "UTC",
            "max_papers": "10", "action": "preview"}  # fmt: skip
    page = doc(await client.post("/subscribe", data=form))
    assert (
        page.cssselect("#preview-total")[0]
        .text_content()
        .endswith("would have matched (30 new papers)")
    )
    assert (
        page.cssselect(".preview-top li") and page.cssselect("#queries")[0].text == "title:agent*"
    )
    with Store(edition.config.database.path) as store:
        assert store.count_subscribers().get("pending", 0) == 0  # a preview signs no one up
    token = edition.tokens().make("manage", edition.sub.id or 0, edition.sub.email)
    await client.get(f"/manage/{token}")
    page = doc(await client.post(f"/manage/{token}", data={**form, "queries": BAD}))
    assert page.cssselect("#preview-error")[0].text_content().startswith(BAD)
    with Store(edition.config.database.path) as store:
        assert store.get_subscriber(edition.sub.id or 0).queries == [QUERY]  # not saved


def _links(text: str) -> list[str]:
    return re.findall(r"https?://\S+", text)


async def test_view_in_browser_shows_the_email_and_every_match_its_cap_left_out(
    edition: Edition, client: httpx.AsyncClient
) -> None:
    text = edition.message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = edition.message.get_body(("html",)).get_content()
    found = re.search(r"View in your browser: (\S+)", text)
    assert found
    url = found.group(1)
    assert url.startswith(f"{BASE}/w/") and url.endswith("/" + edition.now.date().isoformat())
    assert [a.get("href") for a in lxml_html.fromstring(html).iter("a")
            if a.text_content() == "View in your browser"] == [url]  # fmt: skip
    summary = re.search(r"\n(3 of (\d+) matches from 30 new papers)\n", text)
    assert summary
    matched = int(summary.group(2))
    response = await client.get(url[len(BASE) :])
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    page = doc(response)
    assert page.cssselect("#summary")[0].text_content() == summary.group(1)
    emailed = [t for t in re.findall(r"^\* (.+)$", text, re.M)]
    assert [t[:40] for t in card_titles(page, "#email")] == [t[:40] for t in emailed]
    assert (
        page.cssselect("#more")[0].text_content().startswith(f"{matched - 3} more papers matched")
    )
    left_out = card_titles(page, "#left-out")
    assert len(left_out) == matched - 3 and not set(left_out) & set(card_titles(page, "#email"))
    assert page.cssselect("#left-out .why")
    latest = await client.get(url[len(BASE) :].rsplit("/", 1)[0])
    assert card_titles(doc(latest)) == card_titles(page)
    other_day = await client.get(url[len(BASE) :].rsplit("/", 1)[0] + "/2020-01-01")
    assert other_day.status_code == 404


@pytest.mark.parametrize("purpose", ["manage", "unsubscribe", "confirm"])
async def test_a_token_for_another_purpose_opens_neither_view_nor_feed(
    edition: Edition, client: httpx.AsyncClient, purpose: str
) -> None:
    token = edition.tokens().make(purpose, edition.sub.id or 0, edition.sub.email)
    assert (await client.get(f"/w/{token}")).status_code == 400
    assert (await client.get(f"/f/{token}")).status_code == 400
    forged = Tokens("another").make("feed", edition.sub.id or 0, edition.sub.email)
    assert (await client.get(f"/f/{forged}")).status_code == 400


async def test_the_atom_feed_parses_back_and_has_every_required_element(
    edition: Edition, client: httpx.AsyncClient
) -> None:
    token = edition.tokens().make("feed", edition.sub.id or 0, edition.sub.email)
    response = await client.get(f"/f/{token}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo and parsed.version == "atom10"
    assert len(parsed.entries) == 3
    root = ET.fromstring(response.content)
    a = f"{{{ATOM}}}"
    for name in ("id", "title", "updated"):
        assert (root.findtext(a + name) or "").strip(), name
    assert root.find(f"{a}author/{a}name") is not None
    for entry in root.findall(a + "entry"):
        for name in ("id", "title", "updated"):
            assert (entry.findtext(a + name) or "").strip(), name
        assert (entry.find(a + "link") is not None and entry.find(a + "link").get("href", "")
                .startswith("https://"))  # fmt: skip
        datetime.fromisoformat(entry.findtext(a + "updated") or "")
    ids = [e.findtext(a + "id") for e in root.findall(a + "entry")]
    assert len(set(ids)) == len(ids)


def test_the_feed_drops_characters_xml_cannot_carry_and_escapes_markup() -> None:
    body = feed_xml(
        feed_id="urn:x", title="t", updated="2026-11-30T00:00:00+00:00", self_url="https://e/f",
        alternate_url="https://e/w", author="A & B",
        entries=[Entry("urn:e", "<b>bold</b>\x00\x1b & co", "2026-11-30T00:00:00+00:00",
                       "https://e/p", "x\ufffey")],
    )  # fmt: skip
    parsed = feedparser.parse(body)
    assert not parsed.bozo
    assert ET.fromstring(body).find(f"{{{ATOM}}}entry/{{{ATOM}}}title").text == "<b>bold</b> & co"


async def test_the_preferences_page_carries_the_feed_and_web_links(
    edition: Edition, client: httpx.AsyncClient
) -> None:
    token = edition.tokens().make("manage", edition.sub.id or 0, edition.sub.email)
    page = doc(await client.get(f"/manage/{token}"))
    feed = page.cssselect("#feed-link")[0].get("href")
    web = page.cssselect("#web-link")[0].get("href")
    assert (await client.get(feed[len(BASE) :])).status_code == 200
    assert (await client.get(web[len(BASE) :])).status_code == 200


async def test_an_unsubscribed_persons_preferences_offer_subscribe_again_not_pause(
    edition: Edition, client: httpx.AsyncClient
) -> None:
    with Store(edition.config.database.path) as store:
        subs.set_status(store, edition.sub.email, "unsubscribed", edition.now, "test")
    token = edition.tokens().make("manage", edition.sub.id or 0, edition.sub.email)
    page = doc(await client.get(f"/manage/{token}"))
    assert not page.cssselect("#pause") and "Unsubscribe" not in [
        a.text_content() for a in page.cssselect("a")]  # fmt: skip
    (again,) = page.cssselect("#resubscribe")
    response = await client.post(again.get("action"))
    assert response.status_code == 200 and "Check your inbox" in response.text
    with Store(edition.config.database.path) as store:
        assert store.get_subscriber(edition.sub.id or 0).status == "unsubscribed"  # until confirmed


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"tz": "Mars/Olympus"}, "tz"), ({"max_papers": "500"}, "max_papers"),
     ({"max_papers": "many"}, "max_papers"), ({"hour": "x"}, "hour"),
     ({"cadence": "hourly"}, "cadence"), ({"weekday": "someday"}, "weekday"),
     ({"topic": [], "queries": ""}, "topics"), ({"queries": BAD}, "queries")],
)  # fmt: skip
async def test_each_form_error_is_shown_next_to_its_field(
    client: httpx.AsyncClient, changes: dict[str, object], field: str
) -> None:
    await client.get("/")
    form: dict[str, object] = {
        "csrf": client.cookies["digest_csrf"], "email": "b@example.org", "topic": ["llm-agents"],
        "queries": "", "cadence": "daily", "weekday": "mon", "hour": "8", "tz": "UTC",
        "max_papers": "10",
    }  # fmt: skip
    response = await client.post("/subscribe", data={**form, **changes})
    assert response.status_code == 422
    page = doc(response)
    (error,) = page.cssselect(".error")
    assert error.get("id") == f"{field}-error"
    described = page.cssselect(f'[aria-describedby="{field}-error"]')
    assert described and error.getparent() in (described[0].getparent(), described[0])


async def test_scripts_run_only_from_self_and_the_preview_script_is_served(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    page = doc(response)
    assert [s.get("src") for s in page.iter("script")] == ["/static/preview.js"]
    assert all(not (s.text or "").strip() for s in page.iter("script"))
    script = await client.get("/static/preview.js")
    assert script.status_code == 200 and "text/javascript" in script.headers["content-type"]
    assert "innerHTML" not in script.text


def test_subscribers_links_prints_the_feed_and_the_latest_emails_web_url(
    edition: Edition,
) -> None:
    result = CliRunner().invoke(
        cli_app, ["subscribers", "links", "ada@example.org", "--config", str(edition.config_path)],
        env={"DIGEST_SECRET": SECRET},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    found = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert set(found) == {"unsubscribe", "manage", "feed", "web"}
    assert found["feed"].startswith(f"{BASE}/f/")
    assert found["web"].startswith(f"{BASE}/w/")
    assert found["web"].endswith("/" + edition.now.date().isoformat())


async def test_an_unexpected_error_and_a_missing_page_are_styled_pages(tmp_path: Path) -> None:
    """Every error page a visitor may see links the one stylesheet, the 500 that the
    security middleware answers itself included."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    config = load_config(app_config(tmp_path, []), env={"DIGEST_SECRET": SECRET})
    app = create_app(config, load_topics(config.topics_path))
    app.router.routes.append(Route("/broken", broken))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        for path, status in (("/broken", 500), ("/nothing/here", 404)):
            response = await client.get(path)
            assert response.status_code == status
            page = doc(response)
            assert page.cssselect('link[rel=stylesheet][href="/static/web.css"]')
            assert page.cssselect("h1") and page.cssselect('a[href="/"]')
        home = await client.get("/")  # no papers yet: the page and its form still answer
    assert home.status_code == 200 and doc(home).cssselect("#empty, form#subscribe")


async def view_page(edition: Edition, client: httpx.AsyncClient) -> lxml_html.HtmlElement:
    text = edition.message.get_body(("plain",)).get_content()
    found = re.search(r"View in your browser: (\S+)", text)
    assert found
    response = await client.get(found.group(1)[len(BASE) :])
    assert response.status_code == 200
    return doc(response)


def feedback_of(card: lxml_html.HtmlElement) -> tuple[str, str]:
    """A card's More and Less hrefs, checked to be its only two feedback links."""
    links = [(a.text_content(), a.get("href")) for a in card.cssselect(".feedback a")]
    assert [label for label, _ in links] == ["More like this", "Less like this"]
    return links[0][1], links[1][1]


async def test_view_in_browser_has_more_and_less_like_this_signed_for_the_reader_and_paper(
    edition: Edition, client: httpx.AsyncClient
) -> None:
    """Issue 16: every paper on the view page, the email's and those its cap left out, has
    feedback links whose token names this subscriber and exactly that card's paper."""
    page = await view_page(edition, client)
    titles = {" ".join(p.title.split())[:40]: p.id for p in stored_papers(edition)}
    for under in ("#email", "#left-out"):
        cards = page.cssselect(f"{under} .card")
        assert cards, under
        for card in cards:
            more, less = feedback_of(card)
            assert more.startswith("/fb/more/") and less.startswith("/fb/less/")
            token = more.removeprefix("/fb/more/")
            assert less.removeprefix("/fb/less/") == token
            claims, paper_id = edition.tokens().read_paper(token)
            assert claims.subscriber_id == edition.sub.id and claims.is_for(edition.sub.email)
            title = " ".join(card.cssselect(".title")[0].text_content().split())
            assert titles[title[:40]] == paper_id


async def test_a_view_pages_feedback_link_shows_a_button_and_only_its_post_records(
    edition: Edition, client: httpx.AsyncClient
) -> None:
    page = await view_page(edition, client)
    emailed, _ = feedback_of(page.cssselect("#email .card")[0])
    _, left_out = feedback_of(page.cssselect("#left-out .card")[0])
    expected: dict[str, SignalKind] = {}

    def recorded() -> dict[str, SignalKind]:
        with Store(edition.config.database.path) as store:
            return {s.paper_id: s.kind for s in store.reader_signals(edition.sub.id or 0)}

    for url, kind in ((emailed, SignalKind.MORE), (left_out, SignalKind.LESS)):
        shown = await client.get(url)
        assert shown.status_code == 200
        (form,) = doc(shown).cssselect("form[method=post]")
        assert form.get("action") == url and form.cssselect("button")
        assert recorded() == expected  # a GET (a link scanner's) records nothing
        done = await client.post(url)
        assert done.status_code == 200 and doc(done).cssselect("#notice, #liked-link")
        expected[edition.tokens().read_paper(url.rsplit("/", 1)[1])[1]] = kind
        assert recorded() == expected
    assert len(expected) == 2


async def test_a_feedback_token_for_another_subscriber_or_paper_records_nothing(
    edition: Edition, client: httpx.AsyncClient
) -> None:
    with Store(edition.config.database.path) as store:
        bob = store.add_subscriber(
            Subscriber("bob@example.org", status="active", queries=[QUERY]),
            edition.now, "test",
        )  # fmt: skip
    page = await view_page(edition, client)
    more, _ = feedback_of(page.cssselect("#email .card")[0])
    _, paper = edition.tokens().read_paper(more.rsplit("/", 1)[1])
    ada, tokens = edition.sub, edition.tokens()
    bad = [
        tokens.make_paper(bob.id or 0, ada.email, paper),  # Ada's address, Bob's id
        tokens.make_paper(ada.id or 0, "bob@example.org", paper),  # Ada's id, Bob's address
        tokens.make_paper(ada.id or 0, ada.email, "2101.99999"),  # a paper we do not have
        Tokens("another").make_paper(ada.id or 0, ada.email, paper),  # not our secret
        tokens.make("web", ada.id or 0, ada.email),  # the view page's own token
        more.rsplit("/", 1)[1][:-3] + "xyz",  # cut and retyped
    ]
    for token in bad:
        for kind in ("more", "less"):
            assert (await client.get(f"/fb/{kind}/{token}")).status_code == 400, token
            assert (await client.post(f"/fb/{kind}/{token}")).status_code == 400, token
    with Store(edition.config.database.path) as store:
        assert store.reader_signals(ada.id or 0) == []
        assert store.reader_signals(bob.id or 0) == []
