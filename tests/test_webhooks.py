"""Provider webhooks on the web app (issue 14): POST /hooks/ses, /hooks/postmark, /hooks/mailgun
against the real app (httpx.ASGITransport) and a real SQLite file.

Per provider: a verified hard bounce is counted, a verified complaint unsubscribes, a request
that fails verification gets its 4xx and changes nothing, a replayed one changes nothing, a
wrong Content-Type is 415. SNS signs with a certificate made here, served by a fetcher the test
gives the app. `pytest -s` prints the table provider x request -> status and effect.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pytest_httpserver import HTTPServer

from digest.bounces.verp import envelope_sender, make_token
from digest.config import Config, load_config, load_topics, parse_config
from digest.errors import SourceError
from digest.message import message_id_for
from digest.models import Subscriber
from digest.send import OutboxTransport
from digest.sources.http import fetch_small
from digest.store import DeliveryStatus, PlannedDelivery, Store
from digest.web import create_app
from tests.bounce_helpers import sns_certificate, sns_signature

SECRET = "webhook-test-secret-0123456789abcdef"
BASE = "https://digest.example.org"
FROM = "Paper Digest <digest@digest.test>"
BOUNCES = "bounces@digest.test"
DAY = "2026-09-24"
NOW = datetime(2026, 9, 24, 12, 0, tzinfo=UTC)
TOPIC = "arn:aws:sns:eu-west-1:123456789012:digest-ses"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"
SUBSCRIBE_URL = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc"
POSTMARK_USER, POSTMARK_PASSWORD = "postmark", "postmark-webhook-password"
MAILGUN_KEY = "mailgun-signing-key"
TOPICS = load_topics(load_config(env={}).topics_path)
PROVIDERS = ["ses", "postmark", "mailgun"]


def webhook_config(tmp_path: Path, configured: bool = True) -> Config:
    bounces: dict[str, Any] = {"address": BOUNCES}
    env = {"DIGEST_SECRET": SECRET}
    if configured:
        bounces.update(sns_topics=[TOPIC], postmark_user=POSTMARK_USER)
        env.update(DIGEST_POSTMARK_PASSWORD=POSTMARK_PASSWORD)
        env.update(DIGEST_MAILGUN_SIGNING_KEY=MAILGUN_KEY)
    data = {
        "database": {"path": str(tmp_path / "digest.db")},
        "mail": {"from": FROM, "postal_address": "1 Rue"},
        "outbox": {"path": str(tmp_path / "outbox")},
        "web": {"base_url": BASE},
        "bounces": bounces,
    }
    return parse_config(data, tmp_path / "digest.toml", env)


@pytest.fixture(scope="module")
def sns_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """SNS's key (its certificate is what the fetcher serves) and an attacker's."""
    return tuple(  # type: ignore[return-value]
        rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)
    )


class Fetcher:
    """What the app GETs: the certificate for a .pem URL, a confirmation for SubscribeURL."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        return self.pem if url.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"


@dataclass
class Hooks:
    """The app with every webhook configured, a client, and the database behind them."""

    tmp: Path
    config: Config
    fetcher: Fetcher
    key: rsa.RSAPrivateKey
    client: httpx.AsyncClient = field(init=False)
    people: dict[str, int] = field(default_factory=dict)

    def subscriber(self, email: str) -> int:
        """An active subscriber who was sent today's edition (accepted by the relay)."""
        with Store(self.config.database.path) as store:
            sub = store.add_subscriber(Subscriber(email, status="active"), NOW, "t")
            assert sub.id is not None
            row = PlannedDelivery(sub.id, email, DAY, DeliveryStatus.PENDING, (),
                                  message_id_for(sub.id, DAY, FROM))  # fmt: skip
            store.plan_deliveries([row], NOW)
            delivery = store.delivery(sub.id, DAY)
            assert delivery is not None
            store.mark_sent(delivery.id, sub.id, [], DAY, "250 ok", NOW)
        self.people[email] = sub.id
        return sub.id

    def state(self) -> tuple[object, ...]:
        """Each subscriber's status and hard-bounce count, and the size of the bounce log."""
        with Store(self.config.database.path) as store:
            subs = tuple(
                (email, s.status, s.bounces)
                for email, sid in sorted(self.people.items())
                if (s := store.get_subscriber(sid)) is not None
            )
            return subs, len(store.bounce_events())

    async def post(
        self, path: str, body: bytes, content_type: str, **headers: str
    ) -> httpx.Response:
        return await self.client.post(
            path, content=body, headers={"content-type": content_type, **headers}
        )


