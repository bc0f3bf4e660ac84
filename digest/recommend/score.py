"""Score every reader with a profile against an edition at once: one matrix product per chunk
of readers, then each reader's top papers. Never fits (`profile`) nor explains (`explain`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from digest.recommend.errors import RecommendError
from digest.recommend.profile import Profile, read_weights
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
    """One matrix from many profiles (all fitted against the same vocabulary)."""
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
    """One matrix straight from stored profiles (reader -> `Profile.to_bytes()`), copying
    each profile's weights once. A damaged blob or one of another size leaves that reader
    out, with a line in `refused` naming them and why."""
    weights = np.empty((len(blobs), dims), dtype=np.float32)
    bias = np.empty(len(blobs), dtype=np.float32)
    readers: list[str] = []
    refused: list[str] = []
    for reader, blob in blobs.items():
        try:
            row, b = read_weights(blob, dims)
        except RecommendError as ex:
            refused.append(f"{reader}: {ex}")
            continue
        weights[len(readers)], bias[len(readers)] = row, b
        readers.append(reader)
    n = len(readers)
    return ProfileMatrix(tuple(readers), weights[:n], bias[:n], tuple(refused))


def score_all(
    profiles: ProfileMatrix,
    papers: Matrix,
    k: int,
    exclude: Mapping[int, Sequence[int]] | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> Ranking:
    """Every reader's top `k` papers of the edition (`papers`: one vector per row).

    `exclude` maps a reader's row to paper positions they must not get (already in their
    email, or sent before). Work per chunk: one BLAS product chunk x dims x papers and one
    partial sort, so 100,000 readers cost seconds and memory stays chunk x papers floats.
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
    exclude = exclude or {}
    papers_t = np.ascontiguousarray(papers.T, dtype=np.float32)
    for start in range(0, n_readers, chunk):
        stop = min(start + chunk, n_readers)
        scores = profiles.weights[start:stop] @ papers_t
        scores += profiles.bias[start:stop, None]
        for r in range(start, stop):
            skip = exclude.get(r)
            if skip:
                scores[r - start, list(skip)] = -np.inf
        if k < n_papers:
            top = np.argpartition(scores, n_papers - k, axis=1)[:, n_papers - k :]
        else:
            top = np.broadcast_to(np.arange(n_papers), (stop - start, n_papers)).copy()
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        top[~np.isfinite(top_scores)] = -1
        out_papers[start:stop] = top
        out_scores[start:stop] = top_scores
    return Ranking(profiles.readers, out_papers, out_scores)
