"""Benchmark: 10,000 digests of 10 papers each, drawn from a real day's papers: our renderer (CSS
inlined once per template at load, cards and digests assembled from frames) against the naive
way (render the whole email, then premailer it), measured in the same run; and, alternated with
ours, the same renderer with frames off (jinja per card not in the card cache and per email, as
before the frames, but with today's smaller card cache: not the old renderer's figure).

The papers are a real arXiv announcement day from the corpus (bench/corpus.py: the largest,
1,111 papers, unless --day), with HF's metadata where HF listed them. `--mix bench` (default):
subscribers follow 1-3 of the preset topics and a pool of word queries, and only those with
exactly 10 matches are kept; `--mix daily`: bench/daily.py's population (presets, popular and
personal queries with phrases, NOT and fields), everyone with a match kept. Matching and link
signing happen before the clock starts. Ours runs whole (renderer load included), best of 3,
each with a fresh renderer, CPU time of the process; the baseline is timed on a sample of 200
emails, best of 3, and extrapolated. Then one more run of ours under tracemalloc: the peak of
what the renderer allocates (the matches are made before).
Prints a table, then one JSON line (bench, emails, ours_per_s, baseline_per_s, ratio, peak_mb,
papers, day, cpu_ms_per_email, jinja_cpu_ms_per_email, hit_rate, renderer_peak_mb, mix).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import re
import resource
import sys
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import corpus  # noqa: E402

from digest.config import load_topics, parse_config  # noqa: E402
from digest.match import Match, Matcher  # noqa: E402
from digest.models import Paper, Subscriber  # noqa: E402
from digest.render import Renderer  # noqa: E402
from digest.tokens import Tokens, subscriber_links  # noqa: E402

EMAILS = 10_000
PER_EMAIL = 10
QUERIES = 300
SAMPLE = 200
RUNS = 3
NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)  # the papers are announced that day
EDITION = "2026-06-12"
STOP = {"the", "and", "for", "with", "that", "this", "from", "are", "our", "which", "their"}


def build_digests(
    rng: random.Random, papers: list[Paper], emails: int
) -> tuple[list[tuple[Subscriber, list[Match], dict[str, str]]], Matcher]:
    """`emails` subscribers with exactly PER_EMAIL matches each, and their signed links."""
    topics = load_topics(ROOT / "config" / "topics.toml")
    matcher = Matcher(papers, topics, NOW)
    df = Counter(w for p in papers for w in set(re.findall(r"[a-z]{5,}", p.abstract.lower())))
    words = sorted(w for w, c in df.items() if 15 <= c <= 300 and w not in STOP)
    queries: list[str] = []
    while len(queries) < QUERIES:
        a, b = rng.sample(words, 2)
        queries.append(rng.choice([a, f"{a} OR {b}", f"title:{a} OR {b}", f"{a[:5]}*"]))
    tokens = Tokens("bench-secret-" + "x" * 32)
    out = []
    n = 0
    while len(out) < emails:
        n += 1
        picks = rng.sample(sorted(topics), rng.randint(0, 2))
        sub = Subscriber(
            f"s{n}@example.org",
            id=n,
            status="active",
            topics=picks,
            queries=rng.sample(queries, rng.randint(1 if not picks else 0, 2)),
            max_papers=PER_EMAIL,
        )
        matches = matcher.for_subscriber(sub)
        if len(matches) == PER_EMAIL:
            links = subscriber_links(tokens, "https://digest.example.org", n, sub.email)
            out.append((sub, matches, links))
    return out, matcher


def build_daily(
    rng: random.Random, papers: list[Paper], emails: int
) -> list[tuple[Subscriber, list[Match], dict[str, str]]]:
    """bench/daily.py's population; those with at least one match, with their signed links.
    Subscribers with the same filters share one list of matches (as the matcher shares them)."""
    import daily
    import match as matchbench

    queries = [ours for ours, _ in matchbench.build_queries(rng, papers)]
    topics = load_topics(ROOT / "config" / "topics.toml")
    matcher = Matcher(papers, topics, NOW)
    tokens = Tokens("bench-secret-" + "x" * 32)
    shared: dict[tuple[tuple[str, ...], tuple[str, ...]], list[Match]] = {}
    out = []
    for n, sub in enumerate(daily.population(emails, queries, list(topics), rng), 1):
        sub = dataclasses.replace(sub, id=n)
        signature = (tuple(sub.topics), tuple(sub.queries))
        if signature not in shared:
            shared[signature] = matcher.for_subscriber(sub)
            for m in shared[signature]:
                m.reasons, m.terms, m.key  # noqa: B018 - worked out before the clock starts
        if shared[signature]:
            links = subscriber_links(tokens, "https://digest.example.org", n, sub.email)
            out.append((sub, shared[signature], links))
    return out


def run_ours(digests: list, papers: int, frames: bool = True) -> dict[str, float]:
    """Everything a run pays: loading the templates (inlining their CSS), then every email."""
    started, cpu = time.perf_counter(), time.process_time()
    renderer = Renderer(CONFIG, load_topics(ROOT / "config" / "topics.toml"), frames=frames)
    loaded = time.perf_counter() - started
    size = 0
    for sub, matches, links in digests:
        email = renderer.digest(sub, matches, EDITION, NOW.date(), papers, links)
        size += len(email.html) + len(email.text)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
        "load_s": loaded,
        "cards": renderer.cards_rendered,
        "hit_rate": renderer.cards_hit_rate,
        "bytes": size,
    }


def renderer_peak_mb(digests: list, papers: int) -> float:
    """What the renderer allocates at most over the whole run, matches made before."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    run_ours(digests, papers)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - before) / 2**20


