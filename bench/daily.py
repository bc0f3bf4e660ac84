"""Benchmark: the whole daily run for 100,000 subscribers, end to end, on this machine.

Setup (not timed): 1,000 new papers built from the real recordings' text, served as an HF
daily-papers JSON and an arXiv RSS feed by an HTTP server on 127.0.0.1; subscribers with a
realistic mix (topic presets, shared and personal queries with phrases, NOT and fields, daily,
all due now); an aiosmtpd sink in a separate process. Timed: our `Pipeline.run` in a fresh
process (collect over HTTP, plan and match, render, build, send through 8 SMTP connections
with the delivery log), whose peak memory is its own. Measured in the same run: the raw sink
rate (raw aiosmtplib over the same 8 connections with the same messages), the limit.
Also runs a smaller population to show that memory stays flat as subscribers grow.
Prints a table, then one JSON line (bench, subscribers, emails, emails_per_s, sink_per_s,
ratio, peak_mb, stages).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from digest.config import load_config, load_topics  # noqa: E402
from digest.models import Paper, Subscriber  # noqa: E402
from digest.store import Store  # noqa: E402

CONCURRENCY = 8
SINK_SAMPLE = 3_000
SECRET = "bench-secret-0123456789abcdef0123456789"


def hf_json(papers: list[Paper]) -> bytes:
    items = [
        {
            "paper": {
                "id": p.id,
                "title": p.title,
                "summary": p.abstract,
                "authors": [{"name": a, "hidden": False} for a in p.authors],
                "publishedAt": p.published,
                "upvotes": p.upvotes,
                "githubRepo": f"https://github.com/example/{p.id}" if i % 3 == 0 else None,
                "githubStars": i * 7 % 500,
                "ai_summary": p.abstract.split(". ")[0] + ".",
            },
            "numComments": i % 5,
        }
        for i, p in enumerate(papers)
    ]
    return json.dumps(items).encode()


def arxiv_rss(papers: list[Paper]) -> bytes:
    from xml.sax.saxutils import escape

    items = "".join(
        f"<item><title>{escape(p.title)}</title><link>https://arxiv.org/abs/{p.id}</link>"
        f"<description>arXiv:{p.id}v1 Announce Type: new \nAbstract: {escape(p.abstract)}"
        f'</description><guid isPermaLink="false">oai:arXiv.org:{p.id}v1</guid>'
        + "".join(f"<category>{c}</category>" for c in p.categories)
        + f"<dc:creator>{escape(', '.join(p.authors))}</dc:creator>"
        "<arxiv:announce_type>new</arxiv:announce_type></item>"
        for p in papers
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>cs.LG updates</title>{items}</channel></rss>"
    ).encode()


def serve(routes: dict[str, bytes]) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = routes.get(self.path.split("?")[0])
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def population(n: int, queries: list[str], topics: list[str], rng: random.Random):  # type: ignore[no-untyped-def]
    """Most people pick one or two presets; many share a popular query; some write their own."""
    popular = queries[:200]
    for i in range(n):
        kind = rng.random()
        if kind < 0.4:
            picked_topics, picked = rng.sample(topics, rng.randint(1, 2)), []
        elif kind < 0.7:
            picked_topics, picked = rng.sample(topics, 1), [rng.choice(popular)]
        else:
            picked_topics, picked = [], rng.sample(queries, rng.randint(1, 3))
        yield Subscriber(
            f"s{i}@example.org", status="active", topics=picked_topics, queries=picked,
            hour=0, tz=rng.choice(["UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York"]),
            max_papers=10,
        )  # fmt: skip


def setup(folder: Path, subscribers: int, sources_port: int, smtp_port: int) -> Path:
    import match as matchbench

    rng = random.Random(20261125)
    papers = matchbench.build_papers(rng)
    queries = [ours for ours, _ in matchbench.build_queries(rng, papers)]
    config_path = folder / "digest.toml"
    config_path.write_text(
        f"""
