"""Benchmark: the web edition under load while the daily job sends.

Setup (not timed; `--reuse DIR` keeps the database for the next run): a database of 100,000
papers (real ones from the corpus, bench/corpus.py, repeated under new ids) first collected
over the last 365 days, and subscribers with topic presets and queries, all due now. Timed, at
the same time: `digest serve [--workers N]` in its own process(es) on 127.0.0.1; `digest run` in
another, planning and sending every subscriber's email to an aiosmtpd sink (bench/limits.py);
and 50 concurrent clients (a lean keep-alive HTTP/1.1 client on asyncio, in this process) asking
for the home page, a search (`/?q=`) and the live preview endpoint, for as long as the run
sends, bounded by a number of requests and a time limit; first the same load alone for a few
seconds, as the reference. Loopback only.

The searches and previews are drawn from 5,000 distinct queries (the topics' and hand-written
ones, then words, prefixes, pairs and phrases of the corpus's titles) by a Zipf law, so most
are asked a few times at most: the server's caches (its X-Cache header) are measured, not
assumed. A client is a person for 20 requests: it keeps the CSRF cookie and sends back the
ETags it was given (`--no-etags`: never). A page or preview answered without its papers ("being
updated": the database did not answer in time) counts as an error.
Prints a table per phase (p50/p99 per kind, cache hit rate, 304s, CPU per request of the server
and of the load generator), then one JSON line: bench, requests, rps, p50_ms, p99_ms, errors,
locked (server or run lines saying "database is locked"), the run's exit, and both phases.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
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
                    home = await client.get("/")
                    shown = await client.get("/preview.json", params={"topic": "robotics"})
                    if "being updated" not in home.text + shown.text:
                        return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"bench: the web server at {base} did not answer in {timeout}s")


STOP_WORDS = (
    "a an and as at by for from in into is of on or the to via with without using towards "
    "toward through based its their our we how what when can do does not are be than beyond "
    "vs versus"
)
STOP = frozenset(STOP_WORDS.split())


def query_pool(count: int, topic_queries: list[str], seed: int = 7) -> list[str]:
    """`count` distinct searches people could type, most popular first: the topics' queries
    and SEARCHES, then words, prefixes, pairs and quoted phrases from the corpus's titles
    (each form's most frequent first)."""
    rng = random.Random(seed)
    pool = dict.fromkeys([*SEARCHES, *topic_queries])
    words: dict[str, int] = {}
    pairs: dict[str, int] = {}
    for paper in corpus.day_papers(None):
        found = [w for w in re.findall(r"[a-z][a-z0-9-]{2,}", paper.title.lower()) if w not in STOP]
        for w in found:
            words[w] = words.get(w, 0) + 1
        for a, b in itertools.pairwise(found):
            pairs[f"{a} {b}"] = pairs.get(f"{a} {b}", 0) + 1
    common = sorted(words, key=lambda w: -words[w])
    phrases = sorted(pairs, key=lambda w: -pairs[w])
    forms = [common, [f'"{p}"' for p in phrases], [f"{w[:5]}*" for w in common if len(w) > 6],
             [f"{rng.choice(common[:200])} AND {w}" for w in common],
             [f"title:{w}" for w in common], [f"{w} -survey" for w in common]]  # fmt: skip
    for i in range(max(len(f) for f in forms)):
        for form in forms:
            if i < len(form):
                pool.setdefault(form[i])
    return list(pool)[:count]


class Mix:
    """What the clients ask for: the home page, a search, a preview (4:3:3), the searches and
    previews' queries drawn from `pool` by a Zipf law of exponent `s` (a few popular, a long
    tail), topics and queries of a preview drawn independently: many distinct requests, as
    from many people, not one hot query."""

    def __init__(self, pool: list[str], topics: list[str], s: float) -> None:
        self.pool = pool
        self.topics = topics
        self.weights = list(itertools.accumulate(1 / (rank + 1) ** s for rank in range(len(pool))))

    def query(self, rng: random.Random) -> str:
        return rng.choices(self.pool, cum_weights=self.weights)[0]

    def request(self, rng: random.Random) -> tuple[str, str, dict[str, Any]]:
        kind = rng.choices(["home", "search", "preview"], weights=[4, 3, 3])[0]
        if kind == "home":
            return kind, "/", {}
        if kind == "search":
            return kind, "/", {"q": self.query(rng)}
        topics = rng.sample(self.topics, rng.choice([0, 1, 1, 2]))
        count = rng.choice([0, 1, 1, 2] if topics else [1, 1, 2])
        queries = "\n".join(self.query(rng) for _ in range(count))
        return kind, "/preview.json", {"topic": topics, "queries": queries}


@dataclass
class Tally:
    """What one load saw: latencies per kind, errors, the server's cache answers per kind
    (its X-Cache header: hit or miss), 304s, slow requests, and this process's CPU."""

    timings: dict[str, list[float]] = field(
        default_factory=lambda: {"home": [], "search": [], "preview": []}
    )
    cache: Counter[str] = field(default_factory=Counter)  # "kind hit" / "kind miss"
    errors: list[str] = field(default_factory=list)
    slow: list[tuple[float, str, str, float]] = field(default_factory=list)  # over 100 ms
    seconds: float = 0.0
    cpu: float = 0.0  # the load generator's own CPU seconds
    server_cpu: float = 0.0  # the server's (and its workers') CPU seconds

    def hit_rate(self, kind: str) -> float:
        hits, misses = self.cache[f"{kind} hit"], self.cache[f"{kind} miss"]
        return hits / (hits + misses) if hits + misses else 0.0


async def _get(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], target: str, extra: str
) -> tuple[int, bytes]:
    """One GET over a kept-alive connection; the status (503 for a page or preview served
    without its papers, "being updated") and the response's head. A minimal
    HTTP/1.1 client: httpx costs the load generator more CPU per request than the server
    spends answering, on the same two cores, and that would be measured as the server's
    latency."""
    reader, writer = conn
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    found = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
    if found is None and status != 304:
        raise ConnectionError("no content-length")
    body = await reader.readexactly(int(found.group(1))) if found is not None else b""
    if (
        b"The papers are being updated" in body
    ):  # the answer without the papers: the database was too slow
        status = 503
    return status, head


