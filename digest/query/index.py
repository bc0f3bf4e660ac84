"""The inverted index of an edition's papers: which papers each term hits, as a bitset.

Pure and in-memory: it never touches the store. Bit i of every result stands for papers[i].
Combining results into a query's answer is `digest.query.evaluate`'s job.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Generic, TypeVar

from digest.models import Paper
from digest.query.normalise import stem, surface_words
from digest.query.tree import Term, Upvotes

__all__ = ["TermIndex", "positions", "sources_of", "value_matches"]

_WORD_FIELDS = ("title", "abstract", "author")
K = TypeVar("K", str, tuple[str, str])


def positions(bits: int) -> Iterable[int]:
    """The set bits of a result, ascending: the positions of the papers it holds."""
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low


class _Postings(Generic[K]):
    """Key -> ascending paper positions, turned into a bitset only when a query asks.

    Building stays a list append per (key, paper); most keys are never queried.
    """

    def __init__(self) -> None:
        self.docs: defaultdict[K, list[int]] = defaultdict(list)
        self._bits: dict[K, int] = {}
        self._sorted: list[K] | None = None

    def bits(self, key: K) -> int:
        """The key's papers as a bitset, built on first use and cached."""
        bits = self._bits.get(key)
        if bits is None:
            docs = self.docs.get(key)
            bits = 0
            if docs:
                # set bytes then convert once: OR-ing 1 << i per paper would be quadratic
                raw = bytearray((docs[-1] >> 3) + 1)
                for i in docs:
                    raw[i >> 3] |= 1 << (i & 7)
                bits = int.from_bytes(raw, "little")
            self._bits[key] = bits
        return bits

    def with_prefix(self, prefix: K) -> list[K]:
        """Every key starting with `prefix`, found by bisecting the sorted keys."""
        if self._sorted is None:
            self._sorted = sorted(self.docs)
        keys, out = self._sorted, []
        for k in range(bisect_left(keys, prefix), len(keys)):
            if not str(keys[k]).startswith(str(prefix)):
                break
            out.append(keys[k])
        return out

    def union(self, keys: Iterable[K]) -> int:
        """The papers any of these keys hits."""
        bits = 0
        for key in keys:
            bits |= self.bits(key)
        return bits


