"""The web app through httpx against the ASGI app: every route, every kind of bad token,
double opt-in, one-click unsubscribe, preferences, erasure, CSRF, headers, rate limits."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from digest import subscribers as subs
from digest.config import load_config, load_topics, parse_config
from digest.errors import SubscriberError
from digest.models import Subscriber
from digest.send import OutboxTransport
from digest.store import DeliveryStatus, PlannedDelivery, Store
from digest.tokens import Tokens
from digest.web import create_app

SECRET = "web-test-secret"
BASE = "https://digest.example.org"
TOPICS = load_topics(load_config(env={}).topics_path)
FAR = datetime(2999, 1, 1, tzinfo=UTC)


def make_config(tmp_path: Path, **web: object):  # type: ignore[no-untyped-def]
    return parse_config(
        {
            "database": {"path": str(tmp_path / "digest.db")},
            "mail": {"from": "Paper Digest <digest@example.org>", "postal_address": "1 Rue"},
            "outbox": {"path": str(tmp_path / "outbox")},
            "web": {"base_url": BASE, **web},
        },
        tmp_path / "digest.toml",
        {"DIGEST_SECRET": SECRET},
    )


class Site:
    """The app, a client that keeps cookies, and the outbox its emails land in."""

    def __init__(self, tmp_path: Path, **web: object) -> None:
        self.config = make_config(tmp_path, **web)
        self.outbox = tmp_path / "outbox"
        self.app = create_app(self.config, TOPICS, OutboxTransport(self.outbox))
        transport = httpx.ASGITransport(app=self.app, client=("203.0.113.9", 4000))
        self.client = httpx.AsyncClient(transport=transport, base_url=BASE)
        self.tokens = Tokens(SECRET)

    def run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.get_event_loop().run_until_complete(coro)

    async def csrf(self) -> str:
        await self.client.get("/")
        return self.client.cookies["digest_csrf"]

    async def subscribe(self, address: str, **fields: object) -> httpx.Response:
        data: dict[str, object] = {"csrf": await self.csrf(), "email": address}
        data.update({"cadence": "daily", "weekday": "mon", "hour": "8", "tz": "UTC"})
        data.update({"max_papers": "10", "topic": ["llm-agents"], "queries": ""})
        data.update(fields)
        return await self.client.post("/subscribe", data=data)

    def emails(self) -> list[email.message.EmailMessage]:
        folder = self.outbox / "new"
        if not folder.exists():
            return []
        return [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime)
        ]

    def store(self) -> Store:
        return Store(self.config.database.path)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    made = Site(tmp_path)
    yield made
    loop.run_until_complete(made.client.aclose())
    loop.close()
    asyncio.set_event_loop(None)


def link_in(msg: email.message.EmailMessage, path: str) -> str:
    text = msg.get_body(("plain",)).get_content()
    found = re.search(re.escape(BASE) + path + r"[A-Za-z0-9_.\-]+", text)
    assert found, text
    return found.group(0)[len(BASE) :]


def confirm_by_clicking(site: Site, msg: email.message.EmailMessage) -> httpx.Response:
    """What a person does: open the link (a page with a button), then press the button."""
    path = link_in(msg, "/c/")
    page = site.run(site.client.get(path))
    assert page.status_code == 200 and f'action="{path}"' in page.text, page.text
    return site.run(site.client.post(path))


def add_active(site: Site, address: str = "ada@example.org") -> Subscriber:
    with site.store() as store:
        return subs.add(
            store, TOPICS, Subscriber(address, status="active", topics=["robotics"]),
            datetime.now(UTC),
        )  # fmt: skip


def test_double_opt_in_from_form_to_confirmation(site: Site) -> None:
    page = site.run(site.client.get("/"))
    assert page.status_code == 200 and 'name="csrf"' in page.text and "LLM agents" in page.text
    done = site.run(site.subscribe("Ada@Example.org", queries='"world model"\ntitle:diffusion'))
    assert done.status_code == 200 and "Check your inbox" in done.text
    (confirmation,) = site.emails()
    assert confirmation["To"] == "Ada@example.org"
    with site.store() as store:
        sub = store.get_subscriber("ada@example.org")
        assert sub.status == "pending" and sub.queries == ['"world model"', "title:diffusion"]
    confirmed = confirm_by_clicking(site, confirmation)
    assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
    assert "LLM agents" in confirmed.text and "/manage/" in confirmed.text
    again = site.run(site.client.post(link_in(confirmation, "/c/")))
    assert again.status_code == 200 and "You are subscribed" in again.text
    with site.store() as store:
        assert store.get_subscriber("ada@example.org").status == "active"


def test_the_answer_never_tells_whether_an_address_is_subscribed(site: Site) -> None:
    add_active(site)
    known = site.run(site.subscribe("ada@example.org"))
    unknown = site.run(site.subscribe("bob@example.org"))
    assert known.status_code == unknown.status_code == 200
    assert known.text.replace("ada@", "X@") == unknown.text.replace("bob@", "X@")
    assert [m["To"] for m in site.emails()] == ["bob@example.org"]


def test_a_query_error_is_shown_next_to_the_field_with_a_caret(site: Site) -> None:
    bad = site.run(site.subscribe("ada@example.org", queries="diffusion AND (video"))
    assert bad.status_code == 422
    assert "diffusion AND (video\n              ^\nunclosed parenthesis" in bad.text.replace(
        "&#39;", "'"
    )
    assert "hint: add &#39;)&#39; or remove &#39;(&#39;" in bad.text
    assert site.emails() == []
    invalid = site.run(site.subscribe("not an address"))
    assert invalid.status_code == 422 and "does not look like an email address" in invalid.text


def test_a_form_without_its_csrf_token_is_refused(site: Site) -> None:
    response = site.run(
        site.client.post("/subscribe", data={"email": "ada@example.org", "topic": "robotics"})
    )
    assert response.status_code == 403 and site.emails() == []


def test_resubmitting_resends_but_only_up_to_the_limit(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    site = Site(tmp_path, confirmations_per_address_per_day=2, signups_per_ip_per_hour=5)
    for _ in range(4):
        assert site.run(site.subscribe("ada@example.org")).status_code == 200
    assert len(site.emails()) == 2
    for _ in range(3):
        last = site.run(site.subscribe("ada@example.org"))
    assert last.status_code == 429
    loop.run_until_complete(site.client.aclose())
    loop.close()


def test_unsubscribe_get_never_unsubscribes_and_post_does(site: Site) -> None:
    sub = add_active(site)
    token = site.tokens.make("unsubscribe", sub.id, sub.email)
    page = site.run(site.client.get(f"/u/{token}"))
    assert page.status_code == 200 and 'method="post"' in page.text
    assert page.headers["cache-control"] == "no-store"
    with site.store() as store:
        assert store.get_subscriber(sub.id).status == "active"
    done = site.run(site.client.post(f"/u/{token}", data={}))
    assert done.status_code == 200 and "Subscribe again" in done.text
    with site.store() as store:
        assert store.get_subscriber(sub.id).status == "unsubscribed"
    # coming back takes a new double opt-in: the token is in every old email's headers
    back = site.run(site.client.post(f"/r/{token}"))
    assert back.status_code == 200 and "Check your inbox" in back.text
    with site.store() as store:  # still unsubscribed until she confirms
        assert store.get_subscriber(sub.id).status == "unsubscribed"
    confirm_by_clicking(site, site.emails()[-1])
    with site.store() as store:
        assert store.get_subscriber(sub.id).status == "active"


def test_one_click_post_unsubscribes_at_once_without_cookies(site: Site) -> None:
    sub = add_active(site)
    token = site.tokens.make("unsubscribe", sub.id, sub.email)
    fresh = httpx.AsyncClient(transport=httpx.ASGITransport(app=site.app), base_url=BASE)
    response = site.run(
        fresh.post(
            f"/u/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    )
    site.run(fresh.aclose())
    assert response.status_code == 200 and "set-cookie" not in response.headers
    with site.store() as store:
        events = store.subscriber_events(sub.id)
        assert store.get_subscriber(sub.id).status == "unsubscribed"
        assert events[-1]["cause"] == "one-click unsubscribe"


def _tokens(site: Site, sub: Subscriber, purpose: str) -> dict[str, str]:
    good = site.tokens.make(purpose, sub.id, sub.email)
    other = "manage" if purpose != "manage" else "unsubscribe"
    return {
        "forged": Tokens("another-secret").make(purpose, sub.id, sub.email),
        "truncated": good[:-4],
        "wrong-purpose": site.tokens.make(other, sub.id, sub.email),
        "garbage": "%3Cscript%3E",
        "other-address": site.tokens.make(purpose, sub.id, "eve@example.org"),
    }


@pytest.mark.parametrize(
    "kind", ["forged", "truncated", "wrong-purpose", "garbage", "other-address"]
)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/u/"), ("POST", "/u/"), ("GET", "/manage/"), ("GET", "/c/")]
)
def test_bad_tokens_get_a_clear_400_page_never_a_500(
    site: Site, kind: str, method: str, path: str
) -> None:
    sub = add_active(site)
    purpose = {"/u/": "unsubscribe", "/manage/": "manage", "/c/": "confirm"}[path]
    token = _tokens(site, sub, purpose)[kind]
    response = site.run(site.client.request(method, path + token))
    assert response.status_code == 400
    assert "This link does not work" in response.text
    with site.store() as store:
        assert store.get_subscriber(sub.id).status == "active"


def made_ago(purpose: str, sub: Subscriber, seconds: int) -> str:
    """A token signed `seconds` ago, as a link in an old email carries it: no waiting."""
    tokens = Tokens(SECRET, clock=lambda: time.time() - seconds)
    return tokens.make(purpose, sub.id or 0, sub.email)


def test_an_expired_confirmation_link_gets_410(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    site = Site(tmp_path, confirm_hours=1)
    site.run(site.subscribe("ada@example.org"))
    with site.store() as store:
        sub = store.get_subscriber("ada@example.org")
    assert sub is not None and link_in(site.emails()[0], "/c/")
    fresh = site.run(site.client.get(f"/c/{made_ago('confirm', sub, 3500)}"))
    assert fresh.status_code == 200 and "Confirm your subscription" in fresh.text
    response = site.run(site.client.get(f"/c/{made_ago('confirm', sub, 3700)}"))
    assert response.status_code == 410 and "expired" in response.text
    assert site.run(site.client.post(f"/c/{made_ago('confirm', sub, 3700)}")).status_code == 410
    with site.store() as store:
        assert store.get_subscriber("ada@example.org").status == "pending"
    loop.run_until_complete(site.client.aclose())
    loop.close()


def test_manage_edits_pauses_resumes_and_validates(site: Site) -> None:
    sub = add_active(site)
    path = f"/manage/{site.tokens.make('manage', sub.id, sub.email)}"
    page = site.run(site.client.get(path))
    assert page.status_code == 200 and "ada@example.org" in page.text
    assert page.headers["cache-control"] == "no-store"
    csrf = site.client.cookies["digest_csrf"]
    form = {"csrf": csrf, "action": "save", "topic": ["robotics", "diffusion"], "hour": "6",
            "cadence": "weekly", "weekday": "fri", "tz": "Europe/Paris", "max_papers": "5",
            "queries": "author:hinton"}  # fmt: skip
    saved = site.run(site.client.post(path, data=form))
    assert saved.status_code == 200 and "Saved." in saved.text
    with site.store() as store:
        now = store.get_subscriber(sub.id)
        assert (now.hour, now.cadence, now.weekday, now.tz, now.max_papers) == (
            6, "weekly", "fri", "Europe/Paris", 5,
        )  # fmt: skip
        assert now.topics == ["robotics", "diffusion"] and now.queries == ["author:hinton"]
    bad = site.run(site.client.post(path, data={**form, "tz": "Mars/Olympus"}))
    assert bad.status_code == 422 and "unknown time zone" in bad.text
    paused = site.run(site.client.post(path, data={"csrf": csrf, "action": "pause", "weeks": "3"}))
    assert "Paused for 3 weeks." in paused.text
    with site.store() as store:
        assert store.get_subscriber(sub.id).status == "paused"
    site.run(site.client.post(path, data={"csrf": csrf, "action": "resume"}))
    with site.store() as store:
        assert store.get_subscriber(sub.id).status == "active"
    no_csrf = site.run(site.client.post(path, data={**form, "csrf": "wrong"}))
    assert no_csrf.status_code == 403


def test_delete_my_data_erases_and_suppresses(site: Site) -> None:
    sub = add_active(site)
    with site.store() as store:
        store.mark_papers_sent(
            sub.id, ["2606.00001"], "2026-06-12", datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
        )
    path = f"/manage/{site.tokens.make('manage', sub.id, sub.email)}"
    site.run(site.client.get(path))
    csrf = site.client.cookies["digest_csrf"]
    unsure = site.run(site.client.post(path, data={"csrf": csrf, "action": "delete"}))
    assert unsure.status_code == 422
    done = site.run(site.client.post(path, data={"csrf": csrf, "action": "delete", "sure": "yes"}))
    assert done.status_code == 200 and "Your data is deleted" in done.text
    with site.store() as store:
        assert store.get_subscriber("ada@example.org") is None
        assert store.subscriber_events(sub.id) == []
        assert store.sent_counts(sub.id) == (0, 0)
        with pytest.raises(SubscriberError, match="its data was erased"):
            subs.add(
                store, TOPICS, Subscriber("ada@example.org", topics=["robotics"]), datetime.now(UTC)
            )
    gone = site.run(site.client.get(path))
    assert gone.status_code == 400
    site.run(site.subscribe("ada@example.org"))  # subscribing anew is always possible
    confirm_by_clicking(site, site.emails()[-1])
    with site.store() as store:
        assert store.get_subscriber("ada@example.org").status == "active"
        assert not store.is_suppressed(subs.suppression_hash("ada@example.org"))


def test_a_failed_confirmation_is_recorded_not_shown(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    site = Site(tmp_path)
    (tmp_path / "outbox" / "new").rmdir()
    (tmp_path / "outbox" / "new").write_text("not a folder")  # the transport will fail
    response = site.run(site.subscribe("ada@example.org"))
    assert response.status_code == 200 and "Check your inbox" in response.text
    with site.store() as store:
        events = store.subscriber_events(1)
        assert events[-1]["event"] == "confirmation failed"
    odd = site.run(site.subscribe("bob@example.org", hour="\u00b2"))
    assert odd.status_code == 422  # a non-ASCII digit is not a number: said, not guessed
    assert "hour: give a whole number" in odd.text
    loop.run_until_complete(site.client.aclose())
    loop.close()


def test_every_page_sends_security_headers_and_escapes(site: Site) -> None:
    page = site.run(site.subscribe('"><script>alert(1)</script>@x'))
    assert "<script>alert(1)" not in page.text
    for path in ("/", "/static/web.css", "/healthz"):
        response = site.run(site.client.get(path))
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_the_web_and_a_send_share_the_database_without_locking_errors(
    tmp_path: Path,
) -> None:
    """A run sending 300 deliveries while the web app saves preferences 150 times."""
    from digest.message import build_message
    from digest.send import Job, Sender

    config = make_config(tmp_path)
    people = [Subscriber(f"p{n}@example.org", status="active", queries=["x"]) for n in range(300)]
    with Store(config.database.path) as store:
        store.add_subscribers_bulk(people, datetime(2026, 6, 12, 0, 0, tzinfo=UTC), "test")
        store.plan_deliveries(
            [PlannedDelivery(n + 1, p.email, "2026-06-12", DeliveryStatus.PENDING,
                             ("2606.00001",), f"<{n}@x>")
             for n, p in enumerate(people)],
            datetime(2026, 6, 12, 0, 0, tzinfo=UTC),
        )  # fmt: skip
    errors: list[BaseException] = []

    def send() -> None:
        try:
            with Store(config.database.path) as store:
                rows = store.due_deliveries(datetime(2026, 6, 13, tzinfo=UTC), limit=1000)
                jobs = [
                    Job(r.id, r.subscriber_id, r.email, r.edition, r.papers,
                        build_message(sender="d@example.org", to=r.email, subject="s",
                                      text="t", html=None, message_id=r.message_id or "",
                                      date=datetime.now(UTC)))
                    for r in rows
                ]  # fmt: skip

                async def go() -> None:
                    async def stream():  # type: ignore[no-untyped-def]
                        for job in jobs:
                            yield job

                    sender = Sender(store, OutboxTransport(tmp_path / "out"), config.smtp,
                                    lambda: datetime.now(UTC))  # fmt: skip
                    stats = await sender.run(stream(), 4)
                    assert stats.sent == 300, stats

                asyncio.run(go())
        except BaseException as ex:
            errors.append(ex)

    def browse() -> None:
        try:

            async def go() -> None:
                app = create_app(config, TOPICS, OutboxTransport(tmp_path / "outbox"))
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url=BASE
                ) as client:
                    tokens = Tokens(SECRET)
                    for n in range(150):
                        sub_id = n % 300 + 1
                        path = (
                            f"/manage/{tokens.make('manage', sub_id, f'p{sub_id - 1}@example.org')}"
                        )
                        await client.get(path)
                        form = {
                            "csrf": client.cookies["digest_csrf"],
                            "action": "save",
                            "queries": f"q{n}",
                            "hour": str(n % 24),
                            "tz": "UTC",
                            "max_papers": "10",
                        }
                        response = await client.post(path, data=form)
                        assert response.status_code == 200, response.text

            asyncio.run(go())
        except BaseException as ex:
            errors.append(ex)

    threads = [threading.Thread(target=send), threading.Thread(target=browse)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with Store(config.database.path) as store:
        assert store.delivery_counts() == {"sent": 300}


def test_a_forged_forwarded_for_does_not_dodge_the_ip_limit(tmp_path: Path) -> None:
    """Behind our proxy the client address is the hop it appended (the rightmost); whatever a
    client writes before it changes nothing."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    site = Site(tmp_path, trust_forwarded=True, signups_per_ip_per_hour=2)
    statuses = []
    for n in range(3):
        site.client.headers["x-forwarded-for"] = f"10.0.0.{n}, 198.51.100.7"
        statuses.append(site.run(site.subscribe(f"p{n}@example.org")).status_code)
    assert statuses == [200, 200, 429]
    site.client.headers["x-forwarded-for"] = "198.51.100.8"
    assert site.run(site.subscribe("other@example.org")).status_code == 200
    loop.run_until_complete(site.client.aclose())
    loop.close()


