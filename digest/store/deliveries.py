"""The delivery log: planning, claiming and recording each send; alerts and stats."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from digest.models import SubscriberStatus
from digest.store.base import StoreBase, maybe_text_time, time_text
from digest.store.reading import PlannedRecommendation, planned_recommendations

# (delivery id, subscriber id, paper ids, edition, reply, time): one "sent" mark
SentMark = tuple[int, int, tuple[str, ...], str, str, datetime]


class DeliveryStatus(enum.StrEnum):
    """Where a delivery is in its life; a str enum so SQL keeps its text values."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Delivery:
    """One row of the delivery log, papers and recommendations decoded, times in UTC."""

    id: int
    subscriber_id: int
    email: str
    edition: str
    status: DeliveryStatus
    papers: tuple[str, ...]
    attempts: int
    last_reply: str | None
    message_id: str | None
    possible_duplicate: bool
    created_at: datetime | None
    updated_at: datetime | None
    sent_at: datetime | None
    next_attempt_at: datetime | None
    matched: int | None
    new_papers: int | None
    recommended: tuple[PlannedRecommendation, ...]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Delivery:
        """Decode one `deliveries` row (a planned-before-recommendations row has none)."""
        return cls(
            id=int(row["id"]),
            subscriber_id=int(row["subscriber_id"]),
            email=row["email"],
            edition=row["edition"],
            status=DeliveryStatus(row["status"]),
            papers=tuple(json.loads(row["papers"] or "[]")),
            attempts=int(row["attempts"] or 0),
            last_reply=row["last_reply"],
            message_id=row["message_id"],
            possible_duplicate=bool(row["possible_duplicate"]),
            created_at=maybe_text_time(row["created_at"]),
            updated_at=maybe_text_time(row["updated_at"]),
            sent_at=maybe_text_time(row["sent_at"]),
            next_attempt_at=maybe_text_time(row["next_attempt_at"]),
            matched=row.get("matched"),
            new_papers=row.get("new_papers"),
            recommended=tuple(planned_recommendations(row)),
        )


@dataclass(frozen=True)
class PlannedDelivery:
    """A delivery to write before anything is sent: who, which edition, which papers, and the
    counts its email states. `reply` says why a `skipped` one is not sent."""

    subscriber_id: int
    email: str
    edition: str
    status: DeliveryStatus
    papers: tuple[str, ...]
    message_id: str
    matched: int | None = None
    new_papers: int | None = None
    reply: str | None = None


@dataclass(frozen=True)
class Failure:
    """A failed delivery as `digest stats` names it: who, which edition, the server's reply."""

    email: str
    edition: str
    last_reply: str | None
    updated_at: datetime | None


class DeliveryStatsMixin(StoreBase):
    """What the delivery log says, counted: stats, recent failures, alerts."""

    def delivery_counts(self, since: datetime | None = None) -> dict[DeliveryStatus, int]:
        """Deliveries per status (touched since a time, if given): the run's failure rate."""
        sql = "select status, count(*) from deliveries"
        params: list[Any] = []
        if since:
            sql += " where updated_at >= ?"
            params.append(time_text(since, "since"))
        sql += " group by status"
        return {DeliveryStatus(r[0]): r[1] for r in self.db.execute(sql, params).fetchall()}

    def alert_sent_since(self, key: str, since: datetime | None = None) -> bool:
        """Whether this problem was already alerted on (since a time, or ever): one alert per
        problem, not per run."""
        row = self.db.execute("select sent_at from alerts where key = ?", [key]).fetchone()
        return row is not None and (since is None or row[0] >= time_text(since, "since"))

    def record_alert(self, key: str, subject: str, now: datetime) -> None:
        """Remember that an alert went out, so the next hourly run does not repeat it."""
        with self.write():
            self.db.execute(
                "insert or replace into alerts (key, sent_at, subject) values (?, ?, ?)",
                [key, time_text(now, "now"), subject],
            )

    def sends_per_day(self, days: int, now: datetime) -> list[tuple[str, int, int]]:
        """(day, sent, failed) for the last `days` days, newest first; days are UTC dates."""
        sql = (
            # times are ISO text in UTC: the first 10 characters are the day
            "select substr(updated_at, 1, 10) as day, sum(status = 'sent'), sum(status = 'failed')"
            " from deliveries where updated_at >= date(?, ?) group by day order by day desc"
        )
        params = [time_text(now, "now"), f"-{days} days"]
        return [tuple(r) for r in self.db.execute(sql, params).fetchall()]

    def recent_failures(self, limit: int = 10) -> list[Failure]:
        """The latest failed deliveries with the server's reply, for `stats` to name them."""
        sql = (
            "select email, edition, last_reply, updated_at from deliveries"
            " where status = 'failed' order by updated_at desc limit ?"
        )
        return [
            Failure(email, edition, reply, maybe_text_time(at))
            for email, edition, reply, at in self.db.execute(sql, [limit]).fetchall()
        ]


