"""Benchmark: the web edition under load while the daily job sends.

Setup (not timed): a database of 100,000 papers (real ones from the corpus, bench/corpus.py,
repeated under new ids) first collected over the last 365 days, and subscribers with topic
presets and queries, all due now. Timed, at the same time: `digest serve` in its own process on
127.0.0.1; `digest run` in another, planning and sending every subscriber's email to an aiosmtpd
sink (bench/limits.py); and 50 concurrent clients (asyncio + httpx, in this process) asking for
the home page, a search (`/?q=`), and the live preview endpoint, for as long as the run sends,
bounded by a number of requests and a time limit; first the same load alone for a few
seconds, as the reference. Loopback only.
Prints a table, then one JSON line: bench, requests, rps, p50_ms, p99_ms, errors, and
per-kind figures, the run's emails and `locked` (server or run lines saying "database is locked").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import corpus  # noqa: E402
import limits  # noqa: E402

from digest.config import load_config, load_topics  # noqa: E402
from digest.models import Subscriber  # noqa: E402
from digest.store import Store  # noqa: E402

SECRET = "bench-secret-0123456789abcdef0123456789"
SEARCHES = [
    "title:agent*", '"language model" -survey', "diffusion AND video", "robot OR manipulation",
    '"world model"', "cat:cs.CV AND segmentation", "reasoning AND llm", "transformer*",
    "author:li", "benchmark AND (math OR code)", "reinforcement learning", "upvotes>=5",
]  # fmt: skip


def write_config(folder: Path, smtp_port: int) -> Path:
    path = folder / "digest.toml"
    path.write_text(
        f"""
[database]
path = "{folder / "digest.db"}"
[mail]
from = "Paper Digest <digest@example.org>"
postal_address = "1 Example Street, 75000 Paris"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
concurrency = 8
rate_per_second = 0
[web]
base_url = "http://127.0.0.1"
trust_forwarded = true
[[sources]]
name = "hf"
kind = "hf"
url = "{ROOT / "tests" / "data" / "hf_daily_papers_2026-06-12.json"}"
""",
        encoding="utf-8",
    )
    return path


def setup(folder: Path, papers: int, subscribers: int) -> None:
    """The database: `papers` papers over 365 days (today's the largest day), and subscribers."""
    config = load_config(write_config(folder, 1), env={})
    topics = load_topics(config.topics_path)
    rng = random.Random(20261130)
    pool = corpus.day_papers(None)
    now = datetime.now(UTC)
    per_day = papers // 365
    with Store(config.database.path) as store:
        made = 0
        for back in range(364, -1, -1):
            count = papers - made if back == 0 else per_day
            day = now - timedelta(days=back, minutes=5)
            batch = []
            for i in range(count):
                p = pool[(made + i) % len(pool)]
                batch.append(replace(p, id=f"{p.id}.{back}", upvotes=rng.randint(0, 60),
                                     sources=[], first_seen=None))  # fmt: skip
            store.upsert_papers("hf", batch, day)
            made += count
        names = list(topics)
        people = [
            Subscriber(f"reader{i}@example.org", status="active", hour=0, max_papers=10,
                       topics=rng.sample(names, 2), queries=[rng.choice(SEARCHES)])
            for i in range(subscribers)
        ]  # fmt: skip
        store.add_subscribers_bulk(people, now, "bench")


def _start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    """A digest command in its own process, its output to a file (a pipe nobody reads fills
    up and stalls the process: that would be measured as latency)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env["DIGEST_SECRET"] = SECRET
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "digest", *command], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)  # fmt: skip


async def wait_until_up(base: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get("/healthz")).status_code == 200:
                    # as a server that has run a while: today's and the last 7 days' papers
                    # indexed (each distinct search and preview is still computed when asked)
                    await client.get("/")
                    await client.get("/preview.json", params={"topic": "robotics"})
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"bench: the web server at {base} did not answer in {timeout}s")


def _request(rng: random.Random) -> tuple[str, str, dict[str, str]]:
    kind = rng.choices(["home", "search", "preview"], weights=[4, 3, 3])[0]
    if kind == "home":
        return kind, "/", {}
    if kind == "search":
        return kind, "/", {"q": rng.choice(SEARCHES)}
    topics = rng.sample(["llm-agents", "robotics", "diffusion", "world-models", "reasoning"], 2)
    return kind, "/preview.json", {"topic": topics[0], "queries": rng.choice(SEARCHES)}


async def _get(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], target: str, address: str
) -> int:
    """One GET over a kept-alive connection; the status. A minimal HTTP/1.1 client: httpx
    costs the load generator more CPU per request than the server spends answering, on the
    same two cores, and that would be measured as the server's latency."""
    reader, writer = conn
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"X-Forwarded-For: {address}\r\n\r\n".encode())  # fmt: skip
    head = await reader.readuntil(b"\r\n\r\n")
    found = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
    if found is None:
        raise ConnectionError("no content-length")
    await reader.readexactly(int(found.group(1)))
    return int(head[9:12])


