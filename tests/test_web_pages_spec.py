"""The web app's own pages as a specification (digest/web/{forms,manage,views,atom,feedback,
guard,replies,routes}.py): every form field's rule and the message shown next to it, CSRF,
the signup rate limit, which signed link opens which page, the Atom feed's required elements
and the reading list's forms. Through HTTP against the real ASGI app and a real SQLite file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import html as lxml_html
from starlette.applications import Starlette

from digest import subscribers as subs
from digest.config import Config
from digest.models import Paper, Subscriber
from digest.send import OutboxTransport
from digest.store import SignalKind, Store
from digest.tokens import Tokens
from digest.web import create_app
from digest.web.atom import ATOM, Entry, feed_xml
from tests.test_web import BASE, SECRET, TOPICS, make_config

NOW = datetime.now(UTC).replace(microsecond=0)
A = f"{{{ATOM}}}"
GOOD = {"cadence": "daily", "weekday": "mon", "hour": "8", "tz": "UTC", "max_papers": "10",
        "topic": ["llm-agents"], "queries": ""}  # fmt: skip


class Site:
    """The app with an injected clock, a client with cookies, and its database."""

    def __init__(self, tmp_path: Path, **web: object) -> None:
        self.config: Config = make_config(tmp_path, **web)
        self.outbox = tmp_path / "outbox" / "new"
        self.app: Starlette = create_app(
            self.config, TOPICS, OutboxTransport(tmp_path / "outbox"), clock=lambda: NOW
        )
        self.client = self.client_from("203.0.113.9")
        self.tokens = Tokens(SECRET)

    def client_from(self, ip: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 4000))
        return httpx.AsyncClient(transport=transport, base_url=BASE)

    def sent(self) -> int:
        return len(list(self.outbox.iterdir())) if self.outbox.exists() else 0

    def store(self) -> Store:
        return Store(self.config.database.path)

    def person(self, email: str = "ada@example.org", status: str = "active") -> Subscriber:
        with self.store() as store:
            return subs.add(
                store, TOPICS, Subscriber(email, status=status, topics=["robotics"]), NOW
            )

    def get(self, email: str) -> Subscriber | None:
        with self.store() as store:
            return store.get_subscriber(email)

    def link(self, purpose: str, sub: Subscriber) -> str:
        path = {"confirm": "c", "unsubscribe": "u", "manage": "manage", "web": "w", "feed": "f"}
        return f"/{path[purpose]}/{self.tokens.make(purpose, sub.id or 0, sub.email)}"

    async def csrf(self, client: httpx.AsyncClient | None = None) -> str:
        client = client or self.client
        await client.get("/healthz")
        await client.get("/")
        return client.cookies["digest_csrf"]

    async def subscribe(
        self, *, client: httpx.AsyncClient | None = None, **fields: object
    ) -> httpx.Response:
        client = client or self.client
        data: dict[str, object] = {
            "csrf": await self.csrf(client),
            "email": "new@example.org",
            **GOOD,
        }
        data.update(fields)
        return await client.post("/subscribe", data=data)

    async def manage(self, sub: Subscriber, **fields: object) -> httpx.Response:
        path = self.link("manage", sub)
        await self.client.get(path)
        data: dict[str, object] = {"csrf": self.client.cookies["digest_csrf"], **GOOD, **fields}
        return await self.client.post(path, data=data)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    made = Site(tmp_path)
    yield made
    await made.client.aclose()
    await made.app.state.web.store.aclose()
    await made.app.state.web.reader.aclose()


def words(response: httpx.Response) -> str:
    """The page's text as a reader sees it (entities decoded, spacing collapsed)."""
    return " ".join(lxml_html.fromstring(response.text).text_content().split())


def error_of(response: httpx.Response, field: str) -> str:
    page = lxml_html.fromstring(response.text)
    found = page.cssselect(f"#{field}-error")
    return " ".join(found[0].text_content().split()) if found else ""


