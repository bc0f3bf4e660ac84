"""Benchmark: 100,000 readers with profiles x 1,000 new papers, our batched scoring
(digest.recommend.score: one matrix product per chunk of readers) against a per-reader
`predict` loop (scikit-learn's LogisticRegression.decision_function per reader, then that
reader's top 10), measured in the same run; the loop is timed on a sample and extrapolated.

The papers are real: a corpus announcement day (../shared/fixtures/corpus, see its SOURCES.md)
vectorised with a vocabulary fitted on the weeks before it. Profiles are fitted with
`fit_profile` for a pool of simulated readers (seeds: papers of one real author), then each of
the 100,000 readers gets a pool profile with its own small perturbation: the cost of scoring
does not depend on the values. Both sides start from bytes as stored in SQLite (paper vectors,
profiles) and exclude papers already in the reader's email. Prints a table, then one JSON line
(bench, readers, papers, ours_s, baseline_s, ratio, peak_mb).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from relevance import load_papers, pick_readers  # noqa: E402

from digest.recommend.profile import Profile, ProfileInputs, fit_profile  # noqa: E402
from digest.recommend.score import score_all, stack_profiles  # noqa: E402
from digest.recommend.vectorize import (  # noqa: E402
    fit_vectorizer,
    stack_vectors,
    vector_to_bytes,
)

READERS = 100_000
PAPERS = 1_000
POOL = 500
SAMPLE = 1_000
K = 10
FIT_PAPERS = 12_000


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readers", type=int, default=READERS)
    ap.add_argument("--papers", type=int, default=PAPERS)
    ap.add_argument("--sample", type=int, default=SAMPLE)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    days = load_papers()
    names = sorted(days)
    sizes = {d: len(days[d]) for d in names[len(names) // 2 :]}
    day = max(sizes, key=lambda d: sizes[d])
    before = [p for d in names if d < day for p in days[d]][-FIT_PAPERS:]
    edition = (days[day] + [p for d in names if d > day for p in days[d]])[: args.papers]
    del days
    t = time.perf_counter()
    vectorizer = fit_vectorizer(before)
    fit_s = time.perf_counter() - t
    vectors = dict(zip([p.id for p in before], vectorizer.transform(before), strict=True))
    background = np.vstack([vectors[before[i].id] for i in rng.choice(len(before), 400, False)])
    pool = []
    for reader in pick_readers(before, edition, POOL, args.seed):
        inputs = ProfileInputs.of([p.id for p in reader.seeds])
        prof = fit_profile(inputs, vectors, background, vectorizer.version)
        if prof is not None:
            pool.append(prof)
    paper_blobs = [vector_to_bytes(v, vectorizer.version) for v in vectorizer.transform(edition)]
    profile_blobs: dict[str, bytes] = {}
    for r in range(args.readers):
        base = pool[r % len(pool)]
        noise = rng.normal(0, 0.01, base.weights.shape).astype(np.float32)
        profile_blobs[f"reader{r}@example.org"] = Profile(
            base.weights + noise, base.bias, base.fingerprint, base.liked
        ).to_bytes()
    exclude_rng = random.Random(args.seed)
    exclude = {
        r: exclude_rng.sample(range(len(edition)), K)
        for r in range(args.readers)
        if exclude_rng.random() < 0.3
    }
    del vectors, background

    t = time.perf_counter()
    papers = stack_vectors(paper_blobs, vectorizer.version)
    profiles = stack_profiles({r: Profile.from_bytes(b) for r, b in profile_blobs.items()})
    ranking = score_all(profiles, papers, K, exclude)
    ours_s = time.perf_counter() - t

    sample = sorted(random.Random(args.seed + 1).sample(range(args.readers), args.sample))
    readers = list(profile_blobs)
    t = time.perf_counter()
    loop_papers = stack_vectors(paper_blobs, vectorizer.version)
    same = 0
    for r in sample:
        prof = Profile.from_bytes(profile_blobs[readers[r]])
        model = LogisticRegression()
        model.classes_ = np.array([0, 1])
        model.coef_ = prof.weights.reshape(1, -1).astype(np.float64)
        model.intercept_ = np.array([prof.bias])
        scores = model.decision_function(loop_papers)
        if r in exclude:
            scores[exclude[r]] = -np.inf
        top = np.argsort(-scores, kind="stable")[:K]
        same += [int(i) for i in top] == [p for p, _s in ranking.for_reader(r)]
    baseline_s = (time.perf_counter() - t) * args.readers / len(sample)
    ratio = baseline_s / ours_s
    peak = peak_mb()

    print(f"{args.readers:,} readers x {len(edition):,} papers of {day} (+ later days)")
    print(f"vocabulary fit on {len(before):,} earlier papers: {fit_s:.1f} s (once, at collect)")
    print(f"{'method':<44}{'seconds':>10}")
    print(f"{'ours: batched, one product per chunk':<44}{ours_s:>10.2f}")
    print(f"{'per-reader predict loop (extrapolated)':<44}{baseline_s:>10.2f}")
    print(f"ratio {ratio:.1f}x (target >= 20x), ours < 10 s: {ours_s < 10}, peak RSS {peak:.0f} MB")
    print(f"same top-{K} as the loop for {same}/{len(sample)} sampled readers")
    print(
        json.dumps(
            {
                "bench": "recommend",
                "readers": args.readers,
                "papers": len(edition),
                "ours_s": round(ours_s, 3),
                "baseline_s": round(baseline_s, 3),
                "ratio": round(ratio, 1),
                "peak_mb": round(peak, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