@asynccontextmanager
async def running(
    tmp_path: Path, key: rsa.RSAPrivateKey, config: Config | None = None
) -> AsyncIterator[Hooks]:
    config = config or webhook_config(tmp_path)
    hooks = Hooks(tmp_path, config, Fetcher(sns_certificate(key, NOW)), key)
    app = create_app(
        config, TOPICS, OutboxTransport(tmp_path / "outbox"), lambda: NOW, hooks.fetcher
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 4000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            hooks.client = client
            yield hooks


@pytest.fixture
async def hooks(tmp_path: Path, sns_keys: tuple[rsa.RSAPrivateKey, ...]) -> AsyncIterator[Hooks]:
    async with running(tmp_path, sns_keys[0]) as made:
        yield made


# ---------------------------------------------------------------- what each provider sends


def sns_request(
    key: rsa.RSAPrivateKey, message_id: str, message: str, **fields: str
) -> tuple[bytes, str]:
    """An SNS POST signed as AWS documents it ("Key\\nValue\\n" over the signed keys)."""
    body = {
        "Type": "Notification", "MessageId": message_id, "TopicArn": TOPIC,
        "Message": message, "Timestamp": "2026-09-24T11:59:30.000Z",
        "SignatureVersion": "2", "SigningCertURL": CERT_URL, **fields,
    }  # fmt: skip
    body["Signature"] = sns_signature(key, body)
    return json.dumps(body).encode(), "text/plain; charset=UTF-8"


def ses_message(kind: str, email: str, sid: int) -> str:
    mail = {"messageId": f"ses-{sid}", "source": envelope_sender(BOUNCES, SECRET, sid, DAY)}
    if kind == "bounce":
        recipient = {"emailAddress": email, "action": "failed", "status": "5.1.1",
                     "diagnosticCode": "smtp; 550 5.1.1 user unknown"}  # fmt: skip
        data = {"notificationType": "Bounce", "mail": mail, "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General",
            "bouncedRecipients": [recipient]}}  # fmt: skip
    else:
        data = {"notificationType": "Complaint", "mail": mail, "complaint": {
            "complaintFeedbackType": "abuse",
            "complainedRecipients": [{"emailAddress": email}]}}  # fmt: skip
    return json.dumps(data)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def postmark_body(kind: str, email: str, sid: int, event_id: int | None) -> bytes:
    record = (
        {"RecordType": "Bounce", "Type": "HardBounce", "Details": "550 5.1.1 unknown"}
        if kind == "bounce"
        else {"RecordType": "SpamComplaint", "Type": "SpamComplaint"}
    )
    body = {"MessageID": f"pm-{sid}", "Email": email,
            "Metadata": {"token": make_token(SECRET, sid, DAY)}, **record}  # fmt: skip
    if event_id is not None:
        body["ID"] = event_id
    return json.dumps(body).encode()


def mailgun_body(key: str, token: str, event: dict[str, object], at: datetime = NOW) -> bytes:
    timestamp = str(int(at.timestamp()))
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {
            "signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": event,
        }
    ).encode()


def mailgun_event(kind: str, email: str, sid: int, event_id: str) -> dict[str, object]:
    sender = {"sender": envelope_sender(BOUNCES, SECRET, sid, DAY)}
    if kind == "bounce":
        return {"id": event_id, "event": "failed", "severity": "permanent", "recipient": email,
                "delivery-status": {"code": 550, "description": "No such user"},
                "envelope": sender}  # fmt: skip
    return {"id": event_id, "event": "complained", "recipient": email, "envelope": sender}


Request = tuple[str, bytes, str, dict[str, str]]  # path, body, content type, headers


def valid(hooks: Hooks, provider: str, kind: str, email: str, n: int = 1) -> Request:
    """A genuine request of `provider` about `email`'s delivery; `n` makes its event id."""
    sid = hooks.people[email]
    if provider == "ses":
        body, ctype = sns_request(hooks.key, f"sns-{kind}-{n}", ses_message(kind, email, sid))
        return "/hooks/ses", body, ctype, {}
    if provider == "postmark":
        auth = {"authorization": basic(POSTMARK_USER, POSTMARK_PASSWORD)}
        event_id = 10 * n + (kind == "complaint")  # Postmark numbers every bounce record
        return (
            "/hooks/postmark",
            postmark_body(kind, email, sid, event_id),
            "application/json",
            auth,
        )
    event = mailgun_event(kind, email, sid, f"mg-{kind}-{n}")
    body = mailgun_body(MAILGUN_KEY, f"token-{kind}-{n}", event)
    return "/hooks/mailgun", body, "application/json", {}


