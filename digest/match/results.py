"""What matching hands on to building an email: each paper with its score and why it is
there, a subscriber's capped list with the count before the cap, and recommendations.
Holds no ranking logic: a Match asks the matcher that made it for its reasons and terms.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

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

    __slots__ = ("_index", "_matcher", "_sources", "paper", "score")

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

    @property
    def selecting(self) -> tuple[RankedQuery, ...]:
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
