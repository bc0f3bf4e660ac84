"""Collecting over real HTTP on 127.0.0.1: recordings, faults, merging and idempotency."""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from digest.cli import app
from digest.collect import SourceReport, collect
from digest.config import SourceConfig
from digest.errors import StoreError
from digest.models import Paper, SourceResult
from digest.sources import COLLECTORS, Body, SourceRequest, feed
from digest.store import Store
from tests.conftest import (
    ARXIV_API,
    ARXIV_RSS,
    DATA,
    HF_JUNE,
    TAKARA,
    app_config,
    make_config,
    recording,
)

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
runner = CliRunner()
HF_PATH = "/api/daily_papers"


class Sleeps:
    """Records the waits the retry loop asks for instead of waiting them."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def run(tmp_path: Path, store: Store, sources: list[dict[str, Any]], **kw: Any) -> dict:
    config = make_config(tmp_path, sources, **kw.pop("sections", {}))
    reports = collect(config, store, kw.pop("now", NOW), **kw)
    return {r.source: r for r in reports}


def table_rows(store: Store) -> dict[str, list[dict]]:
    return {
        name: list(store.db.query(f"select * from [{name}] order by 1, 2"))
        for name in ("papers", "paper_sources")
    }


def hf_source(server: HTTPServer) -> dict:
    return {"name": "hf", "kind": "hf", "url": server.url_for(HF_PATH)}


def rss_source(server: HTTPServer, path: str = "/rss/cs.LG", name: str = "arxiv") -> dict:
    return {"name": name, "kind": "arxiv", "url": server.url_for(path)}


def derived_rss(**replace: str) -> bytes:
    """The real RSS recording with some text swapped; used where no real pair exists."""
    text = recording(ARXIV_RSS).decode()
    for old, new in replace.items():
        assert old.replace("_", ".") in text or old in text
        text = text.replace(old.replace("_", "."), new)
    return text.encode()


def test_hf_asks_for_the_day_and_stores_everything(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request(HF_PATH, query_string="date=2026-06-12").respond_with_data(
        recording(HF_JUNE), content_type="application/json"
    )
    reports = run(tmp_path, store, [hf_source(httpserver)])
    assert reports["hf"] == SourceReport(
        "hf", "hf", fetched=30, new=30, seconds=reports["hf"].seconds
    )
    request, _ = httpserver.log[0]
    assert request.headers["User-Agent"].startswith("digest/")
    paper = store.get_paper("2606.13681")
    assert paper is not None and paper.upvotes == 118 and paper.sources == ["hf"]


def test_hf_backfill_asks_each_day_and_notes_empty_ones(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request(HF_PATH, query_string="date=2026-06-12").respond_with_data(
        recording(HF_JUNE)
    )
    for day in ("2026-06-13", "2026-06-14"):
        httpserver.expect_request(HF_PATH, query_string=f"date={day}").respond_with_data("[]")
    report = run(
        tmp_path, store, [hf_source(httpserver)], day=date(2026, 6, 14), since=date(2026, 6, 12)
    )["hf"]
    assert (report.error, report.new) == (None, 30)
    assert "2026-06-13, 2026-06-14" in report.note


def test_same_paper_from_hf_and_arxiv_is_one_row_with_both(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    # Derived: the real RSS with its first item's id swapped for a paper HF listed that day.
    rss = derived_rss(**{"2609.26811": "2606.13681"})
    httpserver.expect_request(HF_PATH).respond_with_data(recording(HF_JUNE))
    httpserver.expect_request("/rss/cs.LG").respond_with_data(rss)
    reports = run(tmp_path, store, [hf_source(httpserver), rss_source(httpserver)])
    assert reports["hf"].new + reports["arxiv"].new == 33
    paper = store.get_paper("2606.13681")
    assert paper is not None
    assert paper.sources == ["arxiv", "hf"]
    assert paper.upvotes == 118 and paper.github_stars == 9
    assert paper.categories == ["cs.LG"]
    assert paper.version == 1 and paper.announce_type == "new"
    assert store.count_papers() == 33


def test_real_overlap_between_api_and_a_generic_feed_merges(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request("/api/query").respond_with_data(recording(ARXIV_API))
    httpserver.expect_request("/feed").respond_with_data(recording(TAKARA))
    run(
        tmp_path,
        store,
        [
            {"name": "api", "kind": "arxiv", "url": httpserver.url_for("/api/query")},
            {"name": "takara", "kind": "feed", "url": httpserver.url_for("/feed")},
        ],
    )
    assert store.count_papers() == 20 + 50 - 4
    paper = store.get_paper("2604.26919")
    assert paper is not None and paper.sources == ["api", "takara"]
    assert paper.categories == ["cs.LG", "cs.AI", "cs.NE"]


def test_collecting_twice_changes_nothing(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request(HF_PATH).respond_with_data(recording(HF_JUNE))
    httpserver.expect_request("/rss/cs.LG").respond_with_data(recording(ARXIV_RSS))
    sources = [hf_source(httpserver), rss_source(httpserver)]
    run(tmp_path, store, sources)
    before = table_rows(store)
    again = run(tmp_path, store, sources, now=datetime(2026, 6, 12, 10, 0, tzinfo=UTC))
    assert (again["hf"].new, again["hf"].updated, again["hf"].unchanged) == (0, 0, 30)
    assert (again["arxiv"].new, again["arxiv"].updated) == (0, 0)
    assert table_rows(store) == before


def test_replace_updates_the_row_and_its_search_text(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    v1 = derived_rss(**{"2009.13987v3": "2009.13987v1"})
    # Derived: the same feed a day later announcing v4 with a new abstract.
    v4 = derived_rss(
        **{
            "2009.13987v3": "2009.13987v4",
            "We introduce a class of random polytopes": "We introduce zonotopal polytopes",
        }
    )
    httpserver.expect_ordered_request("/rss/cs.LG").respond_with_data(v1)
    httpserver.expect_ordered_request("/rss/cs.LG").respond_with_data(v4)
    run(tmp_path, store, [rss_source(httpserver)])
    first_seen = store.get_paper("2009.13987").first_seen
    report = run(tmp_path, store, [rss_source(httpserver)], now=datetime(2026, 6, 13, tzinfo=UTC))[
        "arxiv"
    ]
    assert (report.new, report.updated, report.unchanged) == (0, 1, 3)
    paper = store.get_paper("2009.13987")
    assert paper.version == 4 and paper.abstract.startswith("We introduce zonotopal")
    assert paper.first_seen == first_seen
    assert store.count_papers() == 4
    assert [p.id for p in store.list_papers("zonotopal")] == ["2009.13987"]
    assert store.list_papers("polytopes random class") == []
    link = next(store.db.query("select * from paper_sources where paper_id = '2009.13987'"))
    assert (link["version"], link["raw_id"]) == (4, "oai:arXiv.org:2009.13987v4")


def test_an_older_version_seen_later_does_not_roll_back(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_ordered_request("/rss/cs.LG").respond_with_data(recording(ARXIV_RSS))
    old = derived_rss(**{"2009.13987v3": "2009.13987v1", "random polytopes": "old words"})
    httpserver.expect_ordered_request("/rss/cs.LG").respond_with_data(old)
    run(tmp_path, store, [rss_source(httpserver)])
    run(tmp_path, store, [rss_source(httpserver)])
    paper = store.get_paper("2009.13987")
    assert paper.version == 3 and "random polytopes" in paper.abstract


def test_retries_5xx_then_succeeds(httpserver: HTTPServer, tmp_path: Path, store: Store) -> None:
    httpserver.expect_ordered_request(HF_PATH).respond_with_data("busy", status=503)
    httpserver.expect_ordered_request(HF_PATH).respond_with_data("oops", status=500)
    httpserver.expect_ordered_request(HF_PATH).respond_with_data(recording(HF_JUNE))
    sleeps = Sleeps()
    report = run(tmp_path, store, [hf_source(httpserver)], sleep=sleeps)["hf"]
    assert (report.error, report.new) == (None, 30)
    # exponential backoff with jitter: attempt k waits 0.5-1.5 x backoff x 2**k (backoff 0.01)
    first, second = sleeps.calls
    assert 0.005 <= first <= 0.015 and 0.01 <= second <= 0.03


def test_429_honours_retry_after(httpserver: HTTPServer, tmp_path: Path, store: Store) -> None:
    httpserver.expect_ordered_request(HF_PATH).respond_with_data(
        "slow down", status=429, headers={"Retry-After": "3"}
    )
    httpserver.expect_ordered_request(HF_PATH).respond_with_data(recording(HF_JUNE))
    sleeps = Sleeps()
    report = run(tmp_path, store, [hf_source(httpserver)], sleep=sleeps)["hf"]
    assert report.error is None and sleeps.calls == [3.0]


def test_retry_after_too_long_fails_the_source_clearly(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request(HF_PATH).respond_with_data(
        "", status=429, headers={"Retry-After": "3600"}
    )
    report = run(tmp_path, store, [hf_source(httpserver)], sleep=Sleeps())["hf"]
    assert report.error.startswith("hf: GET http://")
    assert "HTTP 429" in report.error and "retry after 3600s" in report.error


def assert_isolated_failure(reports: dict, message: str, store: Store) -> None:
    """The broken source names itself; the healthy one still landed whole."""
    assert reports["bad"].error is not None, reports
    assert reports["bad"].error.startswith("bad: "), reports["bad"].error
    assert message in reports["bad"].error, reports["bad"].error
    assert "\n" not in reports["bad"].error
    assert reports["hf"].error is None and reports["hf"].new == 30
    assert store.count_papers() == 30
    state = store.get_source_state("bad")
    assert state.failures == 1 and message in state.last_error
    assert store.source_counts() == {"hf": 30}


def truncated_feed() -> bytes:
    raw = recording(ARXIV_RSS)
    return raw[: len(raw) // 2]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rss version="2.0"><channel><title>&lol3;</title></channel></rss>"""


