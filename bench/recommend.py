"""Benchmark: 100,000 readers with profiles x 1,000 new papers, our batched scoring
(digest.recommend.score: one matrix product per chunk of readers) against a per-reader
`predict` loop (scikit-learn's LogisticRegression.decision_function per reader, then that
reader's top 10), measured in the same run; the loop is timed on a sample and extrapolated.

The papers are real: a corpus announcement day (../shared/fixtures/corpus, see its SOURCES.md)
vectorised with a vocabulary fitted on the weeks before it. Profiles are fitted with
`fit_profile` for a pool of simulated readers (seeds: papers of one real author), then each of
the 100,000 readers gets a pool profile with its own small perturbation: the cost of scoring
does not depend on the values. Everything starts as bytes in SQLite, as the service stores
it: paper vectors, profiles, and papers already in each reader's email (30% of readers have
10). Ours runs whole in a fresh process (so its peak memory is its own): read the blobs, stack,
score, top 10 per reader. Prints a table, then one JSON line (bench, readers, papers, ours_s,
baseline_s, ratio, peak_mb).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from limits import peak_rss_mb  # noqa: E402
from relevance import load_papers, pick_readers  # noqa: E402

from digest.recommend.profile import Profile, ProfileInputs, fit_profile  # noqa: E402
from digest.recommend.score import score_all, stack_profile_bytes  # noqa: E402
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
BATCH = 16_384
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB);
CREATE TABLE paper_vectors (id TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE profiles (email TEXT PRIMARY KEY, profile BLOB NOT NULL);
CREATE TABLE sent (email TEXT NOT NULL, paper_id TEXT NOT NULL);
"""


