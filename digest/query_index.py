"""One inverted index over an edition's papers, evaluating parsed queries as bitset algebra.

Pure and in-memory: it never touches the store. Bit i of every result stands for papers[i].
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Generic, TypeVar

from digest.models import Paper
from digest.query import (
    SYNTAX,
    TEXT_FIELDS,
    And,
    Node,
    Not,
    Term,
    Upvotes,
    _stem,
    _typed,
    format_query,
    surface_words,
    terms_of,
    word_spans,
)

_WORD_FIELDS = ("title", "abstract", "author")
K = TypeVar("K", str, tuple[str, str])


@dataclass(frozen=True, slots=True)
class Hit:
    """One positive term that matched one field of a paper.

    `detail` names what it matched when the field is not running text: the authors, the
    categories, the sources or the upvote count.
    """

    term: str
    field: str
    detail: str = ""


def positions(bits: int) -> Iterable[int]:
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
        bits = self._bits.get(key)
        if bits is None:
            docs = self.docs.get(key)
            bits = 0
            if docs:
                raw = bytearray((docs[-1] >> 3) + 1)
                for i in docs:
                    raw[i >> 3] |= 1 << (i & 7)
                bits = int.from_bytes(raw, "little")
            self._bits[key] = bits
        return bits

    def with_prefix(self, prefix: K) -> list[K]:
        if self._sorted is None:
            self._sorted = sorted(self.docs)
        keys, out = self._sorted, []
        for k in range(bisect_left(keys, prefix), len(keys)):
            if not str(keys[k]).startswith(str(prefix)):
                break
            out.append(keys[k])
        return out

    def union(self, keys: Iterable[K]) -> int:
        bits = 0
        for key in keys:
            bits |= self.bits(key)
        return bits


class PaperIndex:
    """Built once per edition, then shared by every distinct query; results cached per node.

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
        self._cache: dict[Node, int] = {}
        self._term_cache: dict[tuple[Term, str], int] = {}
        self._prefix_cache: dict[tuple[str, str], int] = {}
        self._mask_cache: dict[tuple[str, int], dict[str, int]] = {}
        self._plans: dict[int, tuple[Node, list[tuple[Term | Upvotes, str, tuple[str, ...]]]]] = {}
        ranked: list[tuple[int, int]] = []
        for i, paper in enumerate(self.papers):
            self._add_text("title", i, (paper.title,))
            self._add_text("abstract", i, (paper.abstract,))
            self._add_text("author", i, paper.authors)
            for cat in {c.strip().lower() for c in paper.categories}:
                self._values["category"].docs[cat].append(i)
            for src in {s.strip().lower() for s in _sources(paper)}:
                self._values["source"].docs[src].append(i)
            if paper.upvotes is not None:
                ranked.append((paper.upvotes, i))
        ranked.sort()
        self._upvotes = [v for v, _ in ranked]
        self._at_least = [0] * (len(ranked) + 1)  # [k]: papers ranked k or higher
        for k in range(len(ranked) - 1, -1, -1):
            self._at_least[k] = self._at_least[k + 1] | (1 << ranked[k][1])

    def __len__(self) -> int:
        return len(self.papers)

    def _add_text(self, fld: str, i: int, texts: Iterable[str]) -> None:
        # An empty word between texts keeps a phrase inside one author's name.
        surfaces: list[str] = []
        for text in texts:
            surfaces += surface_words(text)
            surfaces.append("")
        stems = list(map(_stem, surfaces))
        self._sequences[fld].append((surfaces, stems))
        self._stem_of[fld].update(zip(surfaces, stems, strict=True))
        for docs in map(self._stems[fld].docs.__getitem__, set(stems)):
            docs.append(i)

    def evaluate(self, node: Node) -> int:
        """Bitset of matching papers; every sub-tree's result is cached for later queries."""
        cached = self._cache.get(node)
        if cached is not None:
            return cached
        if isinstance(node, Term):
            if node.field == "any":
                bits = self._term_bits(node, "title") | self._term_bits(node, "abstract")
            else:
                bits = self._term_bits(node, node.field)
        elif isinstance(node, Upvotes):
            bits = self._upvote_bits(node)
        elif isinstance(node, Not):
            bits = self.all & ~self.evaluate(node.child)
        elif isinstance(node, And):
            bits = self.all
            for child in node.children:
                bits &= self.evaluate(child)
                if not bits:
                    break
        else:
            bits = 0
            for child in node.children:
                bits |= self.evaluate(child)
        self._cache[node] = bits
        return bits

    def matches(self, node: Node) -> list[int]:
        """Positions of the matching papers, ascending."""
        return list(positions(self.evaluate(node)))

    def explain(self, node: Node, i: int) -> list[Hit]:
        """Why paper i matched: each positive term that hits it, once per field it hits."""
        paper, bit, hits = self.papers[i], 1 << i, []
        for term, shown, fields in self._plan(node):
            for fld in fields:
                if isinstance(term, Upvotes):
                    if self.evaluate(term) & bit:
                        hits.append(Hit(shown, fld, str(paper.upvotes)))
                    continue
                if not self._term_bits(term, fld) & bit:
                    continue
                detail = ""
                if fld == "author":
                    detail = ", ".join(a for a in paper.authors if highlight_spans(a, [term]))
                elif fld != "title" and fld != "abstract":
                    values = paper.categories if fld == "category" else _sources(paper)
                    detail = ", ".join(v for v in values if _value_match(term, v.strip().lower()))
                hit = Hit(shown, fld, detail)
                if hit not in hits:
                    hits.append(hit)
        return hits

    def term_field_bits(self, node: Node) -> list[tuple[str, str, int]]:
        """(term as shown, field, bitset of papers it hits there) for each positive term:
        lets ranking score every matched paper in a few bitset passes, explaining none."""
        out = []
        for term, shown, fields in self._plan(node):
            for fld in fields:
                if isinstance(term, Upvotes):
                    out.append((shown, fld, self.evaluate(term)))
                else:
                    out.append((shown, fld, self._term_bits(term, fld)))
        return out

    def _plan(self, node: Node) -> list[tuple[Term | Upvotes, str, tuple[str, ...]]]:
        # Keyed by identity, not equality: equal queries may be typed (and shown) differently.
        # The node is kept alive in the value, so its id cannot be reused.
        found = self._plans.get(id(node))
        if found is None:
            plan = []
            for term in terms_of(node):
                if isinstance(term, Upvotes):
                    fields: tuple[str, ...] = ("upvotes",)
                else:
                    fields = ("title", "abstract") if term.field == "any" else (term.field,)
                plan.append((term, display(term), fields))
            found = self._plans[id(node)] = (node, plan)
        return found[1]

    def _term_bits(self, term: Term, fld: str) -> int:
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
            for p, stem in enumerate(self._sequences[fld][doc][1]):
                masks[stem] = masks.get(stem, 0) | (1 << p)
        return masks

    def _upvote_bits(self, node: Upvotes) -> int:
        lo = bisect_left(self._upvotes, node.value)
        hi = bisect_right(self._upvotes, node.value)
        at_least, known = self._at_least, self._at_least[0]
        return {
            ">=": at_least[lo],
            ">": at_least[hi],
            "<": known & ~at_least[lo],
            "<=": known & ~at_least[hi],
            "=": at_least[lo] & ~at_least[hi],
        }[node.op]