@pytest.mark.parametrize(
    ("status", "body", "content_type", "message"),
    [
        (500, b"Internal error", "text/plain", "failed after 3 attempts: HTTP 500"),
        (404, b"no", "text/plain", "HTTP 404 NOT FOUND; check the source URL"),
        (200, truncated_feed(), "application/rss+xml", "not a well-formed feed at line"),
        (200, BILLION_LAUGHS, "application/xml", "declares XML entities"),
        (200, b"<html><head><title>Login</title></head></html>", "text/html", "HTML page"),
        (200, b"", "application/xml", "empty body"),
        (200, b'{"not": "a feed"}', "application/json", "not an RSS or Atom feed"),
    ],
    ids=["500", "404", "truncated", "billion-laughs", "html", "empty-body", "json"],
)
def test_a_broken_source_is_one_clear_line_and_the_others_land(
    httpserver: HTTPServer,
    tmp_path: Path,
    store: Store,
    status: int,
    body: bytes,
    content_type: str,
    message: str,
) -> None:
    httpserver.expect_request(HF_PATH).respond_with_data(recording(HF_JUNE))
    httpserver.expect_request("/bad").respond_with_data(
        body, status=status, content_type=content_type
    )
    reports = run(
        tmp_path,
        store,
        [hf_source(httpserver), rss_source(httpserver, "/bad", "bad")],
        sleep=Sleeps(),
    )
    assert_isolated_failure(reports, message, store)


