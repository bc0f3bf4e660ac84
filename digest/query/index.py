"""The inverted index of an edition's papers: which papers each term hits, as a bitset.

Pure and in-memory: it never touches the store. Bit i of every result stands for papers[i].
Combining results into a query's answer is `digest.query.evaluate`'s job.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from digest.models import Paper
from digest.query.normalise import stem, surface_words
from digest.query.tree import Term, Upvotes

__all__ = ["TermIndex", "positions", "sources_of", "value_matches"]

K = TypeVar("K", str, tuple[str, str])
Ints = npt.NDArray[np.int64]


def positions(bits: int) -> Iterable[int]:
    """The set bits of a result, ascending: the positions of the papers it holds."""
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low


class _Postings(Generic[K]):
    """Key -> ascending paper positions, turned into a bitset only when a query asks (the
    small `cat:` and `source:` vocabularies)."""

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


class _Text:
    """One text field of every paper as flat arrays of tokens: token g is the word
    `words[surface[g]]` with stem id `stem[g]` in paper `doc[g]`, and each text ends in an
    empty word, so a phrase never runs from one text (or one author) into the next.

    Surface ids are numbered stem by stem, so the tokens sorted by surface (`order`) hold
    each word's tokens, and each stem's, in one run. Arrays keep phrase checks to a few
    vectorised comparisons and leave nothing for the garbage collector to walk.
    """

    def __init__(self, texts: Sequence[Iterable[str]], size: int) -> None:
        words: list[str] = []
        counts = []
        for mine in texts:
            before = len(words)
            for text in mine:
                words += surface_words(text)
                words.append("")
            counts.append(len(words) - before)
        seen = {w: k for k, w in enumerate(dict.fromkeys(words))}  # first-seen numbering
        self.stem_id: dict[str, int] = {}
        add = self.stem_id.setdefault
        roots = np.array([add(stem(w), len(self.stem_id)) for w in seen], np.int32)
        by_stem = np.argsort(roots, kind="stable")
        renumber = np.empty(len(seen), np.int32)
        renumber[by_stem] = np.arange(len(seen), dtype=np.int32)
        first = list(seen)
        self.words = [first[k] for k in by_stem.tolist()]
        tokens = np.fromiter(map(seen.__getitem__, words), np.int32, len(words))
        self.surface = renumber[tokens]
        self.stem = roots[tokens]
        self.order = np.argsort(self.surface, kind="stable")
        self.doc = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
        self.doc_sorted = self.doc[self.order]
        ends = np.cumsum(np.bincount(self.surface, minlength=len(seen)))
        self.bounds = np.concatenate(([0], ends))  # surface v: order[bounds[v] : bounds[v+1]]
        per_stem = np.bincount(roots, minlength=len(self.stem_id))
        self.stem_starts = np.concatenate(([0], np.cumsum(per_stem)))  # stem s: its surfaces
        self.size = size
        self._bits: dict[int, int] = {}
        self._alphabetical: tuple[list[str], list[int]] | None = None

    def stem_tokens(self, s: int) -> slice:
        """The run of `order` holding stem s's tokens."""
        first, last = self.stem_starts[s], self.stem_starts[s + 1]
        return slice(int(self.bounds[first]), int(self.bounds[last]))

    def stem_bits(self, root: str) -> int:
        """Papers with the stem in this field, cached."""
        s = self.stem_id.get(root)
        if s is None:
            return 0
        found = self._bits.get(s)
        if found is None:
            found = self._bits[s] = self.to_bits(self.doc_sorted[self.stem_tokens(s)])
        return found

    def with_prefix(self, prefix: str) -> Ints:
        """The surface ids of every word starting with `prefix`."""
        if self._alphabetical is None:
            ids = sorted(range(len(self.words)), key=self.words.__getitem__)
            self._alphabetical = ([self.words[k] for k in ids], ids)
        words, ids = self._alphabetical
        out = []
        for k in range(bisect_left(words, prefix), len(words)):
            if not words[k].startswith(prefix):
                break
            out.append(ids[k])
        return np.array(out, np.int64)

    def prefix_bits(self, prefix: str) -> int:
        """Papers with a word starting with `prefix`."""
        ids = self.with_prefix(prefix)
        if not len(ids):
            return 0
        runs = [self.doc_sorted[self.bounds[v] : self.bounds[v + 1]] for v in ids.tolist()]
        return self.to_bits(np.concatenate(runs))

    def phrase_bits(self, term: Term) -> int:
        """Papers with the term's words (two or more) at consecutive positions, the last
        one a prefix of a word when the term is a prefix."""
        words, last = term.words, len(term.words) - 1
        first = self.stem_id.get(words[0])
        if first is None:
            return 0
        at = self.order[self.stem_tokens(first)]
        at = at[at + last < len(self.stem)]
        for k in range(1, last + 1):
            if term.prefix and k == last:
                wanted = np.zeros(len(self.words), np.bool_)
                wanted[self.with_prefix(words[k])] = True
                at = at[wanted[self.surface[at + k]]]
            else:
                s = self.stem_id.get(words[k])
                if s is None:
                    return 0
                at = at[self.stem[at + k] == s]
            if not len(at):
                return 0
        return self.to_bits(self.doc[at])

    def to_bits(self, docs: npt.NDArray[np.integer[Any]]) -> int:
        """Paper positions (repeats allowed) as a bitset."""
        flags = np.zeros(self.size, np.bool_)
        flags[docs] = True
        return int.from_bytes(np.packbits(flags, bitorder="little").tobytes(), "little")


class TermIndex:
    """Built once per edition from its papers; answers one term in one field at a time.

    Not thread-safe: the caches fill as queries arrive.
    """

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.papers = list(papers)
        self.all = (1 << len(self.papers)) - 1
        size = 8 * ((len(self.papers) + 7) // 8)
        self._text = {
            "title": _Text([(p.title,) for p in self.papers], size),
            "abstract": _Text([(p.abstract,) for p in self.papers], size),
            "author": _Text([p.authors for p in self.papers], size),
        }
        self._values = {"category": _Postings[str](), "source": _Postings[str]()}
        self._term_cache: dict[tuple[Term, str], int] = {}
        self._prefix_cache: dict[tuple[str, str], int] = {}
        ranked: list[tuple[int, int]] = []
        for i, paper in enumerate(self.papers):
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
        elif not term.words:
            bits = self.all
        elif len(term.words) > 1:
            bits = self._text[fld].phrase_bits(term)
        elif term.prefix:
            bits = self._prefix(fld, term.words[0])
        else:
            bits = self._text[fld].stem_bits(term.words[0])
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
        """Papers with a word starting with `prefix` (`studi*` never matches a paper that
        only says "study", though both have one stem)."""
        found = self._prefix_cache.get((fld, prefix))
        if found is None:
            found = self._prefix_cache[(fld, prefix)] = self._text[fld].prefix_bits(prefix)
        return found

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