# ---------------------------------------------------------------- the subscribe form's fields


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"email": "not an address"}, "email", "This does not look like an email address."),
        ({"email": "a@b.org\nBcc: x@y.org"}, "email", "This does not look like an email address."),
        ({"hour": "24"}, "hour", "hour 24 is not between 0 and 23"),
        ({"hour": "\u00b2"}, "hour", "hour: give a whole number"),
        ({"hour": "12345"}, "hour", "hour: give a whole number"),
        ({"hour": "-1"}, "hour", "hour: give a whole number"),
        ({"max_papers": "0"}, "max_papers", "max papers 0 is not 1..100"),
        ({"max_papers": "101"}, "max_papers", "max papers 101 is not 1..100"),
        ({"max_papers": "1.5"}, "max_papers", "max papers: give a whole number"),
        ({"tz": "Europe/Atlantis"}, "tz", "unknown time zone"),
        ({"tz": "Europe/" + "x" * 80}, "tz", "unknown time zone"),
        ({"cadence": "monthly"}, "cadence", "cadence"),
        ({"topic": ["no-such-topic"]}, "topics", "unknown topic"),
        ({"topic": [], "queries": " \n "}, "topics", "give at least one query or topic"),
        ({"queries": "\n".join(f"q{n}" for n in range(21))}, "queries", "at most 20 queries"),
        ({"queries": "x" * 201}, "queries", "at most 200 characters per query"),
    ],
)
async def test_each_field_rule_answers_422_with_its_message_by_the_field(
    site: Site, changes: dict[str, Any], field: str, message: str
) -> None:
    response = await site.subscribe(**changes)
    assert response.status_code == 422
    assert message in error_of(response, field)
    assert site.get("new@example.org") is None and site.sent() == 0


async def test_a_broken_query_shows_a_caret_under_the_position(site: Site) -> None:
    response = await site.subscribe(queries="llm AND (agents")
    assert response.status_code == 422 and "^" in error_of(response, "queries")


async def test_the_number_fields_each_show_their_own_fault_at_once(site: Site) -> None:
    response = await site.subscribe(hour="x", max_papers="y", cadence="hourly")
    assert response.status_code == 422
    assert [bool(error_of(response, f)) for f in ("hour", "max_papers", "cadence")] == [True] * 3


async def test_a_refused_form_keeps_what_was_typed(site: Site) -> None:
    response = await site.subscribe(email="  typed@example.org ", hour="x", queries="diffusion")
    page = lxml_html.fromstring(response.text)
    assert page.cssselect('input[name="email"]')[0].get("value") == "typed@example.org"
    assert "diffusion" in page.cssselect('textarea[name="queries"]')[0].text_content()


@pytest.mark.parametrize(
    ("changes", "stored"),
    [
        ({"tz": "Etc/GMT+5"}, ("tz", "Etc/GMT+5")),  # not offered, still valid
        ({"tz": "  "}, ("tz", "UTC")),
        ({"hour": ""}, ("hour", 8)),
        ({"hour": "0007"}, ("hour", 7)),
        ({"weekday": "Tuesday", "cadence": "weekly"}, ("weekday", "tue")),
        ({"queries": "llm\n\n llm \nagents\n"}, ("queries", ["llm", "agents"])),
    ],
)
async def test_accepted_values_are_stored_tidied(
    site: Site, changes: dict[str, Any], stored: tuple[str, object]
) -> None:
    response = await site.subscribe(**changes)
    assert response.status_code == 200 and "Check your inbox" in response.text
    sub = site.get("new@example.org")
    assert sub is not None and getattr(sub, stored[0]) == stored[1]


async def test_get_on_the_subscribe_path_sends_the_visitor_to_the_form(site: Site) -> None:
    response = await site.client.get("/subscribe")
    assert (response.status_code, response.headers["location"]) == (303, "/")


# ---------------------------------------------------------------- CSRF


