"""The sources' specification: the rules every recorded response obeys once parsed, the text
helpers each field goes through, and the fetcher's limits (retries and their waits, redirects,
caps, validators) against a real HTTP server on 127.0.0.1, with sleeps recorded, not slept."""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer

from digest.config import CollectConfig, SourceConfig
from digest.errors import SourceError
from digest.models import Paper
from digest.sources import COLLECTORS, PARSERS, SourceRequest, arxiv, feed, hf
from digest.sources.common import (
    INT64_MAX,
    ItemError,
    as_utf8,
    check_storable,
    clean_text,
    count_from_text,
    html_to_text,
    link_key,
    refuse_unsafe,
)
from digest.sources.http import (
    MAX_REDIRECTS,
    Body,
    address_range,
    fetch,
    read_local,
    retry_after_seconds,
)
from tests.conftest import (
    ARXIV_API,
    ARXIV_API_TRANSFORMER,
    ARXIV_ATOM,
    ARXIV_RSS,
    HF_JULY,
    HF_JUNE,
    TAKARA,
    recording,
)

RECORDINGS = [
    ("hf", HF_JUNE),
    ("hf", HF_JULY),
    ("arxiv", ARXIV_RSS),
    ("arxiv", ARXIV_ATOM),
    ("arxiv", ARXIV_API),
    ("arxiv", ARXIV_API_TRANSFORMER),
    ("feed", TAKARA),
]
ID = re.compile(r"^(\d{4}\.\d{4,5}|[a-z\-]+(\.[A-Z]{2})?/\d{7}|h:[0-9a-f]{16})$")
SETTINGS = CollectConfig(timeout=2.0, retries=2, backoff=0.5, max_retry_after=30, max_bytes=4096)