def forged(hooks: Hooks, provider: str, attacker: rsa.RSAPrivateKey, email: str) -> Request:
    """A complaint about `email` that fails verification: signed with another key, or with
    the wrong password."""
    sid = hooks.people[email]
    if provider == "ses":
        body, ctype = sns_request(attacker, "sns-forged", ses_message("complaint", email, sid))
        return "/hooks/ses", body, ctype, {}
    if provider == "postmark":
        auth = {"authorization": basic(POSTMARK_USER, "guessed")}
        return (
            "/hooks/postmark",
            postmark_body("complaint", email, sid, 9),
            "application/json",
            auth,
        )
    event = mailgun_event("complaint", email, sid, "mg-forged")
    return "/hooks/mailgun", mailgun_body("guessed-key", "t-forged", event), "application/json", {}


async def send(hooks: Hooks, request: Request, content_type: str | None = None) -> httpx.Response:
    path, body, ctype, headers = request
    return await hooks.post(path, body, content_type or ctype, **headers)


# ---------------------------------------------------------------- the table


@dataclass
class Row:
    provider: str
    request: str
    status: int
    result: str
    effect: str


def effect(before: tuple[Any, ...], after: tuple[Any, ...]) -> str:
    """What changed between two states, in words."""
    if before == after:
        return "nothing changed"
    changes = [
        f"{email}: {status}, {bounces} hard bounce(s)"
        for (email, status, bounces), old in zip(after[0], before[0], strict=True)
        if (email, status, bounces) != old
    ]
    return "; ".join(changes) or f"bounce log +{after[1] - before[1]}"


async def table_rows(hooks: Hooks, provider: str, attacker: rsa.RSAPrivateKey) -> list[Row]:
    """valid bounce, valid complaint, forged complaint, replayed complaint, wrong type."""
    ann, grace, ida = (f"{n}-{provider}@example.com" for n in ("ann", "grace", "ida"))
    for email in (ann, grace, ida):
        hooks.subscriber(email)
    complaint = valid(hooks, provider, "complaint", grace)
    requests = [
        ("valid hard bounce", valid(hooks, provider, "bounce", ann), None),
        ("valid complaint", complaint, None),
        ("invalid signature", forged(hooks, provider, attacker, ida), None),
        ("replayed complaint", complaint, None),
        ("wrong Content-Type", valid(hooks, provider, "complaint", ida, 2), "text/html"),
    ]
    rows = []
    for name, request, ctype in requests:
        before = hooks.state()
        response = await send(hooks, request, ctype)
        rows.append(
            Row(
                provider,
                name,
                response.status_code,
                response.json()["result"][:60],
                effect(before, hooks.state()),
            )
        )
    return rows


async def test_per_provider_valid_requests_act_and_invalid_replayed_or_mistyped_change_nothing(
    hooks: Hooks, sns_keys: tuple[rsa.RSAPrivateKey, ...]
) -> None:
    """The closing note's table: a hard bounce is counted, a complaint unsubscribes, a forged
    request is 401/403, a replay is 200 "already processed" (Mailgun: its token reused, 409),
    a wrong Content-Type is 415; the last three change nothing."""
    rows = [row for p in PROVIDERS for row in await table_rows(hooks, p, sns_keys[1])]
    width = max(len(r.result) for r in rows)
    print("\nprovider  request             status  result" + " " * (width - 4) + "effect")
    for r in rows:
        print(f"{r.provider:<9} {r.request:<19} {r.status:<7} {r.result:<{width + 2}}{r.effect}")
    got = {(r.provider, r.request): (r.status, r.effect) for r in rows}
    for p in PROVIDERS:
        assert got[p, "valid hard bounce"] == (
            200,
            f"ann-{p}@example.com: active, 1 hard bounce(s)",
        )
        assert got[p, "valid complaint"] == (
            200,
            f"grace-{p}@example.com: unsubscribed, 0 hard bounce(s)",
        )
        assert got[p, "invalid signature"] == (401 if p == "postmark" else 403, "nothing changed")
        assert got[p, "replayed complaint"] == (409 if p == "mailgun" else 200, "nothing changed")
        assert got[p, "wrong Content-Type"] == (415, "nothing changed")
    assert [r.result for r in rows if r.request == "replayed complaint"] == [
        "already processed", "already processed", "Mailgun webhook: token already used (replay)"
    ]  # fmt: skip


