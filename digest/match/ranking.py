"""Per-query ranking for one edition: each distinct query (a topic many people share counts
once) parsed, evaluated and scored once, and the ranked lists turned into integer ranks
comparable across queries. Knows papers and queries; never a subscriber's cap or history.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import numpy as np
import numpy.typing as npt

from digest.models import Paper, Subscriber, Topic
from digest.query import Node, PaperIndex, Term, parse, positions

FIELD_WEIGHT = {"title": 3.0, "abstract": 1.0, "author": 2.0, "category": 1.0, "source": 0.5}
POPULARITY_WEIGHT = 0.4  # ln(1+upvotes): 118 upvotes stays under the title-vs-abstract gap
FRESHNESS_WEIGHT = 0.5
FRESHNESS_DAYS = 7.0
MIN_DEPTH = 16  # entries per query kept in the shared rank table (deeper when a cap asks)
SMALL = 32  # a query selecting at most this many papers is scored in plain Python

Ints = npt.NDArray[np.int64]


def _freshness(paper: Paper, now: datetime) -> float:
    if paper.published is None:
        return 0.0
    age = (now - paper.published).total_seconds() / 86400
    return max(0.0, 1.0 - max(age, 0.0) / FRESHNESS_DAYS)


@dataclass(slots=True, eq=False)  # equal by identity: one per (kind, name) per edition
class RankedQuery:
    """One of a subscriber's topics or queries, evaluated and ranked once for everyone."""

    kind: str
    name: str
    label: str
    node: Node
    qid: int  # its ranked list's row in the rank table, shared by equal queries
    bits: int
    scores: list[float]
    order: list[int]
    terms: tuple[Term, ...]
    _score_of: dict[int, float] | None = None

    def score_of(self, i: int) -> float:
        """Paper i's score under this query (0.0 if it does not select it), for rebuilding a
        planned delivery without ranking again."""
        if self._score_of is None:
            self._score_of = dict(zip(self.order, self.scores, strict=True))
        return self._score_of.get(i, 0.0)


@dataclass(frozen=True, slots=True)
class RankTable:
    """The first `depth` entries of every ranked query as integer ranks comparable across
    queries: rank r is paper `paper_of[r]` at `score[r]`, and a lower rank sorts first
    exactly as (-score, -upvotes, id) does. `end` pads a shorter list and stands for no
    paper."""

    top: Ints  # (queries, depth) ranks
    paper_of: Ints  # rank -> paper position, `end` -> a position no paper has
    selected: npt.NDArray[np.uint8]  # (queries, bytes): every paper each query selects
    score: npt.NDArray[np.float64]
    ids: npt.NDArray[np.object_]  # rank -> the paper's id ("" for `end`)
    queries: int
    depth: int
    end: int