class Sleeps:
    """The waits a fetch asked for, in order; none of them is slept."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _fetch(url: str, settings: CollectConfig = SETTINGS, **kw: Any) -> tuple[Body, Sleeps]:
    sleeps = Sleeps()

    async def go() -> Body:
        async with httpx.AsyncClient() as client:
            return await fetch(client, "src", url, settings, sleep=sleeps, **kw)

    return asyncio.run(go()), sleeps


def _fetch_error(url: str, settings: CollectConfig = SETTINGS) -> str:
    with pytest.raises(SourceError) as info:
        _fetch(url, settings)
    return str(info.value)


# Every recorded response, parsed


@pytest.mark.parametrize(("kind", "name"), RECORDINGS, ids=[n for _, n in RECORDINGS])
def test_every_paper_of_every_recording_keeps_the_common_rules(kind: str, name: str) -> None:
    """One id per paper, of a known shape; a title with no runs of spaces; absolute http(s)
    links; the source named; categories without repeats; dates as UTC ISO 8601."""
    papers = PARSERS[kind](recording(name), "src", "")
    assert papers
    assert len({p.id for p in papers}) == len(papers)
    for p in papers:
        assert ID.match(p.id), p.id
        assert p.title and p.title == " ".join(p.title.split())
        assert p.abstract == " ".join(p.abstract.split())
        assert p.source == "src" and p.raw_id
        assert p.link is None or p.link.startswith(("https://", "http://"))
        assert p.pdf_url is None or p.pdf_url.startswith("https://arxiv.org/pdf/")
        assert len(set(p.categories)) == len(p.categories)
        assert all(a and a == a.strip() for a in p.authors)
        if p.published:
            assert p.published.tzinfo is UTC
        if p.arxiv_id:
            assert p.id == p.arxiv_id
        assert p.version is None or p.version >= 1


@pytest.mark.parametrize(("kind", "name"), RECORDINGS, ids=[n for _, n in RECORDINGS])
def test_parsing_is_deterministic(kind: str, name: str) -> None:
    assert PARSERS[kind](recording(name), "s", "") == PARSERS[kind](recording(name), "s", "")


def test_every_kind_has_a_collector_and_a_parser() -> None:
    assert set(COLLECTORS) == set(PARSERS) == {"hf", "arxiv", "feed"}


def test_arxiv_links_carry_no_version_and_the_pdf_the_announced_one() -> None:
    for paper in arxiv.parse(recording(ARXIV_RSS), "arxiv"):
        assert paper.link == f"https://arxiv.org/abs/{paper.id}"
        assert paper.pdf_url == f"https://arxiv.org/pdf/{paper.id}v{paper.version}"
        assert paper.announce_type in ("new", "cross", "replace")
        assert not paper.abstract.lower().startswith("arxiv:")


def test_hf_builds_arxiv_links_only_for_arxiv_ids_and_keeps_the_day_listed() -> None:
    items = [
        {"paper": {"id": "2606.00001", "title": "A", "submittedOnDailyAt": "2026-06-12T10:00Z"}},
        {"paper": {"id": "not-arxiv", "title": "B", "upvotes": "12"}},
        {"title": "C", "paper": {"id": "2606.00003v2"}, "numComments": 4},
    ]
    a, b, c = hf.parse(json.dumps(items).encode(), "hf")
    assert (a.link, a.pdf_url, a.hf_date) == (
        "https://arxiv.org/abs/2606.00001", "https://arxiv.org/pdf/2606.00001", "2026-06-12",
    )  # fmt: skip
    assert (b.id, b.arxiv_id, b.link, b.upvotes) == ("not-arxiv", None, None, 12)
    assert (c.id, c.version, c.title, c.num_comments) == ("2606.00003", 2, "C", 4)


@pytest.mark.parametrize("wrapper", ["papers", "items", "data"])
def test_hf_accepts_the_array_wrapped_in_an_object(wrapper: str) -> None:
    body = json.dumps({wrapper: [{"paper": {"id": "2606.00001", "title": "A"}}]}).encode()
    assert [p.id for p in hf.parse(body, "hf")] == ["2606.00001"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(7, 7), ("7", 7), (" 42 ", 42), ("7.5", None), (None, None), (True, None), ([], None)],
)
def test_hf_counts_are_numbers_or_digit_strings_and_anything_else_is_unknown(
    value: object, expected: int | None
) -> None:
    body = json.dumps([{"paper": {"id": "2606.00001", "title": "T", "upvotes": value}}])
    (paper,) = hf.parse(body.encode(), "hf")
    assert paper.upvotes == expected


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["id", "title", "paper", "authors", "upvotes", "ai_keywords"]),
                    inner,
                    max_size=4,
                )
            ),
            max_leaves=12,
        ),
        max_size=6,
    )
)
def test_any_hf_array_is_papers_and_counted_skips_or_one_source_error(items: list[Any]) -> None:
    try:
        batch = hf.parse_batch(json.dumps(items).encode(), "hf")
    except SourceError as ex:
        assert str(ex).startswith("hf: ") and "\n" not in str(ex)
    else:
        assert len(batch.papers) + batch.skipped == len(items)
        assert len(batch.reasons) == min(batch.skipped, 10)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: ("<rss>" + t).encode()))
def test_any_bytes_are_a_feed_or_one_source_error_never_a_crash(data: bytes) -> None:
    for parse in (feed.parse_batch, arxiv.parse_batch):
        try:
            parse(data, "x", "https://example.org/f")
        except SourceError as ex:
            assert str(ex).startswith("x: ")


# The text every field goes through

LONG_NAME = "&" + "x" * 40 + ";"  # longer than any entity: left as written


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("  a \n\t b  ", "a b"),
        ("A &amp;amp; B", "A &amp; B"),
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("x &#8212; y &#x2014; z", "x \u2014 y \u2014 z"),
        ("R&D < 5 & more", "R&D < 5 & more"),
        (LONG_NAME, LONG_NAME),
        (None, ""),
    ],
)  # fmt: skip
def test_clean_text_collapses_space_and_decodes_only_real_entities(
    raw: str | None, text: str
) -> None:
    assert clean_text(raw) == text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One</p><p>Two</p>", "One Two"),
        ("a<br>b", "a b"),
        ("<script>alert(1)</script>Safe<style>p{}</style>", "Safe"),
        ("</script>Still here", "Still here"),
        ("<b>bold</b> &amp; <i>it</i>", "bold & it"),
    ],
)
def test_html_summaries_become_plain_text_without_scripts(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_a_link_key_is_stable_short_and_ignores_surrounding_space() -> None:
    key = link_key("https://blog.example.org/post/1")
    assert re.fullmatch(r"h:[0-9a-f]{16}", key)
    assert link_key("  https://blog.example.org/post/1\n") == key
    assert link_key("https://blog.example.org/post/2") != key


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("upvotes", -1, "upvotes -1 is out of range"),
        ("github_stars", INT64_MAX + 1, f"github_stars {INT64_MAX + 1} is out of range"),
        ("version", 10**30, "version 100000000000... (31 digits) is out of range"),
        ("num_comments", 2.0, "num_comments is a number, expected an integer"),
        ("upvotes", True, "upvotes is a boolean, expected an integer"),
    ],
)
def test_a_count_that_sqlite_cannot_store_costs_its_item(
    field: str, value: object, message: str
) -> None:
    paper = Paper(id="2606.00001", title="T", **{field: value})  # type: ignore[arg-type]
    with pytest.raises(ItemError, match=re.escape(f"2606.00001: {message}")):
        check_storable(paper)
    check_storable(Paper(id="2606.00001", title="T", upvotes=0, github_stars=INT64_MAX))


def test_a_count_of_nineteen_digits_is_refused_before_conversion() -> None:
    assert count_from_text("9" * 18, "upvotes") == int("9" * 18)
    with pytest.raises(ItemError, match=r"upvotes 999999999999\.\.\. \(19 digits\)"):
        count_from_text("9" * 19, "upvotes")


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b'<!DOCTYPE x [<!entity a "b">]><rss/>', "declares XML entities"),
        (b"<!-- a comment -->\n<!DOCTYPE html><html>", "returned an HTML page"),
        (b"  <html lang=en><body>", "returned an HTML page"),
    ],
)
def test_unsafe_or_html_bodies_are_refused_by_name_and_url(head: bytes, message: str) -> None:
    with pytest.raises(SourceError, match=f"^src: https://x.org/f {message}"):
        refuse_unsafe("src", "https://x.org/f", head)


@pytest.mark.parametrize("kind", ["feed", "arxiv"])
@pytest.mark.parametrize(
    "prolog",
    [
        b"<!-- " + b"x" * 70_000 + b" -->",  # past the 64 KB an earlier check looked at
        b"<!-- <rss> -->",  # a tag in a comment is no root element
        b"<?pi x?>" * 20_000,  # more items than the walk takes
    ],
)
def test_entities_declared_after_a_long_leading_comment_are_still_refused(
    kind: str, prolog: bytes
) -> None:
    doc = (
        b'<?xml version="1.0"?>' + prolog + b'<!DOCTYPE rss [<!ENTITY e "ee">'
        b'<!ENTITY e2 "&e;&e;&e;">]><rss version="2.0"><channel><title>t</title><item>'
        b"<title>&e2;</title><link>https://arxiv.org/abs/2609.00001</link>"
        b"<guid>oai:arXiv.org:2609.00001v1</guid></item></channel></rss>"
    )
    with pytest.raises(SourceError, match="declares XML entities"):
        PARSERS[kind](doc, "src", "https://x.org/f")


def test_a_declared_html_content_type_is_refused_even_for_xml_looking_bytes() -> None:
    with pytest.raises(SourceError, match="HTML page"):
        refuse_unsafe("src", "u", b"<rss/>", "Text/HTML; charset=utf-8")
    refuse_unsafe("src", "u", b"<rss/>", "application/rss+xml")


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_wide_encodings_without_a_bom_are_recognised_by_their_first_characters(codec: str) -> None:
    doc = '<?xml version="1.0" encoding="UTF-16"?><rss><title>Ωmega</title></rss>'
    assert as_utf8("s", "u", doc.encode(codec)) == (
        b'<?xml version="1.0"?><rss><title>\xce\xa9mega</title></rss>'
    )


def test_utf8_passes_unchanged_and_a_false_wide_start_is_one_error() -> None:
    assert as_utf8("s", "u", b"<rss/>") == b"<rss/>"
    with pytest.raises(SourceError, match="starts like utf-16-le but is not"):
        as_utf8("s", "u", b"\xff\xfe\x00\xd8")


@pytest.mark.parametrize(
    ("creator", "authors"),
    [
        ("Ada Byron, Alan Turing and Grace Hopper", ["Ada Byron", "Alan Turing", "Grace Hopper"]),
        ("Ada Byron, Alan Turing, and Grace Hopper", ["Ada Byron", "Alan Turing", "Grace Hopper"]),
        ("Ada Byron and Alan Turing", ["Ada Byron", "Alan Turing"]),
        ("Andr\\'e Weil, Paul Erd\\H{o}s", ["André Weil", "Paul Erdős"]),
        ('J\\"org M\\"uller, \\O{}ystein Ore', ["Jörg Müller", "Øystein Ore"]),
        ("Sandy Alexander", ["Sandy Alexander"]),
    ],
)
def test_arxiv_rss_creator_lists_are_split_and_tex_accents_decoded(
    creator: str, authors: list[str]
) -> None:
    escaped = creator.replace("&", "&amp;").encode()
    doc = (
        b'<?xml version="1.0"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        b"<channel><title>cs.LG</title><item><title>T</title>"
        b"<link>https://arxiv.org/abs/2609.00001</link><guid>oai:arXiv.org:2609.00001v1</guid>"
        b"<dc:creator>" + escaped + b"</dc:creator></item></channel></rss>"
    )
    (paper,) = arxiv.parse(doc, "arxiv")
    assert paper.authors == authors


def test_an_arxiv_document_without_any_arxiv_entry_is_refused() -> None:
    doc = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
        b"<item><title>Post</title><link>https://blog.example.org/1</link></item>"
        b"</channel></rss>"
    )
    with pytest.raises(SourceError, match="none with an arXiv id; is it arXiv"):
        arxiv.parse(doc, "arxiv", "https://blog.example.org/rss")
    assert len(feed.parse(doc, "blog")) == 1  # a generic feed takes it


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://export.arxiv.org/api/query?search_query=cat:cs.AI&max_results=5",
            "https://export.arxiv.org/api/query?search_query=%28cat%3Acs.AI%29+AND+"
            "submittedDate%3A%5B202606100000+TO+202606122359%5D&max_results=5",
        ),
        ("https://export.arxiv.org/api/query?id_list=2401.1", None),
    ],
)
def test_an_api_backfill_narrows_the_query_to_the_submission_days(
    url: str, expected: str | None
) -> None:
    got = arxiv.with_date_range(url, date(2026, 6, 10), date(2026, 6, 12))
    assert got == (expected or url)


@pytest.mark.parametrize(
    ("since", "message"),
    [
        (date(2026, 6, 13), "hf: --since 2026-06-13 is after --date 2026-06-12"),
        (date(2026, 3, 11), "hf: --since 2026-03-11 is more than 92 days back"),
    ],
)
def test_an_hf_backfill_outside_its_range_is_refused_before_any_request(
    since: date, message: str
) -> None:
    source = SourceConfig("hf", "hf", "http://127.0.0.1:9/api")

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            request = SourceRequest(source, SETTINGS, date(2026, 6, 12), client, since=since)
            await hf.collect(request)

    with pytest.raises(SourceError, match=re.escape(message)):
        asyncio.run(go())


# Fetching: pure rules


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("[::1]", "loopback"),
        ("localhost", "loopback"),
        ("api.localhost.", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", "private"),
        ("8.8.8.8", "public"),
        ("export.arxiv.org", "public"),
    ],
)
def test_each_address_falls_in_one_range(host: str, kind: str) -> None:
    assert address_range(host) == kind


NOW = datetime(2026, 6, 12, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Fri, 12 Jun 2026 08:01:30 GMT", 90.0),
        ("Fri, 12 Jun 2026 07:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date_never_negative(
    value: str | None, seconds: float | None
) -> None:
    assert retry_after_seconds(value, NOW) == seconds


def test_a_local_file_is_read_under_the_same_cap_and_a_missing_one_is_named(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.xml"
    path.write_bytes(b"x" * 100)
    assert read_local("src", str(path), 100).content == b"x" * 100
    with pytest.raises(SourceError, match=r"src: .*f\.xml is 100 bytes, over the 99-byte cap"):
        read_local("src", str(path), 99)
    with pytest.raises(SourceError, match=r"src: cannot read .*none\.xml: No such file"):
        read_local("src", str(tmp_path / "none.xml"), 99)


# Fetching: against a real server


def test_a_fetch_sends_our_user_agent_and_asks_only_for_gzip_or_deflate(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/f").respond_with_data(b"<rss/>", content_type="text/xml")
    body, sleeps = _fetch(httpserver.url_for("/f"))
    request, _ = httpserver.log[0]
    assert request.headers["User-Agent"] == SETTINGS.user_agent
    assert request.headers["Accept-Encoding"] == "gzip, deflate"
    assert (body.content, body.content_type, sleeps.delays) == (b"<rss/>", "text/xml", [])


def test_zlib_wrapped_deflate_is_inflated(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/f").respond_with_data(
        zlib.compress(b"<rss>deflated</rss>"), headers={"Content-Encoding": "deflate"}
    )
    assert _fetch(httpserver.url_for("/f"))[0].content == b"<rss>deflated</rss>"


def test_a_body_of_exactly_the_cap_is_kept_and_one_byte_more_is_refused(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/exact").respond_with_data(b"x" * 4096)
    httpserver.expect_request("/over").respond_with_data(b"x" * 4097)
    assert len(_fetch(httpserver.url_for("/exact"))[0].content) == 4096
    message = _fetch_error(httpserver.url_for("/over"))
    assert "4,097 bytes, over the 4,096-byte cap" in message


def test_5xx_is_retried_with_doubling_jittered_waits_then_named_with_the_attempts(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/f").respond_with_data("down", status=503)
    sleeps = Sleeps()

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            await fetch(client, "src", httpserver.url_for("/f"), SETTINGS, sleep=sleeps)

    with pytest.raises(SourceError) as info:
        asyncio.run(go())
    assert str(info.value) == (
        f"src: GET {httpserver.url_for('/f')} failed after 3 attempts: HTTP 503 SERVICE UNAVAILABLE"
    )
    assert len(httpserver.log) == 3 and len(sleeps.delays) == 2
    for attempt, delay in enumerate(sleeps.delays):
        assert 0.5 * 0.5 * 2**attempt <= delay < 0.5 * 1.5 * 2**attempt


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_a_4xx_other_than_429_is_not_retried(httpserver: HTTPServer, status: int) -> None:
    httpserver.expect_request("/f").respond_with_data("no", status=status)
    message = _fetch_error(httpserver.url_for("/f"))
    assert f"failed: HTTP {status}" in message and message.endswith("; check the source URL")
    assert len(httpserver.log) == 1


def test_a_429_waits_exactly_what_retry_after_asks_then_succeeds(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/f").respond_with_data(
        "", status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_ordered_request("/f").respond_with_data(b"<rss/>")
    body, sleeps = _fetch(httpserver.url_for("/f"))
    assert body.content == b"<rss/>" and sleeps.delays == [7.0]


def test_the_last_attempt_is_not_followed_by_a_wait(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/f").respond_with_data("", status=500)
    settings = CollectConfig(retries=0, backoff=1.0)
    sleeps = Sleeps()

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            await fetch(client, "s", httpserver.url_for("/f"), settings, sleep=sleeps)

    with pytest.raises(SourceError, match="failed after 1 attempts: HTTP 500"):
        asyncio.run(go())
    assert sleeps.delays == []


def test_relative_redirects_are_followed_and_the_final_address_kept(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "b"})
    httpserver.expect_request("/b").respond_with_data("", status=308, headers={"Location": "/c"})
    httpserver.expect_request("/c").respond_with_data(b"<rss/>")
    body, _ = _fetch(httpserver.url_for("/a"))
    assert body.url == httpserver.url_for("/a")
    assert body.final_url == httpserver.url_for("/c")


def test_more_than_ten_redirects_fail_the_source(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/loop").respond_with_data(
        "", status=301, headers={"Location": "/loop"}
    )
    message = _fetch_error(httpserver.url_for("/loop"))
    assert f"redirected more than {MAX_REDIRECTS} times" in message
    assert len(httpserver.log) == MAX_REDIRECTS + 1


def test_a_304_keeps_the_validators_sent_and_has_no_body(httpserver: HTTPServer) -> None:
    url = httpserver.url_for("/f")
    httpserver.expect_request(
        "/f", headers={"If-None-Match": '"v1"', "If-Modified-Since": "Thu, 11 Jun 2026"}
    ).respond_with_data("", status=304)
    cached = Body(url=url, etag='"v1"', last_modified="Thu, 11 Jun 2026")
    body, _ = _fetch(url, cached=cached)
    assert body.not_modified and body.content == b""
    assert (body.etag, body.last_modified) == ('"v1"', "Thu, 11 Jun 2026")


def test_a_fresh_body_carries_the_validators_for_next_time(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/f").respond_with_data(
        b"<rss/>", headers={"ETag": '"v2"', "Last-Modified": "Fri, 12 Jun 2026 08:00:00 GMT"}
    )
    body, _ = _fetch(httpserver.url_for("/f"))
    assert (body.etag, body.last_modified) == ('"v2"', "Fri, 12 Jun 2026 08:00:00 GMT")
    assert not body.not_modified


def test_query_parameters_are_added_to_the_url_asked(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api", query_string="date=2026-06-12").respond_with_data(b"[]")
    body, _ = _fetch(httpserver.url_for("/api"), params={"date": "2026-06-12"})
    assert body.url == httpserver.url_for("/api") + "?date=2026-06-12"