def build_database(db: Path, readers: int, papers: int, seed: int) -> tuple[str, int, float]:
    """Fit, vectorise and store everything ours and the loop start from; (day, papers, fit s)."""
    rng = np.random.default_rng(seed)
    days = load_papers()
    names = sorted(days)
    sizes = {d: len(days[d]) for d in names[len(names) // 2 :]}
    day = max(sizes, key=lambda d: sizes[d])
    before = [p for d in names if d < day for p in days[d]][-FIT_PAPERS:]
    edition = (days[day] + [p for d in names if d > day for p in days[d]])[:papers]
    t = time.perf_counter()
    vectorizer = fit_vectorizer(before)
    fit_s = time.perf_counter() - t
    vectors = dict(zip([p.id for p in before], vectorizer.transform(before), strict=True))
    background = np.vstack([vectors[before[i].id] for i in rng.choice(len(before), 400, False)])
    pool = []
    for reader in pick_readers(before, edition, POOL, seed):
        inputs = ProfileInputs.of([p.id for p in reader.seeds])
        prof = fit_profile(inputs, vectors, background, vectorizer.version)
        if prof is not None:
            pool.append(prof)
    picks = random.Random(seed)
    with sqlite3.connect(db) as conn:
        conn.executescript(SCHEMA)
        conn.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [("version", vectorizer.version), ("dims", vectorizer.dimensions)],
        )
        conn.executemany(
            "INSERT INTO paper_vectors VALUES (?, ?)",
            [
                (p.id, vector_to_bytes(v, vectorizer.version))
                for p, v in zip(edition, vectorizer.transform(edition), strict=True)
            ],
        )
        for start in range(0, readers, 10_000):
            rows, sent = [], []
            for r in range(start, min(start + 10_000, readers)):
                base = pool[r % len(pool)]
                noise = rng.normal(0, 0.01, base.weights.shape).astype(np.float32)
                email = f"reader{r}@example.org"
                prof = Profile(base.weights + noise, base.bias, base.fingerprint)
                rows.append((email, prof.to_bytes()))
                if picks.random() < 0.3:
                    sent += [(email, p.id) for p in picks.sample(edition, K)]
            conn.executemany("INSERT INTO profiles VALUES (?, ?)", rows)
            conn.executemany("INSERT INTO sent VALUES (?, ?)", sent)
    return day, len(edition), fit_s


def load_edition(conn: sqlite3.Connection) -> tuple[bytes, int, list[str], list[bytes]]:
    version, dims = (row[0] for row in conn.execute("SELECT value FROM meta ORDER BY key DESC"))
    rows = conn.execute("SELECT id, vector FROM paper_vectors ORDER BY rowid").fetchall()
    return bytes(version), int(dims), [r[0] for r in rows], [r[1] for r in rows]


def run_ours(db: Path, out: Path, sample: list[int]) -> None:
    """The child process: everything from the stored bytes to each reader's top 10, reading
    profiles in batches so memory holds one batch, not 100,000 profiles."""
    t = time.perf_counter()
    conn = sqlite3.connect(db)
    version, dims, ids, blobs = load_edition(conn)
    papers = stack_vectors(blobs, version)
    position = {pid: n for n, pid in enumerate(ids)}
    exclude: dict[str, list[int]] = defaultdict(list)
    for email, paper_id in conn.execute("SELECT email, paper_id FROM sent"):
        exclude[email].append(position[paper_id])
    cursor = conn.execute("SELECT email, profile FROM profiles ORDER BY rowid")
    wanted, tops, done = set(sample), {}, 0
    while batch := cursor.fetchmany(BATCH):
        ranking = score_all(stack_profile_bytes(dict(batch), dims), papers, K, exclude)
        for r in range(len(ranking.readers)):
            if done + r in wanted:
                tops[str(done + r)] = [p for p, _s in ranking.for_reader(r)]
        done += len(batch)
    ours_s = time.perf_counter() - t
    out.write_text(json.dumps({"ours_s": ours_s, "peak_mb": peak_rss_mb(), "tops": tops}))


def run_loop(db: Path, sample: list[int]) -> tuple[float, dict[str, list[int]]]:
    """The per-reader loop on the sampled readers; loading their rows is not timed."""
    conn = sqlite3.connect(db)
    version, _dims, ids, blobs = load_edition(conn)
    emails = [f"reader{r}@example.org" for r in sample]
    stored = {e: conn.execute("SELECT profile FROM profiles WHERE email=?", (e,)).fetchone()[0]
              for e in emails}  # fmt: skip
    sent: dict[str, list[str]] = defaultdict(list)
    for email, paper_id in conn.execute("SELECT email, paper_id FROM sent"):
        sent[email].append(paper_id)
    position = {pid: n for n, pid in enumerate(ids)}
    tops = {}
    t = time.perf_counter()
    papers = stack_vectors(blobs, version)
    for r, email in zip(sample, emails, strict=True):
        prof = Profile.from_bytes(stored[email])
        model = LogisticRegression()
        model.classes_ = np.array([0, 1])
        model.coef_ = prof.weights.reshape(1, -1).astype(np.float64)
        model.intercept_ = np.array([prof.bias])
        scores = model.decision_function(papers)
        scores[[position[p] for p in sent.get(email, [])]] = -np.inf
        tops[str(r)] = [int(i) for i in np.argsort(-scores, kind="stable")[:K]]
    return time.perf_counter() - t, tops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readers", type=int, default=READERS)
    ap.add_argument("--papers", type=int, default=PAPERS)
    ap.add_argument("--sample", type=int, default=SAMPLE)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--ours", nargs=2, metavar=("DB", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    sample = sorted(random.Random(args.seed + 1).sample(range(args.readers), args.sample))
    if args.ours:
        run_ours(Path(args.ours[0]), Path(args.ours[1]), sample)
        return
    with tempfile.TemporaryDirectory() as tmp:
        db, out = Path(tmp) / "bench.db", Path(tmp) / "ours.json"
        day, n_papers, fit_s = build_database(db, args.readers, args.papers, args.seed)
        cmd = [sys.executable, __file__, "--ours", str(db), str(out)]
        cmd += ["--readers", str(args.readers), "--sample", str(args.sample)]
        cmd += ["--seed", str(args.seed)]
        subprocess.run(cmd, check=True)
        ours = json.loads(out.read_text())
        loop_s, loop_tops = run_loop(db, sample)
    ours_s, peak = ours["ours_s"], ours["peak_mb"]
    baseline_s = loop_s * args.readers / len(sample)
    ratio = baseline_s / ours_s
    same = sum(ours["tops"][r] == loop_tops[r] for r in loop_tops)
    print(f"{args.readers:,} readers x {n_papers:,} papers of {day} (+ later days)")
    print(f"vocabulary fit on {FIT_PAPERS:,} earlier papers: {fit_s:.1f} s (once, at collect)")
    print(f"{'method':<48}{'seconds':>10}")
    print(f"{'ours: batched, one matrix product per chunk':<48}{ours_s:>10.2f}")
    label = f"per-reader predict loop ({len(sample):,} timed, extrapolated)"
    print(f"{label:<48}{baseline_s:>10.2f}")
    print(f"ratio {ratio:.1f}x (target >= 20x); ours < 10 s: {ours_s < 10}; ours' peak RSS "
          f"{peak:.0f} MB (target < 1,024)")  # fmt: skip
    print(f"same top-{K} as the loop for {same}/{len(sample)} sampled readers")
    result = {
        "bench": "recommend",
        "readers": args.readers,
        "papers": n_papers,
        "ours_s": round(ours_s, 3),
        "baseline_s": round(baseline_s, 3),
        "ratio": round(ratio, 1),
        "peak_mb": round(peak, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