class Rankings:
    """An edition's papers indexed once, and every query asked of them ranked once.

    Relevance: each positive term adds its field's weight for each field it hits, plus a half
    point per distinct term that hits at all; then popularity and freshness. Ties break on
    more upvotes, then the paper id, so every path through the matcher orders alike.
    """

    def __init__(self, papers: Sequence[Paper], topics: Mapping[str, Topic], now: datetime):
        self.papers = list(papers)
        self.topics = topics
        self.index = PaperIndex(self.papers)
        base = [
            POPULARITY_WEIGHT * math.log1p(max(p.upvotes or 0, 0))
            + FRESHNESS_WEIGHT * _freshness(p, now)
            for p in self.papers
        ]
        self._base = np.array(base, np.float64)
        self._base_list = base
        self._bytes = (len(self.papers) + 7) // 8
        self.upvotes = [p.upvotes or 0 for p in self.papers]
        self.position = {p.id: i for i, p in enumerate(self.papers)}
        self.order_key = [(-(p.upvotes or 0), p.id) for p in self.papers]
        by_key = sorted(range(len(self.papers)), key=lambda i: (self.order_key[i], i))
        self._paper_order = np.empty(len(self.papers), np.int64)
        self._paper_order[by_key] = np.arange(len(self.papers))
        self._paper_rank: list[int] = self._paper_order.tolist()
        self._nodes: dict[str, Node] = {}
        self._ranked: dict[Node, tuple[list[float], list[int], int, int]] = {}
        self._prepared: dict[tuple[str, str], RankedQuery] = {}
        self._topic_sources: dict[str, RankedQuery] = {}
        self._query_sources: dict[str, RankedQuery] = {}
        self._query_qids: dict[str, int] = {}
        self._lists: list[tuple[npt.NDArray[np.float64], Ints]] = []
        self._entries = _Entries(self._bytes)
        self._ids = np.array([p.id for p in self.papers] + [""], object)
        self.table = RankTable(
            np.zeros((0, 0), np.int64),
            np.zeros(1, np.int64),
            np.zeros((0, 0), np.uint8),
            np.zeros(1),
            self._ids[-1:],
            0,
            0,
            0,
        )

    @property
    def distinct_queries(self) -> int:
        """How many distinct queries have been ranked: the shared work, counted once each."""
        return len(self._ranked)

    def node(self, text: str) -> Node:
        """A query's tree, parsed once per distinct text (QueryError if it does not parse)."""
        found = self._nodes.get(text)
        if found is None:
            found = self._nodes[text] = parse(text)
        return found

    def ranked(self, node: Node) -> tuple[list[float], list[int]]:
        """(scores, paper positions) of what one query selects, best first; once per query."""
        scores, order, _, _ = self._rank(node)
        return scores, order

    def _rank(self, node: Node) -> tuple[list[float], list[int], int, int]:
        """(scores, positions, rank table row, bitset of what it selects), once per query."""
        cached = self._ranked.get(node)
        if cached is not None:
            return cached
        selected = self.index.evaluate(node)
        weights = []
        by_term: dict[str, int] = {}
        for shown, fld, bits in self.index.term_field_bits(node):
            hit = bits & selected
            if hit:
                by_term[shown] = by_term.get(shown, 0) | hit
                weights.append((hit, FIELD_WEIGHT.get(fld, 0.5)))
        weights += [(hit, 0.5) for hit in by_term.values()]
        small = selected.bit_count() <= SMALL
        ranked, order = (self._score_few if small else self._score_many)(selected, weights)
        cached = (ranked.tolist(), order.tolist(), len(self._lists), selected)
        self._ranked[node] = cached
        self._lists.append((ranked, order))
        self._entries.add_selected(selected.to_bytes(self._bytes, "little"))
        return cached

    def _score_many(
        self, selected: int, weights: list[tuple[int, float]]
    ) -> tuple[npt.NDArray[np.float64], Ints]:
        """(scores, positions) best first: popularity and freshness, then each weight added
        to the papers its bitset holds, in order, as arrays."""
        score = self._base.copy()
        for hit, weight in weights:
            score[self._flags(hit)] += weight
        found = np.flatnonzero(self._flags(selected))
        order = found[np.lexsort((self._paper_order[found], -score[found]))]
        return score[order], order

    def _score_few(
        self, selected: int, weights: list[tuple[int, float]]
    ) -> tuple[npt.NDArray[np.float64], Ints]:
        """`_score_many` for a few papers, in plain Python: the same additions in the same
        order, so the same floats, without the arrays' fixed cost."""
        base = self._base_list
        score = {i: base[i] for i in positions(selected)}
        for hit, weight in weights:
            for i in positions(hit):
                score[i] += weight
        rank = self._paper_rank
        order = sorted(score, key=lambda i: (-score[i], rank[i]))
        return np.array([score[i] for i in order], np.float64), np.array(order, np.int64)

    def _flags(self, bits: int) -> npt.NDArray[np.bool_]:
        """A bitset as one flag per paper."""
        raw = bits.to_bytes(self._bytes, "little")
        flags = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")
        return flags[: len(self.papers)].view(np.bool_)

    def prepared(self, kind: str, name: str) -> RankedQuery | None:
        """A topic (by name) or a query (by text), keyed by string so lookups never rehash
        a query tree; equal queries typed differently still share one ranking."""
        key = (kind, name)
        found = self._prepared.get(key)
        if found is None:
            if kind == "topic":
                topic = self.topics.get(name)
                if topic is None:
                    return None
                label, node = topic.title, self.node(topic.query)
            else:
                label, node = name, self.node(name)
            scores, order, qid, bits = self._rank(node)
            terms = tuple(t for t in self.index.positive_terms(node) if isinstance(t, Term))
            found = RankedQuery(kind, name, label, node, qid, bits, scores, order, terms)
            self._prepared[key] = found
            if kind == "topic":
                self._topic_sources[name] = found
            else:
                self._query_sources[name] = found
                self._query_qids[name] = qid
        return found

    def sources_of(self, sub: Subscriber) -> list[RankedQuery]:
        """The subscriber's topics, then their queries, prepared."""
        out = []
        topics, queries = self._topic_sources, self._query_sources
        for name in sub.topics:
            found = topics.get(name) or self.prepared("topic", name)
            if found is not None:
                out.append(found)
        for name in sub.queries:
            found = queries.get(name) or self.prepared("query", name)
            if found is not None:
                out.append(found)
        return out

    def qids_of(self, subs: Sequence[Subscriber]) -> list[tuple[int, ...]]:
        """Each subscriber's topics and queries as rows of the rank table, ranking any new
        one on the way: for a subscriber with queries only, one lookup per query."""
        get, out = self._query_qids.get, []
        for sub in subs:
            mine = () if sub.topics else tuple(map(get, sub.queries))
            if sub.topics or None in mine:
                mine = tuple(s.qid for s in self.sources_of(sub))
            out.append(cast(tuple[int, ...], mine))
        return out

    def has(self, paper_ids: Iterable[str]) -> bool:
        """Whether every one of these papers is in this edition's index."""
        return all(p in self.position for p in paper_ids)

    def has_any(self, paper_ids: Collection[str]) -> bool:
        """Whether any of these papers is in this edition's index."""
        position = self.position
        return any(p in position for p in paper_ids)

    def ranks(self, k: int) -> RankTable:
        """The rank table over every query ranked so far, at least `k` deep (or the whole
        list): built again only when a query was ranked since or a deeper cap asks."""
        table, longest = self.table, max(1, len(self.papers))
        k = min(k, longest)  # no list is longer than the edition
        if table.queries == len(self._lists) and table.depth >= k:
            return table
        depth = max(table.depth, MIN_DEPTH)
        while depth < k:
            depth *= 2
        depth = min(depth, longest)
        found = self._entries.extend(self._lists, depth)
        total, queries = len(found.scores), len(self._lists)
        order = np.lexsort((self._paper_order[found.papers], -found.scores))
        rank = np.empty(total, np.int64)
        rank[order] = np.arange(total, dtype=np.int64)
        top = np.full((queries, depth), total, np.int64)
        top[found.rows, found.cols] = rank
        paper_of = np.append(found.papers[order], len(self.papers))
        score = np.append(found.scores[order], 0.0)
        selected = found.selected[:queries]
        ids = self._ids[paper_of]
        self.table = RankTable(top, paper_of, selected, score, ids, queries, depth, total)
        return self.table


