"""Hostile sources, as one table: what a source sends -> the one line it costs -> what landed.

Each row serves one hostile response from a real HTTP server on 127.0.0.1 beside a healthy
HF source (the real recording). A hostile item costs that item (counted, with its reason); a
hostile body costs that source (one line naming it); the healthy source always lands whole.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from digest.collect import collect
from digest.store import Store
from tests.conftest import ARXIV_RSS, HF_JUNE, make_config, recording

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
CAP = 1_000_000
FIRST_HF_ID = "2606.00467"


def hf_with(paper: dict[str, Any] | None = None, item: dict[str, Any] | None = None) -> bytes:
    """The real HF recording with its first item changed; "HUGE" becomes a 5000-digit number
    (Python refuses to print one that long, and a hostile server need not)."""
    data = json.loads(recording(HF_JUNE))
    data[0]["paper"].update(paper or {})
    data[0].update(item or {})
    return json.dumps(data).replace('"HUGE"', "9" * 5000).encode()


def rss_with(old: bytes, new: bytes) -> bytes:
    raw = recording(ARXIV_RSS)
    assert old in raw
    return raw.replace(old, new, 1)


def feed_with_dates(*dates: str) -> bytes:
    items = "".join(
        f"<item><title>Post {n}</title><link>https://blog.example.org/{n}</link>"
        f"<pubDate>{d}</pubDate></item>"
        for n, d in enumerate(dates)
    )
    head = '<?xml version="1.0"?><rss version="2.0"><channel><title>B</title>'
    return f"{head}{items}</channel></rss>".encode()


def atom_with_dates(*dates: str) -> bytes:
    entries = "".join(
        f"<entry><title>Post {n}</title><id>urn:post:{n}</id>"
        f'<link href="https://blog.example.org/{n}"/><published>{d}</published></entry>'
        for n, d in enumerate(dates)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>A</title>{entries}</feed>"
    ).encode()


@dataclass(frozen=True)
class Case:
    """One hostile response; `error` is the line it costs, else `skipped` items with `reason`."""

    kind: str
    body: bytes
    landed: int
    error: str | None = None
    skipped: int = 0
    reason: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


GOOD_DATE = "Mon, 30 Nov 2026 08:00:00 GMT"
HOSTILE: dict[str, Case] = {
    # values too large for SQLite's 64-bit integers: the item, never the run
    "hf upvotes 10**30": Case(
        "hf", hf_with({"upvotes": 10**30}), 29, skipped=1, reason="upvotes is a number far beyond"
    ),
    "hf upvotes 5000 digits": Case(
        "hf", hf_with({"upvotes": "HUGE"}), 29, skipped=1, reason="upvotes is a number far beyond"
    ),
    "hf githubStars 2**63": Case(
        "hf", hf_with({"githubStars": 2**63}), 29, skipped=1, reason="github_stars 92233720368"
    ),
    "hf numComments as a long string": Case(
        "hf", hf_with(item={"numComments": "9" * 40}), 29, skipped=1, reason="numComments 999999"
    ),
    "hf id with an absurd version": Case(
        "hf",
        hf_with({"id": FIRST_HF_ID + "v" + "9" * 23}),
        29,
        skipped=1,
        reason=f"{FIRST_HF_ID}: version v999999999999... (23 digits) is out of range",
    ),
    "arxiv guid with an absurd version": Case(
        "arxiv",
        rss_with(b"2609.26811v1</guid>", b"2609.26811v" + b"9" * 23 + b"</guid>"),
        3,
        skipped=1,
        reason="2609.26811: version v",
    ),
    # malformed items: skipped and counted, the rest stored
    "hf authors is a string": Case(
        "hf", hf_with({"authors": "Jane Doe"}), 29, skipped=1, reason="authors is a string"
    ),
    "hf authors is a number": Case(
        "hf", hf_with({"authors": 5}), 29, skipped=1, reason="authors is a number, expected a list"
    ),
    "hf authors is an object": Case(
        "hf", hf_with({"authors": {"name": "x"}}), 29, skipped=1, reason="authors is an object"
    ),
    "hf authors is null (absent)": Case("hf", hf_with({"authors": None}), 30),
    "hf ai_keywords is an object": Case(
        "hf", hf_with({"ai_keywords": {"a": 1}}), 29, skipped=1, reason="ai_keywords is an object"
    ),
    "hf paper is a string": Case(
        "hf", hf_with(item={"paper": "2606.00467"}), 29, skipped=1, reason="paper is a string"
    ),
    "hf paper is a number": Case(
        "hf", hf_with(item={"paper": 7}), 29, skipped=1, reason="item 1: paper is a number"
    ),
    "feed date in year 0": Case(
        "feed",
        atom_with_dates("0000-01-01T00:00:00Z", "2026-11-30T08:00:00Z"),
        1,
        skipped=1,
        reason="'Post 0': date '0000-01-01T00:00:00Z' is out of range",
    ),
    "feed date unparsable": Case(
        "feed",
        feed_with_dates("the day after tomorrow", GOOD_DATE, GOOD_DATE),
        2,
        skipped=1,
        reason="date 'the day after tomorrow' is not a date",
    ),
    # bodies: the size cap holds after decompression, one known encoding at most
    "gzip bomb": Case(
        "arxiv",
        gzip.compress(b" " * (10 * CAP)),
        0,
        error=f"body over {CAP:,} bytes after decompression (gzip)",
        headers={"Content-Encoding": "gzip"},
    ),
    "deflate bomb": Case(
        "arxiv",
        zlib.compress(b" " * (10 * CAP)),
        0,
        error=f"body over {CAP:,} bytes after decompression (deflate)",
        headers={"Content-Encoding": "deflate"},
    ),
    "stacked gzip": Case(
        "arxiv",
        gzip.compress(gzip.compress(recording(ARXIV_RSS))),
        0,
        error="refused stacked Content-Encoding gzip, gzip",
        headers={"Content-Encoding": "gzip, gzip"},
    ),
    "brotli": Case(
        "arxiv",
        b"\x1b\x00\x00",
        0,
        error="refused Content-Encoding 'br'",
        headers={"Content-Encoding": "br"},
    ),
    "corrupt gzip": Case(
        "arxiv",
        b"\x1f\x8b\x08\x00garbage" * 10,
        0,
        error="the gzip body is corrupt",
        headers={"Content-Encoding": "gzip"},
    ),
    "gzip feed (fine)": Case(
        "arxiv", gzip.compress(recording(ARXIV_RSS)), 4, headers={"Content-Encoding": "gzip"}
    ),
    "raw deflate feed (fine)": Case(
        "arxiv",
        zlib.compress(recording(ARXIV_RSS), wbits=-15),
        4,
        headers={"Content-Encoding": "deflate"},
    ),
    # redirects into internal ranges are refused before connecting
    "redirect to link-local metadata": Case(
        "feed",
        b"",
        0,
        status=302,
        headers={"Location": "http://169.254.169.254/latest/meta-data/"},
        error="redirects to 169.254.169.254 (link-local address); refused",
    ),
    "redirect to a private address": Case(
        "feed",
        b"",
        0,
        status=301,
        headers={"Location": "http://10.0.0.1/admin"},
        error="redirects to 10.0.0.1 (private address); refused",
    ),
    "redirect to IPv4-mapped link-local": Case(
        "feed",
        b"",
        0,
        status=307,
        headers={"Location": "http://[::ffff:169.254.169.254]/"},
        error="(link-local address); refused",
    ),
    "redirect to file:": Case(
        "feed",
        b"",
        0,
        status=302,
        headers={"Location": "file:///etc/passwd"},
        error="/etc/passwd: not http(s)",
    ),
    # wide encodings are decoded, not refused
    "utf-16 feed with a BOM": Case(
        "arxiv",
        recording(ARXIV_RSS)
        .decode()
        .replace("version='1.0'", "version='1.0' encoding='utf-16'")
        .encode("utf-16"),
        4,
    ),
    "utf-32 feed with a BOM": Case("arxiv", recording(ARXIV_RSS).decode().encode("utf-32"), 4),
}


@pytest.mark.parametrize("case", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_source_costs_at_most_itself_and_says_so_in_one_line(
    httpserver: HTTPServer, tmp_path: Path, store: Store, case: Case
) -> None:
    httpserver.expect_request("/api/daily_papers").respond_with_data(recording(HF_JUNE))
    httpserver.expect_request("/bad").respond_with_data(
        case.body, status=case.status, headers=case.headers
    )
    sources = [
        {"name": "hf", "kind": "hf", "url": httpserver.url_for("/api/daily_papers")},
        {"name": "bad", "kind": case.kind, "url": httpserver.url_for("/bad")},
    ]
    config = make_config(tmp_path, sources, collect={"max_bytes": CAP})
    reports = {r.source: r for r in collect(config, store, NOW)}
    bad = reports["bad"]
    if case.error:
        assert bad.error is not None and bad.error.startswith("bad: "), bad
        assert case.error in bad.error and "\n" not in bad.error
        assert "timed out" not in bad.error
        assert store.get_source_state("bad").failures == 1
    else:
        assert bad.error is None, bad.error
        assert bad.skipped == case.skipped, bad
        assert bad.ok == (case.skipped == 0)
        if case.skipped:
            assert bad.warning.startswith(f"bad: {case.skipped} item skipped: item 1: ")
            assert case.reason in bad.skip_reasons[0], bad.skip_reasons
        assert store.get_source_state("bad").last_success == NOW
    assert reports["hf"].ok and reports["hf"].fetched == 30
    counts = store.source_counts()
    assert counts["hf"] == 30 and counts.get("bad", 0) == case.landed