def run_baseline(renderer: Renderer, sample: list, papers: int) -> float:
    started = time.perf_counter()
    for sub, matches, links in sample:
        renderer.digest(sub, matches, EDITION, NOW.date(), papers, links, naive=True)
    return time.perf_counter() - started


CONFIG = parse_config(
    {"mail": {"postal_address": "Paper Digest, 1 Example Street, Paris"}}, None, {}
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=EMAILS)
    parser.add_argument("--day", help="corpus announcement day (default: the largest)")
    parser.add_argument("--mix", choices=["bench", "daily"], default="bench")
    args = parser.parse_args()
    emails = args.emails
    rng = random.Random(20261124)
    started = time.perf_counter()
    day = corpus.day_or_largest(args.day)
    papers = corpus.day_papers(day, announced=NOW.date())
    if args.mix == "daily":
        digests = build_daily(random.Random(20261125), papers, emails)
        emails = len(digests)
    else:
        digests, _ = build_digests(rng, papers, emails)
    setup_s = time.perf_counter() - started

    runs, jinja = [], []
    for _ in range(RUNS):  # alternated, so both see the same load
        runs.append(run_ours(digests, len(papers)))
        jinja.append(run_ours(digests, len(papers), frames=False))
    ours = min(runs, key=lambda r: r["cpu_s"])
    jinja_run = min(jinja, key=lambda r: r["cpu_s"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    renderer_mb = renderer_peak_mb(digests, len(papers))

    reference = Renderer(CONFIG, load_topics(ROOT / "config" / "topics.toml"))
    sub, matches, links = digests[0]
    fast = reference.digest(sub, matches, EDITION, NOW.date(), len(papers), links)
    slow = reference.digest(sub, matches, EDITION, NOW.date(), len(papers), links, naive=True)
    assert fast.text == slow.text and fast.subject == slow.subject, "the two ways differ"
    sample = min(SAMPLE, emails)
    samples = [
        run_baseline(reference, rng.sample(digests, sample), len(papers)) for _ in range(RUNS)
    ]
    baseline_s = min(samples) * emails / sample

    ours_per_s = emails / ours["seconds"]
    cpu_ms = ours["cpu_s"] * 1000 / emails
    jinja_ms = jinja_run["cpu_s"] * 1000 / emails
    baseline_per_s = emails / baseline_s
    ratio = ours_per_s / baseline_per_s
    shown = sum(len(m) for _, m, _ in digests)
    print(
        f"render ({args.mix} mix): {emails:,} digests, {shown:,} cards, "
        f"from {len(papers):,} papers (arXiv announcement of {day}) "
        f"(setup {setup_s:.1f}s, not timed; best of {RUNS})"
    )
    print(f"{'':62} {'seconds':>8} {'emails/s':>10} {'CPU ms/email':>13}")
    print(
        f"{f'render whole email, then premailer (baseline, {sample} sampled)':62} "
        f"{baseline_s:8.2f} {baseline_per_s:10,.1f}"
    )
    print(
        f"{'frames off: jinja per card and per email (whole cards kept)':62} "
        f"{jinja_run['seconds']:8.2f} {emails / jinja_run['seconds']:10,.1f} {jinja_ms:13.3f}"
    )
    print(
        f"{'digest render (CSS inlined once at load, frames)':62} "
        f"{ours['seconds']:8.2f} {ours_per_s:10,.1f} {cpu_ms:13.3f}"
    )
    print(
        f"  renderer load (read + inline templates): {ours['load_s'] * 1000:.0f} ms; "
        f"cards assembled {ours['cards']:,.0f} of {shown:,} shown "
        f"({ours['hit_rate']:.0%} from the card cache)"
    )
    print(f"  CPU per email: {cpu_ms:.3f} ms with frames, {jinja_ms:.3f} ms without")
    print(f"  average email (html + text): {ours['bytes'] / emails / 1024:.1f} KB")
    print(f"ratio (ours / baseline): {ratio:.1f}x  (target >= 20x)")
    print(f"peak memory of the process after our runs: {peak_mb:.0f} MB")
    print(f"renderer's own peak (tracemalloc, one run): {renderer_mb:.1f} MB")
    print(
        json.dumps(
            {
                "bench": "render",
                "emails": emails,
                "ours_per_s": round(ours_per_s, 1),
                "baseline_per_s": round(baseline_per_s, 2),
                "ratio": round(ratio, 1),
                "peak_mb": round(peak_mb, 1),
                "papers": len(papers),
                "day": day,
                "cpu_ms_per_email": round(cpu_ms, 4),
                "jinja_cpu_ms_per_email": round(jinja_ms, 4),
                "hit_rate": round(ours["hit_rate"], 3),
                "renderer_peak_mb": round(renderer_mb, 1),
                "mix": args.mix,
            }
        )
    )


if __name__ == "__main__":
    main()
