"""Papers x subscribers -> ranked matches for an edition, each with why it is there.

One inverted index over the edition's new papers; each DISTINCT query (a topic many people
share counts once) is evaluated and ranked once, into integer ranks comparable across
queries; each subscriber then only merges the ranked lists of their own queries, drops what
they already received and caps. A batch of subscribers is merged as arrays, once per filter
signature. `EditionMatchers` keeps one such index per edition. Renders and sends nothing.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

import numpy as np
import numpy.typing as npt

from digest.edition import Edition, Window, papers_in, window_of
from digest.models import Paper, Subscriber, Topic
from digest.query import Hit, Node, PaperIndex, Term, parse, terms_of
from digest.store import Store

FIELD_WEIGHT = {"title": 3.0, "abstract": 1.0, "author": 2.0, "category": 1.0, "source": 0.5}
POPULARITY_WEIGHT = 0.4  # ln(1+upvotes): 118 upvotes stays under the title-vs-abstract gap
FRESHNESS_WEIGHT = 0.5
FRESHNESS_DAYS = 7.0
BATCH = 250
MIN_DEPTH = 16  # entries per query kept in the shared rank table (deeper when a cap asks)
# What matching reads of a subscriber: `Store.iter_subscribers(fields=MATCH_FIELDS)`.
MATCH_FIELDS = ("id", "email", "status", "queries", "topics", "max_papers", "min_upvotes")

_Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Reason:
    """One query or topic of the subscriber's that selected the paper, and the terms that hit."""

    kind: str  # "topic" or "query"
    name: str  # the topic's name, or the query's text
    label: str  # how it reads: the topic's title, or the query
    hits: tuple[Hit, ...]


class Match:
    """One paper in one subscriber's email. Why it is there (`reasons`) and what to highlight
    (`terms`) are worked out on first use and shared by everyone whose queries selected it."""

    __slots__ = ("_index", "_matcher", "_sources", "paper", "score")

    def __init__(
        self,
        paper: Paper,
        score: float,
        matcher: Matcher,
        index: int,
        sources: tuple[_Prepared, ...],
    ) -> None:
        self.paper = paper
        self.score = score
        self._matcher = matcher
        self._index = index
        self._sources = sources

    @property
    def selecting(self) -> tuple[_Prepared, ...]:
        """The subscriber's topics and queries that selected this paper."""
        mask = 1 << self._index
        return tuple(s for s in self._sources if s.bits & mask)

    @property
    def reasons(self) -> tuple[Reason, ...]:
        """Why the paper is in the email: one reason per selecting topic or query."""
        return tuple(self._matcher.reason(s, self._index) for s in self.selecting)

    @property
    def terms(self) -> tuple[Term, ...]:
        """Positive text terms of the selecting queries, for highlighting."""
        return self._matcher.terms_for(self.selecting)

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        """Equal for two subscribers whose emails would show this paper identically."""
        return self.paper.id, tuple(f"{s.kind}:{s.name}" for s in self.selecting)

    def __repr__(self) -> str:
        return f"Match({self.paper.id!r}, score={self.score:.2f})"


@dataclass(frozen=True, slots=True)
class Recommended:
    """A paper recommended from what the reader liked (not selected by a query): its profile
    score and the reason in words ("Like <title> — shared: a, b")."""

    paper: Paper
    score: float
    why: str


class Matches(list[Match]):
    """A subscriber's ranked, capped matches; `total` counts every eligible match before the
    cap, so an email can say "10 of 18 matches" instead of hiding what the cap left out."""

    __slots__ = ("total",)

    def __init__(self, items: Iterable[Match] = (), total: int | None = None) -> None:
        super().__init__(items)
        self.total = len(self) if total is None else max(total, len(self))


@dataclass(frozen=True, slots=True)
class SubscriberMatches:
    """One subscriber's matches, as `match_subscribers` streams them."""

    subscriber: Subscriber
    matches: Matches
    new_papers: int  # how many new papers the edition had, for "7 of 212 new papers"

    @property
    def matched(self) -> int:
        """How many papers matched before the subscriber's cap."""
        return self.matches.total