class _Entries:
    """The first `depth` entries of every ranked list, concatenated as queries are ranked,
    so a new rank table costs one sort instead of a pass over every list."""

    def __init__(self, width: int) -> None:
        self.selected = np.zeros((64, width), np.uint8)  # row q: list q's papers, packed
        self._count = 0
        self._empty(0)

    def _empty(self, depth: int) -> None:
        self.depth = depth
        self.lists = 0  # how many lists the arrays hold
        self.scores = np.zeros(0)
        self.papers = np.zeros(0, np.int64)
        self.rows = np.zeros(0, np.int64)  # the entry's list
        self.cols = np.zeros(0, np.int64)  # its place in that list

    def add_selected(self, packed: bytes) -> None:
        """The next list's selected papers, as bytes of bits."""
        if self._count == len(self.selected):
            self.selected = np.concatenate([self.selected, np.zeros_like(self.selected)])
        self.selected[self._count] = np.frombuffer(packed, np.uint8)
        self._count += 1

    def extend(self, lists: Sequence[tuple[npt.NDArray[np.float64], Ints]], depth: int) -> _Entries:
        """Bring in the lists ranked since (all of them when the depth changed)."""
        if depth != self.depth:
            self._empty(depth)
        new = lists[self.lists :]
        if new:
            lens = np.fromiter((min(len(o), depth) for _, o in new), np.int64, len(new))
            starts = np.repeat(np.cumsum(lens) - lens, lens)
            self.scores = np.concatenate([self.scores, *(s[:depth] for s, _ in new)])
            self.papers = np.concatenate([self.papers, *(o[:depth] for _, o in new)])
            rows = np.repeat(np.arange(self.lists, len(lists), dtype=np.int64), lens)
            self.rows = np.concatenate([self.rows, rows])
            self.cols = np.concatenate([self.cols, np.arange(int(lens.sum())) - starts])
            self.lists = len(lists)
        return self
