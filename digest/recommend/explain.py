"""Why a paper is recommended, in words a person understands: the liked paper it is nearest
to and the key terms both share ("Like <title> — shared: diffusion policy, dexterous
manipulation"). Pure: Papers and vectors in, a Reason out; never scores or fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from digest.models import Paper
from digest.recommend.vectorize import Matrix, Vectorizer

__all__ = ["Reason", "explain", "shared_terms"]

MAX_TERMS = 3


@dataclass(frozen=True, slots=True)
class Reason:
    """The nearest liked paper (id, title, cosine) and the key terms it shares."""

    liked_id: str
    liked_title: str
    similarity: float
    shared: tuple[str, ...]

    def text(self) -> str:
        """The sentence shown under a recommendation."""
        title = " ".join(self.liked_title.split())
        if len(title) > 90:
            title = title[:87].rstrip() + "..."
        if not self.shared:
            return f"Like {title}"
        return f"Like {title} — shared: {', '.join(self.shared)}"


def shared_terms(
    vectorizer: Vectorizer, a: Paper, b: Paper, limit: int = MAX_TERMS
) -> tuple[str, ...]:
    """The terms weighing most in both papers' tf-idf rows, two-word phrases first: a phrase
    ("diffusion policy") says more than its words, which are then not repeated."""
    rows = vectorizer.sparse([a, b])
    first, second = rows.getrow(0), rows.getrow(1)
    common = np.intersect1d(first.indices, second.indices)
    if common.size == 0:
        return ()
    weight = np.asarray(first[:, common].toarray()).ravel()
    weight = weight * np.asarray(second[:, common].toarray()).ravel()
    terms = [vectorizer.terms[int(i)] for i in common]
    boosted = [w * (1.5 if " " in t else 1.0) for t, w in zip(terms, weight, strict=True)]
    chosen: list[str] = []
    for n in np.argsort(-np.asarray(boosted), kind="stable"):
        term = terms[int(n)]
        if set(term.split()) & {w for c in chosen for w in c.split()}:
            continue
        chosen.append(term)
        if len(chosen) == limit:
            break
    return tuple(chosen)


def explain(
    vectorizer: Vectorizer,
    paper: Paper,
    vector: Matrix,
    liked: Sequence[Paper],
    liked_vectors: Matrix,
) -> Reason | None:
    """The reason for recommending `paper` (its stored `vector`) to someone who liked
    `liked` (rows of `liked_vectors` in the same order); None if they liked nothing."""
    if not liked or liked_vectors.shape[0] != len(liked):
        return None
    similarity = liked_vectors @ np.asarray(vector, dtype=np.float32).reshape(-1)
    best = int(np.argmax(similarity))
    near = liked[best]
    return Reason(
        near.id, near.title, float(similarity[best]), shared_terms(vectorizer, near, paper)
    )