def test_a_head_or_get_on_the_confirmation_link_never_confirms(site: Site) -> None:
    """Mail scanners open links (HEAD or GET): only the page's button (a POST) confirms."""
    site.run(site.subscribe("ada@example.org"))
    path = link_in(site.emails()[0], "/c/")
    head = site.run(site.client.head(path))
    page = site.run(site.client.get(path))
    assert head.status_code == page.status_code == 200
    assert "Confirm your subscription" in page.text and 'method="post"' in page.text
    assert page.headers["cache-control"] == "no-store"
    with site.store() as store:
        assert store.get_subscriber("ada@example.org").status == "pending"
    done = site.run(site.client.post(path))
    assert done.status_code == 200 and "You are subscribed" in done.text
    with site.store() as store:
        assert store.get_subscriber("ada@example.org").status == "active"


def test_the_confirmation_email_names_topics_and_counts_queries_but_never_repeats_them(
    site: Site,
) -> None:
    """Anyone can type any address into the form: whatever the email repeats is text a
    stranger could make us send to that mailbox."""
    spam = '"cheap pills at evil example"'
    site.run(site.subscribe("ada@example.org", queries=f"{spam}\ntitle:diffusion"))
    (confirmation,) = site.emails()
    text = confirmation.get_body(("plain",)).get_content()
    html = confirmation.get_body(("html",)).get_content()
    for part in (text, html):
        assert "LLM agents" in part and "2 search queries of your own" in part
        assert "cheap pills" not in part and "title:diffusion" not in part


