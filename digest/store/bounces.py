"""What came back after the relay's 250: bounce events, the messages already handled, the
subscriber changes they cause, and the per-day figures behind `digest stats` and the alerts.

Statements only: which report changes what is decided in `digest.bounces.policy`, which wraps
one message's reads and writes (and its processed key) in one `write()` transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from digest.models import SubscriberStatus
from digest.store.base import StoreBase, text_time, time_text
from digest.store.deliveries import DeliveryStatus

# A subscriber in one of these is mailed (or may be again once confirmed): a bounce limit
# moves them to `bounced`. An unsubscribed one stays unsubscribed.
BOUNCEABLE = (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED, SubscriberStatus.PENDING)


class BounceKind(StrEnum):
    """What one message (or webhook event) was, as recorded."""

    HARD = "hard"
    SOFT = "soft"
    DELAYED = "delayed"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    AUTO_REPLY = "auto-reply"
    INFORMATIONAL = "informational"
    UNPARSEABLE = "unparseable"
    REFUSED = "refused"


class Origin(StrEnum):
    """Where it came from: the bounce mailbox or a provider's webhook."""

    MAILBOX = "mailbox"
    WEBHOOK = "webhook"


@dataclass(frozen=True, slots=True)
class BounceEvent:
    """One row of `bounce_events`: a message, the subscriber and delivery it concerns (when
    matched), and what was done about it."""

    kind: BounceKind
    origin: Origin
    message_key: str  # mailbox key or webhook id
    at: datetime
    subscriber_id: int | None = None
    edition: str | None = None
    delivery_id: int | None = None
    recipient: str = ""
    status: str = ""  # enhanced status code, e.g. 5.1.1
    diagnostic: str = ""
    report: str = ""  # the report's format: dsn, arf, qmail, ses, ...
    matched_by: str = ""  # token | message-id | recipient | sender | "" (not matched)
    action: str = ""


@dataclass(frozen=True, slots=True)
class BounceTarget:
    """A subscriber as the bounce policy sees them."""

    id: int
    email: str
    status: SubscriberStatus
    bounces: int


@dataclass(frozen=True, slots=True)
class DeliveryRef:
    """A delivery a report may concern."""

    id: int
    subscriber_id: int
    edition: str
    email: str
    status: DeliveryStatus


@dataclass(frozen=True, slots=True)
class BounceDay:
    """One day: emails sent, and the bounces and complaints about that day's emails (counted
    once per delivery, on the day it was sent; unmatched ones on the day they arrived)."""

    day: str
    sent: int
    hard: int
    soft: int
    complaints: int
    unsubscribes: int

    @property
    def hard_rate(self) -> float | None:
        """Hard bounces per email sent that day; None on a day nothing was sent."""
        return self.hard / self.sent if self.sent else None

    @property
    def complaint_rate(self) -> float | None:
        """Complaints per email sent that day; None on a day nothing was sent."""
        return self.complaints / self.sent if self.sent else None