class TermIndex:
    """Built once per edition from its papers; answers one term in one field at a time.

    Not thread-safe: the caches fill as queries arrive.
    """

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.papers = list(papers)
        self.all = (1 << len(self.papers)) - 1
        self._stems = {f: _Postings[str]() for f in _WORD_FIELDS}
        self._stem_of: dict[str, dict[str, str]] = {f: {} for f in _WORD_FIELDS}
        self._families: dict[str, dict[str, list[str]]] = {}
        self._vocab: dict[str, list[str]] = {}
        self._pairs: dict[str, tuple[_Postings[tuple[str, str]], set[str]]] = {}
        # Per field and paper: its words as (surfaces, stems), for phrase and prefix checks.
        self._sequences: dict[str, list[tuple[list[str], list[str]]]] = {
            f: [] for f in _WORD_FIELDS
        }
        self._values = {"category": _Postings[str](), "source": _Postings[str]()}
        self._term_cache: dict[tuple[Term, str], int] = {}
        self._prefix_cache: dict[tuple[str, str], int] = {}
        self._mask_cache: dict[tuple[str, int], dict[str, int]] = {}
        ranked: list[tuple[int, int]] = []
        for i, paper in enumerate(self.papers):
            self._add_text("title", i, (paper.title,))
            self._add_text("abstract", i, (paper.abstract,))
            self._add_text("author", i, paper.authors)
            for cat in {c.strip().lower() for c in paper.categories}:
                self._values["category"].docs[cat].append(i)
            for src in {s.strip().lower() for s in sources_of(paper)}:
                self._values["source"].docs[src].append(i)
            if paper.upvotes is not None:
                ranked.append((paper.upvotes, i))
        ranked.sort()
        self._upvotes = [v for v, _ in ranked]
        self._at_least = [0] * (len(ranked) + 1)  # [k]: papers ranked k or higher
        for k in range(len(ranked) - 1, -1, -1):
            self._at_least[k] = self._at_least[k + 1] | (1 << ranked[k][1])

    def _add_text(self, fld: str, i: int, texts: Iterable[str]) -> None:
        # An empty word between texts keeps a phrase inside one author's name.
        surfaces: list[str] = []
        for text in texts:
            surfaces += surface_words(text)
            surfaces.append("")
        stems = list(map(stem, surfaces))
        self._sequences[fld].append((surfaces, stems))
        self._stem_of[fld].update(zip(surfaces, stems, strict=True))
        for docs in map(self._stems[fld].docs.__getitem__, set(stems)):
            docs.append(i)

    def term_bits(self, term: Term, fld: str) -> int:
        """Papers where one term hits one field ("title", "abstract", "author", "category",
        "source"); cached, since many queries share their terms."""
        key = (term, fld)
        bits = self._term_cache.get(key)
        if bits is not None:
            return bits
        if fld in self._values:
            vocab = self._values[fld]
            bits = vocab.union(self._value_keys(vocab, term))
        else:
            last = len(term.words) - 1
            bits = self.all
            for k, word in enumerate(term.words):
                if term.prefix and k == last:
                    bits &= self._prefix(fld, word)
                else:
                    bits &= self._stems[fld].bits(word)
                if not bits:
                    break
            if bits and last:
                bits = self._phrase_bits(fld, term, bits)
        self._term_cache[key] = bits
        return bits

    def _value_keys(self, vocab: _Postings[str], term: Term) -> list[str]:
        # cat:cs means the whole archive (cs.CV, cs.LG, ...), like arXiv's own listing.
        value = term.words[0]
        if term.prefix:
            return vocab.with_prefix(value)
        keys = [value] if value in vocab.docs else []
        if term.field == "category" and "." not in value:
            keys += vocab.with_prefix(value + ".")
        return keys

    def _prefix(self, fld: str, prefix: str) -> int:
        """Papers with a word starting with `prefix`, via the stems of the matching words."""
        found = self._prefix_cache.get((fld, prefix))
        if found is not None:
            return found
        if fld not in self._vocab:
            self._vocab[fld] = sorted(self._stem_of[fld])
            family: defaultdict[str, list[str]] = defaultdict(list)
            for word, stem in self._stem_of[fld].items():
                family[stem].append(word)
            self._families[fld] = family
        vocab, stem_of, families = self._vocab[fld], self._stem_of[fld], self._families[fld]
        exact: list[str] = []
        mixed: list[str] = []
        for k in range(bisect_left(vocab, prefix), len(vocab)):
            if not vocab[k].startswith(prefix):
                break
            stem = stem_of[vocab[k]]
            # `studi*` must not match a paper that only says "study": same stem, other word.
            pure = all(w.startswith(prefix) for w in families[stem])
            (exact if pure else mixed).append(stem)
        postings = self._stems[fld]
        found = postings.union(exact)
        for doc in positions(postings.union(mixed) & ~found):
            if any(w.startswith(prefix) for w in self._sequences[fld][doc][0]):
                found |= 1 << doc
        self._prefix_cache[(fld, prefix)] = found
        return found

    def _phrase_bits(self, fld: str, term: Term, cand: int) -> int:
        """Papers with the words at consecutive positions, among those having all of them.

        Checking each candidate costs ~1 us, so when there are many, adjacent pairs of
        common words narrow them first; a pair with a rare word has few candidates anyway.
        """
        words = term.words[:-1] if term.prefix else term.words
        exact = False
        if fld != "author" and cand.bit_count() > 32:
            pairs, common = self._pair_postings(fld)
            exact = len(term.words) == 2 and not term.prefix
            for pair in pairwise(words):
                if pair[0] in common and pair[1] in common:
                    cand &= pairs.bits(pair)
                else:
                    exact = False
        return cand if exact else self._verify_phrase(fld, term, cand)

    def _pair_postings(self, fld: str) -> tuple[_Postings[tuple[str, str]], set[str]]:
        # Built on first need and only for words in at least 1 paper in 20: a tenth of the
        # cost of indexing every adjacent pair up front.
        found = self._pairs.get(fld)
        if found is None:
            floor = max(16, len(self.papers) // 20)
            common = {s for s, docs in self._stems[fld].docs.items() if s and len(docs) >= floor}
            pairs = _Postings[tuple[str, str]]()
            for doc, (_, stems) in enumerate(self._sequences[fld]):
                kept = {p for p in set(pairwise(stems)) if p[0] in common and p[1] in common}
                for docs in map(pairs.docs.__getitem__, kept):
                    docs.append(doc)
            found = self._pairs[fld] = (pairs, common)
        return found

    def _verify_phrase(self, fld: str, term: Term, cand: int) -> int:
        """Keep the candidates where the words sit at consecutive positions."""
        out, last = 0, len(term.words) - 1
        for doc in positions(cand):
            masks = self._masks(fld, doc)
            acc = -1
            for k, word in enumerate(term.words):
                if term.prefix and k == last:
                    surfaces = self._sequences[fld][doc][0]
                    mask = sum(1 << p for p, w in enumerate(surfaces) if w.startswith(word))
                else:
                    mask = masks[word]
                # bit p survives when word k sits at p + k: all words in a row from p
                acc &= mask >> k
                if not acc:
                    break
            if acc:
                out |= 1 << doc
        return out

    def _masks(self, fld: str, doc: int) -> dict[str, int]:
        """Stem -> bitmask of its positions in one paper's field, for phrase checks."""
        masks = self._mask_cache.get((fld, doc))
        if masks is None:
            masks = self._mask_cache[(fld, doc)] = {}
            for p, word in enumerate(self._sequences[fld][doc][1]):
                masks[word] = masks.get(word, 0) | (1 << p)
        return masks

    def upvote_bits(self, node: Upvotes) -> int:
        """Papers whose upvotes satisfy the comparison; a paper without upvotes never does."""
        lo = bisect_left(self._upvotes, node.value)
        hi = bisect_right(self._upvotes, node.value)
        # lo..hi are the ranks equal to the value; at_least[0] is every paper with upvotes
        at_least, known = self._at_least, self._at_least[0]
        return {
            ">=": at_least[lo],
            ">": at_least[hi],
            "<": known & ~at_least[lo],
            "<=": known & ~at_least[hi],
            "=": at_least[lo] & ~at_least[hi],
        }[node.op]


def sources_of(paper: Paper) -> list[str]:
    """The sources a paper came from, for `source:` terms (older rows name only one)."""
    return paper.sources or ([paper.source] if paper.source else [])


def value_matches(term: Term, value: str) -> bool:
    """Whether a `cat:` or `source:` term names this lower-cased value: the same rule as
    the index's, so an explanation names exactly the values that made the paper match."""
    want = term.words[0]
    if term.prefix:
        return value.startswith(want)
    return value == want or (
        term.field == "category" and "." not in want and value.startswith(want + ".")
    )
