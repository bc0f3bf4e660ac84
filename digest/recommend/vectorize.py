"""Papers -> vectors: a tf-idf vocabulary fitted once, projected to a small dense space (LSA).

Owns the fitted vocabulary and its bytes (saved with the store, reloaded each run) and the
bytes of one paper's vector (stored beside the paper when collected, so nothing is vectorised
twice). Pure: no store, no SQL, no file I/O; the caller keeps the bytes where it likes.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import sparse  # type: ignore[import-untyped]
from sklearn.decomposition import TruncatedSVD  # type: ignore[import-untyped]
from sklearn.feature_extraction.text import (  # type: ignore[import-untyped]
    ENGLISH_STOP_WORDS,
    CountVectorizer,
    TfidfVectorizer,
)

from digest.models import Paper
from digest.recommend.errors import RecommendError

__all__ = [
    "DEFAULT_DIMENSIONS",
    "Matrix",
    "Vectorizer",
    "fit_vectorizer",
    "paper_text",
    "stack_vectors",
    "vector_from_bytes",
    "vector_to_bytes",
]

Matrix = npt.NDArray[np.float32]
DEFAULT_DIMENSIONS = 512
_MAGIC = b"DRV1"
_HEADER = struct.Struct("<4sI8s")
_MATH = re.compile(r"\$[^$]*\$")
_LATEX = re.compile(r"\\[a-zA-Z]+|[{}~^_]")
# Words every abstract uses: they would make any two papers look alike in an explanation.
_GENERIC_WORDS = """
    paper propose proposed proposes approach approaches method methods result results
    show shows shown demonstrate demonstrates novel new based using use used task tasks
    performance state art existing work framework model models data experiments experimental
    significantly significant address challenge challenges improve improves improved achieve
    achieves achieving outperforms introduce introduces present presents study furthermore
    code available github com https http www extensive different various recent"""
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | frozenset(_GENERIC_WORDS.split())


def paper_text(paper: Paper) -> str:
    """The words a paper is known by: the title counts twice, then the abstract and HF's
    keywords. LaTeX math and commands are dropped: `$\\mathcal{O}(n)$` is not a topic."""
    parts = [paper.title, paper.title, paper.abstract, " ".join(paper.ai_keywords)]
    text = " ".join(p for p in parts if p)
    return _LATEX.sub(" ", _MATH.sub(" ", text)).lower()


_TOKEN = r"(?u)\b[a-z][a-z0-9]+(?:-[a-z0-9]+)*\b"


def _tfidf(max_features: int) -> TfidfVectorizer:
    """The fit only: it picks the vocabulary and the idf weights (`Vectorizer` applies them)."""
    return TfidfVectorizer(
        lowercase=False,
        token_pattern=_TOKEN,
        stop_words=sorted(STOP_WORDS),
        ngram_range=(1, 2),
        min_df=2,
        max_df=0.3,
        max_features=max_features,
        sublinear_tf=True,
        dtype=np.float32,
    )


@dataclass(slots=True)
class Vectorizer:
    """A fitted tf-idf vocabulary and its projection to `dimensions` dense coordinates.

    `terms[i]` are the words of column i of the sparse tf-idf space (for explanations) and
    `idf[i]` its weight; `version` names this fit, so vectors made by another fit are never
    mixed with these. Applying it needs no fitted scikit-learn object: a reloaded fit gives
    the same vectors whatever scikit-learn version is installed.
    """

    terms: list[str]
    idf: Matrix
    components: Matrix
    version: bytes
    _counter: CountVectorizer | None = field(default=None, repr=False, compare=False)

    @property
    def dimensions(self) -> int:
        """The length of every vector this fit makes (at most DEFAULT_DIMENSIONS: a small
        corpus gets fewer); profiles must have the same length to be scored."""
        return int(self.components.shape[0])

    def sparse(self, papers: Sequence[Paper]) -> sparse.csr_matrix:
        """The papers' tf-idf rows (sublinear tf x idf, l2-normalised): used to name the
        terms papers share, and projected by `transform`."""
        if self._counter is None:
            self._counter = CountVectorizer(
                lowercase=False,
                token_pattern=_TOKEN,
                stop_words=sorted(STOP_WORDS),
                ngram_range=(1, 2),
                vocabulary={t: i for i, t in enumerate(self.terms)},
                dtype=np.float32,
            )
        # TfidfVectorizer's arithmetic (sublinear tf, idf, l2) redone on plain arrays, so a
        # reloaded fit needs only its terms and idf, never a pickled scikit-learn object.
        rows = sparse.csr_matrix(self._counter.transform([paper_text(p) for p in papers]))
        rows = rows.astype(np.float32)
        np.log(rows.data, out=rows.data)
        rows.data += 1.0
        rows = rows @ sparse.diags(self.idf.astype(np.float32))
        norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sparse.csr_matrix(sparse.diags(1.0 / norms) @ rows, dtype=np.float32)

    def transform(self, papers: Sequence[Paper]) -> Matrix:
        """One l2-normalised dense row per paper; a paper with no known word gets zeros."""
        if not papers:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        dense = np.asarray(self.sparse(papers) @ self.components.T, dtype=np.float32)
        return normalise_rows(dense)

    def to_bytes(self) -> bytes:
        """The fit as an .npz (no pickle: loading it never runs code)."""
        out = io.BytesIO()
        np.savez_compressed(
            out,
            terms=np.array(self.terms, dtype=np.str_),
            idf=self.idf,
            components=self.components,
            version=np.frombuffer(self.version, dtype=np.uint8),
        )
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Vectorizer:
        """Reload a fit saved by `to_bytes`.

        Raises:
            RecommendError: the bytes do not load or do not agree with each other; fit again.
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as saved:
                terms = [str(t) for t in saved["terms"]]
                idf = np.asarray(saved["idf"], dtype=np.float32)
                components = np.asarray(saved["components"], dtype=np.float32)
                version = bytes(saved["version"].astype(np.uint8))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as ex:
            raise RecommendError(f"recommend: the saved vocabulary does not load: {ex}") from ex
        if len(terms) != len(idf) or components.shape[1] != len(terms) or len(version) != 8:
            raise RecommendError("recommend: the saved vocabulary is inconsistent; fit it again")
        return cls(terms, idf, components, version)