# ---------------------------------------------------------------- each rule on its own


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_provider_without_credentials_answers_404_even_to_a_genuine_request(
    tmp_path: Path, sns_keys: tuple[rsa.RSAPrivateKey, ...], provider: str
) -> None:
    config = webhook_config(tmp_path, configured=False)
    async with running(tmp_path, sns_keys[0], config) as hooks:
        hooks.subscriber("grace@example.com")
        before = hooks.state()
        response = await send(hooks, valid(hooks, provider, "complaint", "grace@example.com"))
        assert response.status_code == 404 and "not configured" in response.json()["result"]
        assert hooks.state() == before and hooks.fetcher.urls == []


async def test_a_postmark_password_without_a_user_is_not_configured(
    tmp_path: Path, sns_keys: tuple[rsa.RSAPrivateKey, ...]
) -> None:
    config = webhook_config(tmp_path)
    config = parse_config(
        {"database": {"path": config.database.path}, "bounces": {"address": BOUNCES}},
        tmp_path / "digest.toml",
        {"DIGEST_SECRET": SECRET, "DIGEST_POSTMARK_PASSWORD": POSTMARK_PASSWORD},
    )
    async with running(tmp_path, sns_keys[0], config) as hooks:
        hooks.subscriber("grace@example.com")
        response = await send(hooks, valid(hooks, "postmark", "complaint", "grace@example.com"))
        assert response.status_code == 404


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_body_over_the_cap_is_413_and_changes_nothing(hooks: Hooks, provider: str) -> None:
    hooks.subscriber("grace@example.com")
    path, body, ctype, headers = valid(hooks, provider, "complaint", "grace@example.com")
    before = hooks.state()
    padded = body[:-1] + b', "padding": "' + b"x" * 300_000 + b'"}'
    response = await hooks.post(path, padded, ctype, **headers)
    assert response.status_code == 413 and hooks.state() == before


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"ID": 5, "RecordType": "Bounce",'])
async def test_a_malformed_body_that_passed_auth_is_400_and_changes_nothing(
    hooks: Hooks, body: bytes
) -> None:
    auth = basic(POSTMARK_USER, POSTMARK_PASSWORD)
    response = await hooks.post("/hooks/postmark", body, "application/json", authorization=auth)
    assert response.status_code == 400 and hooks.state() == ((), 0)


async def test_a_reused_mailgun_token_carrying_another_body_is_refused_and_changes_nothing(
    hooks: Hooks,
) -> None:
    """Mailgun signs the timestamp and token, not the body: whoever saw one request could
    send its signature with a complaint about someone else. The token is good once."""
    hooks.subscriber("ann@example.com")
    victim = hooks.subscriber("victim@example.com")
    _, seen, _, _ = valid(hooks, "mailgun", "bounce", "ann@example.com")
    assert (await hooks.post("/hooks/mailgun", seen, "application/json")).status_code == 200
    signature = json.loads(seen)["signature"]
    complaint = mailgun_event("complaint", "victim@example.com", victim, "mg-victim")
    forged = json.dumps({"signature": signature, "event-data": complaint}).encode()
    before = hooks.state()
    response = await hooks.post("/hooks/mailgun", forged, "application/json")
    assert response.status_code == 409 and hooks.state() == before


async def test_a_mailgun_redelivery_signed_afresh_is_already_processed(hooks: Hooks) -> None:
    """Mailgun signs each attempt again: the same event under a new token is a 200 that
    changes nothing, so Mailgun stops retrying."""
    sid = hooks.subscriber("grace@example.com")
    event = mailgun_event("complaint", "grace@example.com", sid, "mg-1")
    first = mailgun_body(MAILGUN_KEY, "token-a", event)
    again = mailgun_body(MAILGUN_KEY, "token-b", event, NOW + timedelta(minutes=1))
    assert (await hooks.post("/hooks/mailgun", first, "application/json")).status_code == 200
    before = hooks.state()
    response = await hooks.post("/hooks/mailgun", again, "application/json")
    assert (response.status_code, response.json()["result"]) == (200, "already processed")
    assert hooks.state() == before


