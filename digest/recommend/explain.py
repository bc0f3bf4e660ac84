"""Why a paper is recommended, in words a person understands: the liked paper it is nearest
to and the key terms both share ("Like <title> — shared: diffusion policy, dexterous
manipulation"). Pure: Papers and vectors in, a Reason out; never scores or fits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from digest.models import Paper
from digest.recommend.vectorize import Matrix, Vectorizer, paper_text

__all__ = ["Explainer", "Reason", "explain"]

MAX_TERMS = 3
PHRASE_FLOOR = 0.2  # a phrase goes first unless it weighs under this share of the best term
_WORDS = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _plain(paper: Paper) -> str:
    """The paper's words, lower case, single-spaced and padded, for phrase look-ups."""
    return " " + " ".join(_WORDS.findall(paper_text(paper))) + " "


def _singular(word: str) -> str:
    # Crude on purpose: enough that "model" and "models" are not both shown as shared terms.
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


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


class Explainer:
    """Built once per run from every paper an explanation may name (the edition's and the
    liked ones): their tf-idf rows are computed once, so each reason costs two small array
    intersections, not a tokenisation. Not thread-safe; holds no state beyond the rows."""

    def __init__(self, vectorizer: Vectorizer, papers: Sequence[Paper]) -> None:
        unique = list({p.id: p for p in papers}.values())
        rows = vectorizer.sparse(unique) if unique else None
        self._terms = vectorizer.terms
        self._at = {p.id: i for i, p in enumerate(unique)}
        self._titles = {p.id: p.title for p in unique}
        self._texts = {p.id: _plain(p) for p in unique}
        self._indptr: npt.NDArray[np.int64] = (
            np.asarray(rows.indptr, dtype=np.int64) if rows is not None else np.zeros(1, np.int64)
        )
        self._indices: npt.NDArray[np.int64] = (
            np.asarray(rows.indices, dtype=np.int64) if rows is not None else np.zeros(0, np.int64)
        )
        self._data: Matrix = (
            np.asarray(rows.data, dtype=np.float32) if rows is not None else np.zeros(0, np.float32)
        )

    def _row(self, paper_id: str) -> tuple[npt.NDArray[np.int64], Matrix]:
        i = self._at.get(paper_id)
        if i is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        lo, hi = self._indptr[i], self._indptr[i + 1]
        return self._indices[lo:hi], self._data[lo:hi]

    def shared(self, a: str, b: str, limit: int = MAX_TERMS) -> tuple[str, ...]:
        """The terms weighing most in both papers' tf-idf rows, phrases first: a phrase
        ("diffusion policy") says more than its words, which are then not repeated (nor
        their plurals). A phrase is shown only if both papers have it word for word: the
        vocabulary joins words across a dropped stop word ("chain thought")."""
        a_cols, a_vals = self._row(a)
        b_cols, b_vals = self._row(b)
        common, in_a, in_b = np.intersect1d(a_cols, b_cols, assume_unique=True, return_indices=True)
        if common.size == 0:
            return ()
        terms = [self._terms[int(c)] for c in common]
        weight = a_vals[in_a] * b_vals[in_b]
        texts = (self._texts.get(a, ""), self._texts.get(b, ""))
        order = np.argsort(-weight, kind="stable")
        ranked = [terms[int(n)] for n in order]
        floor = PHRASE_FLOOR * float(weight[order[0]])
        phrases = [
            terms[int(n)]
            for n in order
            if " " in terms[int(n)]
            and weight[n] >= floor
            and all(f" {terms[int(n)]} " in x for x in texts)
        ]
        chosen: list[str] = []
        used: set[str] = set()
        for term in phrases + [t for t in ranked if " " not in t]:
            words = {_singular(w) for w in term.split()}
            if used & words:
                continue
            chosen.append(term)
            used |= words
            if len(chosen) == limit:
                break
        return tuple(chosen)

    def reason(
        self, paper_id: str, vector: Matrix, liked: Sequence[str], liked_vectors: Matrix
    ) -> Reason | None:
        """Why `paper_id` (its stored `vector`) suits someone who liked `liked` (rows of
        `liked_vectors` in the same order); None if they liked nothing."""
        if not liked or liked_vectors.shape[0] != len(liked):
            return None
        similarity = liked_vectors @ np.asarray(vector, dtype=np.float32).reshape(-1)
        best = int(np.argmax(similarity))
        near = liked[best]
        return Reason(
            near,
            self._titles.get(near, near),
            float(similarity[best]),
            self.shared(near, paper_id),
        )


def explain(
    vectorizer: Vectorizer,
    paper: Paper,
    vector: Matrix,
    liked: Sequence[Paper],
    liked_vectors: Matrix,
) -> Reason | None:
    """One reason on its own (a preview, a test); a run explaining many builds one Explainer."""
    explainer = Explainer(vectorizer, [paper, *liked])
    return explainer.reason(paper.id, vector, [p.id for p in liked], liked_vectors)
