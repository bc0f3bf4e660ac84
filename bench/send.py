"""Benchmark: 10,000 digest-sized messages through 8 SMTP connections, against the pipe's limit.

The messages carry 10 real papers each (title, authors, abstract from the corpus's largest
announcement day; bench/corpus.py), built beforehand with digest's own message builder (not
timed) and written once to files for the C client. Against each server (an aiosmtpd sink in its
own process, a private Postfix with a discard transport, Postfix's smtp-sink), in the same run:
  limit:  Postfix's C client `smtp-source` pushing the same messages over the same connections;
  ours:   digest's Sender over its SmtpPool, the delivery log included (subscriber check,
          claim, send, mark sent with its papers), with its CPU (user+sys) per email;
  pool:   raw aiosmtplib over the same connections (the old baseline, kept as a second one);
  single: raw aiosmtplib on one connection (timed on a sample of 2,000 and extrapolated).
Prints a table, then one JSON line: bench, messages, ours_per_s, single_per_s, pool_per_s, ratio
(ours/single), pool_ratio (ours/pool), limit_per_s, limit_ratio (ours/limit), cpu_ms_per_email,
taken against smtp-sink (DESIGN.md's limit), and `servers` with the same figures per server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import aiosmtplib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import corpus  # noqa: E402
import limits  # noqa: E402

from digest.config import SmtpConfig  # noqa: E402
from digest.message import Outgoing, build_message, message_id_for  # noqa: E402
from digest.models import Paper, Subscriber  # noqa: E402
from digest.pipeline import run_async  # noqa: E402
from digest.send import Job, Sender, SmtpPool  # noqa: E402
from digest.store import DeliveryStatus, PlannedDelivery, Store  # noqa: E402

MESSAGES = 10_000
SINGLE_SAMPLE = 2_000
CONCURRENCY = 8
PER_EMAIL = 10
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
EDITION = "2026-11-24"
SENDER = "Paper Digest <digest@example.org>"


def card(paper: Paper) -> tuple[str, str]:
    """One paper as the text part and the html part show it."""
    authors = ", ".join(paper.authors[:8])
    text = (
        f"{paper.title}\n{authors}\n{textwrap.fill(paper.abstract, 76)}\n"
        f"https://arxiv.org/abs/{paper.id}\n"
    )
    html = (
        "<tr><td style='padding:0 0 18px;font-family:Helvetica,Arial,sans-serif'>"
        f"<a href='https://arxiv.org/abs/{paper.id}' style='color:#1a4d8f;font-size:17px;"
        f"font-weight:600;text-decoration:none'>{escape(paper.title)}</a>"
        f"<p style='margin:4px 0;color:#555;font-size:13px'>{escape(authors)}</p>"
        f"<p style='margin:0 0 12px;color:#222;font-size:15px;line-height:1.5'>"
        f"{escape(textwrap.fill(paper.abstract, 76))}</p>"
        f"<a href='https://arxiv.org/pdf/{paper.id}' style='display:inline-block;padding:6px 12px;"
        "border-radius:4px;background:#1a4d8f;color:#ffffff;font-size:13px;font-weight:600;"
        "text-decoration:none'>PDF</a> "
        f"<a href='https://digest.example.org/more/{paper.id}' style='display:inline-block;"
        "padding:6px 12px;border-radius:4px;border:1px solid #1a4d8f;color:#1a4d8f;"
        "font-size:13px;text-decoration:none'>More like this</a></td></tr>\n"
    )
    return text, html


def build(n: int, rng: random.Random) -> list[Outgoing]:
    cards = [card(p) for p in corpus.day_papers()]
    out = []
    for i in range(n):
        picked = rng.sample(cards, PER_EMAIL)
        out.append(
            build_message(
                sender=SENDER,
                to=f"s{i}@example.org",
                subject=f"10 new papers: diffusion, agents - Tue 24 Nov #{i}",
                text="\n".join(t for t, _ in picked),
                html="<html><body><table role='presentation' width='100%'>"
                + "".join(h for _, h in picked)
                + "</table></body></html>",
                message_id=message_id_for(i + 1, EDITION, SENDER),
                date=NOW,
                list_id="digest.example.org",
                unsubscribe_url=f"https://digest.example.org/u/token{i}",
            )
        )
    return out


async def raw(port: int, messages: list[Outgoing], connections: int) -> float:
    async def one(chunk: list[Outgoing]) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for m in chunk:
            await client.sendmail(m.sender, [m.recipient], m.data)
        await client.quit()

    chunks = [messages[i::connections] for i in range(connections)]
    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in chunks))
    return time.perf_counter() - started


def plan(messages: list[Outgoing], db: Path) -> None:
    """The delivery log the senders work from: one subscriber and one pending delivery each."""
    with Store(db) as store:
        store.add_subscribers_bulk(
            (Subscriber(m.recipient, status="active", queries=["x"]) for m in messages),
            NOW,
            "bench",
        )
        store.plan_deliveries(
            [
                PlannedDelivery(i + 1, m.recipient, EDITION, DeliveryStatus.PENDING,
                                tuple(f"2611.{j:05d}" for j in range(10)), m.message_id)
                for i, m in enumerate(messages)
            ],
            NOW,
        )  # fmt: skip


async def send_share(
    port: int, messages: list[Outgoing], db: Path, connections: int, share: tuple[int, int]
) -> int:
    """Our Sender over its SmtpPool for the deliveries of one share (k of n, by id), as a
    send worker of `[smtp] workers = n` takes them; returns how many it sent."""
    config = SmtpConfig(
        host="127.0.0.1", port=port, security="none", concurrency=connections,
        rate_per_second=0.0,
    )  # fmt: skip
    k, n = share
    with Store(db) as store:
        rows = [r for r in store.due_deliveries(NOW, limit=len(messages)) if r.id % n == k]
        jobs = [
            Job(r.id, r.subscriber_id, r.email, r.edition, r.papers, messages[r.subscriber_id - 1])
            for r in rows
        ]  # fmt: skip

        async def stream() -> AsyncIterator[Job]:
            for job in jobs:
                yield job

        async with SmtpPool(config) as pool:
            sender = Sender(store, pool, config, lambda: datetime.now(UTC))
            stats = await sender.run(stream(), connections)
    assert stats.sent == len(jobs), stats
    return stats.sent


_FORKED: list[Outgoing] = []  # the messages, as the forked send processes inherit them


def _share_process(args: tuple[int, Path, int, tuple[int, int]]) -> int:
    port, db, connections, share = args
    return run_async(send_share(port, _FORKED, db, connections, share))


def ours(
    port: int, messages: list[Outgoing], db: Path, connections: int, workers: int = 1
) -> tuple[float, float]:
    """Seconds and CPU seconds (user+sys of every process that sent) of our Sender's run:
    in this process, or in `workers` processes sharing the connections and the database."""
    plan(messages, db)
    cpu = limits.cpu_seconds() + limits.cpu_seconds(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    if workers <= 1:
        run_async(send_share(port, messages, db, connections, (0, 1)))  # as `digest run`
    else:
        shares = [
            (port, db, connections // workers + (k < connections % workers), (k, workers))
            for k in range(workers)
        ]
        _FORKED[:] = messages  # inherited by fork, not pickled
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pool.map(_share_process, shares)
    elapsed = time.perf_counter() - started
    cpu = limits.cpu_seconds() + limits.cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
    with Store(db) as store:
        assert store.delivery_counts() == {"sent": len(messages)}
    return elapsed, cpu


def measure(
    server: limits.Server,
    messages: list[Outgoing],
    files: list[tuple[Path, int]],
    args: argparse.Namespace,
    tmp: Path,
) -> dict[str, Any]:
    n, conns = len(messages), args.connections
    sample = min(args.single_sample, n)
    limit = limits.smtp_source(server, files, n, conns)
    machine = limits.machine_cpu_seconds()
    ours_s, cpu_s = ours(server.port, messages, tmp / f"{server.name}.db", conns)
    limits.drain(server)
    machine = limits.machine_cpu_seconds() - machine
    server_ms = max(0.0, machine - cpu_s) * 1000 / n
    shared: dict[str, float] = {}
    if args.workers > 1:
        where = tmp / f"{server.name}-x{args.workers}.db"
        shared_s, shared_cpu = ours(server.port, messages, where, conns, args.workers)
        limits.drain(server)
        shared = {
            "workers": args.workers,
            "ours_per_s": round(n / shared_s, 1),
            "limit_ratio": round(n / shared_s / limit.per_s, 3),
            "cpu_ms_per_email": round(shared_cpu * 1000 / n, 3),
        }
    pool_s = asyncio.run(raw(server.port, messages, conns))
    limits.drain(server)
    single_s = asyncio.run(raw(server.port, messages[:sample], 1)) * n / sample
    limits.drain(server)
    mine = n / ours_s
    return {
        "ours_per_s": round(mine, 1),
        "limit_per_s": round(limit.per_s, 1),
        "limit_ratio": round(mine / limit.per_s, 3),
        "cpu_ms_per_email": round(cpu_s * 1000 / n, 3),
        "limit_cpu_ms_per_email": round(limit.cpu_ms_per_email, 3),
        "server_cpu_ms_per_email": round(server_ms, 3),
        "limit_server_cpu_ms_per_email": round(limit.server_cpu_ms_per_email, 3),
        "pool_per_s": round(n / pool_s, 1),
        "pool_ratio": round(mine / (n / pool_s), 3),
        "single_per_s": round(n / single_s, 1),
        "ratio": round(mine / (n / single_s), 3),
        "limit_kb": round(limit.bytes / limit.messages / 1024, 1),
        "limit_distinct": limit.distinct,
        **({f"x{args.workers}": shared} if shared else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=MESSAGES)
    parser.add_argument("--connections", type=int, default=CONCURRENCY)
    parser.add_argument("--single-sample", type=int, default=SINGLE_SAMPLE)
    parser.add_argument(
        "--servers", default=",".join(limits.SERVERS), help="aiosmtpd,postfix,smtp-sink"
    )
    parser.add_argument(
        "--workers", type=int, default=min(os.cpu_count() or 1, 4),
        help="also send with this many processes sharing the connections (1: only one)",
    )  # fmt: skip
    args = parser.parse_args()
    names = limits.parse_servers(args.servers)
    limits.require_tools(names)
    rng = random.Random(7)
    started = time.perf_counter()
    messages = build(args.messages, rng)
    setup_s = time.perf_counter() - started
    size = sum(len(m.data) for m in messages) / len(messages)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        files = limits.write_messages([m.data for m in messages], tmp / "messages", 64)
        for name in names:
            with limits.start(name) as server:
                results[name] = measure(server, messages, files, args, tmp)
    n, conns = args.messages, args.connections
    first = results[names[0]]
    print(
        f"send: {n:,} messages of {size / 1024:.0f} KB ({PER_EMAIL} real papers each; built in "
        f"{setup_s:.0f}s, not timed), {conns} connections; smtp-source sent "
        f"{first['limit_distinct']} of them, ~{first['limit_kb']:.0f} KB on average"
    )
    head = ("server", "ours/s", "limit/s", "ours/limit", "CPU ms/email", "raw pool/s",
            "ours/pool", "raw 1 conn/s", "ours/1 conn")  # fmt: skip
    print(f"{head[0]:10} " + " ".join(f"{h:>12}" for h in head[1:]))
    for name, r in results.items():
        cells = (r["ours_per_s"], r["limit_per_s"], f"{r['limit_ratio']:.0%}",
                 r["cpu_ms_per_email"], r["pool_per_s"], f"{r['pool_ratio']:.0%}",
                 r["single_per_s"], f"{r['ratio']:.2f}x")  # fmt: skip
        print(f"{name:10} " + " ".join(f"{c:>12}" for c in cells))
        if (x := r.get(f"x{args.workers}")) and isinstance(x, dict):
            cells = (x["ours_per_s"], r["limit_per_s"], f"{x['limit_ratio']:.0%}",
                     x["cpu_ms_per_email"], "", "", "", "")  # fmt: skip
            print(f"{name + f' x{args.workers}':10} " + " ".join(f"{c:>12}" for c in cells))
    print(
        "limit = Postfix's C client smtp-source, same messages and connections; raw = "
        f"aiosmtplib alone (single timed on {min(args.single_sample, n):,} and extrapolated)"
    )
    print(
        "CPU ms/email (/proc/stat): "
        + "; ".join(
            f"{k}: ours {r['cpu_ms_per_email']} + server {r['server_cpu_ms_per_email']}, "
            f"smtp-source {r['limit_cpu_ms_per_email']} + server "
            f"{r['limit_server_cpu_ms_per_email']}"
            for k, r in results.items()
        )
    )
    if args.workers > 1:
        print(f"'x{args.workers}': {args.workers} send processes sharing the {conns} connections "
              "and the database, as `[smtp] workers` does (CPU: all of them)")  # fmt: skip
    print("targets: ours >= 90% of the limit to smtp-sink; our CPU <= 1.0 ms per email")
    top_name = "smtp-sink" if "smtp-sink" in results else names[0]
    top = results[top_name]
    print(
        json.dumps(
            {
                "bench": "send",
                "messages": n,
                "connections": conns,
                "server": top_name,
                "ours_per_s": top["ours_per_s"],
                "single_per_s": top["single_per_s"],
                "pool_per_s": top["pool_per_s"],
                "ratio": top["ratio"],
                "pool_ratio": top["pool_ratio"],
                "limit_per_s": top["limit_per_s"],
                "limit_ratio": top["limit_ratio"],
                "cpu_ms_per_email": top["cpu_ms_per_email"],
                "message_kb": round(size / 1024, 1),
                "servers": results,
            }
        )
    )


if __name__ == "__main__":
    main()