@pytest.mark.parametrize(
    ("cookie", "sent"),
    [
        (None, "A" * 24),
        ("A" * 24, None),
        ("A" * 24, "B" * 24),
        ("short", "short"),
        ("A" * 65, "A" * 65),
        ("A" * 23 + "!", "A" * 23 + "!"),
    ],
)
async def test_a_form_is_refused_unless_its_token_matches_a_well_shaped_cookie(
    site: Site, cookie: str | None, sent: str | None
) -> None:
    if cookie is not None:
        site.client.cookies.set("digest_csrf", cookie)
    data: dict[str, object] = {"email": "new@example.org", **GOOD}
    if sent is not None:
        data["csrf"] = sent
    response = await site.client.post("/subscribe", data=data)
    assert response.status_code == 403 and "The form had expired" in response.text
    assert site.get("new@example.org") is None
    fresh = response.cookies.get("digest_csrf") or ""
    assert 16 <= len(fresh) <= 64 and (fresh == cookie) is (cookie == "A" * 24)


async def test_a_well_shaped_cookie_is_kept_and_the_form_carries_it(site: Site) -> None:
    site.client.cookies.set("digest_csrf", "K" * 32)
    page = lxml_html.fromstring((await site.client.get("/")).text)
    assert page.cssselect('input[name="csrf"]')[0].get("value") == "K" * 32
    site.client.cookies.set("digest_csrf", "K" * 15)
    page = lxml_html.fromstring((await site.client.get("/")).text)
    assert page.cssselect('input[name="csrf"]')[0].get("value") != "K" * 15


async def test_a_manage_form_without_its_token_changes_nothing(site: Site) -> None:
    ada = site.person()
    path = site.link("manage", ada)
    response = await site.client.post(path, data={"action": "pause", "csrf": "Z" * 24})
    assert response.status_code == 403 and "The form had expired; try again." in response.text
    found = site.get(ada.email)
    assert found is not None and found.status == "active"


# ---------------------------------------------------------------- the signup rate limit


async def test_only_valid_signups_count_against_the_per_ip_limit(tmp_path: Path) -> None:
    site = Site(tmp_path, signups_per_ip_per_hour=2)
    try:
        for _ in range(3):
            assert (await site.subscribe(hour="x")).status_code == 422
        answers = [(await site.subscribe(email=f"p{n}@example.org")).status_code for n in range(3)]
        assert answers == [200, 200, 429]
        assert site.get("p2@example.org") is None
        other = site.client_from("198.51.100.4")
        assert (await site.subscribe(client=other, email="p3@example.org")).status_code == 200
        await other.aclose()
    finally:
        await site.client.aclose()
        await site.app.state.web.store.aclose()
        await site.app.state.web.reader.aclose()


# ---------------------------------------------------------------- which link opens what

PURPOSES = ["confirm", "unsubscribe", "manage", "web", "feed"]


async def test_a_signed_link_opens_only_the_page_of_its_purpose(site: Site) -> None:
    """Every purpose's token on every link route: only its own page opens (the email page
    then says no email was sent yet); any other is the bad-link page, never cached."""
    ada = site.person(status="pending")
    got, expected = {}, {}
    for purpose in PURPOSES:
        token = site.tokens.make(purpose, ada.id or 0, ada.email)
        for route in PURPOSES:
            path = site.link(route, ada).rsplit("/", 1)[0] + "/" + token
            response = await site.client.get(path)
            bad = "This link does not work" in response.text
            got[purpose, route] = (response.status_code, bad, response.headers["cache-control"])
            ok = 404 if route == "web" else 200
            expected[purpose, route] = (
                (ok, False, "no-store") if purpose == route else (400, True, "no-store")
            )
    assert got == expected


@pytest.mark.parametrize("path", ["/", "/healthz", "/static/web.css"])
async def test_pages_without_a_token_may_be_cached(site: Site, path: str) -> None:
    response = await site.client.get(path)
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("cache-control", "")
    assert response.headers["x-frame-options"] == "DENY"


async def test_the_health_check_answers_ok_in_plain_text(site: Site) -> None:
    response = await site.client.get("/healthz")
    assert (response.text, response.headers["content-type"].split(";")[0]) == ("ok", "text/plain")


async def test_a_link_for_another_address_with_the_same_id_opens_nothing(site: Site) -> None:
    ada = site.person()
    forged = site.tokens.make("manage", ada.id or 0, "eve@example.org")
    assert (await site.client.get(f"/manage/{forged}")).status_code == 400