class BouncesMixin(StoreBase):
    """Bounce events, processed messages, and the subscriber changes they cause."""

    def is_processed(self, key: str) -> bool:
        """Whether a mailbox message or webhook event was already acted on."""
        sql = "select 1 from processed_messages where key = ?"
        return self.db.execute(sql, [key]).fetchone() is not None

    def mark_processed(
        self, key: str, origin: Origin, now: datetime, kind: str, action: str
    ) -> bool:
        """Remember a message as handled; False when it already was (another reader won)."""
        with self.write():
            cursor = self.db.execute(
                "insert or ignore into processed_messages (key, origin, processed_at, kind,"
                " action) values (?, ?, ?, ?, ?)",
                [key, str(origin), time_text(now, "now"), kind, action],
            )
            return cursor.rowcount == 1

    def record_bounce_event(self, event: BounceEvent) -> int:
        """Add one row to the bounce log; returns its id."""
        # Reports are hostile input: every text is cut before it is stored (320 is the longest
        # address RFC 5321 allows).
        with self.write():
            cursor = self.db.execute(
                "insert into bounce_events (at, kind, subscriber_id, edition, delivery_id,"
                " recipient, status, diagnostic, origin, report, message_key, matched_by,"
                " action) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    time_text(event.at, "at"), str(event.kind), event.subscriber_id, event.edition,
                    event.delivery_id, event.recipient[:320], event.status[:20],
                    event.diagnostic[:500], str(event.origin), event.report,
                    event.message_key[:300], event.matched_by, event.action[:300],
                ],
            )  # fmt: skip
            return int(cursor.lastrowid or 0)

    def bounce_events(self, subscriber_id: int | None = None) -> list[BounceEvent]:
        """The bounce log in order, all of it or one subscriber's."""
        sql = "select * from bounce_events"
        params: list[Any] = []
        if subscriber_id is not None:
            sql += " where subscriber_id = ?"
            params.append(subscriber_id)
        return [_event_from_row(r) for r in self.db.query(sql + " order by id", params)]

    def bounce_target(self, key: int | str) -> BounceTarget | None:
        """A subscriber by id or (case-insensitive) email."""
        column = "id" if isinstance(key, int) else "email"
        sql = (
            f"select id, email, status, bounces from subscribers where {column} = ? collate nocase"
        )
        row = self.db.execute(sql, [key]).fetchone()
        return (
            BounceTarget(int(row[0]), str(row[1]), SubscriberStatus(row[2]), int(row[3] or 0))
            if row
            else None
        )

    def delivery_of(self, subscriber_id: int, edition: str) -> DeliveryRef | None:
        """The delivery a verified VERP token names."""
        return self._delivery(
            "subscriber_id = ? and edition = ?", [subscriber_id, edition], "id desc"
        )

    def delivery_by_message_id(self, message_id: str) -> DeliveryRef | None:
        """The delivery that carried this Message-ID (stable per subscriber and edition)."""
        return self._delivery("message_id = ?", [message_id], "id desc")

    def latest_delivery_to(self, email: str) -> DeliveryRef | None:
        """The last delivery sent to this address: what a bounce naming only it concerns."""
        return self._delivery(
            "email = ? collate nocase and status = 'sent'", [email], "sent_at desc, id desc"
        )

    def _delivery(self, where: str, params: list[Any], order: str) -> DeliveryRef | None:
        sql = (
            "select id, subscriber_id, edition, email, status from deliveries"
            f" where {where} order by {order} limit 1"
        )
        row = self.db.execute(sql, params).fetchone()
        if row is None:
            return None
        return DeliveryRef(
            int(row[0]), int(row[1]), str(row[2]), str(row[3] or ""), DeliveryStatus(row[4])
        )

    def hard_bounce_recorded(self, subscriber_id: int, edition: str) -> bool:
        """Whether a hard bounce for this delivery was already counted (a second DSN for the
        same email counts once)."""
        sql = (
            "select 1 from bounce_events where subscriber_id = ? and edition = ? and kind = ?"
            " limit 1"
        )
        found = self.db.execute(sql, [subscriber_id, edition, str(BounceKind.HARD)]).fetchone()
        return found is not None

    def soft_bounces_since(self, subscriber_id: int, since: datetime) -> int:
        """Soft bounces recorded for a subscriber since `since`, one per delivery."""
        sql = (
            "select count(distinct coalesce(edition, message_key)) from bounce_events"
            " where subscriber_id = ? and kind = ? and at >= ?"
        )
        params = [subscriber_id, str(BounceKind.SOFT), time_text(since, "since")]
        row = self.db.execute(sql, params).fetchone()
        return int(row[0] or 0)

    def count_hard_bounce(self, subscriber_id: int) -> int:
        """One more permanent failure on the subscriber's count; returns the new count."""
        with self.write():
            self.db.execute(
                "update subscribers set bounces = bounces + 1 where id = ?", [subscriber_id]
            )
            row = self.db.execute(
                "select bounces from subscribers where id = ?", [subscriber_id]
            ).fetchone()
            return int(row[0]) if row else 0

    def set_bounced(self, subscriber_id: int, now: datetime, cause: str, detail: Any) -> bool:
        """Stop mailing a subscriber whose address fails; True when the status changed (an
        unsubscribed or already bounced one is left as it is)."""
        bounced = SubscriberStatus.BOUNCED
        return self._set_status(subscriber_id, bounced, BOUNCEABLE, now, cause, detail)

    def unsubscribe_reported(
        self, subscriber_id: int, now: datetime, cause: str, detail: Any
    ) -> bool:
        """A complaint or a mailed unsubscribe request: unsubscribed at once, whatever the
        status was; True when it changed."""
        gone = SubscriberStatus.UNSUBSCRIBED
        others = tuple(s for s in SubscriberStatus if s is not gone)
        return self._set_status(subscriber_id, gone, others, now, cause, detail)

    def _set_status(
        self,
        sub_id: int,
        status: SubscriberStatus,
        from_: tuple[SubscriberStatus, ...],
        now: datetime,
        cause: str,
        detail: Any,
    ) -> bool:
        # Read and changed in one write transaction: an unsubscribe that lands in between
        # cannot be overwritten by a bounce.
        with self.write():
            row = self.db.execute(
                "select email, status from subscribers where id = ?", [sub_id]
            ).fetchone()
            if row is None or row[1] not in from_:
                return False
            self.db.execute(
                "update subscribers set status = ?, paused_until = null, updated_at = ?"
                " where id = ?",
                [status.value, time_text(now, "now"), sub_id],
            )
            self._event(sub_id, row[0], now, status.value, cause, {"from": row[1], **detail})
            return True

    def bounce_days(self, days: int, now: datetime) -> list[BounceDay]:
        """Sends, hard and soft bounces, complaints and unsubscribe requests per day (UTC
        dates) for the last `days` days, newest first."""
        since = [time_text(now, "now"), f"-{days} days"]
        sent_sql = (
            "select substr(sent_at, 1, 10) as day, count(*) from deliveries"
            " where status = 'sent' and sent_at >= date(?, ?) group by day"
        )
        sent = {str(r[0]): int(r[1]) for r in self.db.execute(sent_sql, since).fetchall()}
        events_sql = (
            "select day, kind, count(distinct coalesce(delivery_id, message_key)) from ("
            " select coalesce(substr(d.sent_at, 1, 10), substr(e.at, 1, 10)) as day, e.kind,"
            " e.delivery_id, e.message_key from bounce_events e"
            " left join deliveries d on d.id = e.delivery_id"
            ") where day >= date(?, ?) group by day, kind"
        )
        counts: dict[str, dict[str, int]] = {}
        for day, kind, count in self.db.execute(events_sql, since).fetchall():
            counts.setdefault(str(day), {})[str(kind)] = int(count)
        found = []
        for day in sorted(set(sent) | set(counts), reverse=True):
            kinds = counts.get(day, {})
            found.append(
                BounceDay(
                    day,
                    sent.get(day, 0),
                    kinds.get(BounceKind.HARD, 0),
                    kinds.get(BounceKind.SOFT, 0),
                    kinds.get(BounceKind.COMPLAINT, 0),
                    kinds.get(BounceKind.UNSUBSCRIBE, 0),
                )
            )
        return found


def _event_from_row(row: dict[str, Any]) -> BounceEvent:
    return BounceEvent(
        kind=BounceKind(row["kind"]),
        origin=Origin(row["origin"]),
        message_key=row["message_key"],
        at=text_time(row["at"]),
        subscriber_id=row["subscriber_id"],
        edition=row["edition"],
        delivery_id=row["delivery_id"],
        recipient=row["recipient"] or "",
        status=row["status"] or "",
        diagnostic=row["diagnostic"] or "",
        report=row["report"] or "",
        matched_by=row["matched_by"] or "",
        action=row["action"] or "",
    )