def test_non_utf8_bytes_parse_or_fail_clearly(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    latin1 = recording(ARXIV_RSS).replace(b"Fabien Polly", "Fabien Pöllé".encode("latin-1"))
    httpserver.expect_request("/rss/cs.LG").respond_with_data(latin1)
    report = run(tmp_path, store, [rss_source(httpserver)])["arxiv"]
    assert report.error is None and report.new == 4
    assert store.get_paper("2609.26811").authors == ["Fabien Pöllé"]


def test_a_server_slower_than_the_timeout_fails_that_source_only(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response(recording(ARXIV_RSS))

    httpserver.expect_request("/bad").respond_with_handler(slow)
    httpserver.expect_request(HF_PATH).respond_with_data(recording(HF_JUNE))
    bad = rss_source(httpserver, "/bad", "bad") | {"timeout": 0.2}
    config = {"collect": {"retries": 0}}
    started = time.perf_counter()
    reports = run(tmp_path, store, [hf_source(httpserver), bad], sections=config)
    assert time.perf_counter() - started < 5
    assert_isolated_failure(reports, "timed out after 0.2s", store)


def test_a_huge_body_is_refused_while_streaming(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    sent = []

    def huge(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(50 * 16):  # 50 MB in 64 KB chunks, no Content-Length
                sent.append(1)
                yield b"<" * 65536

        return Response(chunks(), content_type="application/xml", direct_passthrough=True)

    httpserver.expect_request("/bad").respond_with_handler(huge)
    httpserver.expect_request(HF_PATH).respond_with_data(recording(HF_JUNE))
    reports = run(
        tmp_path,
        store,
        [hf_source(httpserver), rss_source(httpserver, "/bad", "bad")],
        sections={"collect": {"max_bytes": 1_000_000}},
    )
    assert_isolated_failure(reports, "sent more than 1,000,000 bytes; stopped reading", store)
    assert len(sent) < 50 * 16


def test_a_declared_huge_body_is_refused_unread(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request("/bad").respond_with_data(b"x" * 2_000_001)
    httpserver.expect_request(HF_PATH).respond_with_data(recording(HF_JUNE))
    reports = run(
        tmp_path,
        store,
        [hf_source(httpserver), rss_source(httpserver, "/bad", "bad")],
        sections={"collect": {"max_bytes": 2_000_000}},
    )
    assert_isolated_failure(reports, "announces 2,000,001 bytes", store)


def test_an_empty_weekend_feed_is_a_note_not_an_error(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    empty = recording(ARXIV_RSS).split(b"<item>")[0] + b"</channel></rss>"
    httpserver.expect_request("/rss/cs.LG").respond_with_data(empty)
    httpserver.expect_request(HF_PATH).respond_with_data("[]")
    reports = run(tmp_path, store, [hf_source(httpserver), rss_source(httpserver)])
    assert reports["arxiv"].error is None and "weekends and holidays" in reports["arxiv"].note
    assert reports["hf"].error is None and "2026-06-12" in reports["hf"].note
    assert store.get_source_state("arxiv").last_success == NOW


def test_conditional_get_sends_validators_and_handles_304(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    headers = {"ETag": '"v1"', "Last-Modified": "Thu, 24 Sep 2026 08:58:05 GMT"}
    httpserver.expect_ordered_request("/rss/cs.LG").respond_with_data(
        recording(ARXIV_RSS), headers=headers
    )
    httpserver.expect_ordered_request(
        "/rss/cs.LG", headers={"If-None-Match": '"v1"'}
    ).respond_with_data("", status=304)
    run(tmp_path, store, [rss_source(httpserver)])
    report = run(tmp_path, store, [rss_source(httpserver)])["arxiv"]
    assert report.error is None and report.note == "not modified since last run"
    assert store.count_papers() == 4
    second, _ = httpserver.log[1]
    assert second.headers["If-Modified-Since"] == headers["Last-Modified"]
    state = store.get_source_state("arxiv")
    assert state.etag == '"v1"' and state.failures == 0


def test_validators_are_not_sent_for_another_days_url(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request(HF_PATH, query_string="date=2026-06-12").respond_with_data(
        recording(HF_JUNE), headers={"ETag": '"day12"'}
    )
    httpserver.expect_request(HF_PATH, query_string="date=2026-06-13").respond_with_data("[]")
    run(tmp_path, store, [hf_source(httpserver)])
    run(tmp_path, store, [hf_source(httpserver)], day=date(2026, 6, 13))
    second, _ = httpserver.log[1]
    assert "If-None-Match" not in second.headers


def test_a_half_written_batch_is_rolled_back(store: Store) -> None:
    from digest.models import Paper

    good = Paper(id="2601.00001", title="Fine")
    broken = Paper(id="2601.00002", title=None)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="NOT NULL"):
        store.upsert_papers("src", [good, broken], NOW)
    assert store.count_papers() == 0
    assert store.source_counts() == {}


def test_sources_are_fetched_concurrently(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request(HF_PATH).respond_with_data(recording(HF_JUNE))
    httpserver.expect_request("/rss/cs.LG").respond_with_data(recording(ARXIV_RSS))
    order: list[str] = []
    reports = run(
        tmp_path,
        store,
        [hf_source(httpserver), rss_source(httpserver)],
        progress=lambda name, status: order.append(f"{name}:{status}"),
    )
    assert sorted(order) == ["arxiv:done", "hf:done"]
    assert list(reports) == ["hf", "arxiv"]


# --- issue 11: isolation per item and per source, loud failures ---------------------------


def test_anything_raised_while_storing_one_source_costs_that_source_only(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    store.db.execute(
        "create trigger refuse_bad before insert on paper_sources when new.source = 'bad' "
        "begin select raise(abort, 'refused by the test trigger'); end"
    )
    httpserver.expect_request(HF_PATH).respond_with_data(recording(HF_JUNE))
    httpserver.expect_request("/bad").respond_with_data(recording(ARXIV_RSS))
    reports = run(tmp_path, store, [hf_source(httpserver), rss_source(httpserver, "/bad", "bad")])
    assert_isolated_failure(reports, "refused by the test trigger", store)
    assert store.get_paper("2609.26811") is None  # the failed batch left nothing behind


@pytest.mark.parametrize(
    ("pragma", "cause"),
    [("query_only = 1", "readonly"), ("max_page_count = 1", "full")],
    ids=["read-only", "disk-full"],
)
def test_an_unwritable_database_stops_collect_once_naming_the_file(
    httpserver: HTTPServer, tmp_path: Path, store: Store, pragma: str, cause: str
) -> None:
    httpserver.expect_request(HF_PATH).respond_with_data(recording(HF_JUNE))
    httpserver.expect_request("/rss/cs.LG").respond_with_data(recording(ARXIV_RSS))
    store.db.execute(f"pragma {pragma}")
    with pytest.raises(StoreError) as info:
        run(tmp_path, store, [hf_source(httpserver), rss_source(httpserver)])
    message = str(info.value)
    assert message.startswith(f"{store.path}: ") and cause in message and "\n" not in message
    assert store.count_papers() == 0 and store.all_source_states() == []


def served_cli_config(tmp_path: Path, server: HTTPServer, bad_body: bytes | None) -> Path:
    """hf and arxiv healthy; `bad` answers bad_body (HTTP 500, no handler, when None)."""
    server.expect_request(HF_PATH).respond_with_data(recording(HF_JUNE))
    server.expect_request("/rss/cs.LG").respond_with_data(recording(ARXIV_RSS))
    if bad_body is not None:
        server.expect_request("/bad").respond_with_data(bad_body)
    return app_config(
        tmp_path,
        [
            ("hf", "hf", server.url_for(HF_PATH)),
            ("arxiv", "arxiv", server.url_for("/rss/cs.LG")),
            ("bad", "feed", server.url_for("/bad")),
        ],
        extra="[collect]\nretries = 0\n",
    )


def test_collect_exits_1_when_one_source_fails_and_the_others_land(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    config = served_cli_config(tmp_path, httpserver, None)
    result = runner.invoke(app, ["collect", "--config", str(config), "--date", "2026-06-12"])
    assert result.exit_code == 1, result.output
    assert "34 papers stored." in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: bad: GET http://")
    assert "HTTP 500" in lines[0] and "Traceback" not in result.output


def test_collect_exits_1_and_warns_once_when_items_were_skipped(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    feed = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>B</title>'
        b"<item><title>Fine</title><link>https://blog.example.org/1</link></item>"
        b"<item><title>Odd</title><link>https://blog.example.org/2</link>"
        b"<pubDate>Mon, 01 Jan 0000 00:00:00 GMT</pubDate></item>"
        b"<item><title></title><link>https://blog.example.org/3</link></item>"
        b"</channel></rss>"
    )
    config = served_cli_config(tmp_path, httpserver, feed)
    result = runner.invoke(app, ["collect", "--config", str(config), "--date", "2026-06-12"])
    assert result.exit_code == 1, result.output
    assert "35 papers stored." in result.stdout
    assert result.stderr.strip() == (
        "Warning: bad: 2 items skipped: item 2: 'Odd': date 'Mon, 01 Jan 0000 00:00:00 GMT' "
        "is not a date"
    )
    row = next(line for line in result.stdout.splitlines() if line.startswith("│ bad"))
    assert "2 skipped" in row


def test_collect_exits_0_only_when_everything_landed(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    config = served_cli_config(tmp_path, httpserver, recording(TAKARA))
    result = runner.invoke(app, ["collect", "--config", str(config), "--date", "2026-06-12"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and "Exit codes" in runner.invoke(app, ["collect", "--help"]).stdout


def test_items_over_the_per_source_limit_are_cut_and_counted(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request("/feed").respond_with_data(recording(TAKARA))
    source = {"name": "takara", "kind": "feed", "url": httpserver.url_for("/feed")}
    report = run(tmp_path, store, [source], sections={"collect": {"max_items": 20}})["takara"]
    assert (report.fetched, report.skipped, store.count_papers()) == (20, 30, 20)
    assert report.warning == "takara: 30 items skipped: 30 over the limit of 20 items per source"


def huge_feed(items: int) -> bytes:
    entries = "".join(
        f"<item><title>Paper {n} on diffusion</title><link>https://blog.example.org/{n}</link>"
        f"<description>Abstract {n}: {'words ' * 20}</description></item>"
        for n in range(items)
    )
    return f'<rss version="2.0"><channel><title>Big</title>{entries}</channel></rss>'.encode()


async def longest_stall(work: Awaitable[Any]) -> tuple[Any, float]:
    """Run `work` while a probe ticks on the same loop; the longest the probe was held up is
    how long the loop was blocked."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    stalls = [0.0]
    while not task.done():
        before = loop.time()
        await asyncio.wait([task], timeout=0.02)  # a probe tick, not a wait for state
        stalls.append(loop.time() - before - 0.02)
    return task.result(), max(stalls)


def test_parsing_a_huge_feed_does_not_block_the_event_loop(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/huge").respond_with_data(huge_feed(6000))
    config = make_config(tmp_path, [{"name": "huge", "kind": "feed", "url": "/"}])
    src = SourceConfig("huge", "feed", httpserver.url_for("/huge"))

    async def fetch_and_parse() -> tuple[SourceResult, float]:
        async with httpx.AsyncClient() as client:
            request = SourceRequest(src, config.collect, NOW.date(), client, sleep=Sleeps())
            work = feed.collect(request)
            return await longest_stall(work)

    async def parse_on_the_loop() -> tuple[list[Paper], float]:
        async def inline() -> list[Paper]:
            return feed.parse(huge_feed(6000), "huge", src.url)

        return await longest_stall(inline())

    # Measured against the same parse done on the loop, in the same run, so a loaded machine
    # slows both alike: off the loop, the longest stall is a small part of the parse.
    _, blocking = asyncio.run(parse_on_the_loop())
    result, stall = asyncio.run(fetch_and_parse())
    assert len(result.papers) == 6000
    assert stall < blocking / 3, f"the loop stalled {stall:.2f}s; parsing on it: {blocking:.2f}s"


def test_a_healthy_source_is_not_timed_out_while_a_huge_feed_is_parsed(
    tmp_path: Path, store: Store
) -> None:
    """The healthy source answers once the huge feed is sent, so it is read while that feed is
    parsed, which takes longer than the healthy source's timeout. (Whether the old code lost
    this race varied; the test above measures the blocking itself.)"""
    huge = huge_feed(6000)
    sent = threading.Event()

    def send_huge(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            yield huge
            sent.set()

        return Response(body(), content_type="application/rss+xml")

    def healthy(request: Request) -> Response:
        assert sent.wait(10)
        return Response(recording(ARXIV_RSS), content_type="application/rss+xml")

    server = HTTPServer(threaded=True)
    server.expect_request("/huge").respond_with_handler(send_huge)
    server.expect_request("/rss").respond_with_handler(healthy)
    server.start()
    sources = [
        {"name": "huge", "kind": "feed", "url": server.url_for("/huge")},
        {"name": "arxiv", "kind": "arxiv", "url": server.url_for("/rss"), "timeout": 1.0},
    ]
    try:
        reports = run(tmp_path, store, sources, sections={"collect": {"retries": 0}})
    finally:
        server.clear()
        server.stop()
    assert reports["huge"].error is None and reports["huge"].fetched == 6000
    assert reports["arxiv"].error is None and reports["arxiv"].new == 4


def test_a_redirect_within_the_configured_range_is_followed_and_links_resolve_there(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    doc = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>B</title>'
        b"<item><title>Relative</title><link>posts/1</link></item>"
        b'<item xml:base="https://other.example.org/dir/"><title>Based</title>'
        b"<link>p/2</link></item></channel></rss>"
    )
    moved = httpserver.url_for("/blog/new/feed.xml").replace("localhost", "127.0.0.1")
    httpserver.expect_request("/old").respond_with_data("", status=301, headers={"Location": moved})
    httpserver.expect_request("/blog/new/feed.xml").respond_with_data(doc)
    source = {"name": "blog", "kind": "feed", "url": httpserver.url_for("/old")}
    assert run(tmp_path, store, [source])["blog"].ok
    links = sorted(p.link for p in store.list_papers())
    assert links == [moved.replace("feed.xml", "posts/1"), "https://other.example.org/dir/p/2"]
    assert store.get_source_state("blog").last_url == httpserver.url_for("/old")


def test_the_same_relative_link_in_two_feeds_is_two_papers(tmp_path: Path, store: Store) -> None:
    doc = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>B</title>'
        b"<item><title>{}</title><link>/posts/1</link></item></channel></rss>"
    )
    sources = []
    for name in ("one", "two"):
        (tmp_path / f"{name}.xml").write_bytes(doc.replace(b"{}", name.encode()))
        sources.append({"name": name, "kind": "feed", "url": str(tmp_path / f"{name}.xml")})
    reports = run(tmp_path, store, sources)
    assert all(r.ok for r in reports.values())
    assert sorted(p.title for p in store.list_papers()) == ["one", "two"]
    assert all(p.link is None for p in store.list_papers())


def test_papers_output_keeps_terminal_escapes_from_feeds_off_the_screen(
    tmp_path: Path,
) -> None:
    hostile = "Red\x1b[31m alert\x1b]0;pwned\x07 \x1b[2J\u202eevil\x9b1m [bold]x[/bold]"
    doc = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>B</title>'
        f"<item><title>{hostile}</title><link>https://blog.example.org/1</link></item>"
        "</channel></rss>"
    ).encode()
    (tmp_path / "feed.xml").write_bytes(doc.replace(b"\x1b", b"&#27;").replace(b"\x07", b"&#7;"))
    config = app_config(tmp_path, [("blog", "feed", str(tmp_path / "feed.xml"))])
    assert runner.invoke(app, ["collect", "--config", str(config)]).exit_code == 0
    shown = runner.invoke(app, ["papers", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert not any(ch in shown.stdout for ch in "\x1b\x07\x9b\u202e"), repr(shown.stdout)
    assert "Red" in shown.stdout and "[bold]x[/bold]" in shown.stdout
    as_json = runner.invoke(app, ["papers", "--config", str(config), "--json"])
    assert "\x1b" not in as_json.stdout and "\x9b" not in as_json.stdout
    assert "\\u001b[31m" in as_json.stdout and "\\u202e" in as_json.stdout
    assert json.loads(as_json.stdout)["title"].startswith("Red\x1b[31m alert")


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_collect_on_a_full_disk_is_one_line_naming_the_database(tmp_path: Path) -> None:
    """A real full disk for the process: no file may grow past 64 KB, so the first batch cannot
    be written. One line naming the file, a non-zero exit, and no source blamed for it."""
    db = tmp_path / "digest.db"
    Store(db).close()
    config = app_config(
        tmp_path, [("hf", "hf", DATA / HF_JUNE), ("api", "arxiv", DATA / ARXIV_API)]
    )
    done = subprocess.run(
        [sys.executable, "-m", "digest", "collect", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=_file_size_limit(65536),
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {db}: "), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    with Store(db) as store:
        assert store.count_papers() == 0 and store.all_source_states() == []


# --- issue 12: one request and one result type for every kind of source -------------------

ONE_BAD_ITEM = {
    "arxiv": b"""<rss version="2.0"><channel><title>cs.LG</title>
<item><title>Kept</title><guid>oai:arXiv.org:2609.26811v1</guid></item>
<item><title>Lost</title><guid>urn:lab:2</guid><link>https://lab.example.org/2</link></item>
</channel></rss>""",
    "feed": b"""<rss version="2.0"><channel><title>Lab</title>
<item><title>Kept</title><link>https://lab.example.org/1</link></item>
<item><link>https://lab.example.org/2</link></item></channel></rss>""",
    "hf": json.dumps([{"paper": {"id": "2609.26811", "title": "Kept"}}, "lost"]).encode(),
}


def ask(tmp_path: Path, src: SourceConfig, *, cached: Body | None = None) -> SourceResult:
    """One collector, called the way collect() calls every one of them."""

    async def go() -> SourceResult:
        async with httpx.AsyncClient() as client:
            settings = make_config(tmp_path, []).collect
            request = SourceRequest(src, settings, NOW.date(), client, cached=cached)
            return await COLLECTORS[src.kind](request)

    return asyncio.run(go())


@pytest.mark.parametrize("kind", sorted(ONE_BAD_ITEM))
def test_every_kind_answers_one_request_type_with_one_result_type(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / f"{kind}.data"
    path.write_bytes(ONE_BAD_ITEM[kind])
    result = ask(tmp_path, SourceConfig("lab", kind, str(path)))
    assert type(result) is SourceResult and result.source == "lab"
    assert [p.title for p in result.papers] == ["Kept"]
    assert result.skipped == 1 and result.skip_reasons[0].startswith("item 2: ")


@pytest.mark.parametrize("kind", sorted(ONE_BAD_ITEM))
def test_every_kind_reports_an_unchanged_source_the_same_way(
    httpserver: HTTPServer, tmp_path: Path, kind: str
) -> None:
    httpserver.expect_request("/src", headers={"If-None-Match": '"v1"'}).respond_with_data(
        "", status=304
    )
    url = httpserver.url_for("/src")
    asked = f"{url}?date={NOW.date()}" if kind == "hf" else url
    result = ask(tmp_path, SourceConfig("lab", kind, url), cached=Body(url=asked, etag='"v1"'))
    assert result == SourceResult(
        "lab", url=asked, etag='"v1"', not_modified=True, note="not modified since last run"
    )
