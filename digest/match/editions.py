"""Matching wired to the store: one Matcher per edition, built from that edition's new
papers, and every subscriber's matches streamed a batch at a time, never a paper twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from itertools import islice

from digest.edition import Edition, Window, papers_in, window_of
from digest.match.matcher import Matcher
from digest.match.results import Match, SubscriberMatches
from digest.models import Subscriber, Topic
from digest.store import Store

BATCH = 250
# What matching reads of a subscriber: `Store.iter_subscribers(fields=MATCH_FIELDS)`.
MATCH_FIELDS = ("id", "email", "status", "queries", "topics", "max_papers", "min_upvotes")


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
