"""Offline evaluation of recommendations on the real corpus (../shared/fixtures/corpus, see its
SOURCES.md): readers simulated from real authors, seeded with their papers announced before a
cut-off date, then each later announcement day ranked for them.

A hit (label "author") is a later paper by that author or one of their co-authors on the seed
papers; the second label ("topic") is a later paper in the seeds' main primary category that
holds two or more of the seeds' key terms. Methods: random order, popularity (HF upvotes where
HF listed the paper), a keyword query of the reader's top seed terms run through our own filter
language (digest.query `parse` + `PaperIndex`), ours (digest.recommend: tf-idf -> LSA, each
reader's profile the centroid of their seeds) and, for comparison, ours with a per-reader
logistic regression against random negatives. Prints a table, a sentence on the method's
limits, then one JSON line: bench, readers, and per method an object with recall_at_10 and
ndcg_at_10 (author label) and topic_recall_at_10 and topic_ndcg_at_10 (topic label).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from digest.errors import QueryError  # noqa: E402
from digest.models import Paper  # noqa: E402
from digest.query import PaperIndex, parse  # noqa: E402
from digest.recommend.profile import Method, Profile, ProfileInputs, fit_profile  # noqa: E402
from digest.recommend.score import ProfileMatrix, score_all, stack_profiles  # noqa: E402
from digest.recommend.vectorize import (  # noqa: E402
    DEFAULT_DIMENSIONS,
    Vectorizer,
    fit_vectorizer,
    paper_text,
)

K = 10
SEEDS_MAX = 20
KEY_TERMS = 8
QUERY_TERMS = 5
BACKGROUND = 400
# BENCH_CORPUS, not DIGEST_*: a bench reads none of the caller's digest settings.
CORPUS = Path(os.environ.get("BENCH_CORPUS") or ROOT.parent / "shared" / "fixtures" / "corpus")


@dataclass(slots=True)
class Reader:
    author: str
    seeds: list[Paper]
    coauthors: set[str]
    category: str = ""
    key_terms: list[str] = field(default_factory=list)


def load_papers() -> dict[str, list[Paper]]:
    """Every announcement day's papers, with HF upvotes where HF listed the paper.

    Read straight from the corpus files (not through bench/corpus.py's RSS round trip: the
    text is the same and 37,000 papers load in seconds)."""
    upvotes: dict[str, int] = {}
    for path in sorted((CORPUS / "hf_daily_papers").glob("*.json")):
        for entry in json.loads(path.read_bytes()):
            paper = entry.get("paper") if isinstance(entry, dict) else None
            if isinstance(paper, dict) and isinstance(paper.get("upvotes"), int):
                key = str(paper.get("id"))
                upvotes[key] = max(upvotes.get(key, 0), paper["upvotes"])
    found = sorted(CORPUS.glob("arxiv_papers*.jsonl.gz"))
    if not found:
        raise SystemExit(f"bench: no arxiv_papers*.jsonl.gz in {CORPUS}; set BENCH_CORPUS")
    days: dict[str, list[Paper]] = defaultdict(list)
    with gzip.open(found[-1], "rt", encoding="utf-8") as lines:
        for line in lines:
            r = json.loads(line)
            days[r["date"]].append(
                Paper(
                    id=r["id"],
                    title=r["title"],
                    abstract=" ".join(r["abstract"].split()),
                    authors=[a for a in r["authors"] if a.strip(" :")],
                    categories=list(r["categories"]),
                    arxiv_id=r["id"],
                    published=r["date"],
                    upvotes=upvotes.get(r["id"]),
                )
            )
    return dict(sorted(days.items()))


def pick_readers(before: list[Paper], after: list[Paper], count: int, seed: int) -> list[Reader]:
    """Authors with 3+ papers before the cut-off whose circle published again after it."""
    by_author: dict[str, list[Paper]] = defaultdict(list)
    for p in before:
        for a in p.authors:
            if "team" not in a.lower() and len(a.split()) >= 2:
                by_author[a].append(p)
    later: set[str] = {a for p in after for a in p.authors}
    eligible = []
    for author, papers in by_author.items():
        if not 3 <= len(papers) <= 40:
            continue
        coauthors = {a for p in papers for a in p.authors}
        if coauthors & later:
            eligible.append(Reader(author, papers[-SEEDS_MAX:], coauthors))
    eligible.sort(key=lambda r: r.author)
    random.Random(seed).shuffle(eligible)
    return eligible[:count]


def describe(readers: list[Reader], vectorizer: Vectorizer) -> None:
    """Each reader's main primary category and the key terms of their seeds (tf-idf sum)."""
    for reader in readers:
        reader.category = Counter(p.categories[0] for p in reader.seeds).most_common(1)[0][0]
        weights = np.asarray(vectorizer.sparse(reader.seeds).sum(axis=0)).ravel()
        top = np.argsort(-weights)[: KEY_TERMS * 3]
        seen = " ".join(plain_text(p) for p in reader.seeds)
        # a phrase whose stop word the vocabulary dropped ("chain thought") is no query term
        terms = [vectorizer.terms[i] for i in top if weights[i] > 0]
        terms = [t for t in terms if f" {t} " in seen]
        chosen: list[str] = []
        for term in terms:  # a bigram makes its own words redundant
            if any(term in c.split() or c in term.split() for c in chosen if c != term):
                continue
            chosen.append(term)
        reader.key_terms = chosen[:KEY_TERMS]