async def test_replays_change_nothing_after_a_restart(
    tmp_path: Path, sns_keys: tuple[rsa.RSAPrivateKey, ...]
) -> None:
    """The event ids and Mailgun tokens are remembered in the database, not in the process."""
    async with running(tmp_path, sns_keys[0]) as hooks:
        for name in ("grace@example.com", "ida@example.com"):
            hooks.subscriber(name)
        ses = valid(hooks, "ses", "complaint", "grace@example.com")
        mailgun = valid(hooks, "mailgun", "complaint", "ida@example.com")
        assert [(await send(hooks, r)).status_code for r in (ses, mailgun)] == [200, 200]
        people = dict(hooks.people)
    async with running(tmp_path, sns_keys[0]) as restarted:
        restarted.people = people
        before = restarted.state()
        assert [(await send(restarted, r)).status_code for r in (ses, mailgun)] == [200, 409]
        assert restarted.state() == before


async def test_a_report_that_would_change_a_subscriber_needs_an_event_id(hooks: Hooks) -> None:
    """Without Postmark's ID a bounce could not be processed once: refused. A delivery
    notice (which changes nothing) is answered and not recorded."""
    sid = hooks.subscriber("ann@example.com")
    auth = basic(POSTMARK_USER, POSTMARK_PASSWORD)
    bounce = postmark_body("bounce", "ann@example.com", sid, None)
    response = await hooks.post("/hooks/postmark", bounce, "application/json", authorization=auth)
    assert response.status_code == 400 and hooks.state() == ((("ann@example.com", "active", 0),), 0)
    delivery = json.dumps({"RecordType": "Delivery", "MessageID": "pm-1", "Email": "a@b.c"})
    response = await hooks.post(
        "/hooks/postmark", delivery.encode(), "application/json", authorization=auth
    )
    assert (response.status_code, response.json()["result"]) == (200, "ignored")


# ---------------------------------------------------------------- SNS specifics


def confirmation(key: rsa.RSAPrivateKey, topic: str = TOPIC, url: str = SUBSCRIBE_URL) -> bytes:
    body, _ = sns_request(
        key, "sns-confirm-1", "You have chosen to subscribe...",
        Type="SubscriptionConfirmation", SubscribeURL=url, Token="abc", TopicArn=topic,
    )  # fmt: skip
    return body


async def test_an_sns_subscription_of_an_allowed_topic_is_confirmed_once(hooks: Hooks) -> None:
    body = confirmation(hooks.key)
    first = await hooks.post("/hooks/ses", body, "text/plain; charset=UTF-8")
    assert (first.status_code, first.json()["result"]) == (200, "subscription confirmed")
    assert hooks.fetcher.urls == [CERT_URL, SUBSCRIBE_URL]
    replay = await hooks.post("/hooks/ses", body, "text/plain; charset=UTF-8")
    assert (replay.status_code, replay.json()["result"]) == (200, "already processed")
    assert hooks.fetcher.urls == [CERT_URL, SUBSCRIBE_URL]  # the certificate is kept, too


@pytest.mark.parametrize(
    ("topic", "url", "status"),
    [
        ("arn:aws:sns:eu-west-1:999999999999:attacker", SUBSCRIBE_URL, 403),
        (TOPIC, "https://evil.example/?Action=ConfirmSubscription", 403),
        (TOPIC, "http://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription", 403),
        (TOPIC, "https://sns.eu-west-1.amazonaws.com@evil.example/", 403),
    ],
)
async def test_an_sns_subscription_is_not_confirmed_for_another_topic_or_host(
    hooks: Hooks, topic: str, url: str, status: int
) -> None:
    response = await hooks.post("/hooks/ses", confirmation(hooks.key, topic, url), "text/plain")
    assert response.status_code == status
    assert all(u.endswith(".pem") for u in hooks.fetcher.urls) and hooks.state() == ((), 0)


async def test_an_sns_certificate_url_off_the_sns_hosts_is_never_fetched(hooks: Hooks) -> None:
    sid = hooks.subscriber("grace@example.com")
    message = ses_message("complaint", "grace@example.com", sid)
    body, ctype = sns_request(
        hooks.key, "sns-1", message, SigningCertURL="https://evil.example/cert.pem"
    )
    before = hooks.state()
    assert (await hooks.post("/hooks/ses", body, ctype)).status_code == 403
    assert hooks.fetcher.urls == [] and hooks.state() == before


