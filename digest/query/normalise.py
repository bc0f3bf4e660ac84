"""The one normaliser of the filter language: words folded for case, accents and plurals.

Documents and query terms both go through it, so the two sides always agree. Pure text.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_words", "stem", "surface_words", "word_spans"]

# letters and digits (no underscore); a trailing possessive 's is part of the word, dropped
_WORD = re.compile(r"([^\W_]+)(?:['\u2019]s\b)?")
# Plurals the suffix rules would get wrong, and the singulars they must stay equal to.
_IRREGULAR = {
    "biases": "bias", "aliases": "alias", "atlases": "atlas", "canvases": "canvas",
    "lenses": "lens", "gases": "gas", "buses": "bus", "caches": "cache", "niches": "niche",
    "movies": "movie", "cookies": "cookie", "zombies": "zombie", "axes": "axis",
    "analyses": "analysis", "hypotheses": "hypothesis", "theses": "thesis",
    "matrices": "matrix", "vertices": "vertex", "indices": "index", "species": "species",
    "series": "series", "news": "news", "quizzes": "quiz",
    "simplices": "simplex", "vortices": "vortex", "cortices": "cortex", "apices": "apex",
    "appendices": "appendix", "headaches": "headache", "toothaches": "toothache",
    "avalanches": "avalanche", "cliches": "cliche", "psyches": "psyche",
    # acronyms ending in u, i or s: their plural looks like corpus, basis or class
    "gpus": "gpu", "cpus": "cpu", "tpus": "tpu", "npus": "npu", "grus": "gru", "imus": "imu",
    "apis": "api", "uris": "uri", "guis": "gui", "kpis": "kpi", "rois": "roi", "ais": "ai",
}  # fmt: skip
_IRREGULAR.update({v: v for v in list(_IRREGULAR.values())})
# Greek -sis nouns whose plural no English word shares: syntheses, hypotheses, analyses.
_SIS_PLURALS = ("theses", "yses")
_FOLDS: dict[str, str] = {}


def _plural_stem(w: str) -> str:
    """Fold English plurals only: light enough to never merge unrelated words, and idempotent."""
    if w in _IRREGULAR:  # by membership: a caller's "bias" must not meet the rules below
        return _IRREGULAR[w]
    stem = w
    if len(w) > 3 and w[-1] == "s" and w.isascii() and w.isalpha():
        if w.endswith(("ss", "us", "is")):  # class, corpus, analysis: not plurals
            pass
        elif w.endswith(_SIS_PLURALS):
            stem = w[:-2] + "is"
        elif w.endswith("ies") and len(w) > 4:
            stem = w[:-3] + "y"
        elif w.endswith(("sses", "xes", "ches", "shes", "zzes")):
            stem = w[:-2]
        else:
            stem = w[:-1]
    return stem


class _StemMemo(dict[str, str]):
    """Documents repeat a few thousand words; a memo makes stemming one C-level lookup."""

    def __missing__(self, word: str) -> str:
        """Stem a word seen for the first time and remember it."""
        if len(self) > 200_000:  # a bound, so a hostile corpus cannot grow it forever
            self.clear()
        stem = self[word] = _plural_stem(word)
        return stem


stem = _StemMemo().__getitem__
"""The plural-folded form of one already case-folded word (`models` -> `model`)."""


def _fold_char(ch: str) -> str:
    """One character without accents and case-folded (`É` -> `e`, `ß` -> `ss`), memoised."""
    folded = _FOLDS.get(ch)
    if folded is None:
        parts = unicodedata.normalize("NFKD", ch)
        parts = "".join(c for c in parts if unicodedata.category(c)[0] != "M").casefold()
        parts = unicodedata.normalize("NFKD", parts)
        folded = _FOLDS[ch] = "".join(c for c in parts if unicodedata.category(c)[0] != "M")
    return folded


def _fold(text: str) -> tuple[str, list[int] | None]:
    """Case- and accent-fold `text`; the offsets map folded positions back (None: identity)."""
    if text.isascii():
        return text.lower(), None
    pieces: list[str] = []
    offsets: list[int] = []
    for i, ch in enumerate(text):
        folded = _fold_char(ch)
        pieces.append(folded)
        offsets.extend([i] * len(folded))
    offsets.append(len(text))
    return "".join(pieces), offsets


def surface_words(text: str) -> list[str]:
    """Folded words before plural folding: what prefix terms match against."""
    return _WORD.findall(_fold(text)[0])


def normalize_words(text: str) -> list[str]:
    """The one tokeniser for documents and query terms, so both sides always agree."""
    return [stem(w) for w in _WORD.findall(_fold(text)[0])]


def word_spans(text: str) -> list[tuple[str, str, int, int]]:
    """(surface, stem, start, end) per word, offsets into the original, unfolded text:
    what highlighting needs to mark the words a reader typed, accents and case kept."""
    folded, offsets = _fold(text)
    out = []
    for m in _WORD.finditer(folded):
        a, b = m.span(1)
        if offsets is not None:
            a, b = offsets[a], max(offsets[b], offsets[b - 1] + 1)
        out.append((m[1], stem(m[1]), a, b))
    return out
