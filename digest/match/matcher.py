"""The matching API for one edition: a subscriber's ranked, capped matches, one by one or a
batch at a time with the same result, and a planned delivery's matches rebuilt in its order.
Ranking lives in `ranking`, the array merge in `merge`; renders and sends nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime

from digest.match.merge import Picks, pick
from digest.match.ranking import RankedQuery, Rankings
from digest.match.results import Match, Matches, Reason
from digest.models import Paper, Subscriber, Topic
from digest.query import Node, PaperIndex, Term


class Matcher:
    """Everything shared by all subscribers of one edition: the index and per-query rankings.

    A subscriber's list is an exact top-k merge of their queries' ranked lists: one by one
    in `for_subscriber`, a batch at a time over a table of ranks in `for_subscribers`, with
    the same result, subscriber by subscriber.
    """

    def __init__(self, papers: Sequence[Paper], topics: Mapping[str, Topic], now: datetime):
        self.rankings = Rankings(papers, topics, now)
        self.papers: list[Paper] = self.rankings.papers
        self.topics = topics
        self.index: PaperIndex = self.rankings.index
        self.merged = 0  # subscribers merged as arrays: one per filter signature in a batch
        self._reasons: dict[tuple[int, int], Reason] = {}
        self._term_sets: dict[tuple[int, ...], tuple[Term, ...]] = {}
        self._below: dict[int, int] = {}

    @property
    def distinct_queries(self) -> int:
        """How many distinct queries have been ranked: the shared work, counted once each."""
        return self.rankings.distinct_queries

    def node(self, text: str) -> Node:
        """A query's tree, parsed once per distinct text (QueryError if it does not parse)."""
        return self.rankings.node(text)

    def ranked(self, node: Node) -> tuple[list[float], list[int]]:
        """(scores, paper positions) of what one query selects, best first; once per query."""
        return self.rankings.ranked(node)

    def prepared(self, kind: str, name: str) -> RankedQuery | None:
        """A topic (by name) or a query (by text), ranked once; None for an unknown topic."""
        return self.rankings.prepared(kind, name)

    def sources_of(self, sub: Subscriber) -> list[RankedQuery]:
        """The subscriber's topics, then their queries, prepared."""
        return self.rankings.sources_of(sub)

    def has(self, paper_ids: Iterable[str]) -> bool:
        """Whether every one of these papers is in this matcher's index."""
        return self.rankings.has(paper_ids)

    def has_any(self, paper_ids: Collection[str]) -> bool:
        """Whether any of these papers is in this matcher's index."""
        return self.rankings.has_any(paper_ids)

    def reason(self, source: RankedQuery, i: int) -> Reason:
        """Why one source selected paper i; explained once, shared by everyone who has it."""
        key = (id(source), i)
        found = self._reasons.get(key)
        if found is None:
            hits = tuple(self.index.explain(source.node, i))
            found = self._reasons[key] = Reason(source.kind, source.name, source.label, hits)
        return found

    def terms_for(self, selecting: tuple[RankedQuery, ...]) -> tuple[Term, ...]:
        """The terms to highlight for a set of selecting queries, merged once per set."""
        key = tuple(id(s) for s in selecting)
        found = self._term_sets.get(key)
        if found is None:
            merged: dict[Term, None] = {}
            for source in selecting:
                merged.update(dict.fromkeys(source.terms))
            found = self._term_sets[key] = tuple(merged)
        return found

    def matches_for(self, sub: Subscriber, paper_ids: Sequence[str]) -> list[Match]:
        """Rebuild the matches of a planned delivery, in its order: a resend after a crash
        shows the same papers for the same reasons."""
        sources = tuple(self.sources_of(sub))
        position = self.rankings.position
        out = []
        for paper_id in paper_ids:
            i = position[paper_id]
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
        this edition takes the one-by-one path. Match objects are made when first read."""
        sent = sent or {}
        picked = pick(self.rankings, subs, self.rankings.qids_of(subs), sent)
        self.merged += picked.merged
        made = _Batch(self, picked)
        deferred = Matches.deferred
        for sub, at, count, total in zip(subs, picked.at, picked.count, picked.total, strict=True):
            if at < 0:
                yield self.for_subscriber(sub, sent.get(sub.id or -1, ()))
            else:
                yield deferred(made, at, count, total, sub)

    def _below_floor(self, floor: int) -> int:
        """The bitset of papers with fewer than `floor` upvotes (one per distinct floor)."""
        found = self._below.get(floor)
        if found is None:
            upvotes = self.rankings.upvotes
            found = sum(1 << i for i, votes in enumerate(upvotes) if votes < floor)
            self._below[floor] = found
        return found

    def _eligible_count(self, sources: Sequence[RankedQuery], sent: set[str], floor: int) -> int:
        """Every paper the subscriber's queries select that they may still get: bit operations
        over the queries' bitsets, so counting what the cap drops costs next to nothing."""
        union = 0
        for source in sources:
            union |= source.bits
        if floor:
            union &= ~self._below_floor(floor)
        if sent:
            position = self.rankings.position
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
        papers, upvotes = self.papers, self.rankings.upvotes
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
        order_key = self.rankings.order_key
        chosen = sorted([(-score, order_key[i], i) for i, score in best.items()])[:k]
        return Matches(
            (Match(papers[i], -neg, self, i, sources) for neg, _, i in chosen),
            self._eligible_count(sources, sent, floor),
        )


class _Batch:
    """A merged batch's ranks, turned into Match objects only when asked; subscribers with
    the same signature and the same topics and queries share them."""

    __slots__ = ("_made", "ids", "matcher", "picked")

    def __init__(self, matcher: Matcher, picked: Picks) -> None:
        self.matcher = matcher
        self.picked = picked
        self.ids = picked.ids
        self._made: dict[tuple[int, tuple[RankedQuery, ...]], list[Match]] = {}

    def matches(self, at: int, count: int, sub: Subscriber) -> list[Match]:
        """The Match objects of ranks[at : at + count], for this subscriber's sources."""
        sources = tuple(self.matcher.sources_of(sub))
        found = self._made.get((at, sources))
        if found is None:
            table, papers, matcher = self.picked.table, self.matcher.papers, self.matcher
            ranks = self.picked.ranks[at : at + count]
            paper, score = table.paper_of[ranks].tolist(), table.score[ranks].tolist()
            found = [
                Match(papers[i], s, matcher, i, sources) for i, s in zip(paper, score, strict=True)
            ]
            if at in self.picked.shared:
                self._made[(at, sources)] = found
        return found