def _header(head: bytes, name: bytes) -> str:
    found = re.search(rb"\r\n" + name + rb": *([^\r]*)", head, re.I)
    return found.group(1).decode() if found else ""


async def load(
    port: int,
    mix: Mix,
    args: Any,
    seconds: float,
    run: subprocess.Popen[bytes] | None,
) -> Tally:
    """`args.clients` workers, each asking one request after another on its own connection
    (while the daily run is sending, if `run`), at most `args.requests` in all and for at
    most `seconds`. A client is a person for 20 requests (an address, the CSRF cookie and
    the ETags the server gave it, sent back as a browser does), then another."""
    tally = Tally()
    left = [args.requests]
    deadline = time.monotonic() + seconds

    async def worker(n: int) -> None:
        rng = random.Random(n * 1000 + int(seconds))
        conn = await asyncio.open_connection("127.0.0.1", port)
        asked = 0
        etags: dict[str, str] = {}
        cookie = ""
        while left[0] > 0 and time.monotonic() < deadline and (run is None or run.poll() is None):
            left[0] -= 1
            if asked % 20 == 0:
                etags, cookie = {}, ""
            asked += 1
            address = f"10.{n}.{asked // 20 // 250}.{asked // 20 % 250 + 1}"
            kind, path, params = mix.request(rng)
            target = f"{path}?{urlencode(params, doseq=True)}" if params else path
            extra = f"X-Forwarded-For: {address}\r\n"
            if cookie:
                extra += f"Cookie: {cookie}\r\n"
            if target in etags and args.etags:
                extra += f"If-None-Match: {etags[target]}\r\n"
            started = time.perf_counter()
            try:
                status, head = await _get(conn, target, extra)
                if status not in (200, 304):
                    tally.errors.append(f"{kind} {status}")
                tally.cache[f"{kind} {_header(head, b'x-cache') or 'none'}"] += 1
                tally.cache[f"{kind} {status}"] += 1
                etag = _header(head, b"etag")
                if etag:
                    etags[target] = etag
                cookie = cookie or _header(head, b"set-cookie").split(";")[0]
            except (OSError, asyncio.IncompleteReadError, ValueError) as ex:
                tally.errors.append(f"{kind} {type(ex).__name__}")
                conn[1].close()
                conn = await asyncio.open_connection("127.0.0.1", port)
            took = time.perf_counter() - started
            tally.timings[kind].append(took)
            if took > 0.1:
                tally.slow.append((started - begun, kind, target, took * 1000))
        conn[1].close()

    cpu = time.process_time()
    begun = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(args.clients)))
    tally.seconds = time.perf_counter() - begun
    tally.cpu = time.process_time() - cpu
    return tally


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def tree_cpu(pid: int) -> float:
    """CPU seconds of process `pid` and its living descendants (the server's workers)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        times[child] = (int(fields[11]) + int(fields[12])) / tick
    family, total = {pid}, 0.0
    for child in sorted(parents):  # children have higher ids here (no pid wrap in a bench)
        if child in family or parents[child] in family:
            family.add(child)
            total += times.get(child, 0.0)
    return total


def prepare(folder: Path, args: Any) -> None:
    """The database, made afresh, or copied from `--reuse` (made there the first time)."""
    t0 = time.perf_counter()
    kept = Path(args.reuse) / f"digest-{args.papers}-{args.subscribers}.db" if args.reuse else None
    if kept is not None and kept.exists():
        shutil.copyfile(kept, folder / "digest.db")
    else:
        setup(folder, args.papers, args.subscribers)
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / "digest.db", kept)
    print(f"setup: {args.papers:,} papers, {args.subscribers:,} subscribers "
          f"in {time.perf_counter() - t0:.1f}s ({folder})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--subscribers", type=int, default=2_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=50_000, help="at most, in all")
    parser.add_argument("--seconds", type=float, default=120.0, help="at most")
    parser.add_argument("--alone", type=float, default=10.0, help="seconds of load without the run")
    parser.add_argument("--workers", type=int, default=1, help="`digest serve --workers`")
    parser.add_argument("--distinct", type=int, default=5000, help="distinct searches")
    parser.add_argument("--zipf", type=float, default=0.9, help="popularity law's exponent")
    parser.add_argument("--no-etags", dest="etags", action="store_false",
                        help="never send If-None-Match")  # fmt: skip
    parser.add_argument("--no-run", dest="run", action="store_false",
                        help="the load alone only (quick comparisons)")  # fmt: skip
    parser.add_argument("--reuse", help="keep the database made in this folder and reuse it")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-web-"))
    prepare(folder, args)
    config = load_config(write_config(folder, 1), env={})
    topics = load_topics(config.topics_path)
    mix = Mix(
        query_pool(args.distinct, [t.query for t in topics.values()]), list(topics), args.zipf
    )
    print(f"load: {args.clients} clients, {len(mix.pool):,} distinct searches (Zipf s={args.zipf}),"
          f" {args.workers} server process(es)")  # fmt: skip
    with limits.aiosmtpd_sink() as sink:
        config_path = write_config(folder, sink.port)
        port = limits.free_port()
        base = f"http://127.0.0.1:{port}"
        serve = ["serve", "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)]
        serve += ["--workers", str(args.workers)] if args.workers > 1 else []
        server = _start(serve, folder / "serve.log")
        try:
            asyncio.run(wait_until_up(base))
            cpu = tree_cpu(server.pid)
            alone = asyncio.run(load(port, mix, args, args.alone, None))
            alone.server_cpu = tree_cpu(server.pid) - cpu
            job = ["run", "--config", str(config_path)]
            run = _start(job if args.run else ["--version"], folder / "run.log")
            cpu = tree_cpu(server.pid)
            result = asyncio.run(load(port, mix, args, args.seconds if args.run else 0, run))
            result.server_cpu = tree_cpu(server.pid) - cpu
            run.wait(timeout=900)
        finally:
            server.terminate()
            server.wait(timeout=60)
    run_text = (folder / "run.log").read_text(encoding="utf-8", errors="replace")
    server_text = (folder / "serve.log").read_text(encoding="utf-8", errors="replace")
    report(args, result, run, run_text, server_text, alone)


def summary(tally: Tally) -> dict[str, Any]:
    """One load's figures: overall, per kind (with the server's cache hit rate), CPU."""
    every = [t for values in tally.timings.values() for t in values]
    kinds = {k: {"requests": len(v), "p50_ms": round(percentile(v, 0.5), 2),
                 "p99_ms": round(percentile(v, 0.99), 2), "hit_rate": round(tally.hit_rate(k), 3),
                 "not_modified": tally.cache[f"{k} 304"]}
             for k, v in tally.timings.items()}  # fmt: skip
    return {
        "requests": len(every),
        "rps": round(len(every) / tally.seconds, 1) if tally.seconds else 0.0,
        "p50_ms": round(percentile(every, 0.5), 2),
        "p99_ms": round(percentile(every, 0.99), 2),
        "errors": len(tally.errors),
        "seconds": round(tally.seconds, 1),
        "client_cpu_ms_per_request": round(tally.cpu * 1000 / max(1, len(every)), 3),
        "server_cpu_ms_per_request": round(tally.server_cpu * 1000 / max(1, len(every)), 3),
        "kinds": kinds,
    }


def table(title: str, figures: dict[str, Any]) -> None:
    print(f"\n{title}: {figures['requests']:,} requests in {figures['seconds']}s, "
          f"{figures['rps']:.0f}/s, errors {figures['errors']}; CPU per request: server "
          f"{figures['server_cpu_ms_per_request']:.2f} ms, load generator "
          f"{figures['client_cpu_ms_per_request']:.2f} ms")  # fmt: skip
    print(f"{'kind':<10}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}{'cache hits':>12}{'304s':>8}")
    for kind, k in figures["kinds"].items():
        print(f"{kind:<10}{k['requests']:>10,}{k['p50_ms']:>10.1f}{k['p99_ms']:>10.1f}"
              f"{k['hit_rate']:>12.0%}{k['not_modified']:>8,}")  # fmt: skip
    print(f"{'all':<10}{figures['requests']:>10,}{figures['p50_ms']:>10.1f}"
          f"{figures['p99_ms']:>10.1f}")  # fmt: skip


def report(
    args: Any, result: Tally, run: Any, run_text: str, server_text: str, alone: Tally
) -> None:
    before, during = summary(alone), summary(result)
    table("the load alone", before)
    table("while `digest run` sends", during)
    locked = (run_text + server_text).count("database is locked")
    print(f"errors: {sorted(set(result.errors + alone.errors))[:5]}; "
          f"'database is locked': {locked}; digest run exit {run.returncode}: "
          f"{run_text.strip().splitlines()[-1] if run_text.strip() else ''}")  # fmt: skip
    by_second: dict[int, int] = {}
    for when, *_ in result.slow:
        by_second[int(when)] = by_second.get(int(when), 0) + 1
    print(f"over 100 ms: {len(result.slow)} requests; by second: {sorted(by_second.items())}")
    print(json.dumps({
        "bench": "web", **{k: during[k] for k in ("requests", "rps", "p50_ms", "p99_ms")},
        "errors": during["errors"], "locked": locked, "clients": args.clients,
        "papers": args.papers, "workers": args.workers, "distinct": args.distinct,
        "zipf": args.zipf, "run_exit": run.returncode, "alone": before, "during": during,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
