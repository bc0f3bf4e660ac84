"""Benchmark: 10,000 messages of ~40 KB into a local aiosmtpd sink running in another process.

Three ways, in the same run and against the same sink:
  single: a raw aiosmtplib loop on one persistent connection (the baseline; timed on a
          sample of 2,000 and extrapolated, as DESIGN.md allows for baselines);
  pool:   raw aiosmtplib over N persistent connections at once (the practical limit);
  ours:   digest's Sender over its SmtpPool with the same N, the delivery log included
          (subscriber check, claim, send, mark sent with its papers: SQLite commits each).
Messages are built beforehand (not timed). Prints a table, then one JSON line with bench,
messages, ours_per_s, single_per_s, pool_per_s, ratio (ours/single), pool_ratio (ours/pool).
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiosmtplib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config import SmtpConfig  # noqa: E402
from digest.message import Outgoing, build_message, message_id_for  # noqa: E402
from digest.models import Subscriber  # noqa: E402
from digest.send import Job, Sender, SmtpPool  # noqa: E402
from digest.store import Store  # noqa: E402

MESSAGES = 10_000
SINGLE_SAMPLE = 2_000
CONCURRENCY = 8
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
EDITION = "2026-11-24"
SENDER = "Paper Digest <digest@example.org>"

SINK = r"""
import asyncio, sys
from aiosmtpd.controller import Controller

class Sink:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Sink.count += 1
        return "250 2.0.0 Ok: queued"

import socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
controller = Controller(Sink(), hostname="127.0.0.1", port=port, decode_data=False,
                        data_size_limit=10_000_000)
controller.start()
print(port, flush=True)
sys.stdin.read()
controller.stop()
"""


def build(n: int, rng: random.Random) -> list[Outgoing]:
    words = (ROOT / "tests" / "data" / "hf_daily_papers_2026-06-12.json").read_text().split()
    out = []
    for i in range(n):
        text = " ".join(rng.choices(words, k=1500))
        html = (
            "<html><body>"
            + "".join(
                f"<p style='margin:0 0 12px'>{' '.join(rng.choices(words, k=60))}</p>"
                for _ in range(26)
            )
            + "</body></html>"
        )
        out.append(
            build_message(
                sender=SENDER,
                to=f"s{i}@example.org",
                subject=f"10 new papers: diffusion, agents - Tue 24 Nov #{i}",
                text=text,
                html=html,
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


async def ours(port: int, messages: list[Outgoing], db: Path) -> float:
    config = SmtpConfig(
        host="127.0.0.1", port=port, security="none", concurrency=CONCURRENCY,
        rate_per_second=0.0,
    )  # fmt: skip
    with Store(db) as store:
        store.add_subscribers_bulk(
            (Subscriber(m.recipient, status="active", queries=["x"]) for m in messages),
            NOW.isoformat(),
            "bench",
        )
        store.plan_deliveries(
            [
                {"subscriber_id": i + 1, "email": m.recipient, "edition": EDITION,
                 "status": "pending", "papers": [f"2611.{j:05d}" for j in range(10)],
                 "message_id": m.message_id}
                for i, m in enumerate(messages)
            ],
            NOW.isoformat(),
        )  # fmt: skip
        rows = store.due_deliveries(NOW.isoformat(), limit=len(messages))
        jobs = [
            Job(r["id"], r["subscriber_id"], r["email"], r["edition"], tuple(r["papers"]),
                messages[r["subscriber_id"] - 1])
            for r in rows
        ]  # fmt: skip

        async def stream() -> AsyncIterator[Job]:
            for job in jobs:
                yield job

        pool = SmtpPool(config)
        sender = Sender(store, pool, config, lambda: datetime.now(UTC))
        started = time.perf_counter()
        stats = await sender.run(stream(), CONCURRENCY)
        elapsed = time.perf_counter() - started
        await pool.close()
        assert stats.sent == len(messages), stats
        assert store.delivery_counts() == {"sent": len(messages)}
    return elapsed


def main() -> None:
    rng = random.Random(7)
    messages = build(MESSAGES, rng)
    size = sum(len(m.data) for m in messages) / len(messages)
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(sink.stdout.readline())  # type: ignore[union-attr]
        single_s = asyncio.run(raw(port, messages[:SINGLE_SAMPLE], 1)) * MESSAGES / SINGLE_SAMPLE
        pool_s = asyncio.run(raw(port, messages, CONCURRENCY))
        with tempfile.TemporaryDirectory() as tmp:
            ours_s = asyncio.run(ours(port, messages, Path(tmp) / "bench.db"))
    finally:
        sink.stdin.close()  # type: ignore[union-attr]
        sink.wait(timeout=30)
    single, pool, mine = MESSAGES / single_s, MESSAGES / pool_s, MESSAGES / ours_s
    print(f"send: {MESSAGES:,} messages of {size / 1024:.0f} KB to a local aiosmtpd sink")
    print(f"{'':62} {'msg/s':>8}")
    print(f"{'raw aiosmtplib, 1 connection (baseline; 2,000 sampled)':62} {single:8.1f}")
    print(f"{f'raw aiosmtplib, {CONCURRENCY} connections (practical limit)':62} {pool:8.1f}")
    print(f"{f'digest Sender, {CONCURRENCY} connections, delivery log included':62} {mine:8.1f}")
    print(f"ours / single: {mine / single:.2f}x (target >= 1.7x)")
    print(f"ours / raw pool: {mine / pool:.0%} (target >= 90%)")
    print(
        json.dumps(
            {
                "bench": "send",
                "messages": MESSAGES,
                "ours_per_s": round(mine, 1),
                "single_per_s": round(single, 1),
                "pool_per_s": round(pool, 1),
                "ratio": round(mine / single, 3),
                "pool_ratio": round(mine / pool, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