@pytest.mark.parametrize(
    ("queries", "message"),
    [
        ("\n".join(f"word{n}" for n in range(subs.MAX_QUERIES + 1)),
         f"at most {subs.MAX_QUERIES} queries per subscriber"),
        ("x" * (subs.MAX_QUERY_LENGTH + 1), f"at most {subs.MAX_QUERY_LENGTH} characters"),
    ],
)  # fmt: skip
def test_queries_are_limited_in_number_and_length_with_a_message_naming_the_limit(
    site: Site, queries: str, message: str
) -> None:
    response = site.run(site.subscribe("ada@example.org", queries=queries))
    assert response.status_code == 422 and message in response.text
    assert site.emails() == []
    with site.store() as store:
        assert store.get_subscriber("ada@example.org") is None


def _one_click(site: Site, sub: Subscriber) -> None:
    token = site.tokens.make("unsubscribe", sub.id, sub.email)
    response = site.run(
        site.client.post(
            f"/u/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    )
    assert response.status_code == 200


def test_signing_up_an_unsubscribed_address_keeps_the_unsubscribe_until_its_owner_confirms(
    site: Site,
) -> None:
    """Before: the signup made the row pending, the purge of unconfirmed signups deleted it
    with its unsubscribe and history, and an import could then make it active again."""
    sub = add_active(site)
    _one_click(site, sub)
    again = site.run(site.subscribe("ada@example.org", topic=["robotics", "diffusion"]))
    unknown = site.run(site.subscribe("bob@example.org"))
    assert again.status_code == unknown.status_code == 200
    assert again.text.replace("ada@", "X@") == unknown.text.replace("bob@", "X@")
    with site.store() as store:
        assert store.get_subscriber(sub.id).status == "unsubscribed"
        assert store.purge_pending(FAR, FAR) == 1
        assert store.get_subscriber("bob@example.org") is None  # the purge still works
        kept = store.get_subscriber(sub.id)
        assert kept is not None and kept.status == "unsubscribed"
        assert "unsubscribed" in [e["event"] for e in store.subscriber_events(sub.id)]
        report = subs.import_csv(
            store, TOPICS, "email,topics,status\nada@example.org,robotics,active\n", "later"
        )
        assert report.existing == ["ada@example.org"]
        assert store.get_subscriber(sub.id).status == "unsubscribed"
        with pytest.raises(SubscriberError, match="cannot go from unsubscribed to pending"):
            subs.set_status(store, "ada@example.org", "pending", "later", "operator")
    ada_mail = [m for m in site.emails() if m["To"] == "ada@example.org"]
    confirm_by_clicking(site, ada_mail[-1])  # her own confirmed action brings her back
    with site.store() as store:
        back = store.get_subscriber(sub.id)
        assert back.status == "active" and back.topics == ["robotics", "diffusion"]


def test_a_confirmation_link_from_before_an_unsubscribe_does_not_undo_it(site: Site) -> None:
    site.run(site.subscribe("ada@example.org"))
    (confirmation,) = site.emails()
    confirm_by_clicking(site, confirmation)
    with site.store() as store:
        sub = store.get_subscriber("ada@example.org")
    _one_click(site, sub)
    path = link_in(confirmation, "/c/")
    page = site.run(site.client.get(path))
    stale = site.run(site.client.post(path))
    assert page.status_code == stale.status_code == 410
    assert "does not work any more" in stale.text
    with site.store() as store:
        assert store.get_subscriber(sub.id).status == "unsubscribed"


def test_the_form_takes_internationalised_addresses_and_stores_them_normalised(
    site: Site,
) -> None:
    for typed in ("user@M\u00fcnchen.de", "j\u00f6rg@example.org", "user@xn--mnchen-3ya.de"):
        response = site.run(site.subscribe(typed))
        assert response.status_code == 200 and "Check your inbox" in response.text
    with site.store() as store:
        stored = [s.email for s in store.iter_subscribers()]
    assert stored == ["user@m\u00fcnchen.de", "j\u00f6rg@example.org"]  # punycode is the same
    page = site.run(site.client.get("/"))
    assert 'type="email"' not in page.text  # browsers refuse a non-ASCII local part there


def test_a_confirmation_that_cannot_be_sent_is_counted_logged_and_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A relay without SMTPUTF8 cannot take a non-ASCII local part: that one confirmation
    fails, loudly; the next signup's goes out."""
    from tests.smtp_server import Recorder, start

    recorder = Recorder(smtputf8=False)
    server = start(recorder)
    config = parse_config(
        {
            "database": {"path": str(tmp_path / "digest.db")},
            "mail": {"from": "Paper Digest <digest@example.org>", "postal_address": "1 Rue"},
            "smtp": {"host": "127.0.0.1", "port": server.port, "security": "none",
                     "rate_per_second": 0, "timeout": 5},
            "web": {"base_url": BASE},
        },
        tmp_path / "digest.toml",
        {"DIGEST_SECRET": SECRET},
    )  # fmt: skip
    app = create_app(config, TOPICS)

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            statuses = []
            for address in ("j\u00f6rg@example.org", "ada@example.org"):
                await client.get("/")
                form = {
                    "csrf": client.cookies["digest_csrf"],
                    "email": address,
                    "topic": "robotics",
                    "hour": "8",
                    "tz": "UTC",
                    "max_papers": "10",
                }
                statuses.append((await client.post("/subscribe", data=form)).status_code)
            return statuses

    try:
        assert asyncio.run(go()) == [200, 200]
    finally:
        server.stop()
    assert [r.recipients for r in recorder.received] == [["ada@example.org"]]
    assert app.state.web.confirmations_failed == 1
    assert "confirmation to j\u00f6rg@example.org failed" in caplog.text
    with Store(config.database.path) as store:
        events = store.subscriber_events(1)
    assert events[-1]["event"] == "confirmation failed" and events[-1]["cause"]


async def test_a_request_waiting_for_the_database_holds_up_no_other_request(
    tmp_path: Path,
) -> None:
    """The daily job holds the write lock: an unsubscribe waits for it in the store's thread,
    while the form and /healthz are answered at once. (On the event loop, that wait froze
    every request for up to the busy timeout, then failed.)"""
    reached_the_store = threading.Event()

    def clock() -> datetime:  # the handler reads it just before its write
        reached_the_store.set()
        return datetime.now(UTC)

    config = make_config(tmp_path)
    app = create_app(config, TOPICS, OutboxTransport(tmp_path / "outbox"), clock=clock)
    with Store(config.database.path) as store:
        sub = subs.add(store, TOPICS, Subscriber("ada@example.org", status="active",
                       topics=["robotics"]), datetime(2026, 6, 12, 0, 0, tzinfo=UTC))  # fmt: skip
    token = Tokens(SECRET).make("unsubscribe", sub.id or 0, sub.email)
    daily_job = sqlite3.connect(config.database.path, isolation_level=None)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        assert (await client.get(f"/u/{token}")).status_code == 200  # the store is open
        daily_job.execute("BEGIN IMMEDIATE")
        try:
            waiting = asyncio.create_task(client.post(f"/u/{token}"))
            assert await asyncio.to_thread(reached_the_store.wait, 5)
            form = await asyncio.wait_for(client.get("/"), 5)
            health = await asyncio.wait_for(client.get("/healthz"), 5)
            assert form.status_code == health.status_code == 200
            assert not waiting.done()
        finally:
            daily_job.execute("COMMIT")
            daily_job.close()
        done = await waiting
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    with Store(config.database.path) as store:
        assert store.get_subscriber(sub.id or 0).status == "unsubscribed"


async def test_shutting_down_closes_the_database_in_its_own_thread(tmp_path: Path) -> None:
    """The connection is opened by the store's thread and closed by it: the last close of a
    WAL database folds the log back in and removes it, so no -wal file is left behind."""
    config = make_config(tmp_path)
    app = create_app(config, TOPICS, OutboxTransport(tmp_path / "outbox"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            await client.get("/")
            form = {"csrf": client.cookies["digest_csrf"], "email": "ada@example.org",
                    "topic": "robotics", "hour": "8", "tz": "UTC", "max_papers": "10"}  # fmt: skip
            assert (await client.post("/subscribe", data=form)).status_code == 200
        assert Path(config.database.path + "-wal").exists()
    assert not Path(config.database.path + "-wal").exists()


@pytest.mark.parametrize("fault", ["store", "token", "expired"])
async def test_an_error_in_any_route_is_mapped_by_the_app_not_by_a_wrapper(
    tmp_path: Path, fault: str
) -> None:
    """A route added later, with no wrapper of its own, gets the same answers: a store
    fault is the 503 page, a bad link the 400 page, an expired one the 410 page, each with
    the security headers."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from digest.errors import StoreError, TokenError
    from digest.tokens import TokenExpired

    raised = {
        "store": StoreError("/srv/digest.db: disk I/O error"),
        "token": TokenError("this manage link is not valid"),
        "expired": TokenExpired("this confirm link has expired"),
    }[fault]

    async def later(request: Request) -> Response:
        raise raised

    app = create_app(make_config(tmp_path), TOPICS, OutboxTransport(tmp_path / "outbox"))
    app.router.routes.append(Route("/later", later))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        response = await client.get("/later")
    status, words = {
        "store": (503, "Our fault, not yours"),
        "token": (400, "This link does not work"),
        "expired": (410, "This link has expired"),
    }[fault]
    assert response.status_code == status and words in response.text
    assert "/srv/digest.db" not in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("kind", ["forged", "wrong-purpose", "other-address", "erased"])
@pytest.mark.parametrize(
    ("method", "path", "purpose"),
    [
        ("GET", "/c/", "confirm"), ("POST", "/c/", "confirm"),
        ("GET", "/u/", "unsubscribe"), ("POST", "/u/", "unsubscribe"),
        ("POST", "/r/", "unsubscribe"),
        ("GET", "/manage/", "manage"), ("POST", "/manage/", "manage"),
    ],
)  # fmt: skip
def test_every_link_route_answers_a_bad_token_with_the_same_page_and_changes_nothing(
    site: Site, kind: str, method: str, path: str, purpose: str
) -> None:
    sub = add_active(site)
    if kind == "erased":
        token = site.tokens.make(purpose, sub.id or 0, sub.email)
        with site.store() as store:
            subs.erase(store, sub.email, datetime(2026, 6, 12, 0, 0, tzinfo=UTC))
    else:
        token = _tokens(site, sub, purpose)[kind]
    form = {"csrf": "x" * 20, "action": "delete", "sure": "yes"}
    response = site.run(site.client.request(method, path + token, data=form))
    assert response.status_code == 400 and "This link does not work" in response.text
    assert response.headers["cache-control"] == "no-store"
    with site.store() as store:
        found = store.get_subscriber(sub.id or 0)
        assert (found.status if found else "erased") == ("erased" if kind == "erased" else "active")


@pytest.mark.parametrize(
    ("typed", "weeks"),
    [("1", 1), ("3", 3), ("52", 52), ("53", 2), ("0", 2), ("", 2), ("-1", 2), ("\u00b3", 2),
     ("9" * 40, 2), ("2.5", 2)],
)  # fmt: skip
def test_a_pause_lasts_the_weeks_typed_from_1_to_52_else_2(typed: str, weeks: int) -> None:
    from digest.web.manage import pause_weeks

    assert pause_weeks(typed) == weeks


@pytest.mark.parametrize(
    ("action", "notice", "status"),
    [("pause", "Paused for 2 weeks.", "paused"), ("resume", "Emails resumed.", "active"),
     ("save", "Saved.", "active"), ("no-such-action", "Saved.", "active"),
     ("delete", "Tick the box to confirm.", "active")],
)  # fmt: skip
def test_each_manage_action_does_its_one_thing(
    site: Site, action: str, notice: str, status: str
) -> None:
    """An unknown action saves (the form's main button has no name in old pages); delete
    asks for the box first."""
    sub = add_active(site)
    path = f"/manage/{site.tokens.make('manage', sub.id or 0, sub.email)}"
    site.run(site.client.get(path))
    form = {"csrf": site.client.cookies["digest_csrf"], "action": action, "topic": "robotics",
            "hour": "8", "tz": "UTC", "max_papers": "10"}  # fmt: skip
    response = site.run(site.client.post(path, data=form))
    assert notice in response.text
    assert response.status_code == (422 if action == "delete" else 200)
    with site.store() as store:
        found = store.get_subscriber(sub.id or 0)
        assert found is not None and found.status == status


PACKAGE = Path(__file__).parent.parent / "digest"
WEB_SOURCES = [*sorted((PACKAGE / "web").glob("*.py")), PACKAGE / "pages.py"]


@pytest.mark.parametrize("path", WEB_SOURCES, ids=lambda p: p.name)
def test_the_web_code_stays_short_and_says_what_each_public_function_is_for(path: Path) -> None:
    """No function over 60 lines, no class over 250 (issue 12); every public function and
    class has a docstring."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in ast.walk(tree):
        if isinstance(node, definitions):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            limit = 250 if isinstance(node, ast.ClassDef) else 60
            assert length <= limit, f"{path.name}: {node.name} has {length} lines"
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    public = [*tree.body, *(member for c in classes for member in c.body)]
    for node in public:
        if isinstance(node, definitions) and not node.name.startswith("_"):
            assert ast.get_docstring(node), f"{path.name}: {node.name} has no docstring"
