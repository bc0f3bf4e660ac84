"""The SQLite schema, its migrations and every SQL statement of the project.

Nothing else speaks SQL. Writes run in short `BEGIN IMMEDIATE` transactions so the web process and
the cron job can share the file (a deferred transaction that upgrades to a write cannot wait).
One mixin per concern; `Store` is all of them over one connection.
"""

from __future__ import annotations

from digest.store.base import BUSY_TIMEOUT_MS, StoreBase
from digest.store.bounces import (
    BounceDay,
    BounceEvent,
    BounceKind,
    BouncesMixin,
    BounceTarget,
    DeliveryRef,
    Origin,
)
from digest.store.deliveries import (
    DeliveriesMixin,
    Delivery,
    DeliveryStatus,
    Failure,
    PlannedDelivery,
)
from digest.store.editions import EditionsMixin, EditionWindow
from digest.store.papers import PapersMixin, UpsertCounts
from digest.store.people import SubscribersMixin
from digest.store.reading import (
    PlannedRecommendation,
    ReadingMixin,
    Signal,
    SignalKind,
    StoredProfile,
    StoredVectorizer,
    planned_recommendations,
)
from digest.store.schema import migrations
from digest.store.sent import SentPapersMixin
from digest.store.sources import SourceState, SourceStateMixin


class Store(
    PapersMixin,
    SourceStateMixin,
    EditionsMixin,
    SubscribersMixin,
    SentPapersMixin,
    DeliveriesMixin,
    BouncesMixin,
    ReadingMixin,
    StoreBase,
):
    """One open database. Cheap to open; migrations run on open."""


__all__ = [
    "BUSY_TIMEOUT_MS",
    "BounceDay",
    "BounceEvent",
    "BounceKind",
    "BounceTarget",
    "Delivery",
    "DeliveryRef",
    "DeliveryStatus",
    "EditionWindow",
    "Failure",
    "Origin",
    "PlannedDelivery",
    "PlannedRecommendation",
    "Signal",
    "SignalKind",
    "SourceState",
    "Store",
    "StoredProfile",
    "StoredVectorizer",
    "UpsertCounts",
    "migrations",
    "planned_recommendations",
]