def display(term: Term | Upvotes) -> str:
    """How a term reads in a "why it matched" line: `world model`, `diffus*`, `cat:cs.CV`."""
    if isinstance(term, Upvotes):
        return format_query(term)
    text = _typed(term)
    body = text[1:-1] if text.startswith('"') else text
    if term.field in ("category", "source"):
        return f"{SYNTAX[term.field]}:{body.strip()}"
    spans = word_spans(body.rstrip("*") if term.prefix else body)
    return " ".join(body[a:b] for _, _, a, b in spans) + ("*" if term.prefix else "")


def _sources(paper: Paper) -> list[str]:
    return paper.sources or ([paper.source] if paper.source else [])


def _value_match(term: Term, value: str) -> bool:
    want = term.words[0]
    if term.prefix:
        return value.startswith(want)
    return value == want or (
        term.field == "category" and "." not in want and value.startswith(want + ".")
    )


def _applies(term_field: str, fld: str | None) -> bool:
    if term_field not in TEXT_FIELDS:
        return False
    return fld is None or term_field == fld or (term_field == "any" and fld != "author")


def highlight_spans(
    text: str, terms: Iterable[Term | Upvotes], field: str | None = None
) -> list[tuple[int, int]]:
    """(start, end) offsets into the original text of every hit, merged and sorted.

    `field` ("title", "abstract", "author") keeps only the terms that apply to it; without it
    every word, phrase and prefix term is highlighted.
    """
    tokens = word_spans(text)
    spans: list[tuple[int, int]] = []
    for term in terms:
        if not isinstance(term, Term) or not _applies(term.field, field):
            continue
        n, last = len(term.words), len(term.words) - 1
        for j in range(len(tokens) - last):
            for k, word in enumerate(term.words):
                surface, stem, _, _ = tokens[j + k]
                if not (surface.startswith(word) if term.prefix and k == last else stem == word):
                    break
            else:
                spans.append((tokens[j][2], tokens[j + n - 1][3]))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