# ---------------------------------------------------------------- confirm, unsubscribe, come back


async def test_the_confirmation_page_of_a_pending_person_is_a_button_to_post(site: Site) -> None:
    ada = site.person(status="pending")
    path = site.link("confirm", ada)
    page = lxml_html.fromstring((await site.client.get(path)).text)
    assert [f.get("action") for f in page.cssselect("form")] == [path]
    assert site.get(ada.email).status == "pending"  # type: ignore[union-attr]


async def test_opening_a_confirmation_link_once_subscribed_just_says_so(site: Site) -> None:
    ada = site.person()
    response = await site.client.get(site.link("confirm", ada))
    assert "You are subscribed" in response.text and "/manage/" in response.text


async def test_the_unsubscribe_page_of_someone_already_gone_offers_the_way_back(site: Site) -> None:
    ada = site.person(status="unsubscribed")
    token = site.link("unsubscribe", ada).rsplit("/", 1)[1]
    page = lxml_html.fromstring((await site.client.get(f"/u/{token}")).text)
    assert "You are unsubscribed" in page.text_content()
    assert [f.get("action") for f in page.cssselect("form")] == [f"/r/{token}"]


async def test_one_click_with_a_bad_token_is_a_plain_400_for_the_mail_client(site: Site) -> None:
    response = await site.client.post("/u/not-a-token", content=b"List-Unsubscribe=One-Click")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert "unsubscribe link is not valid" in response.text


async def test_one_click_twice_is_fine_and_records_one_change(site: Site) -> None:
    ada = site.person()
    path = site.link("unsubscribe", ada)
    for _ in range(2):
        response = await site.client.post(path, content=b"List-Unsubscribe=One-Click")
        assert (response.status_code, response.text) == (200, "Unsubscribed.")
    with site.store() as store:
        events = [e for e in store.subscriber_events(ada.id or 0) if e["event"] == "unsubscribed"]
    assert len(events) == 1


async def test_the_way_back_of_someone_still_subscribed_changes_and_sends_nothing(
    site: Site,
) -> None:
    ada = site.person()
    response = await site.client.post(site.link("unsubscribe", ada).replace("/u/", "/r/"))
    assert response.status_code == 200 and "Check your inbox" in response.text
    assert site.get(ada.email).status == "active" and site.sent() == 0  # type: ignore[union-attr]


# ---------------------------------------------------------------- the preferences page


async def test_pausing_a_paused_account_keeps_its_end_date(site: Site) -> None:
    ada = site.person()
    await site.manage(ada, action="pause", weeks="1")
    first = site.get(ada.email)
    response = await site.manage(ada, action="pause", weeks="10")
    assert "Paused for 10 weeks." in response.text
    again = site.get(ada.email)
    assert again is not None and first is not None
    assert (again.status, again.paused_until) == ("paused", first.paused_until)


async def test_resuming_an_active_account_changes_nothing(site: Site) -> None:
    ada = site.person()
    response = await site.manage(ada, action="resume")
    assert "Emails resumed." in response.text and site.get(ada.email).status == "active"  # type: ignore[union-attr]


async def test_a_refused_save_changes_nothing_and_keeps_the_text(site: Site) -> None:
    ada = site.person()
    response = await site.manage(ada, queries="ok query\nbad (", max_papers="7")
    assert response.status_code == 422 and "bad (" in response.text
    kept = site.get(ada.email)
    assert kept is not None and (kept.queries, kept.max_papers) == ([], ada.max_papers)


@pytest.mark.parametrize(("typed", "count"), [("7", 7), ("0", 0), ("50", 50), ("", 5)])
async def test_the_recommend_box_sets_the_count_and_an_empty_one_keeps_it(
    site: Site, typed: str, count: int
) -> None:
    ada = site.person()
    assert (await site.manage(ada, recommend="5")).status_code == 200
    response = await site.manage(ada, recommend=typed)
    assert response.status_code == 200 and "Saved." in response.text
    assert site.get(ada.email).recommend == count  # type: ignore[union-attr]