def normalise_rows(rows: Matrix) -> Matrix:
    """Each row scaled to length 1 (zero rows stay zero), so a dot product is a cosine."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.asarray(rows / norms, dtype=np.float32)


def fit_vectorizer(
    papers: Sequence[Paper], dimensions: int = DEFAULT_DIMENSIONS, max_features: int = 60_000
) -> Vectorizer:
    """Fit the vocabulary and projection on a corpus (months of stored papers).

    Deterministic for the same papers, so two runs agree on every vector.

    Raises:
        RecommendError: fewer than 4 papers, or none with a word that counts.
    """
    if len(papers) < 4:
        raise RecommendError(f"recommend: {len(papers)} papers are too few to fit a vocabulary")
    tfidf = _tfidf(max_features)
    try:
        tfidf.fit([paper_text(p) for p in papers])
    except ValueError as ex:
        raise RecommendError(f"recommend: no vocabulary in {len(papers)} papers: {ex}") from ex
    terms = [str(t) for t in tfidf.get_feature_names_out()]
    idf = np.asarray(tfidf.idf_, dtype=np.float32)
    unprojected = Vectorizer(terms, idf, np.zeros((0, len(terms)), np.float32), bytes(8))
    rows = unprojected.sparse(papers)
    # A small corpus cannot fill `dimensions`: k stays below both sides of the matrix.
    # A fixed random_state keeps the randomized SVD, and so every stored vector, reproducible.
    k = max(1, min(dimensions, rows.shape[0] - 1, rows.shape[1] - 1))
    svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=5, random_state=0)
    svd.fit(rows)
    components = np.asarray(svd.components_, dtype=np.float32)
    # Named by its content: refitting on the same papers keeps every stored vector valid.
    digest = hashlib.sha256(components.tobytes() + "\n".join(terms).encode()).digest()[:8]
    return Vectorizer(terms, idf, components, digest)


def vector_to_bytes(vector: Matrix, version: bytes) -> bytes:
    """One paper's vector as bytes for a BLOB column: magic, length, fit version, float32s."""
    flat = np.asarray(vector, dtype="<f4").reshape(-1)
    return _HEADER.pack(_MAGIC, flat.shape[0], version) + flat.tobytes()


def vector_from_bytes(data: bytes, version: bytes | None = None) -> Matrix:
    """The vector back from `vector_to_bytes`.

    Raises:
        RecommendError: a cut or damaged blob, or (with `version`) one made by another fit.
    """
    if len(data) < _HEADER.size:
        raise RecommendError(f"recommend: a stored vector is {len(data)} bytes, too short")
    magic, length, made_by = _HEADER.unpack_from(data)
    if magic != _MAGIC or len(data) != _HEADER.size + 4 * length:
        raise RecommendError("recommend: a stored vector is damaged; vectorise the paper again")
    if version is not None and made_by != version:
        raise RecommendError("recommend: a stored vector comes from another vocabulary fit")
    return np.frombuffer(data, dtype="<f4", offset=_HEADER.size).astype(np.float32)


def stack_vectors(blobs: Sequence[bytes], version: bytes | None = None) -> Matrix:
    """Many stored vectors as one matrix, a row each, for the batched scoring."""
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack([vector_from_bytes(b, version) for b in blobs])
