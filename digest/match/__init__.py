"""Papers x subscribers -> ranked matches for an edition, each with why it is there.

One inverted index over the edition's new papers; each DISTINCT query (a topic many people
share counts once) is evaluated and ranked once, into integer ranks comparable across
queries (`ranking`); each subscriber then only merges the ranked lists of their own queries,
drops what they already received and caps (`matcher`). A batch of subscribers is merged as
arrays, once per filter signature (`merge`). `EditionMatchers` keeps one Matcher per edition
(`editions`); what they hand on is in `results`. Renders and sends nothing.
"""

from digest.match.editions import BATCH, MATCH_FIELDS, EditionMatchers, match_subscribers
from digest.match.matcher import Matcher
from digest.match.ranking import (
    FIELD_WEIGHT,
    FRESHNESS_DAYS,
    FRESHNESS_WEIGHT,
    MIN_DEPTH,
    POPULARITY_WEIGHT,
    RankedQuery,
)
from digest.match.results import Match, Matches, Reason, Recommended, SubscriberMatches

__all__ = [
    "BATCH",
    "FIELD_WEIGHT",
    "FRESHNESS_DAYS",
    "FRESHNESS_WEIGHT",
    "MATCH_FIELDS",
    "MIN_DEPTH",
    "POPULARITY_WEIGHT",
    "EditionMatchers",
    "Match",
    "Matcher",
    "Matches",
    "RankedQuery",
    "Reason",
    "Recommended",
    "SubscriberMatches",
    "match_subscribers",
]