@pytest.mark.parametrize("typed", ["60", "51", "123", "-1", "1.5", "abc", "²"])
async def test_a_recommend_count_over_the_limit_is_a_422_by_its_field(
    site: Site, typed: str
) -> None:
    ada = site.person()
    response = await site.manage(ada, recommend=typed)
    assert response.status_code == 422
    assert 'id="recommend-error"' in response.text and "0 to 50" in response.text


async def test_a_saved_form_replaces_preferences_but_keeps_min_upvotes(site: Site) -> None:
    with site.store() as store:
        wanted = Subscriber("ada@example.org", status="active", topics=["robotics"], min_upvotes=3)
        ada = subs.add(store, TOPICS, wanted, NOW)
    await site.manage(ada, topic=["llm-agents"], hour="6", queries="diffusion")
    saved = site.get(ada.email)
    assert saved is not None
    assert (saved.topics, saved.hour, saved.queries, saved.min_upvotes) == (
        ["llm-agents"], 6, ["diffusion"], 3,
    )  # fmt: skip


# ---------------------------------------------------------------- feedback links and the list


def _paper(site: Site) -> Paper:
    paper = Paper("2606.00001", "Attention Again", abstract="a", authors=["A. Author"])
    with site.store() as store:
        store.upsert_papers("hf", [paper], NOW)
    return paper


@pytest.mark.parametrize("kind", ["meh", "MORE", ""])
async def test_a_feedback_link_of_no_known_kind_is_a_bad_link(site: Site, kind: str) -> None:
    ada, paper = site.person(), _paper(site)
    token = site.tokens.make_paper(ada.id or 0, ada.email, paper.id)
    response = await site.client.get(f"/fb/{kind}/{token}")
    assert response.status_code in (400, 404) and "More like this" not in response.text


async def test_a_feedback_link_to_a_paper_no_longer_stored_is_a_bad_link(site: Site) -> None:
    ada = site.person()
    token = site.tokens.make_paper(ada.id or 0, ada.email, "2606.99999")
    assert (await site.client.get(f"/fb/more/{token}")).status_code == 400


async def test_a_feedback_page_shows_the_paper_and_a_button_recording_nothing(site: Site) -> None:
    ada, paper = site.person(), _paper(site)
    token = site.tokens.make_paper(ada.id or 0, ada.email, paper.id)
    page = lxml_html.fromstring((await site.client.get(f"/fb/less/{token}")).text)
    assert "Attention Again" in page.text_content()
    assert [f.get("action") for f in page.cssselect("form")] == [f"/fb/less/{token}"]
    with site.store() as store:
        assert store.reader_signals(ada.id or 0) == []


async def _liked(site: Site, sub: Subscriber, **fields: str) -> httpx.Response:
    path = site.link("manage", sub)
    await site.client.get(path + "?view=liked")
    data = {"csrf": site.client.cookies["digest_csrf"], **fields}
    return await site.client.post(path, data=data)


@pytest.mark.parametrize(
    ("author", "notice", "followed"),
    [("  Ada   Lovelace ", "Following Ada Lovelace.", ["Ada Lovelace"]),
     ("   ", "Type an author's name.", []),
     ("x" * 300, "Following " + "x" * 200 + ".", ["x" * 200])],
)  # fmt: skip
async def test_following_an_author_tidies_the_name_or_asks_for_one(
    site: Site, author: str, notice: str, followed: list[str]
) -> None:
    ada = site.person()
    response = await _liked(site, ada, action="follow", author=author)
    assert response.status_code == 200 and notice in words(response)
    with site.store() as store:
        assert store.followed_authors(ada.id or 0) == followed


async def test_unfollowing_and_undo_say_what_they_did(site: Site) -> None:
    ada, paper = site.person(), _paper(site)
    with site.store() as store:
        store.follow_authors(ada.id or 0, ["Ada Lovelace"], NOW)
        store.record_signals(ada.id or 0, [paper.id], SignalKind.MORE, NOW, "email")
    listed = await site.client.get(site.link("manage", ada) + "?view=liked")
    assert "Attention Again" in listed.text and "Ada Lovelace" in listed.text
    assert "Unfollowed." in (await _liked(site, ada, action="unfollow", author="Ada Lovelace")).text
    assert "Undone." in (await _liked(site, ada, action="undo", paper=paper.id)).text
    assert "Nothing to undo." in (await _liked(site, ada, action="undo", paper=paper.id)).text
    with site.store() as store:
        assert store.followed_authors(ada.id or 0) == [] and store.reader_signals(ada.id or 0) == []