async def test_a_certificate_that_cannot_be_fetched_is_503_and_the_redelivery_is_acted_on(
    tmp_path: Path, sns_keys: tuple[rsa.RSAPrivateKey, ...], httpserver: HTTPServer
) -> None:
    """The app's GET is the real fetch_small, to a local server standing in for SNS's host:
    it fails once (503, nothing changes, SNS delivers again), then serves the certificate."""
    pem = sns_certificate(sns_keys[0], NOW)
    httpserver.expect_ordered_request("/cert.pem").respond_with_data("busy", status=500)
    httpserver.expect_ordered_request("/cert.pem").respond_with_data(pem)

    def via_local_server(url: str) -> bytes:
        return fetch_small(httpserver.url_for("/cert.pem"), timeout=5)

    config = webhook_config(tmp_path)
    app = create_app(config, TOPICS, OutboxTransport(tmp_path / "o"), lambda: NOW, via_local_server)
    hooks = Hooks(tmp_path, config, Fetcher(pem), sns_keys[0])
    sid = hooks.subscriber("grace@example.com")
    body, ctype = sns_request(
        sns_keys[0], "sns-1", ses_message("complaint", "grace@example.com", sid)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            hooks.client = client
            before = hooks.state()
            assert (await hooks.post("/hooks/ses", body, ctype)).status_code == 503
            assert hooks.state() == before
            assert (await hooks.post("/hooks/ses", body, ctype)).status_code == 200
    assert hooks.state()[0] == (("grace@example.com", "unsubscribed", 0),)


# ---------------------------------------------------------------- the small fetch


def test_fetch_small_returns_the_body(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/cert.pem").respond_with_data(b"PEM")
    assert fetch_small(httpserver.url_for("/cert.pem")) == b"PEM"


@pytest.mark.parametrize(
    ("respond", "message"),
    [
        (lambda r: r.respond_with_data(b"x" * 5000), "body over 4,096 bytes"),
        (lambda r: r.respond_with_data("", status=302, headers={"Location": "/other"}), "HTTP 302"),
        (lambda r: r.respond_with_data("gone", status=404), "HTTP 404"),
        (
            lambda r: r.respond_with_data(
                gzip.compress(b"x" * 100), headers={"Content-Encoding": "gzip"}
            ),
            "refused Content-Encoding 'gzip'",
        ),
    ],
)
def test_fetch_small_refuses_big_redirected_failed_or_encoded_answers(
    httpserver: HTTPServer, respond: Callable[[Any], None], message: str
) -> None:
    respond(httpserver.expect_request("/doc"))
    with pytest.raises(SourceError, match=message):
        fetch_small(httpserver.url_for("/doc"), max_bytes=4096)


def test_fetch_small_names_the_url_when_nothing_answers() -> None:
    with pytest.raises(SourceError, match=re.escape("GET http://127.0.0.1:9/x failed")):
        fetch_small("http://127.0.0.1:9/x", timeout=2)


HOSTILE_BODIES = {
    "bad-utf8": b'{"a": "\xff\xfe"}',
    "deep-nesting": b"[" * 100_000,
    "huge-number": b'{"ID": ' + b"9" * 5000 + b"}",
    "wrong-types": json.dumps(
        {
            "Type": ["Notification"],
            "TopicArn": TOPIC,
            "SignatureVersion": 2,
            "Signature": {},
            "SigningCertURL": CERT_URL,
            "signature": "x",
            "event-data": [],
            "ID": True,
            "RecordType": {"x": 1},
            "Email": 5,
        }
    ).encode(),
    "empty": b"",
    "nul": b'{"Type": "Notification\x00"}',
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("name", HOSTILE_BODIES)
async def test_hostile_bodies_are_never_a_5xx_and_change_nothing(
    hooks: Hooks, provider: str, name: str
) -> None:
    """A 4xx; or, for Postmark behind good credentials, a 200 "ignored" when the object asks
    nothing of us."""
    auth = basic(POSTMARK_USER, POSTMARK_PASSWORD)
    response = await hooks.post(
        f"/hooks/{provider}", HOSTILE_BODIES[name], "application/json", authorization=auth
    )
    assert 400 <= response.status_code < 500 or response.json() == {"result": "ignored"}
    assert hooks.state() == ((), 0) and hooks.fetcher.urls == []


async def test_a_certificate_that_is_not_a_certificate_is_refused(
    tmp_path: Path, sns_keys: tuple[rsa.RSAPrivateKey, ...]
) -> None:
    async with running(tmp_path, sns_keys[0]) as hooks:
        hooks.fetcher.pem = b"<html>not a certificate</html>"
        sid = hooks.subscriber("grace@example.com")
        body, ctype = sns_request(
            hooks.key, "m-1", ses_message("complaint", "grace@example.com", sid)
        )
        before = hooks.state()
        response = await hooks.post("/hooks/ses", body, ctype)
        assert response.status_code == 403 and "does not load" in response.json()["result"]
        assert hooks.state() == before
