"""Benchmark: our whole collect of 5,000 feed entries against feedparser.parse alone.

Both read the same bytes: an arXiv RSS document listing 5,000 real papers (the corpus's largest
announcement day and the days after it; bench/corpus.py). Ours = read, parse, normalise, merge and
store in a fresh SQLite file with FTS, through the same `collect()` the CLI calls.
Prints a table, then one JSON line (bench, entries, ours_s, baseline_s, overhead).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import feedparser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import corpus  # noqa: E402

from digest.collect import collect  # noqa: E402
from digest.config import parse_config  # noqa: E402
from digest.store import Store  # noqa: E402

ENTRIES = 5_000


def build_feed(entries: int) -> bytes:
    return corpus.arxiv_rss(corpus.records_from(None, entries))


def best_of(runs: int, func) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=ENTRIES)
    entries = parser.parse_args().entries
    body = build_feed(entries)
    with tempfile.TemporaryDirectory() as tmp:
        feed_path = Path(tmp) / "feed.xml"
        feed_path.write_bytes(body)
        counter = iter(range(100))

        def ours() -> None:
            db = Path(tmp) / f"bench-{next(counter)}.db"
            config = parse_config(
                {
                    "database": {"path": str(db)},
                    "sources": [{"name": "arxiv", "kind": "arxiv", "url": str(feed_path)}],
                },
                None,
                {},
            )
            with Store(db) as store:
                (report,) = collect(config, store, datetime.now(UTC))
                assert report.error is None and report.new == entries, report

        def baseline() -> None:
            # feedparser exactly as our parser calls it, so the ratio is our own overhead
            parsed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
            assert len(parsed.entries) == entries

        def default_parse() -> None:
            assert len(feedparser.parse(body).entries) == entries

        baseline_s = best_of(3, baseline)
        default_s = best_of(1, default_parse)
        ours_s = best_of(3, ours)
    overhead = ours_s / baseline_s
    rows = [
        ("feedparser.parse, default options (reference)", default_s),
        ("feedparser.parse alone, our options (baseline)", baseline_s),
        ("digest collect: parse + normalise + store + FTS", ours_s),
    ]
    print(f"collect: {entries:,} arXiv RSS entries ({len(body) / 1e6:.1f} MB), best of 3")
    print(f"{'':50} {'seconds':>8} {'entries/s':>10}")
    for name, seconds in rows:
        print(f"{name:50} {seconds:8.3f} {entries / seconds:10,.0f}")
    verdict = "meets" if overhead <= 1.5 else "MISSES"
    print(f"overhead (ours / baseline): {overhead:.2f}x  ({verdict} the 1.5x target)")
    print(
        json.dumps(
            {
                "bench": "collect",
                "entries": entries,
                "ours_s": round(ours_s, 4),
                "baseline_s": round(baseline_s, 4),
                "overhead": round(overhead, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