def plain_text(paper: Paper) -> str:
    """Title and abstract as lower-case words between single spaces, for phrase lookups."""
    return " " + " ".join(re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", paper_text(paper))) + " "


def labels(reader: Reader, day: list[Paper], texts: list[str]) -> tuple[set[int], set[int]]:
    """Positions of the day's hits under the author label and under the topic label
    (`texts`: each paper's title and abstract, lower-cased, single-spaced)."""
    author_hits = {i for i, p in enumerate(day) if reader.coauthors & set(p.authors)}
    topic_hits = set()
    for i, p in enumerate(day):
        same_field = bool(p.categories) and p.categories[0] == reader.category
        if same_field and sum(1 for t in reader.key_terms if f" {t} " in texts[i]) >= 2:
            topic_hits.add(i)
    return author_hits, topic_hits


def metrics(ranked: Sequence[int], hits: set[int]) -> tuple[float, float]:
    top = list(ranked[:K])
    found = [1.0 if i in hits else 0.0 for i in top]
    recall = sum(found) / len(hits)
    dcg = sum(g / math.log2(n + 2) for n, g in enumerate(found))
    ideal = sum(1 / math.log2(n + 2) for n in range(min(K, len(hits))))
    return recall, dcg / ideal


def keyword_query(reader: Reader) -> str:
    parts = []
    for term in reader.key_terms[:QUERY_TERMS]:
        text = f'"{term}"'
        try:
            parse(text)
        except QueryError:
            continue
        parts.append(text)
    return " OR ".join(parts) or '"nothing matches this"'


def keyword_rank(index: PaperIndex, query: str, popularity: list[int]) -> list[int]:
    """Papers the filter matches first, by how many terms hit (title hits count twice)."""
    node = parse(query)
    score = [0] * len(index)
    for _shown, fld, bits in index.term_field_bits(node):
        weight = 2 if fld == "title" else 1
        while bits:
            low = bits & -bits
            score[low.bit_length() - 1] += weight
            bits ^= low
    tie = {p: n for n, p in enumerate(popularity)}
    return sorted(range(len(index)), key=lambda i: (-score[i], tie[i]))


def fit_profiles(
    readers: list[Reader], vectorizer: Vectorizer, before: list[Paper], seed: int
) -> dict[Method, ProfileMatrix]:
    """Each reader's profile by each method, from their seed papers only."""
    vectors = dict(zip([p.id for p in before], vectorizer.transform(before), strict=True))
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(before), BACKGROUND, replace=False)
    background = np.vstack([vectors[before[int(i)].id] for i in picks])
    out = {}
    for method in Method:
        profiles: dict[str, Profile] = {}
        for reader in readers:
            inputs = ProfileInputs.of([p.id for p in reader.seeds])
            prof = fit_profile(inputs, vectors, background, vectorizer.version, method)
            if prof is not None:
                profiles[reader.author] = prof
        out[method] = stack_profiles(profiles)
    return out


