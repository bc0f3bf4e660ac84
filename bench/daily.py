"""Benchmark: the whole daily run for 100,000 subscribers, end to end, against the pipe's limit.

Setup (not timed): a real announcement day from the corpus (bench/corpus.py; the largest, 1,111
papers, unless --day) served as an arXiv RSS feed, and HF's daily list of that day as the API
served it, by an HTTP server on 127.0.0.1; subscribers with a realistic mix (topic presets,
shared and personal queries with phrases, NOT and fields, daily, all due now). Timed: our
`Pipeline.run` in a fresh process (collect over HTTP, plan and match, render, build, send through
8 SMTP connections with the delivery log), with its own peak memory and CPU (user+sys).
Against each server (an aiosmtpd sink in its own process, a private Postfix with a discard
transport, Postfix's smtp-sink; bench/limits.py), in the same run: our run on a fresh copy of
the database; the limit, Postfix's C client `smtp-source` pushing real digests of this run
(written to files once) over the same 8 connections; and raw aiosmtplib with the same messages
(the old baseline, kept as a second one). A smaller population shows that memory stays flat.
Prints a table, then one JSON line (bench, subscribers, emails, emails_per_s, sink_per_s, ratio,
peak_mb, stages, limit_per_s, limit_ratio, cpu_ms_per_email, servers), the top-level figures
taken against aiosmtpd.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import corpus  # noqa: E402
import limits  # noqa: E402

from digest.config import load_config, load_topics  # noqa: E402
from digest.models import Subscriber  # noqa: E402
from digest.store import Delivery, Store  # noqa: E402

CONCURRENCY = 8
SINK_SAMPLE = 3_000
LIMIT_MESSAGES = 20_000
MESSAGE_FILES = 64
SECRET = "bench-secret-0123456789abcdef0123456789"


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


def write_config(folder: Path, sources_port: int, smtp_port: int, workers: int = 1) -> Path:
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
workers = {workers}
[web]
base_url = "https://digest.example.org"
""",
        encoding="utf-8",
    )
    return config_path


def setup(folder: Path, subscribers: int, day: str) -> Path:
    """A database holding the population (the papers come by HTTP during the timed run)."""
    import match as matchbench

    rng = random.Random(20261125)
    papers = corpus.day_papers(day)
    queries = [ours for ours, _ in matchbench.build_queries(rng, papers)]
    folder.mkdir(parents=True)
    config = load_config(write_config(folder, 1, 1), env={})
    topics = list(load_topics(config.topics_path))
    with Store(config.database.path) as store:
        people = population(subscribers, queries, topics, rng)
        store.add_subscribers_bulk(people, datetime.now(UTC), "bench")
    return folder / "digest.db"