[database]
path = "{folder / "digest.db"}"
[[sources]]
name = "hf"
kind = "hf"
url = "http://127.0.0.1:{sources_port}/api/daily_papers"
[[sources]]
name = "arxiv"
kind = "arxiv"
url = "http://127.0.0.1:{sources_port}/rss/cs.LG"
[mail]
from = "Paper Digest <digest@example.org>"
postal_address = "1 Example Street, 75000 Paris"
unsubscribe_mailto = "unsubscribe@example.org"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
concurrency = {CONCURRENCY}
rate_per_second = 0
[web]
base_url = "https://digest.example.org"
""",
        encoding="utf-8",
    )
    config = load_config(config_path, env={})
    topics = list(load_topics(config.topics_path))
    with Store(config.database.path) as store:
        people = population(subscribers, queries, topics, rng)
        store.add_subscribers_bulk(people, datetime.now(UTC).isoformat(), "bench")
    return config_path


def run_ours(config_path: str) -> None:
    """In a fresh process: the timed daily run and its own peak memory."""
    from digest.pipeline import Pipeline

    config = load_config(config_path, env={"DIGEST_SECRET": SECRET})
    started = time.perf_counter()
    with Store(config.database.path) as store:
        pipeline = Pipeline(
            config, store, load_topics(config.topics_path), datetime.now(UTC),
            clock=lambda: datetime.now(UTC),
        )  # fmt: skip
        report = asyncio.run(pipeline.run())
    seconds = time.perf_counter() - started
    errors = [r.error for r in report.collected if r.error]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "sent": report.send.sent,
                "failed": report.send.failed + report.send.deferred,
                "planned": report.plan.planned,
                "no_matches": report.plan.no_matches,
                "new_papers": sum(r.new for r in report.collected),
                "stages": pipeline.timings,
                "errors": errors,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


async def raw_sink_rate(port: int, messages: list[bytes]) -> float:
    import aiosmtplib

    async def one(chunk: list[bytes]) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for data in chunk:
            await client.sendmail("digest@example.org", ["raw@example.org"], data)
        await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(one(messages[i::CONCURRENCY]) for i in range(CONCURRENCY)))
    return len(messages) / (time.perf_counter() - started)


def sample_messages(config_path: Path, count: int) -> list[bytes]:
    """Real digests as our renderer makes them, for the raw sink measurement."""
    from digest.pipeline import Pipeline

    config = load_config(config_path, env={"DIGEST_SECRET": SECRET})
    out: list[bytes] = []
    with Store(config.database.path) as store:
        pipeline = Pipeline(config, store, load_topics(config.topics_path), datetime.now(UTC))
        rows = list(store.db.query("select * from deliveries where status = 'sent' limit 500"))
        people = store.subscribers_by_id([r["subscriber_id"] for r in rows])
        for row in rows:
            row["papers"] = json.loads(row["papers"])
            message = pipeline.build(row, people[row["subscriber_id"]])
            if message is not None:
                out.append(message.data)
    return [out[i % len(out)] for i in range(count)]


def measure(subscribers: int, sources_port: int, smtp_port: int) -> tuple[dict, Path, Path]:
    folder = Path(tempfile.mkdtemp(prefix="digest-daily-"))
    setup_started = time.perf_counter()
    config_path = setup(folder, subscribers, sources_port, smtp_port)
    setup_s = time.perf_counter() - setup_started
    done = subprocess.run(
        [sys.executable, __file__, "--ours", str(config_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["setup_s"] = setup_s
    return result, folder, config_path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000, help="for the memory comparison")
    parser.add_argument("--ours")
    args = parser.parse_args()
    if args.ours:
        run_ours(args.ours)
        return
    import match as matchbench
    from send import SINK  # the same sink as bench/send.py

    rng = random.Random(7)
    papers = matchbench.build_papers(rng)
    routes = {
        "/api/daily_papers": hf_json(papers[:600]),
        "/rss/cs.LG": arxiv_rss(papers[400:]),
    }
    http, sources_port = serve(routes)
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        smtp_port = int(sink.stdout.readline())  # type: ignore[union-attr]
        small, _, _ = measure(args.small, sources_port, smtp_port)
        big, _, config_path = measure(args.subscribers, sources_port, smtp_port)
        messages = sample_messages(config_path, SINK_SAMPLE)
        sink_per_s = asyncio.run(raw_sink_rate(smtp_port, messages))
    finally:
        http.shutdown()
        sink.stdin.close()  # type: ignore[union-attr]
        sink.wait(timeout=60)
    emails = big["sent"]
    per_s = emails / big["seconds"]
    stages = {k: round(v, 2) for k, v in big["stages"].items()}
    size = sum(len(m) for m in messages) / len(messages) / 1024
    print(
        f"daily: {args.subscribers:,} subscribers, {big['new_papers']:,} new papers from HF and "
        f"arXiv on 127.0.0.1, {CONCURRENCY} SMTP connections to an aiosmtpd sink "
        f"(setup {big['setup_s']:.0f}s, not timed)"
    )
    print(f"  emails sent: {emails:,} ({big['no_matches']:,} subscribers had no match; "
          f"{big['failed']} failed); average message {size:.0f} KB")  # fmt: skip
    print(f"  {'stage':28} {'seconds':>8}")
    for stage, seconds in stages.items():
        note = " (inside send)" if stage == "render" else ""
        print(f"  {stage + note:28} {seconds:8.1f}")
    print(f"  {'total':28} {big['seconds']:8.1f}")
    print(f"end to end: {per_s:,.1f} emails/s; raw sink rate (same messages): {sink_per_s:,.1f}/s")
    print(f"ratio: {per_s / sink_per_s:.0%} of the raw sink rate (target >= 50%)")
    print(
        f"peak memory: {big['peak_mb']:.0f} MB at {args.subscribers:,} subscribers, "
        f"{small['peak_mb']:.0f} MB at {args.small:,} (target < 500 MB, flat)"
    )
    print(
        f"capacity here: about {per_s * 3600:,.0f} emails per hour "
        f"({args.subscribers:,} subscribers in {big['seconds'] / 60:.1f} min)"
    )
    print(
        json.dumps(
            {
                "bench": "daily",
                "subscribers": args.subscribers,
                "emails": emails,
                "emails_per_s": round(per_s, 1),
                "sink_per_s": round(sink_per_s, 1),
                "ratio": round(per_s / sink_per_s, 3),
                "peak_mb": round(big["peak_mb"], 1),
                "peak_mb_small": round(small["peak_mb"], 1),
                "stages": stages,
            }
        )
    )


if __name__ == "__main__":
    main()