def rank_day(
    papers: list[Paper],
    readers: list[Reader],
    vectorizer: Vectorizer,
    profiles: dict[Method, ProfileMatrix],
    rng: random.Random,
) -> dict[str, list[list[int]]]:
    """Per method, each reader's ranking of one day's papers (best first)."""
    n = len(papers)
    shuffled = list(range(n))
    rng.shuffle(shuffled)
    popularity = sorted(shuffled, key=lambda i: -(papers[i].upvotes or 0))
    index = PaperIndex(papers)
    matrix = vectorizer.transform(papers)
    out: dict[str, list[list[int]]] = {
        "random": [rng.sample(range(n), min(K, n)) for _ in readers],
        "popularity": [popularity for _ in readers],
        "keyword": [keyword_rank(index, keyword_query(r), popularity) for r in readers],
    }
    for method, name in ((Method.CENTROID, "ours"), (Method.LOGISTIC, "ours_logistic")):
        ranking = score_all(profiles[method], matrix, K)
        row = {a: i for i, a in enumerate(ranking.readers)}
        out[name] = [
            [p for p, _s in ranking.for_reader(row[r.author])] if r.author in row else shuffled
            for r in readers
        ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readers", type=int, default=300)
    ap.add_argument("--cutoff", default="2025-12-15", help="first day ranked (YYYY-MM-DD)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dimensions", type=int, default=DEFAULT_DIMENSIONS)
    args = ap.parse_args()
    t0 = time.perf_counter()
    days = load_papers()
    before = [p for d, ps in days.items() if d < args.cutoff for p in ps]
    test_days = {d: ps for d, ps in days.items() if d >= args.cutoff}
    after = [p for ps in test_days.values() for p in ps]
    readers = pick_readers(before, after, args.readers, args.seed)
    t1 = time.perf_counter()
    vectorizer = fit_vectorizer(before, dimensions=args.dimensions)
    describe(readers, vectorizer)
    profiles = fit_profiles(readers, vectorizer, before, args.seed)
    t2 = time.perf_counter()
    names = ["random", "popularity", "keyword", "ours", "ours_logistic"]
    results: dict[str, dict[str, list[list[tuple[float, float]]]]] = {
        label: {m: [[] for _ in readers] for m in names} for label in ("author", "topic")
    }
    rng = random.Random(args.seed)
    for papers in test_days.values():
        ranked = rank_day(papers, readers, vectorizer, profiles, rng)
        texts = [plain_text(p) for p in papers]
        for n, reader in enumerate(readers):
            found = labels(reader, papers, texts)
            for label, hits in zip(("author", "topic"), found, strict=True):
                if hits:
                    for name in names:
                        results[label][name][n].append(metrics(ranked[name][n], hits))
    t3 = time.perf_counter()
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for label, per_method in results.items():
        summary[label] = {}
        for name, per_reader in per_method.items():
            means = [np.mean(np.array(v), axis=0) for v in per_reader if v]
            avg = np.mean(np.array(means), axis=0) if means else np.zeros(2)
            summary[label][name] = {
                "recall_at_10": round(float(avg[0]), 4),
                "ndcg_at_10": round(float(avg[1]), 4),
            }
    evaluated = sum(1 for v in results["author"]["ours"] if v)
    print(
        f"{len(readers)} readers ({evaluated} with a later author hit), {len(before):,} "
        f"seed-period papers, {len(test_days)} days ranked from {args.cutoff} "
        f"({len(after):,} papers), {vectorizer.dimensions} dimensions; "
        f"load {t1 - t0:.0f} s, fit {t2 - t1:.0f} s, rank {t3 - t2:.0f} s"
    )
    print(f"{'method':<15}{'label':<8}{'recall@10':>10}{'nDCG@10':>10}")
    for label, table in summary.items():
        for name, row in table.items():
            print(f"{name:<15}{label:<8}{row['recall_at_10']:>10.4f}{row['ndcg_at_10']:>10.4f}")
    author = summary["author"]
    for base in ("keyword", "popularity"):
        ours, other = author["ours"]["ndcg_at_10"], author[base]["ndcg_at_10"]
        lift = (ours / other - 1) * 100 if other else float("inf")
        print(f"ours vs {base} on nDCG@10 (author label): {lift:+.0f}%")
    print(
        "Limits: author continuity is a proxy for interest (people read outside their circle "
        "and skip much of it); the topic label is built from the same seed terms as the "
        "keyword query, so it favours keyword; the corpus holds a few cs.* primary categories."
    )
    out: dict[str, object] = {"bench": "relevance", "readers": evaluated}
    for name, row in author.items():
        topic = summary["topic"][name]
        out[name] = row | {f"topic_{key}": value for key, value in topic.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
