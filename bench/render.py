"""Benchmark: 10,000 digests of 10 papers each, drawn from 1,000 papers: our renderer (CSS
inlined once per template at load, cards cached across subscribers) against the naive way
(render the whole email, then premailer it), measured in the same run.

Papers are built from the real recordings' sentences, titles, authors and HF metadata
(tests/data); subscribers follow 1-3 of the preset topics and a pool of word queries, and only
those with exactly 10 matches are kept. Matching and link signing happen before the clock
starts. Ours runs whole (renderer load included), best of 3, each with a fresh renderer; the
baseline is timed on a sample of 200 emails, best of 3, and extrapolated.
Prints a table, then one JSON line (bench, emails, ours_per_s, baseline_per_s, ratio, peak_mb).
"""

from __future__ import annotations

import json
import random
import re
import resource
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from match import real_papers  # noqa: E402  (the same seed papers as bench/match.py)

from digest.config import load_topics, parse_config  # noqa: E402
from digest.match import Match, Matcher  # noqa: E402
from digest.models import Paper, Subscriber  # noqa: E402
from digest.render import Renderer  # noqa: E402
from digest.tokens import Tokens, subscriber_links  # noqa: E402

EMAILS = 10_000
PAPERS = 1_000
PER_EMAIL = 10
QUERIES = 300
SAMPLE = 200
RUNS = 3
NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
EDITION = "2026-06-12"
DATA = ROOT / "tests" / "data"
STOP = {"the", "and", "for", "with", "that", "this", "from", "are", "our", "which", "their"}


def build_papers(rng: random.Random) -> list[Paper]:
    seeds = real_papers()
    sentences = [s for p in seeds for s in re.split(r"(?<=\.)\s+", p.abstract) if len(s) > 40]
    titles = [p.title for p in seeds]
    authors = [a for p in seeds for a in p.authors]
    summaries = [p.ai_summary for p in seeds if p.ai_summary]
    repos = [(p.github_repo, p.github_stars) for p in seeds if p.github_repo]
    pages = [p.project_page for p in seeds if p.project_page]
    cats = ["cs.LG", "cs.AI", "cs.CV", "cs.CL", "cs.RO", "stat.ML", "cs.NE", "eess.IV"]
    papers = []
    for n in range(PAPERS):
        pid = f"2606.{20000 + n}"
        title_words = rng.choice(titles).split() + rng.choice(titles).split()
        repo, stars = rng.choice(repos) if rng.random() < 0.4 else (None, None)
        papers.append(
            Paper(
                id=pid,
                arxiv_id=pid,
                title=" ".join(title_words[: rng.randint(7, 15)]),
                abstract=" ".join(rng.sample(sentences, 8)),
                authors=rng.sample(authors, rng.randint(2, 15)),
                categories=rng.sample(cats, rng.randint(1, 3)),
                upvotes=int(rng.paretovariate(1.2)) - 1,
                num_comments=rng.randint(0, 6),
                ai_summary=rng.choice(summaries) if rng.random() < 0.6 else None,
                github_repo=repo,
                github_stars=stars,
                project_page=rng.choice(pages) if rng.random() < 0.25 else None,
                published=(NOW - timedelta(hours=rng.randint(1, 96))).isoformat(),
                link=f"https://arxiv.org/abs/{pid}",
                pdf_url=f"https://arxiv.org/pdf/{pid}",
            )
        )
    return papers


def build_digests(
    rng: random.Random, papers: list[Paper]
) -> tuple[list[tuple[Subscriber, list[Match], dict[str, str]]], Matcher]:
    """EMAILS subscribers with exactly PER_EMAIL matches each, and their signed links."""
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
    while len(out) < EMAILS:
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


def run_ours(digests: list, papers: int) -> dict[str, float]:
    """Everything a run pays: loading the templates (inlining their CSS), then every email."""
    started = time.perf_counter()
    renderer = Renderer(CONFIG, load_topics(ROOT / "config" / "topics.toml"))
    loaded = time.perf_counter() - started
    size = 0
    for sub, matches, links in digests:
        email = renderer.digest(sub, matches, EDITION, NOW.date(), papers, links)
        size += len(email.html) + len(email.text)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "load_s": loaded, "cards": renderer.cards_rendered, "bytes": size}


def run_baseline(renderer: Renderer, sample: list, papers: int) -> float:
    started = time.perf_counter()
    for sub, matches, links in sample:
        renderer.digest(sub, matches, EDITION, NOW.date(), papers, links, naive=True)
    return time.perf_counter() - started


CONFIG = parse_config(
    {"mail": {"postal_address": "Paper Digest, 1 Example Street, Paris"}}, None, {}
)


def main() -> None:
    rng = random.Random(20261124)
    started = time.perf_counter()
    papers = build_papers(rng)
    digests, _ = build_digests(rng, papers)
    setup_s = time.perf_counter() - started

    runs = [run_ours(digests, len(papers)) for _ in range(RUNS)]
    ours = min(runs, key=lambda r: r["seconds"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    reference = Renderer(CONFIG, load_topics(ROOT / "config" / "topics.toml"))
    sub, matches, links = digests[0]
    fast = reference.digest(sub, matches, EDITION, NOW.date(), len(papers), links)
    slow = reference.digest(sub, matches, EDITION, NOW.date(), len(papers), links, naive=True)
    assert fast.text == slow.text and fast.subject == slow.subject, "the two ways differ"
    samples = [
        run_baseline(reference, rng.sample(digests, SAMPLE), len(papers)) for _ in range(RUNS)
    ]
    baseline_s = min(samples) * EMAILS / SAMPLE

    ours_per_s = EMAILS / ours["seconds"]
    baseline_per_s = EMAILS / baseline_s
    ratio = ours_per_s / baseline_per_s
    shown = EMAILS * PER_EMAIL
    print(
        f"render: {EMAILS:,} digests x {PER_EMAIL} papers drawn from {PAPERS:,} papers "
        f"(setup {setup_s:.1f}s, not timed; best of {RUNS})"
    )
    print(f"{'':62} {'seconds':>8} {'emails/s':>10}")
    print(
        f"{f'render whole email, then premailer (baseline, {SAMPLE} sampled)':62} "
        f"{baseline_s:8.2f} {baseline_per_s:10,.1f}"
    )
    print(
        f"{'digest render (CSS inlined once at load, cards cached)':62} "
        f"{ours['seconds']:8.2f} {ours_per_s:10,.1f}"
    )
    print(
        f"  renderer load (read + inline templates): {ours['load_s'] * 1000:.0f} ms; "
        f"cards rendered {ours['cards']:,.0f} of {shown:,} shown "
        f"({1 - ours['cards'] / shown:.0%} from cache)"
    )
    print(f"  average email (html + text): {ours['bytes'] / EMAILS / 1024:.1f} KB")
    print(f"ratio (ours / baseline): {ratio:.1f}x  (target >= 20x)")
    print(f"peak memory of the process after our runs: {peak_mb:.0f} MB")
    print(
        json.dumps(
            {
                "bench": "render",
                "emails": EMAILS,
                "ours_per_s": round(ours_per_s, 1),
                "baseline_per_s": round(baseline_per_s, 2),
                "ratio": round(ratio, 1),
                "peak_mb": round(peak_mb, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
