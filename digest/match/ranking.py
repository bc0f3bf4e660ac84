"""Per-query ranking for one edition: each distinct query (a topic many people share counts
once) parsed, evaluated and scored once, and the ranked lists turned into integer ranks
comparable across queries. Knows papers and queries; never a subscriber's cap or history.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from digest.models import Paper, Subscriber, Topic
from digest.query import Node, PaperIndex, Term, parse, terms_of

FIELD_WEIGHT = {"title": 3.0, "abstract": 1.0, "author": 2.0, "category": 1.0, "source": 0.5}
POPULARITY_WEIGHT = 0.4  # ln(1+upvotes): 118 upvotes stays under the title-vs-abstract gap
FRESHNESS_WEIGHT = 0.5
FRESHNESS_DAYS = 7.0
MIN_DEPTH = 16  # entries per query kept in the shared rank table (deeper when a cap asks)

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
    queries: rank r is paper `paper[r]` at `score[r]`, and a lower rank sorts first exactly
    as (-score, -upvotes, id) does. `end` pads a shorter list and stands for no paper."""

    top: Ints  # (queries, depth) ranks
    paper_of: Ints  # rank -> paper position, `end` -> a position no paper has
    selected: npt.NDArray[np.uint8]  # (queries, bytes): every paper each query selects
    paper: list[int]
    score: list[float]
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
        self._bytes = (len(self.papers) + 7) // 8
        self.upvotes = [p.upvotes or 0 for p in self.papers]
        self.position = {p.id: i for i, p in enumerate(self.papers)}
        self.order_key = [(-(p.upvotes or 0), p.id) for p in self.papers]
        by_key = sorted(range(len(self.papers)), key=lambda i: (self.order_key[i], i))
        self._paper_order = np.empty(len(self.papers), np.int64)
        self._paper_order[by_key] = np.arange(len(self.papers))
        self._nodes: dict[str, Node] = {}
        self._ranked: dict[Node, tuple[list[float], list[int]]] = {}
        self._prepared: dict[tuple[str, str], RankedQuery] = {}
        self._topic_sources: dict[str, RankedQuery] = {}
        self._query_sources: dict[str, RankedQuery] = {}
        self._qids: dict[Node, int] = {}
        self._lists: list[tuple[npt.NDArray[np.float64], Ints]] = []
        self._selected: list[npt.NDArray[np.uint8]] = []  # each list's papers, packed bits
        none = np.zeros((0, 0), np.int64)
        self.table = RankTable(
            none, np.zeros(1, np.int64), np.zeros((0, 0), np.uint8), [0], [0.0], 0, 0, 0
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
        cached = self._ranked.get(node)
        if cached is not None:
            return cached
        selected = self.index.evaluate(node)
        score = self._base.copy()  # popularity and freshness, then relevance on top
        by_term: dict[str, int] = {}
        for shown, fld, bits in self.index.term_field_bits(node):
            hit = bits & selected
            by_term[shown] = by_term.get(shown, 0) | hit
            score[self._positions(hit)] += FIELD_WEIGHT.get(fld, 0.5)
        for hit in by_term.values():
            score[self._positions(hit)] += 0.5
        found = self._positions(selected)
        order = found[np.lexsort((self._paper_order[found], -score[found]))]
        cached = (score[order].tolist(), order.tolist())
        self._ranked[node] = cached
        self._qids[node] = len(self._lists)
        self._lists.append((score[order], order))
        self._selected.append(np.frombuffer(selected.to_bytes(self._bytes, "little"), np.uint8))
        return cached

    def _positions(self, bits: int) -> Ints:
        """The set bits of a bitset as an array of paper positions, ascending."""
        raw = bits.to_bytes(max(self._bytes, (bits.bit_length() + 7) // 8), "little")
        flags = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")
        return np.flatnonzero(flags[: len(self.papers)])

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
            scores, order = self.ranked(node)
            terms = tuple(t for t in terms_of(node) if isinstance(t, Term))
            bits = self.index.evaluate(node)
            qid = self._qids[node]
            found = RankedQuery(kind, name, label, node, qid, bits, scores, order, terms)
            self._prepared[key] = found
            (self._topic_sources if kind == "topic" else self._query_sources)[name] = found
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
        lists = self._lists
        lens = [min(len(order), depth) for _, order in lists]
        total = sum(lens)
        scores = np.concatenate([s[:depth] for s, _ in lists] or [np.zeros(0)])
        found = np.concatenate([o[:depth] for _, o in lists] or [np.zeros(0, np.int64)])
        order = np.lexsort((self._paper_order[found], -scores))
        rank = np.empty(total, np.int64)
        rank[order] = np.arange(total, dtype=np.int64)
        top = np.full((len(lists), depth), total, np.int64)
        starts = np.repeat(np.cumsum(lens) - lens, lens)
        top[np.repeat(np.arange(len(lists)), lens), np.arange(total) - starts] = rank
        paper_of = np.append(found[order], len(self.papers))
        score = np.append(scores[order], 0.0)
        selected = np.stack(self._selected) if lists else np.zeros((0, 0), np.uint8)
        self.table = RankTable(
            top, paper_of, selected, paper_of.tolist(), score.tolist(), len(lists), depth, total
        )
        return self.table
