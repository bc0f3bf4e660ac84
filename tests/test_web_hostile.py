"""Hostile input against the real web app (httpx.ASGITransport, a real SQLite file): whatever
a stranger sends, the answer is never a 5xx and always carries the security headers.

One table of fields x hostile values for each form, then the raw cases a form cannot express
(bad UTF-8, absurd Content-Length, non-ASCII cookies, odd paths and methods)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digest import subscribers as subs
from digest.models import Subscriber
from digest.send import OutboxTransport
from digest.store import Store
from digest.tokens import Tokens
from digest.web import BODY_LIMIT, create_app
from digest.web.guard import SecurityHeaders
from tests.test_web import BASE, SECRET, TOPICS, make_config

HOSTILE = {
    "huge-number": "9" * 5000,
    "big-number": "9" * 30,
    "negative": "-1",
    "exponent": "1e9",
    "superscript-digit": "\u00b2",
    "arabic-digit": "\u0663",
    "nul": "a\x00b",
    "crlf": "x\r\nBcc: eve@example.org",
    "long-text": "a" * 60_000,  # under BODY_LIMIT: it reaches the form code
    "non-ascii": "\u00e9\u00e8\u4e2d\u6587" * 300,
    "path": "../../../../etc/passwd",
    "absolute-path": "/etc/passwd",
    "markup": "<script>alert(1)</script>",
    "empty": "",
}
FORM_FIELDS = ["email", "csrf", "hour", "max_papers", "tz", "cadence", "weekday", "queries"]
MANAGE_FIELDS = [*FORM_FIELDS[1:], "action", "weeks", "sure", "topic"]
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Starlette:
    """One app and database for the whole table (building the renderer is the slow part);
    rate limits are lifted so every row reaches the code it aims at."""
    folder = tmp_path_factory.mktemp("hostile")
    config = make_config(folder, signups_per_ip_per_hour=1_000_000)
    made = create_app(config, TOPICS, OutboxTransport(folder / "outbox"))
    with Store(config.database.path) as store:
        subs.add(
            store, TOPICS, Subscriber("ada@example.org", status="active", topics=["robotics"]),
            datetime.now(UTC),
        )  # fmt: skip
    return made


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(
        app=app, raise_app_exceptions=False, client=("203.0.113.9", 4000)
    )
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as made:
        yield made


def assert_safe_headers(response: httpx.Response) -> None:
    for header in SECURITY_HEADERS:
        assert header in response.headers, (response.status_code, header)


def assert_safe(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:500]
    assert_safe_headers(response)


def good_form(csrf: str) -> dict[str, object]:
    return {
        "csrf": csrf, "email": "ada@example.org", "cadence": "daily", "weekday": "mon",
        "hour": "8", "tz": "UTC", "max_papers": "10", "topic": ["llm-agents"], "queries": "",
    }  # fmt: skip


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("field", FORM_FIELDS)
async def test_no_subscribe_form_value_gives_a_5xx(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    await client.get("/")
    form = {**good_form(client.cookies["digest_csrf"]), field: value}
    response = await client.post("/subscribe", data=form)
    assert_safe(response)
    assert response.status_code in (200, 403, 422)


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("field", MANAGE_FIELDS)
async def test_no_preferences_form_value_gives_a_5xx(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    path = f"/manage/{Tokens(SECRET).make('manage', 1, 'ada@example.org')}"
    await client.get(path)
    form = {**good_form(client.cookies["digest_csrf"]), "action": "save", field: value}
    form.pop("email")
    response = await client.post(path, data=form)
    assert_safe(response)
    assert response.status_code in (200, 403, 422)  # the page itself, never a token error


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@settings(max_examples=60, deadline=None)
@given(values=st.dictionaries(st.sampled_from(FORM_FIELDS), TEXT, max_size=4))
def test_any_text_in_any_subscribe_field_gives_no_5xx(
    app: Starlette, values: dict[str, str]
) -> None:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            await client.get("/")
            return await client.post(
                "/subscribe", data={**good_form(client.cookies["digest_csrf"]), **values}
            )

    assert_safe(asyncio.run(go()))


def _raw_cases() -> dict[str, tuple[str, str, list[tuple[bytes, bytes]], bytes]]:
    form = b"application/x-www-form-urlencoded"
    return {
        "bad-utf8-form": ("POST", "/subscribe", [(b"content-type", form)],
                          b"csrf=\xff\xfe&email=\xc3(&queries=%ff%fe%fd"),
        "bad-utf8-multipart": (
            "POST", "/subscribe",
            [(b"content-type", b"multipart/form-data; boundary=b")],
            b'--b\r\nContent-Disposition: form-data; name="email\xff"\r\n\r\n\xff\xfe\r\n--b--\r\n',
        ),
        "broken-multipart": ("POST", "/subscribe",
                             [(b"content-type", b"multipart/form-data; boundary=")], b"--\r\n"),
        "absurd-content-length": ("POST", "/subscribe",
                                  [(b"content-type", form),
                                   (b"content-length", b"99999999999999999999999999")],
                                  b"email=a"),
        "negative-content-length": ("POST", "/subscribe",
                                    [(b"content-type", form), (b"content-length", b"-5")],
                                    b"email=a"),
        "huge-body": ("POST", "/subscribe", [(b"content-type", form)],
                      b"queries=" + b"a" * 5_000_000),
        "non-ascii-cookie": ("GET", "/", [(b"cookie", "digest_csrf=\u00e9t\u00e9".encode())], b""),
        "non-ascii-cookie-post": (
            "POST", "/subscribe",
            [(b"cookie", "digest_csrf=\u00e9".encode()), (b"content-type", form)],
            "csrf=\u00e9&email=ada%40example.org".encode(),
        ),
        "latin1-cookie": ("GET", "/", [(b"cookie", b"digest_csrf=\xe9\xff")], b""),
        "huge-query-string": ("GET", "/?" + "q=" + "x" * 60_000, [], b""),
        "non-ascii-query-string": ("GET", "/?q=%C3%A9%FF\u00e9", [], b""),
        "non-ascii-token": ("GET", "/c/\u00e9\u4e2d", [], b""),
        "huge-token": ("GET", "/u/" + "A" * 60_000, [], b""),
        "head-confirm": ("HEAD", "/c/garbage", [], b""),
        "unknown-method": ("PATCH", "/subscribe", [], b""),
        "not-found": ("GET", "/no/such/page", [], b""),
        "one-click-garbage": ("POST", "/u/garbage", [(b"content-type", form)], b"\xff" * 1000),
    }  # fmt: skip


RAW = _raw_cases()


@pytest.mark.parametrize("case", RAW.keys())
async def test_no_raw_request_gives_a_5xx(client: httpx.AsyncClient, case: str) -> None:
    method, path, headers, body = RAW[case]
    request = client.build_request(method, path, content=body or None)
    for name, value in headers:
        request.headers[name.decode()] = value.decode("latin-1")
    assert_safe(await client.send(request))


async def test_an_unexpected_error_is_a_logged_500_page_with_the_security_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Starlette answers an unhandled exception outside every middleware, without headers;
    the guard answers it itself. A real app whose one route fails."""

    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    app = Starlette(routes=[Route("/", broken)], middleware=[Middleware(SecurityHeaders)])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        response = await client.get("/")
    assert response.status_code == 500 and "Something went wrong" in response.text
    assert "a bug" not in response.text
    assert_safe_headers(response)
    assert "GET / failed" in caplog.text and "RuntimeError: a bug" in caplog.text