async def load(
    port: int, clients: int, requests: int, seconds: float, run: subprocess.Popen[bytes] | None
) -> dict[str, Any]:
    """`clients` workers, each asking one request after another on its own connection, while
    the daily run is sending, at most `requests` in all and for at most `seconds`; each client
    speaks from its own address."""
    timings: dict[str, list[float]] = {"home": [], "search": [], "preview": []}
    errors: list[str] = []
    slow: list[tuple[float, str, str, float]] = []  # (when, kind, target, ms) over 100 ms
    left = [requests]
    deadline = time.monotonic() + seconds

    async def worker(n: int) -> None:
        rng = random.Random(n)
        conn = await asyncio.open_connection("127.0.0.1", port)
        asked = 0
        while left[0] > 0 and time.monotonic() < deadline and (run is None or run.poll() is None):
            left[0] -= 1
            asked += 1
            # a client is a person: a new one (a new address) every 20 requests
            address = f"10.{n}.{asked // 20 // 250}.{asked // 20 % 250 + 1}"
            kind, path, params = _request(rng)
            target = f"{path}?{urlencode(params)}" if params else path
            started = time.perf_counter()
            try:
                status = await _get(conn, target, address)
                if status != 200:
                    errors.append(f"{kind} {status}")
            except (OSError, asyncio.IncompleteReadError, ValueError) as ex:
                errors.append(f"{kind} {type(ex).__name__}")
                conn[1].close()
                conn = await asyncio.open_connection("127.0.0.1", port)
            took = time.perf_counter() - started
            timings[kind].append(took)
            if took > 0.1:
                slow.append((started - begun, kind, target, took * 1000))
        conn[1].close()

    begun = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(clients)))
    wall = time.perf_counter() - begun
    return {"timings": timings, "errors": errors, "seconds": wall, "slow": slow}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--subscribers", type=int, default=2_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=50_000, help="at most, in all")
    parser.add_argument("--seconds", type=float, default=120.0, help="at most")
    parser.add_argument("--alone", type=float, default=10.0, help="seconds of load without the run")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-web-"))
    t0 = time.perf_counter()
    setup(folder, args.papers, args.subscribers)
    print(f"setup: {args.papers:,} papers, {args.subscribers:,} subscribers "
          f"in {time.perf_counter() - t0:.1f}s ({folder})")  # fmt: skip
    with limits.aiosmtpd_sink() as sink:
        config_path = write_config(folder, sink.port)
        port = limits.free_port()
        base = f"http://127.0.0.1:{port}"
        serve = ["serve", "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)]
        server = _start(serve, folder / "serve.log")
        try:
            asyncio.run(wait_until_up(base))
            alone = asyncio.run(load(port, args.clients, args.requests, args.alone, None))
            job = ["run", "--config", str(config_path)]
            run = _start(job, folder / "run.log")
            result = asyncio.run(load(port, args.clients, args.requests, args.seconds, run))
            run.wait(timeout=900)
        finally:
            server.terminate()
            server.wait(timeout=60)
    run_text = (folder / "run.log").read_text(encoding="utf-8", errors="replace")
    server_text = (folder / "serve.log").read_text(encoding="utf-8", errors="replace")
    report(args, result, run, run_text, server_text, alone)


def report(
    args: Any,
    result: dict[str, Any],
    run: Any,
    run_text: str,
    server_text: str,
    alone: dict[str, Any],
) -> None:
    alone_all = [t for values in alone["timings"].values() for t in values]
    alone_rps = len(alone_all) / alone["seconds"]
    print(f"\nthe same load alone for {alone['seconds']:.1f}s: {len(alone_all):,} requests, "
          f"{alone_rps:.0f}/s, p50 {percentile(alone_all, 0.5):.1f} ms, "
          f"p99 {percentile(alone_all, 0.99):.1f} ms, errors {len(alone['errors'])}")  # fmt: skip
    print("while `digest run` sends:")
    timings: dict[str, list[float]] = result["timings"]
    every = [t for values in timings.values() for t in values]
    locked = (run_text + server_text).count("database is locked")
    print(f"\n{'kind':<10}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for kind, values in timings.items():
        print(f"{kind:<10}{len(values):>10,}{percentile(values, 0.5):>10.1f}"
              f"{percentile(values, 0.99):>10.1f}")  # fmt: skip
    rps = len(every) / result["seconds"]
    print(f"{'all':<10}{len(every):>10,}{percentile(every, 0.5):>10.1f}"
          f"{percentile(every, 0.99):>10.1f}   {rps:.0f} requests/s"
          f" over {result['seconds']:.1f}s")  # fmt: skip
    print(f"errors: {len(result['errors'])} {sorted(set(result['errors']))[:5]}; "
          f"'database is locked': {locked}; digest run exit {run.returncode}: "
          f"{run_text.strip().splitlines()[-1] if run_text.strip() else ''}")  # fmt: skip
    slow = result["slow"]
    by_second: dict[int, int] = {}
    for when, *_ in slow:
        by_second[int(when)] = by_second.get(int(when), 0) + 1
    print(f"over 100 ms: {len(slow)} requests; by second of the load: {sorted(by_second.items())}")
    print(json.dumps({
        "bench": "web", "requests": len(every), "rps": round(rps, 1),
        "p50_ms": round(percentile(every, 0.5), 2), "p99_ms": round(percentile(every, 0.99), 2),
        "errors": len(result["errors"]), "locked": locked, "clients": args.clients,
        "papers": args.papers, "run_exit": run.returncode,
        "alone": {"requests": len(alone_all), "rps": round(alone_rps, 1),
                  "p50_ms": round(percentile(alone_all, 0.5), 2),
                  "p99_ms": round(percentile(alone_all, 0.99), 2),
                  "errors": len(alone["errors"])},
        "kinds": {k: {"requests": len(v), "p50_ms": round(percentile(v, 0.5), 2),
                      "p99_ms": round(percentile(v, 0.99), 2)} for k, v in timings.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