# ---------------------------------------------------------------- the email page and the feed


async def test_the_email_page_of_an_edition_that_cannot_exist_is_404(site: Site) -> None:
    ada = site.person()
    response = await site.client.get(site.link("web", ada) + "/not-an-edition")
    assert response.status_code == 404 and "There is no edition of that name." in response.text


async def test_the_email_page_before_any_email_says_none_was_sent(site: Site) -> None:
    ada = site.person()
    response = await site.client.get(site.link("web", ada))
    assert response.status_code == 404 and "No email was sent to you" in response.text


async def test_a_feed_before_any_email_is_a_valid_empty_feed(site: Site) -> None:
    ada = site.person()
    response = await site.client.get(site.link("feed", ada))
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    root = ET.fromstring(response.content)
    assert root.tag == f"{A}feed" and root.findall(f"{A}entry") == []
    assert root.findtext(f"{A}id") == f"urn:digest:feed:{ada.id}"
    assert "ada@example.org" in (root.findtext(f"{A}title") or "")
    assert datetime.fromisoformat(root.findtext(f"{A}updated") or "") == NOW
    links = {link.get("rel"): link.get("href") for link in root.findall(f"{A}link")}
    assert links["self"] == BASE + site.link("feed", ada)
    assert links["alternate"] == BASE + site.link("web", ada)


def _feed(*entries: Entry, author: str = "Brand") -> ET.Element:
    return ET.fromstring(feed_xml(feed_id="urn:f", title="T", updated="2026-06-12T08:00:00+00:00",
                                  self_url="https://s", alternate_url="https://a", author=author,
                                  entries=entries))  # fmt: skip


def test_every_entry_has_id_title_updated_and_a_text_summary() -> None:
    root = _feed(Entry("urn:e1", "", "2026-06-12T08:00:00+00:00", None, "s", ("cs.LG", "cs.AI")))
    (entry,) = root.findall(f"{A}entry")
    assert [c.tag.removeprefix(A) for c in entry] == [
        "id", "title", "updated", "category", "category", "summary",
    ]  # fmt: skip
    assert entry.findtext(f"{A}title") == "(untitled)"
    assert entry.find(f"{A}summary").get("type") == "text"  # type: ignore[union-attr]
    assert [c.get("term") for c in entry.findall(f"{A}category")] == ["cs.LG", "cs.AI"]


def test_an_entry_with_a_link_links_to_the_paper_and_a_feed_always_has_an_author() -> None:
    root = _feed(Entry("urn:e1", "T", "u", "https://arxiv.org/abs/1", "s"), author="")
    assert root.findtext(f"{A}author/{A}name") == "Paper Digest"
    link = root.find(f"{A}entry/{A}link")
    assert link is not None and (link.get("rel"), link.get("href")) == (
        "alternate", "https://arxiv.org/abs/1",
    )  # fmt: skip


@settings(max_examples=80)
@given(st.text(max_size=40), st.text(max_size=40))
def test_any_text_makes_a_feed_that_parses_and_keeps_every_xml_character(
    title: str, summary: str
) -> None:
    root = _feed(Entry("urn:e", title, "u", None, summary))

    def kept(text: str) -> str:
        """The text less what XML 1.0 cannot carry, line ends as an XML parser reads them."""
        allowed = "".join(
            c for c in text
            if c in "\t\n\r" or "\x20" <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c > "\uffff"
        )  # fmt: skip
        return allowed.replace("\r\n", "\n").replace("\r", "\n")

    assert (root.findtext(f"{A}entry/{A}summary") or "") == kept(summary)
    assert (root.findtext(f"{A}entry/{A}title") or "") == (kept(title) if title else "(untitled)")