class DeliveryQueueMixin(DeliveryStatsMixin):
    """Deliveries planned for an edition, and the ones due now (the queue the run reads)."""

    def delivered_editions(
        self, sub_ids: Sequence[int], editions: Sequence[str]
    ) -> set[tuple[int, str]]:
        """Which (subscriber, edition) pairs already have a delivery row, for a batch."""
        found: set[tuple[int, str]] = set()
        if not sub_ids or not editions:
            return found
        for start in range(0, len(sub_ids), 500):
            chunk = list(sub_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            emarks = ",".join("?" * len(editions))
            sql = (
                f"select subscriber_id, edition from deliveries where subscriber_id in ({marks})"
                f" and edition in ({emarks})"
            )
            found.update(tuple(r) for r in self.db.execute(sql, [*chunk, *editions]).fetchall())
        return found

    def plan_deliveries(self, rows: Sequence[PlannedDelivery], now: datetime) -> int:
        """Plan many deliveries in one transaction; ones already planned are left alone."""
        at = time_text(now, "now")
        with self.write():
            # or ignore: the unique (subscriber, edition) row makes a second plan a no-op
            cursor = self.db.conn.executemany(
                "insert or ignore into deliveries (subscriber_id, email, edition, status, papers,"
                " attempts, last_reply, message_id, possible_duplicate, created_at, updated_at,"
                " matched, new_papers) values (?, ?, ?, ?, ?, 0, ?, ?, 0, ?, ?, ?, ?)",
                [
                    (
                        r.subscriber_id,
                        r.email,
                        r.edition,
                        r.status.value,
                        json.dumps(list(r.papers)),
                        r.reply,
                        r.message_id,
                        at,
                        at,
                        r.matched,
                        r.new_papers,
                    )
                    for r in rows
                ],
            )
            return cursor.rowcount

    def recover_interrupted(self, now: datetime, shard: tuple[int, int] | None = None) -> int:
        """Deliveries a killed run left `sending` go back to pending, flagged: the server may
        have accepted them just before the crash, so a resend is a possible duplicate. Call it
        only while holding the lock of everything it covers (all, or one shard)."""
        sql = (
            "update deliveries set status = 'pending', possible_duplicate = 1,"
            " updated_at = ? where status = 'sending'"
        )
        params: list[Any] = [time_text(now, "now")]
        if shard:
            sql += " and subscriber_id % ? = ?"  # shard K/N: ids with id % N == K-1
            params += [shard[1], shard[0] - 1]
        with self.write():
            return self.db.execute(sql, params).rowcount

    def due_deliveries(
        self,
        now: datetime,
        shard: tuple[int, int] | None = None,
        after_id: int = 0,
        limit: int = 500,
    ) -> list[Delivery]:
        """Pending deliveries whose retry time has come, in id order, a page at a time.

        Two seeks, merged: the never-tried (a whole edition; `next_attempt_at` null) walk the
        status index in id order from `after_id`, and the retries whose time has come. One
        query with `next_attempt_at is null or <= now` read and sorted every pending delivery
        for each page (12 ms a page with 100,000 pending, so a run's pages grew with the
        square of its size)."""
        where = " and subscriber_id % ? = ?" if shard else ""
        split = [shard[1], shard[0] - 1] if shard else []
        fresh = self.db.query(
            "select * from deliveries where status = 'pending' and next_attempt_at is null"
            f" and id > ?{where} order by id limit ?",
            [after_id, *split, limit],
        )
        due = self.db.query(
            "select * from deliveries where status = 'pending' and next_attempt_at <= ?"
            f" and id > ?{where} order by id limit ?",
            [time_text(now, "now"), after_id, *split, limit],
        )
        rows = sorted((Delivery.from_row(r) for r in (*fresh, *due)), key=lambda d: d.id)
        return rows[:limit]


class DeliveriesMixin(DeliveryQueueMixin):
    """The delivery log (planned, claimed, sent or not), alerts and stats."""

    def claim_delivery(self, delivery_id: int, now: datetime) -> bool:
        """pending -> sending, committed before the SMTP transaction starts; False if another
        worker (or an unsubscribe) got there first."""
        with self.write():
            cursor = self.db.execute(
                "update deliveries set status = 'sending', attempts = attempts + 1,"
                " updated_at = ? where id = ? and status = 'pending'",
                [time_text(now, "now"), delivery_id],
            )
            return cursor.rowcount == 1

    def claim_deliveries(
        self, delivery_ids: Sequence[int], now: datetime
    ) -> tuple[set[int], dict[int, str]]:
        """pending -> sending for a group, in one transaction committed before any of them is
        sent; one whose subscriber is no longer active is skipped instead. Returns the claimed
        ids and, for the skipped, the subscriber's status; an id in neither was not pending
        (another worker got there first)."""
        ids = list(dict.fromkeys(delivery_ids))
        if not ids:
            return set(), {}
        marks = ",".join("?" * len(ids))
        at = time_text(now, "now")
        with self.write():
            # `+status`: by the status index SQLite would read every pending delivery for each
            # group (3 ms a claim with 60,000 pending), where the ids are 32 rowid lookups
            rows = self.db.execute(
                "select d.id, s.status from deliveries d left join subscribers s"
                f" on s.id = d.subscriber_id where d.id in ({marks}) and +d.status = 'pending'",
                ids,
            ).fetchall()
            # a left join: a removed subscriber's delivery (status null) is skipped, not sent
            claimed = [r[0] for r in rows if r[1] == "active"]
            gone = {r[0]: r[1] or "removed" for r in rows if r[1] != "active"}
            self.db.conn.executemany(
                "update deliveries set status = 'skipped', last_reply = ?, updated_at = ?"
                " where id = ?",
                [(f"subscriber is {status}", at, i) for i, status in gone.items()],
            )
            self.db.conn.executemany(
                "update deliveries set status = 'sending', attempts = attempts + 1,"
                " updated_at = ? where id = ? and status = 'pending'",
                [(at, i) for i in claimed],
            )
        return set(claimed), gone

    def mark_sent(
        self,
        delivery_id: int,
        sub_id: int,
        paper_ids: Sequence[str],
        edition: str,
        reply: str,
        now: datetime,
    ) -> None:
        """Accepted by the server: the delivery and its papers are sent, in one transaction."""
        self.mark_sent_many([(delivery_id, sub_id, tuple(paper_ids), edition, reply, now)])

    def mark_sent_many(self, marks: Sequence[SentMark]) -> None:
        """Many deliveries accepted by the server, each with its papers, in one transaction
        (the sender's group commit)."""
        at = [time_text(mark[5], "now") for mark in marks]
        with self.write():
            self.db.conn.executemany(
                "update deliveries set status = 'sent', last_reply = ?, sent_at = ?,"
                " updated_at = ? where id = ?",
                [(m[4], t, t, m[0]) for m, t in zip(marks, at, strict=True)],
            )
            self.db.conn.executemany(
                "insert or ignore into sent_papers (subscriber_id, paper_id, edition, sent_at)"
                " values (?, ?, ?, ?)",
                [(m[1], p, m[3], t) for m, t in zip(marks, at, strict=True) for p in m[2]],
            )

    def mark_retry(
        self, delivery_id: int, reply: str, next_attempt_at: datetime, now: datetime
    ) -> None:
        """A temporary failure (4xx, network): back to pending, not due before `next_attempt_at`."""
        with self.write():
            self.db.execute(
                "update deliveries set status = 'pending', last_reply = ?, next_attempt_at = ?,"
                " updated_at = ? where id = ?",
                [
                    reply,
                    time_text(next_attempt_at, "next_attempt_at"),
                    time_text(now, "now"),
                    delivery_id,
                ],
            )

    def flag_possible_duplicate(self, delivery_id: int, now: datetime) -> None:
        """The reply to the end of DATA was lost: the server may have queued the message, so
        the resend is flagged, like one after a crash."""
        with self.write():
            self.db.execute(
                "update deliveries set possible_duplicate = 1, updated_at = ? where id = ?",
                [time_text(now, "now"), delivery_id],
            )

    def mark_unbuilt(self, delivery_id: int, reason: str, now: datetime) -> None:
        """Our side could not build the message (secret, DKIM key, templates): the delivery
        stays pending and due, so the next run after the fix sends it."""
        with self.write():
            self.db.execute(
                "update deliveries set status = 'pending', last_reply = ?, updated_at = ?"
                " where id = ?",
                [reason, time_text(now, "now"), delivery_id],
            )

    def mark_skipped(self, delivery_id: int, reason: str, now: datetime) -> None:
        """Not sent and never will be (the subscriber left meanwhile), with the reason."""
        with self.write():
            self.db.execute(
                "update deliveries set status = 'skipped', last_reply = ?, updated_at = ?"
                " where id = ?",
                [reason, time_text(now, "now"), delivery_id],
            )

    def mark_failed(self, delivery_id: int, reply: str, now: datetime) -> None:
        """A permanent failure that is not the address's fault (a message we could not build,
        a recipient we gave up retrying): it counts no bounce against the subscriber."""
        with self.write():
            self._set_failed(delivery_id, reply, now)

    def mark_bounced(
        self, delivery_id: int, sub_id: int, reply: str, now: datetime, bounce_limit: int
    ) -> bool:
        """A permanent failure about the address: the delivery failed and the subscriber's
        bounce counted; one who reached `bounce_limit` is no longer mailed. True when the
        subscriber became `bounced` by this call."""
        with self.write():
            self._set_failed(delivery_id, reply, now)
            self.db.execute("update subscribers set bounces = bounces + 1 where id = ?", [sub_id])
            row = self.db.execute(
                "select email, bounces, status from subscribers where id = ?", [sub_id]
            ).fetchone()
            if row is None or row[1] < bounce_limit or row[2] == "bounced":
                return False
            self.db.execute(
                "update subscribers set status = 'bounced', updated_at = ? where id = ?",
                [time_text(now, "now"), sub_id],
            )
            self._event(
                sub_id, row[0], now, "bounced", f"{row[1]} permanent failures", {"reply": reply}
            )
            return True

    def _set_failed(self, delivery_id: int, reply: str, now: datetime) -> None:
        self.db.execute(
            "update deliveries set status = 'failed', last_reply = ?, updated_at = ? where id = ?",
            [reply, time_text(now, "now"), delivery_id],
        )

    def subscriber_status(self, sub_id: int) -> SubscriberStatus | None:
        """A subscriber's status now (None once removed): checked again just before a send."""
        row = self.db.execute("select status from subscribers where id = ?", [sub_id]).fetchone()
        return SubscriberStatus(row[0]) if row else None

    def delivery(self, sub_id: int, edition: str) -> Delivery | None:
        """One subscriber's delivery of one edition, papers decoded, or None if not planned."""
        rows = self.db.query(
            "select * from deliveries where subscriber_id = ? and edition = ?", [sub_id, edition]
        )
        row = next(rows, None)
        return None if row is None else Delivery.from_row(row)
