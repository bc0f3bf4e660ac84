"""What matching hands on to building an email: each paper with its score and why it is
there, a subscriber's capped list with the count before the cap, and recommendations.
Holds no ranking logic: a Match asks the matcher that made it for its reasons and terms.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, overload

from digest.match.ranking import RankedQuery
from digest.models import Paper, Subscriber
from digest.query import Hit, Term


@dataclass(frozen=True, slots=True)
class Reason:
    """One query or topic of the subscriber's that selected the paper, and the terms that hit."""

    kind: str  # "topic" or "query"
    name: str  # the topic's name, or the query's text
    label: str  # how it reads: the topic's title, or the query
    hits: tuple[Hit, ...]


class Explains(Protocol):
    """What a Match asks of the matcher that made it, so explanations are worked out once per
    edition and shared by every subscriber who gets the paper."""

    def reason(self, source: RankedQuery, i: int) -> Reason:
        """Why one source selected paper i."""

    def terms_for(self, selecting: tuple[RankedQuery, ...]) -> tuple[Term, ...]:
        """The terms to highlight for a set of selecting queries."""


class Match:
    """One paper in one subscriber's email. Why it is there (`reasons`) and what to highlight
    (`terms`) are worked out on first use and shared by everyone whose queries selected it."""

    __slots__ = ("_index", "_key", "_matcher", "_selecting", "_sources", "paper", "score")

    def __init__(
        self,
        paper: Paper,
        score: float,
        matcher: Explains,
        index: int,
        sources: tuple[RankedQuery, ...],
    ) -> None:
        self.paper = paper
        self.score = score
        self._matcher = matcher
        self._index = index
        self._sources = sources
        self._selecting: tuple[RankedQuery, ...] | None = None
        self._key: tuple[str, tuple[str, ...]] | None = None

    @property
    def selecting(self) -> tuple[RankedQuery, ...]:
        """The subscriber's topics and queries that selected this paper: worked out once, as
        `key`, `reasons` and `terms` each read it."""
        found = self._selecting
        if found is None:
            mask = 1 << self._index
            found = self._selecting = tuple(s for s in self._sources if s.bits & mask)
        return found

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
        """Equal for two subscribers whose emails would show this paper identically (made
        once: the card cache looks it up for every email that shows the match)."""
        if self._key is None:
            self._key = self.paper.id, tuple(f"{s.kind}:{s.name}" for s in self.selecting)
        return self._key

    def __repr__(self) -> str:
        return f"Match({self.paper.id!r}, score={self.score:.2f})"


@dataclass(frozen=True, slots=True)
class Recommended:
    """A paper recommended from what the reader liked (not selected by a query): its profile
    score and the reason in words ("Like <title> — shared: a, b")."""

    paper: Paper
    score: float
    why: str


class Made(Protocol):
    """Where a batch's merged matches live until asked for: one subscriber's matches are
    a run of flat lists, so a Matches holds where its run is, not Match objects."""

    ids: list[str]  # the batch's matched paper ids, run after run

    def matches(self, at: int, count: int, sub: Subscriber) -> list[Match]:
        """The Match objects of the run at `at`, for this subscriber's topics and queries."""


class Matches(Sequence[Match]):
    """A subscriber's ranked, capped matches; `total` counts every eligible match before the
    cap, so an email can say "10 of 18 matches" instead of hiding what the cap left out.

    Immutable. A batch's results make their Match objects on first use (`deferred`): a plan
    reads only `paper_ids`, and a million Match objects cost more than the merge itself."""

    __slots__ = ("_at", "_count", "_items", "_made", "_sub", "total")

    def __init__(self, items: Iterable[Match] = (), total: int | None = None) -> None:
        self._items: list[Match] | None = list(items)
        self._made: Made | None = None
        self._at = 0
        self._count = len(self._items)
        self._sub: Subscriber | None = None
        self.total = self._count if total is None else max(total, self._count)

    @classmethod
    def deferred(cls, made: Made, at: int, count: int, total: int, sub: Subscriber) -> Matches:
        """Matches whose Match objects `made` makes on first use."""
        self = cls.__new__(cls)
        self._items, self._made, self._at, self._count = None, made, at, count
        self._sub, self.total = sub, max(total, count)
        return self

    @property
    def items(self) -> list[Match]:
        """The Match objects, made once."""
        if self._items is None:
            assert self._made is not None and self._sub is not None
            self._items = self._made.matches(self._at, self._count, self._sub)
        return self._items

    @property
    def paper_ids(self) -> list[str]:
        """The matched papers' ids, in order, without making Match objects if not yet made."""
        if self._items is None and self._made is not None:
            return self._made.ids[self._at : self._at + self._count]
        return [m.paper.id for m in self.items]

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, at: int) -> Match: ...

    @overload
    def __getitem__(self, at: slice) -> list[Match]: ...

    def __getitem__(self, at: int | slice) -> Match | list[Match]:
        return self.items[at]

    def __iter__(self) -> Iterator[Match]:
        return iter(self.items)

    def __eq__(self, other: object) -> bool:
        """Equal to the same Match objects in the same order, as a list (total aside)."""
        if isinstance(other, Matches):
            return self.items == other.items
        return isinstance(other, list) and self.items == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Matches({self.items!r}, total={self.total})"


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1 us, one per subscriber
class SubscriberMatches:
    """One subscriber's matches, as `match_subscribers` streams them."""

    subscriber: Subscriber
    matches: Matches
    new_papers: int  # how many new papers the edition had, for "7 of 212 new papers"

    @property
    def matched(self) -> int:
        """How many papers matched before the subscriber's cap."""
        return self.matches.total
