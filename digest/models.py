"""Plain dataclasses shared by every stage. Imports nothing of the project."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


@dataclass(slots=True)
class Paper:
    """One paper as a source saw it, or as stored after merging every source's view.

    `id` is the arXiv id without version when there is one, else a stable hash of the link.
    Text fields hold what the feed says as plain text (entities decoded, nothing escaped).
    """

    id: str
    title: str
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    arxiv_id: str | None = None
    version: int | None = None
    announce_type: str | None = None
    published: datetime | None = None
    link: str | None = None
    pdf_url: str | None = None
    doi: str | None = None
    journal_ref: str | None = None
    comment: str | None = None
    upvotes: int | None = None
    num_comments: int | None = None
    github_repo: str | None = None
    github_stars: int | None = None
    project_page: str | None = None
    thumbnail: str | None = None
    ai_summary: str | None = None
    ai_keywords: list[str] = field(default_factory=list)
    hf_date: str | None = None
    # Set on the way in from one source; on stored papers, every source that saw it.
    source: str = ""
    raw_id: str | None = None
    sources: list[str] = field(default_factory=list)
    first_seen: datetime | None = None
    updated_at: datetime | None = None


@dataclass(slots=True)
class SourceResult:
    """What one source produced in one run, whatever its kind: the papers, the items it had to
    skip (counted, with the first few reasons) so the run can say so, and the HTTP validators
    for a conditional GET next time. `not_modified`: the server answered 304."""

    source: str
    papers: list[Paper] = field(default_factory=list)
    url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    note: str | None = None
    skipped: int = 0
    skip_reasons: list[str] = field(default_factory=list)


class SubscriberStatus(StrEnum):
    """Where a subscriber is: pending -> active <-> paused -> unsubscribed (or bounced). A str
    enum, so SQL and CSV keep their text values."""

    PENDING = "pending"
    ACTIVE = "active"
    PAUSED = "paused"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


class Cadence(StrEnum):
    """How often a subscriber gets an edition (the values stored for subscribers)."""

    DAILY = "daily"
    WEEKLY = "weekly"


SUBSCRIBER_STATUSES = tuple(s.value for s in SubscriberStatus)
CADENCES = tuple(c.value for c in Cadence)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(slots=True)
class Subscriber:
    """A person and what they asked for. `queries` are filter-language texts; `topics` are names
    of presets from topics.toml. `weekday` matters only for weekly cadence."""

    email: str
    id: int | None = None
    status: SubscriberStatus = SubscriberStatus.PENDING
    queries: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    cadence: Cadence = Cadence.DAILY
    weekday: str = "mon"
    hour: int = 8
    tz: str = "UTC"
    max_papers: int = 10
    min_upvotes: int | None = None
    bounces: int = 0
    paused_until: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    recommend: int | None = None  # "Recommended for you" papers; None: the config's count


@dataclass(frozen=True, slots=True)
class Topic:
    """A named preset query subscribers can pick by name."""

    name: str
    title: str
    query: str