def _freshness(paper: Paper, now: datetime) -> float:
    if not paper.published:
        return 0.0
    try:
        published = datetime.fromisoformat(paper.published.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if published.tzinfo is None:
        return 0.0
    age = (now - published).total_seconds() / 86400
    return max(0.0, 1.0 - max(age, 0.0) / FRESHNESS_DAYS)


@dataclass(slots=True, eq=False)  # equal by identity: one per (kind, name) per matcher
class _Prepared:
    """One of a subscriber's topics or queries, evaluated and ranked once for everyone."""

    kind: str
    name: str
    label: str
    node: Node
    qid: int  # its ranked list's row in the matcher's rank table, shared by equal queries
    bits: int
    scores: list[float]
    order: list[int]
    terms: tuple[Term, ...]
    _score_of: dict[int, float] | None = None

    def score_of(self, i: int) -> float:
        if self._score_of is None:
            self._score_of = dict(zip(self.order, self.scores, strict=True))
        return self._score_of.get(i, 0.0)


@dataclass(frozen=True, slots=True)
class _RankTable:
    """The first `depth` entries of every ranked query as integer ranks comparable across
    queries: rank r is paper `paper[r]` at `score[r]`, and a lower rank sorts first exactly
    as (-score, -upvotes, id) does. `end` pads a shorter list and stands for no paper."""

    top: _Ints  # (queries, depth) ranks
    paper_of: _Ints  # rank -> paper position, `end` -> a position no paper has
    selected: npt.NDArray[np.uint8]  # (queries, bytes): every paper each query selects
    paper: list[int]
    score: list[float]
    queries: int
    depth: int
    end: int


@dataclass(slots=True)
class _Picks:
    """A batch's merged results: subscriber n's ranks are ranks[at[n] : at[n] + count[n]]
    (at -1: take the one-by-one path); kept flat so a batch allocates few objects."""

    at: list[int]
    count: list[int]
    total: list[int]
    ranks: list[int]
    shared: set[int]  # the `at` of every result more than one subscriber gets


class Matcher:
    """Everything shared by all subscribers of one edition: the index and per-query rankings.

    A subscriber's list is an exact top-k merge of their queries' ranked lists: one by one
    in `for_subscriber`, a batch at a time over a table of ranks in `for_subscribers`, with
    the same result, subscriber by subscriber.
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
        self._upvotes = [p.upvotes or 0 for p in self.papers]
        self._nodes: dict[str, Node] = {}
        self._ranked: dict[Node, tuple[list[float], list[int]]] = {}
        self._prepared: dict[tuple[str, str], _Prepared] = {}
        self._topic_sources: dict[str, _Prepared] = {}
        self._query_sources: dict[str, _Prepared] = {}
        self._reasons: dict[tuple[int, int], Reason] = {}
        self._term_sets: dict[tuple[int, ...], tuple[Term, ...]] = {}
        self._position = {p.id: i for i, p in enumerate(self.papers)}
        self._below: dict[int, int] = {}
        self._order_key = [(-(p.upvotes or 0), p.id) for p in self.papers]
        by_key = sorted(range(len(self.papers)), key=lambda i: (self._order_key[i], i))
        self._paper_order = np.empty(len(self.papers), np.int64)
        self._paper_order[by_key] = np.arange(len(self.papers))
        self._qids: dict[Node, int] = {}
        self._lists: list[tuple[npt.NDArray[np.float64], _Ints]] = []
        self._selected: list[npt.NDArray[np.uint8]] = []  # each list's papers, packed bits
        none = np.zeros((0, 0), np.int64)
        self.merged = 0  # subscribers merged as arrays: one per filter signature in a batch
        self._table = _RankTable(
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
        """(scores, paper positions) of what one query selects, best first; once per query.

        Relevance: each positive term adds its field's weight for each field it hits, plus a
        half point per distinct term that hits at all; then popularity and freshness."""
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

    def _positions(self, bits: int) -> _Ints:
        """The set bits of a bitset as an array of paper positions, ascending."""
        raw = bits.to_bytes(max(self._bytes, (bits.bit_length() + 7) // 8), "little")
        flags = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")
        return np.flatnonzero(flags[: len(self.papers)])

    def prepared(self, kind: str, name: str) -> _Prepared | None:
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
            found = _Prepared(kind, name, label, node, qid, bits, scores, order, terms)
            self._prepared[key] = found
            (self._topic_sources if kind == "topic" else self._query_sources)[name] = found
        return found

    def sources_of(self, sub: Subscriber) -> list[_Prepared]:
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

    def reason(self, source: _Prepared, i: int) -> Reason:
        """Why one source selected paper i; explained once, shared by everyone who has it."""
        key = (id(source), i)
        found = self._reasons.get(key)
        if found is None:
            hits = tuple(self.index.explain(source.node, i))
            found = self._reasons[key] = Reason(source.kind, source.name, source.label, hits)
        return found

    def terms_for(self, selecting: tuple[_Prepared, ...]) -> tuple[Term, ...]:
        """The terms to highlight for a set of selecting queries, merged once per set."""
        key = tuple(id(s) for s in selecting)
        found = self._term_sets.get(key)
        if found is None:
            merged: dict[Term, None] = {}
            for source in selecting:
                merged.update(dict.fromkeys(source.terms))
            found = self._term_sets[key] = tuple(merged)
        return found

    def has(self, paper_ids: Iterable[str]) -> bool:
        """Whether every one of these papers is in this matcher's index."""
        return all(p in self._position for p in paper_ids)

    def matches_for(self, sub: Subscriber, paper_ids: Sequence[str]) -> list[Match]:
        """Rebuild the matches of a planned delivery, in its order: a resend after a crash
        shows the same papers for the same reasons."""
        sources = tuple(self.sources_of(sub))
        out = []
        for paper_id in paper_ids:
            i = self._position[paper_id]
            mask = 1 << i
            scores = [s.score_of(i) for s in sources if s.bits & mask]
            out.append(Match(self.papers[i], max(scores, default=0.0), self, i, sources))
        return out

    def for_subscribers(
        self, subs: Sequence[Subscriber], sent: Mapping[int, Collection[str]] | None = None
    ) -> Iterator[Matches]:
        """`for_subscriber` for each of a batch, in order, with `sent` by subscriber id.

        Subscribers with the same filters and cap share one merge; the others with nothing
        to skip are merged together as arrays of ranks; a floor or an already-sent paper of
        this edition takes the one-by-one path. Match objects are made as you iterate."""
        sent = sent or {}
        sources = [tuple(self.sources_of(sub)) for sub in subs]
        picked = self._picks(subs, sources, sent)
        table, papers = self._table, self.papers
        paper, score, flat, shared = table.paper, table.score, picked.ranks, picked.shared
        made: dict[int, list[Match]] = {}  # a shared signature's Match objects, made once
        for sub, mine, at, count, total in zip(
            subs, sources, picked.at, picked.count, picked.total, strict=True
        ):
            if at < 0:
                yield self.for_subscriber(sub, sent.get(sub.id or -1, ()))
                continue
            found = made.get(at) if shared else None
            if found is None:
                found = [
                    Match(papers[i := paper[r]], score[r], self, i, mine)
                    for r in flat[at : at + count]
                ]
                if shared and at in shared:
                    made[at] = found
            yield Matches(found, total)

    def _picks(
        self,
        subs: Sequence[Subscriber],
        sources: Sequence[tuple[_Prepared, ...]],
        sent: Mapping[int, Collection[str]],
    ) -> _Picks:
        """Each subscriber's chosen ranks and total, merged once per filter signature."""
        picked = _Picks([-1] * len(subs), [0] * len(subs), [0] * len(subs), [], set())
        first: dict[tuple[int, tuple[_Prepared, ...]], int] = {}
        owner = [-1] * len(subs)
        for n, sub in enumerate(subs):
            mine = sources[n]
            if sub.min_upvotes or sub.max_papers < 1 or not mine:
                continue
            if sent:
                got = sent.get(sub.id or -1)
                if got and self.has_any(got):
                    continue
            owner[n] = first.setdefault((sub.max_papers, mine), n)
        if first:
            self._ensure_ranks(max(subs[n].max_papers for n in first.values()))
            self._merge_firsts(list(first.values()), subs, sources, picked)
            for n, found in enumerate(owner):
                if found >= 0 and found != n:
                    picked.at[n] = picked.at[found]
                    picked.count[n] = picked.count[found]
                    picked.total[n] = picked.total[found]
                    picked.shared.add(picked.at[found])
        return picked

    def has_any(self, paper_ids: Collection[str]) -> bool:
        """Whether any of these papers is in this matcher's index."""
        position = self._position
        return any(p in position for p in paper_ids)

    def _merge_firsts(
        self,
        firsts: list[int],
        subs: Sequence[Subscriber],
        sources: Sequence[tuple[_Prepared, ...]],
        picked: _Picks,
    ) -> None:
        """Merge these subscribers (one per signature), grouped by how many queries they
        have, into `picked`."""
        groups: dict[int, list[int]] = {}
        for n in firsts:
            groups.setdefault(len(sources[n]), []).append(n)
        self.merged += len(firsts)
        for group in groups.values():
            width = len(sources[group[0]])
            qids = np.array([s.qid for n in group for s in sources[n]], np.int64)
            qids = qids.reshape(len(group), width)
            caps = np.array([subs[n].max_papers for n in group], np.int64)
            ranks, counts = self._merge(qids, caps)
            union = np.bitwise_or.reduce(self._table.selected[qids], axis=1)
            totals = np.bitwise_count(union).sum(axis=1, dtype=np.int64).tolist()
            base, cap = len(picked.ranks), ranks.shape[1]
            picked.ranks.extend(ranks.ravel().tolist())
            for row, (n, count) in enumerate(zip(group, counts.tolist(), strict=True)):
                picked.at[n] = base + row * cap
                picked.count[n] = count
                picked.total[n] = totals[row]

    def _ensure_ranks(self, k: int) -> None:
        """The rank table covers every query ranked so far, at least `k` deep."""
        table, longest = self._table, max(1, len(self.papers))
        k = min(k, longest)  # no list is longer than the edition
        if table.queries == len(self._lists) and table.depth >= k:
            return
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
        self._table = _RankTable(
            top, paper_of, selected, paper_of.tolist(), score.tolist(), len(lists), depth, total
        )

    def _merge(self, qids: _Ints, caps: _Ints) -> tuple[_Ints, _Ints]:
        """Each row's best ranks over its queries' lists, one per paper, at most its cap:
        a paper's best score is its lowest rank, so sorting by (paper, rank) and dropping
        all but the first of each paper leaves exactly the papers `for_subscriber` merges."""
        table = self._table
        rows, width = qids.shape
        cap = int(caps.max())
        top = table.top[qids, :cap]  # (rows, width, at most cap)
        ranks = top.reshape(rows, width * top.shape[2])
        if width > 1:
            keyed = (table.paper_of[ranks] << 32) | ranks
            keyed.sort(axis=1)
            ranks = keyed & 0xFFFFFFFF
            ranks[:, 1:][(keyed[:, 1:] >> 32) == (keyed[:, :-1] >> 32)] = table.end
            ranks.sort(axis=1)
            ranks = ranks[:, :cap]
        return ranks, np.minimum((ranks < table.end).sum(axis=1), caps)

    def _below_floor(self, floor: int) -> int:
        """The bitset of papers with fewer than `floor` upvotes (one per distinct floor)."""
        found = self._below.get(floor)
        if found is None:
            found = sum(1 << i for i, votes in enumerate(self._upvotes) if votes < floor)
            self._below[floor] = found
        return found

    def _eligible_count(self, sources: Sequence[_Prepared], sent: set[str], floor: int) -> int:
        """Every paper the subscriber's queries select that they may still get: bit operations
        over the queries' bitsets, so counting what the cap drops costs next to nothing."""
        union = 0
        for source in sources:
            union |= source.bits
        if floor:
            union &= ~self._below_floor(floor)
        if sent:
            position = self._position
            for paper_id in sent:
                i = position.get(paper_id)
                if i is not None:
                    union &= ~(1 << i)
        return union.bit_count()

    def for_subscriber(self, sub: Subscriber, already_sent: Iterable[str] = ()) -> Matches:
        """The subscriber's papers: merged over their queries, filtered, ranked, capped;
        `total` on the result counts the eligible matches before the cap.

        A paper scores its best score over the subscriber's queries, so each ranked list is
        read only until it has given k eligible papers: nothing deeper can reach the top k."""
        sent = set(already_sent)
        floor = sub.min_upvotes or 0
        papers, upvotes = self.papers, self._upvotes
        sources = tuple(self.sources_of(sub))
        k = sub.max_papers
        best: dict[int, float] = {}
        get = best.get
        for source in sources:
            if not sent and not floor:
                for score, i in zip(source.scores[:k], source.order[:k], strict=True):
                    if score > get(i, -1.0):
                        best[i] = score
                continue
            eligible = 0
            for score, i in zip(source.scores, source.order, strict=True):
                if upvotes[i] < floor or (sent and papers[i].id in sent):
                    continue
                if score > get(i, -1.0):
                    best[i] = score
                eligible += 1
                if eligible == k:
                    break
        order_key = self._order_key
        chosen = sorted([(-score, order_key[i], i) for i, score in best.items()])[:k]
        return Matches(
            (Match(papers[i], -neg, self, i, sources) for neg, _, i in chosen),
            self._eligible_count(sources, sent, floor),
        )


def match_subscribers(
    store: Store,
    matcher: Matcher,
    subscribers: Iterable[Subscriber],
) -> Iterator[SubscriberMatches]:
    """Stream every subscriber's matches, a batch at a time, never a paper they already got."""
    ids = [p.id for p in matcher.papers]
    sent = store.sent_by_subscriber(ids)
    stream = iter(subscribers)
    while batch := list(islice(stream, BATCH)):
        for sub, matches in zip(batch, matcher.for_subscribers(batch, sent), strict=True):
            yield SubscriberMatches(sub, matches, len(ids))


class EditionMatchers:
    """One Matcher per edition, built on first use from that edition's new papers.

    `windows` fixes the windows a run planned with; any other edition (a delivery planned by
    an earlier run, or `digest send` alone) takes its window as the store has it. A planned
    delivery is rebuilt from its own edition's matcher, else the run's edition of its cadence
    (a subscriber whose local date is ahead of the run's), else a matcher over just its papers.
    A match depends only on its paper and the subscriber's queries, never on the rest of the
    index, so which matcher answers changes how fast an email is built, never the email.
    """

    def __init__(
        self,
        store: Store,
        topics: Mapping[str, Topic],
        now: datetime,
        windows: Mapping[Edition, Window] | None = None,
    ) -> None:
        self.store = store
        self.topics = topics
        self.now = now
        self.windows = dict(windows or {})
        self._matchers: dict[Edition, Matcher] = {}

    def of(self, edition: Edition) -> Matcher:
        """The matcher over the edition's new papers."""
        found = self._matchers.get(edition)
        if found is None:
            window = self.windows.get(edition) or window_of(self.store, edition, self.now)
            found = Matcher(papers_in(self.store, window), self.topics, self.now)
            self._matchers[edition] = found
        return found

    def matches_for(
        self, sub: Subscriber, edition: Edition, paper_ids: Sequence[str]
    ) -> list[Match]:
        """A planned delivery's matches, in its order, for the same reasons as when planned."""
        current = Edition.of(edition.cadence, self.now.date())
        for candidate in (edition, current):
            matcher = self.of(candidate)
            if matcher.has(paper_ids):
                return matcher.matches_for(sub, paper_ids)
        alone = Matcher(self.store.papers_by_id(paper_ids), self.topics, self.now)
        return alone.matches_for(sub, paper_ids)