def run_ours(config_path: str) -> None:
    """In a fresh process: the timed daily run, its own peak memory and its CPU."""
    from digest.pipeline import Pipeline, run_async

    config = load_config(config_path, env={"DIGEST_SECRET": SECRET})
    cpu = limits.cpu_seconds() + limits.cpu_seconds(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with Store(config.database.path) as store:
        pipeline = Pipeline(
            config, store, load_topics(config.topics_path), datetime.now(UTC),
            clock=lambda: datetime.now(UTC),
        )  # fmt: skip
        report = run_async(pipeline.run())  # as `digest run` does
    seconds = time.perf_counter() - started
    cpu = limits.cpu_seconds() + limits.cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
    errors = [r.error for r in report.collected if r.error]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_s": cpu,
                "sent": report.send.sent,
                "failed": report.send.failed + report.send.deferred,
                "planned": report.plan.planned,
                "no_matches": report.plan.no_matches,
                "new_papers": sum(r.new for r in report.collected),
                "stages": pipeline.timings,
                "errors": errors,
                "peak_mb": limits.peak_rss_mb(),
                "worker_peaks_mb": pipeline.worker_peaks_mb,
                "builder_private_mb": pipeline.builder_private_mb,
                "builder_idle": list(pipeline.builder_idle),
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
    """Real digests as our renderer makes them, for the limit and the raw measurement."""
    from digest.pipeline import Pipeline

    config = load_config(config_path, env={"DIGEST_SECRET": SECRET})
    out: list[bytes] = []
    with Store(config.database.path) as store:
        pipeline = Pipeline(config, store, load_topics(config.topics_path), datetime.now(UTC))
        query = "select * from deliveries where status = 'sent' limit 500"
        rows = [Delivery.from_row(r) for r in store.db.query(query)]
        people = store.subscribers_by_id([r.subscriber_id for r in rows])
        for row in rows:
            message = pipeline.build(row, people[row.subscriber_id])
            if message is not None:
                out.append(message.data)
    if not out:
        raise SystemExit(f"bench: no digest was sent in {config.database.path}; nothing to compare")
    return [out[i % len(out)] for i in range(count)]


def run_daily(
    database: Path, folder: Path, sources_port: int, smtp_port: int, workers: int = 1
) -> dict[str, Any]:
    """Our daily run on a fresh copy of the prepared database, in its own process (and its
    send workers' with `workers` > 1)."""
    folder.mkdir(parents=True)
    shutil.copy(database, folder / "digest.db")
    config_path = write_config(folder, sources_port, smtp_port, workers)
    machine = limits.machine_cpu_seconds()
    done = subprocess.run(
        [sys.executable, __file__, "--ours", str(config_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    machine = limits.machine_cpu_seconds() - machine
    if done.returncode != 0:
        raise SystemExit(f"bench: our daily run failed ({done.returncode}):\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["errors"] or not result["sent"]:
        raise SystemExit(f"bench: our daily run sent {result['sent']}: {result['errors']}")
    result["config"] = str(config_path)
    result["machine_cpu_s"] = machine
    return result


def figures(ours: dict[str, Any], limit: limits.Limit, raw_per_s: float) -> dict[str, Any]:
    per_s = ours["sent"] / ours["seconds"]
    ours_ms = ours["cpu_s"] * 1000 / ours["sent"]
    server_ms = max(0.0, ours["machine_cpu_s"] - ours["cpu_s"]) * 1000 / ours["sent"]
    ceiling = limits.ceiling_per_s(ours_ms, server_ms)
    return {
        "emails": ours["sent"],
        "seconds": round(ours["seconds"], 1),
        "emails_per_s": round(per_s, 1),
        "limit_per_s": round(limit.per_s, 1),
        "limit_ratio": round(per_s / limit.per_s, 3),
        "cpu_ms_per_email": round(ours["cpu_s"] * 1000 / ours["sent"], 3),
        "limit_cpu_ms_per_email": round(limit.cpu_ms_per_email, 3),
        "server_cpu_ms_per_email": round(server_ms, 3),
        "limit_server_cpu_ms_per_email": round(limit.server_cpu_ms_per_email, 3),
        "ceiling_per_s": round(ceiling, 1),
        "ceiling_ratio": round(per_s / ceiling, 3),
        "limit_messages": limit.messages,
        "limit_distinct": limit.distinct,
        "raw_per_s": round(raw_per_s, 1),
        "raw_ratio": round(per_s / raw_per_s, 3),
        "peak_mb": round(max([ours["peak_mb"], *ours["worker_peaks_mb"]]), 1),
        "own_peak_mb": round(ours["peak_mb"], 1),
        "builder_private_mb": round(ours.get("builder_private_mb", 0.0), 1),
        "builder_idle": ours.get("builder_idle", [0, 0]),
        "processes": 1 + len(ours["worker_peaks_mb"]),
        "stages": {k: round(v, 2) for k, v in ours["stages"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000, help="for the memory comparison")
    parser.add_argument("--day", help="corpus announcement day (default: the largest)")
    parser.add_argument("--servers", default=",".join(limits.SERVERS))
    parser.add_argument(
        "--limit-messages", type=int, default=LIMIT_MESSAGES,
        help="smtp-source sends min(this, our emails): a baseline may be sampled",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=min(os.cpu_count() or 1, 4),
        help="also run with [smtp] workers = this many processes (1: only the single process)",
    )  # fmt: skip
    parser.add_argument("--ours")
    args = parser.parse_args()
    if args.ours:
        run_ours(args.ours)
        return
    names = limits.parse_servers(args.servers)
    limits.require_tools(names)
    day = corpus.day_or_largest(args.day)
    hf_day, hf_body = corpus.hf_file(day)
    records = corpus.announcements()[day]
    today = datetime.now(UTC).date()  # the run's "now" finds the day's papers fresh
    routes = {
        "/api/daily_papers": hf_body,
        "/rss/cs.LG": corpus.arxiv_rss(records, announced=today),
    }
    http, sources_port = serve(routes)
    folder = Path(tempfile.mkdtemp(prefix="digest-daily-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        started = time.perf_counter()
        big_db = setup(folder / "big", args.subscribers, day)
        small_db = setup(folder / "small", args.small, day)
        setup_s = time.perf_counter() - started
        messages: list[bytes] = []
        files: list[tuple[Path, int]] = []
        small: dict[str, Any] = {}
        big: dict[str, Any] = {}
        for name in names:
            with limits.start(name) as server:
                if not small:
                    small = run_daily(small_db, folder / f"small-{name}", sources_port, server.port)
                    limits.drain(server)
                ours = run_daily(big_db, folder / f"big-{name}", sources_port, server.port)
                limits.drain(server)
                if not messages:
                    big = ours
                    messages = sample_messages(Path(ours["config"]), SINK_SAMPLE)
                    files = limits.write_messages(messages, folder / "messages", MESSAGE_FILES)
                count = min(ours["sent"], args.limit_messages)
                limit = limits.smtp_source(server, files, count, CONCURRENCY)
                raw_per_s = asyncio.run(raw_sink_rate(server.port, messages))
                limits.drain(server)
                results[name] = figures(ours, limit, raw_per_s)
                if args.workers > 1:
                    where = folder / f"big-{name}-x{args.workers}"
                    shared = run_daily(big_db, where, sources_port, server.port, args.workers)
                    limits.drain(server)
                    results[f"{name} x{args.workers}"] = figures(shared, limit, raw_per_s)
    finally:
        http.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    top_name = "aiosmtpd" if "aiosmtpd" in results else names[0]
    top = results[top_name]
    size = sum(len(m) for m in messages) / len(messages) / 1024
    count = min(big["sent"], args.limit_messages)
    print(
        f"daily: {args.subscribers:,} subscribers, {big['new_papers']:,} new papers (arXiv "
        f"announcement of {day}: {len(records):,}; HF daily list of {hf_day}) from 127.0.0.1, "
        f"{CONCURRENCY} SMTP connections (setup {setup_s:.0f}s, not timed)"
    )
    print(f"  emails sent: {big['sent']:,} ({big['no_matches']:,} subscribers had no match; "
          f"{big['failed']} failed); average message {size:.0f} KB")  # fmt: skip
    print(f"  {'stage (' + top_name + ')':28} {'seconds':>8}")
    for stage, seconds in top["stages"].items():
        note = " (inside send)" if stage == "render" else ""
        print(f"  {stage + note:28} {seconds:8.1f}")
    print(f"  {'total':28} {top['seconds']:8.1f}")
    head = ("server", "ours/s", "limit/s", "ours/limit", "CPU ms/email", "raw/s", "ours/raw",
            "peak MB")  # fmt: skip
    print(f"{head[0]:14} " + " ".join(f"{h:>12}" for h in head[1:]))
    for name, r in results.items():
        cells = (r["emails_per_s"], r["limit_per_s"], f"{r['limit_ratio']:.0%}",
                 r["cpu_ms_per_email"], r["raw_per_s"], f"{r['raw_ratio']:.0%}",
                 f"{r['peak_mb']:.0f}")  # fmt: skip
        print(f"{name:14} " + " ".join(f"{c:>12}" for c in cells))
    print(
        f"limit = Postfix's C client smtp-source, {count:,} of the same digests over the same "
        f"{CONCURRENCY} connections ({top['limit_distinct']} distinct); raw = aiosmtplib alone, "
        f"{len(messages):,} messages; CPU = our processes, user+sys, all stages; "
        f"'x{args.workers}': [smtp] workers = {args.workers} (peak MB: the largest process)"
    )
    print(
        "smtp-source's own CPU ms/email: "
        + ", ".join(f"{k} {r['limit_cpu_ms_per_email']}" for k, r in results.items())
    )
    head = ("server", "ours ms", "its server ms", "source ms", "its server ms", "ceiling/s",
            "ours/ceiling")  # fmt: skip
    print(f"{head[0]:14} " + " ".join(f"{h:>13}" for h in head[1:]))
    for name, r in results.items():
        cells = (r["cpu_ms_per_email"], r["server_cpu_ms_per_email"],
                 r["limit_cpu_ms_per_email"], r["limit_server_cpu_ms_per_email"],
                 r["ceiling_per_s"], f"{r['ceiling_ratio']:.0%}")  # fmt: skip
        print(f"{name:14} " + " ".join(f"{c:>13}" for c in cells))
    print(
        f"CPU per email on this machine's {os.cpu_count()} cores, from /proc/stat: ours and the "
        "server's during our run, smtp-source's and the server's during the limit's; ceiling = "
        "cores x 1000 / (ours + its server): the rate at which every core would be busy"
    )
    built = {k: r["builder_idle"] for k, r in results.items() if r["builder_idle"][1]}
    if built:
        print(
            "messages built in the idle class (the builder ahead of the senders, `Pace`): "
            + ", ".join(f"{k} {idle / total:.0%}" for k, (idle, total) in built.items())
        )
    print("targets: ours >= 80% of the limit (aiosmtpd, postfix); CPU <= 1.0 ms per email")
    print(
        f"peak memory: {top['peak_mb']:.0f} MB at {args.subscribers:,} subscribers, "
        f"{small['peak_mb']:.0f} MB at {args.small:,} (target < 300 MB, flat)"
    )
    if top["builder_private_mb"]:
        print(
            f"  two processes (messages built by a forked child, digest/ahead.py): the run's "
            f"own {top['own_peak_mb']:.0f} MB; the child's peak counts the pages it shares "
            f"with it, its own were {top['builder_private_mb']:.0f} MB at the end"
        )
    print(
        f"capacity here: about {top['emails_per_s'] * 3600:,.0f} emails per hour "
        f"({args.subscribers:,} subscribers in {top['seconds'] / 60:.1f} min, {top_name})"
    )
    print(
        json.dumps(
            {
                "bench": "daily",
                "subscribers": args.subscribers,
                "emails": top["emails"],
                "emails_per_s": top["emails_per_s"],
                "sink_per_s": top["raw_per_s"],
                "ratio": top["raw_ratio"],
                "peak_mb": top["peak_mb"],
                "peak_mb_small": round(small["peak_mb"], 1),
                "stages": top["stages"],
                "server": top_name,
                "limit_per_s": top["limit_per_s"],
                "limit_ratio": top["limit_ratio"],
                "cpu_ms_per_email": top["cpu_ms_per_email"],
                "day": day,
                "papers": len(records),
                "servers": results,
            }
        )
    )


if __name__ == "__main__":
    main()
