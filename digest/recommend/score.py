"""Score every reader with a profile against an edition at once: one matrix product per chunk
of readers, then each reader's top papers. Never fits (`profile`) nor explains (`explain`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from digest.recommend.errors import RecommendError
from digest.recommend.profile import Profile, read_profiles
from digest.recommend.vectorize import Matrix

__all__ = [
    "ProfileMatrix",
    "Ranking",
    "score_all",
    "stack_profile_bytes",
    "stack_profiles",
]

DEFAULT_CHUNK = 8192


@dataclass(frozen=True, slots=True)
class ProfileMatrix:
    """Readers' profiles stacked: row r of `weights` and `bias` belongs to `readers[r]`.

    `refused` holds one line per reader whose stored profile could not be used (left out:
    a bad profile costs that reader's recommendations, never anyone else's).
    """

    readers: tuple[str, ...]
    weights: Matrix
    bias: npt.NDArray[np.float32]
    refused: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ranking:
    """Each reader's best papers: `papers[r]` are positions in the edition, best first, and
    `scores[r]` their scores; -1 / -inf pad a reader left with fewer than k candidates."""

    readers: tuple[str, ...]
    papers: npt.NDArray[np.int32]
    scores: Matrix

    def for_reader(self, r: int) -> list[tuple[int, float]]:
        """(paper position, score) pairs for row r, without padding."""
        return [
            (int(p), float(s))
            for p, s in zip(self.papers[r], self.scores[r], strict=True)
            if p >= 0
        ]


def stack_profiles(profiles: Mapping[str, Profile]) -> ProfileMatrix:
    """One matrix from many profiles (all fitted against the same vocabulary).

    Raises:
        RecommendError: the profiles are not all of one length (fitted on different fits).
    """
    readers = tuple(profiles)
    if not readers:
        return ProfileMatrix((), np.zeros((0, 0), np.float32), np.zeros(0, np.float32))
    dims = {profiles[r].weights.shape[0] for r in readers}
    if len(dims) != 1:
        raise RecommendError(f"recommend: profiles of different sizes {sorted(dims)}; refit them")
    weights = np.empty((len(readers), dims.pop()), dtype=np.float32)
    bias = np.empty(len(readers), dtype=np.float32)
    for r, reader in enumerate(readers):
        weights[r] = profiles[reader].weights
        bias[r] = profiles[reader].bias
    return ProfileMatrix(readers, weights, bias)


def stack_profile_bytes(blobs: Mapping[str, bytes], dims: int) -> ProfileMatrix:
    """One matrix straight from stored profiles (reader -> `Profile.to_bytes()`), without a
    Python step per reader. A damaged blob or one of another size leaves that reader out,
    with a line in `refused` naming them."""
    readers = list(blobs)
    weights, bias, ok = read_profiles(list(blobs.values()), dims)
    if ok.all():
        return ProfileMatrix(tuple(readers), weights, bias)
    refused = tuple(
        f"{r}: recommend: the stored profile is damaged or of another vocabulary; fit it again"
        for r, good in zip(readers, ok, strict=True)
        if not good
    )
    kept = tuple(r for r, good in zip(readers, ok, strict=True) if good)
    return ProfileMatrix(kept, weights[ok], bias[ok], refused)


def _exclusions(
    readers: Sequence[str], exclude: Mapping[str, Sequence[int]]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(rows, paper positions) of every excluded pair, ordered by row."""
    rows: list[int] = []
    cols: list[int] = []
    for r, reader in enumerate(readers):
        skip = exclude.get(reader)
        if skip:
            rows += [r] * len(skip)
            cols += skip
    return np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)


def _top(scores: Matrix, k: int, papers: npt.NDArray[np.int32], best: Matrix) -> None:
    """Rows' top k, best first, into `papers`/`best`; ties keep the lower position first."""
    n = scores.shape[1]
    if k < n:
        # argpartition is linear per row: only the k survivors are sorted, not every paper.
        top = np.argpartition(scores, n - k, axis=1)[:, n - k :]
    else:
        top = np.broadcast_to(np.arange(n), scores.shape).copy()
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.lexsort((top, -top_scores), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    top_scores = np.take_along_axis(top_scores, order, axis=1)
    top[~np.isfinite(top_scores)] = -1  # an excluded paper (-inf) pads; it is never offered
    papers[:] = top
    best[:] = top_scores


def score_all(
    profiles: ProfileMatrix,
    papers: Matrix,
    k: int,
    exclude: Mapping[str, Sequence[int]] | None = None,
    chunk: int = DEFAULT_CHUNK,
    threads: int = 2,
) -> Ranking:
    """Every reader's top `k` papers of the edition (`papers`: one vector per row).

    `exclude` maps a reader to paper positions they must not get (already in their email,
    or sent before). Per chunk of readers: one BLAS product chunk x dims x papers, then the
    partial sort split over `threads` (numpy releases the GIL there). Memory stays about
    chunk x papers floats beyond the inputs; callers holding more readers than they want in
    memory call this once per batch read from the store.

    Raises:
        RecommendError: papers and profiles are of different lengths (different fits).
    """
    n_readers, n_papers = len(profiles.readers), papers.shape[0]
    k = max(0, min(k, n_papers))
    out_papers = np.full((n_readers, k), -1, dtype=np.int32)
    out_scores = np.full((n_readers, k), -np.inf, dtype=np.float32)
    if n_readers == 0 or k == 0:
        return Ranking(profiles.readers, out_papers, out_scores)
    if papers.shape[1] != profiles.weights.shape[1]:
        raise RecommendError(
            f"recommend: papers have {papers.shape[1]} dimensions, profiles "
            f"{profiles.weights.shape[1]}; vectorise and fit with the same vocabulary"
        )
    skip_rows, skip_cols = _exclusions(profiles.readers, exclude or {})
    papers_t = np.ascontiguousarray(papers.T, dtype=np.float32)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for start in range(0, n_readers, chunk):
            stop = min(start + chunk, n_readers)
            scores = profiles.weights[start:stop] @ papers_t
            scores += profiles.bias[start:stop, None]
            # skip_rows is ordered, so this chunk's exclusions are one slice of it
            lo, hi = np.searchsorted(skip_rows, [start, stop])
            scores[skip_rows[lo:hi] - start, skip_cols[lo:hi]] = -np.inf
            # Each thread sorts its own rows and writes its own slice of the output: no lock.
            step = -(-(stop - start) // max(1, threads))
            parts = [
                pool.submit(
                    _top,
                    scores[i : i + step],
                    k,
                    out_papers[start + i : min(start + i + step, stop)],
                    out_scores[start + i : min(start + i + step, stop)],
                )
                for i in range(0, stop - start, step)
            ]
            for part in parts:
                part.result()
    return Ranking(profiles.readers, out_papers, out_scores)