async def test_an_oversized_body_is_a_413_with_the_security_headers(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/")
    form = {"csrf": client.cookies["digest_csrf"], "queries": "x" * (BODY_LIMIT + 1)}
    response = await client.post("/subscribe", data=form)
    assert response.status_code == 413
    assert_safe(response)


@pytest.mark.parametrize(
    ("path", "location"),
    [("/static/web.css/", "/static/web.css"), ("/healthz/?a=1", "/healthz?a=1")],
)
async def test_a_trailing_slash_redirect_is_relative_whatever_the_host(
    client: httpx.AsyncClient, path: str, location: str
) -> None:
    response = await client.get(path, headers={"host": "evil.example.com"})
    assert response.status_code in (301, 307, 308)
    assert response.headers["location"] == location
    assert_safe(response)


@pytest.mark.parametrize("path", ["//evil.example.com/", "/no/such/page/", "/%5Cevil.example.com/"])
async def test_an_unknown_path_is_a_404_page_never_a_redirect_elsewhere(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(BASE + path)
    assert response.status_code == 404 and "Page not found" in response.text
    assert "location" not in response.headers
    assert_safe(response)


async def test_a_database_fault_is_a_503_page_that_names_no_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_config(tmp_path), TOPICS, OutboxTransport(tmp_path / "outbox"))
    (tmp_path / "digest.db").mkdir()  # the database cannot be opened
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        await client.get("/")
        response = await client.post("/subscribe", data=good_form(client.cookies["digest_csrf"]))
    assert response.status_code == 503 and "Our fault, not yours" in response.text
    assert str(tmp_path) not in response.text
    assert_safe_headers(response)
    assert "POST /subscribe: " in caplog.text and str(tmp_path) in caplog.text
