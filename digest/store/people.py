"""Subscribers, their history, what was sent to them, erasure and suppression."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import MISSING, fields
from datetime import datetime
from operator import itemgetter
from typing import Any

from digest.errors import StoreError
from digest.models import Cadence, Subscriber, SubscriberStatus
from digest.store.base import (
    StoreBase,
    legacy_text_time,
    maybe_text_time,
    maybe_time_text,
    time_text,
)

_SUBSCRIBER_JSON = ("queries", "topics")
_SUBSCRIBER_COLUMNS = [f.name for f in fields(Subscriber)]
_QUERIES_AT = _SUBSCRIBER_COLUMNS.index("queries")
_TOPICS_AT = _SUBSCRIBER_COLUMNS.index("topics")
_ID_AT = _SUBSCRIBER_COLUMNS.index("id")
_STATUS_AT = _SUBSCRIBER_COLUMNS.index("status")
_CADENCE_AT = _SUBSCRIBER_COLUMNS.index("cadence")
_TIMES = ("paused_until", "created_at", "updated_at")
_TIMES_AT = tuple(_SUBSCRIBER_COLUMNS.index(name) for name in _TIMES)
# by value in a dict: the enum's own lookup costs ten times more in the loop over everyone
_STATUS_OF = {s.value: s for s in SubscriberStatus}
_CADENCE_OF = {c.value: c for c in Cadence}
_RAW_DECODE = json.JSONDecoder().raw_decode
# What a column left unread holds: its field's default, stored the way the column stores it.
_DEFAULTS: dict[str, Any] = {
    f.name: "[]" if f.name in _SUBSCRIBER_JSON else f.default
    for f in fields(Subscriber)
    if f.default is not MISSING or f.name in _SUBSCRIBER_JSON
}


class SubscribersMixin(StoreBase):
    """Subscribers and what reached them."""

    def add_subscriber(self, sub: Subscriber, now: datetime, cause: str) -> Subscriber:
        """Insert and record the event, in one transaction.

        Raises:
            StoreError: the address is taken (whatever its case).
        """
        row = _subscriber_row(sub)
        row.pop("id")
        row.update(created_at=time_text(now, "now"), updated_at=time_text(now, "now"))
        with self.write():
            try:
                new_id = _last_id(self.db.table("subscribers").insert(row).last_pk)
            except sqlite3.IntegrityError as ex:
                raise StoreError(f"{sub.email}: already a subscriber") from ex
            self._event(new_id, sub.email, now, "created", cause, {"status": sub.status})
        added = self.get_subscriber(new_id)
        assert added is not None
        return added

    def get_subscriber(self, key: int | str) -> Subscriber | None:
        """One subscriber by id or by address (any case), or None."""
        column = "id" if isinstance(key, int) else "email"
        # nocase: Ada@x and ada@x are one person (the unique index is nocase too)
        sql = f"select * from subscribers where {column} = ? collate nocase"
        rows = list(self.db.query(sql, [key]))
        return _subscriber_from_row(rows[0]) if rows else None

    def update_subscriber(
        self, sub_id: int, changes: dict[str, Any], now: datetime, event: str, cause: str
    ) -> Subscriber:
        """Apply changes and record what changed from what; no change records nothing.

        Raises:
            StoreError: no subscriber has this id (removed meanwhile).
        """
        with self.write():
            old = self.get_subscriber(sub_id)
            if old is None:
                raise StoreError(f"no subscriber with id {sub_id}")
            before = _subscriber_row(old)
            after = {**before, **_subscriber_row(Subscriber(**{**_fields(old), **changes}))}
            diff = {k: [before[k], after[k]] for k in after if after[k] != before[k]}
            if diff:
                after["updated_at"] = time_text(now, "now")
                self.db.table("subscribers").update(sub_id, after)
                self._event(sub_id, old.email, now, event, cause, diff)
        updated = self.get_subscriber(sub_id)
        assert updated is not None
        return updated

    def delete_subscriber(self, sub_id: int, now: datetime, cause: str) -> None:
        """Erase the subscriber and what was sent to them; the event log keeps the removal.

        Raises:
            StoreError: no subscriber has this id.
        """
        with self.write():
            old = self.get_subscriber(sub_id)
            if old is None:
                raise StoreError(f"no subscriber with id {sub_id}")
            self.db.execute("delete from sent_papers where subscriber_id = ?", [sub_id])
            self.db.execute("delete from deliveries where subscriber_id = ?", [sub_id])
            self.db.execute("delete from subscribers where id = ?", [sub_id])
            self._event(sub_id, old.email, now, "removed", cause, {"status": old.status})

    def record_event(self, sub_id: int, email: str, now: datetime, event: str, cause: str) -> None:
        """Something happened to a subscriber that changed nothing stored (a failed send)."""
        with self.write():
            self._event(sub_id, email, now, event, cause, {})

    def subscriber_events(self, sub_id: int) -> list[dict[str, Any]]:
        """A subscriber's history, oldest first (at as a datetime, event, cause, detail
        decoded), for `show`."""
        sql = "select * from subscriber_events where subscriber_id = ? order by id"
        return [
            {**r, "at": maybe_text_time(r["at"]), "detail": json.loads(r["detail"])}
            for r in self.db.query(sql, [sub_id])
        ]

    def iter_subscribers(
        self,
        statuses: Sequence[SubscriberStatus] | None = None,
        batch: int = 1000,
        fields: Collection[str] | None = None,
    ) -> Iterator[Subscriber]:
        """Every subscriber in id order, a page at a time: never the whole table in memory.

        With `fields`, only those columns (and id, email) are read; every other field keeps
        its default, so pass it only to code that reads nothing else (matching does not)."""
        last = 0
        where = ""
        columns, tail, order, id_at = _columns(fields)
        if statuses:
            where = f" and status in ({','.join('?' * len(statuses))})"
        sql = f"select {columns} from subscribers where id > ?{where} order by id limit {batch}"
        while True:
            rows = self.db.execute(sql, [last, *(statuses or ())]).fetchall()
            if not rows:
                return
            for row in rows:
                yield _subscriber_from_values(list(order(row + tail)))
            last = rows[-1][id_at]

    def count_subscribers(self) -> dict[SubscriberStatus, int]:
        """Subscribers per status (statuses with none are absent), for `list` and `stats`."""
        sql = "select status, count(*) as n from subscribers group by status"
        return {SubscriberStatus(r["status"]): r["n"] for r in self.db.query(sql)}

    def add_subscribers_bulk(self, subs: Iterable[Subscriber], now: datetime, cause: str) -> int:
        """Many at once in one transaction (imports, benchmarks); events recorded for each."""
        count = 0
        with self.write():
            for sub in subs:
                row = _subscriber_row(sub)
                row.pop("id")
                row.update(created_at=time_text(now, "now"), updated_at=time_text(now, "now"))
                try:
                    new_id = _last_id(self.db.table("subscribers").insert(row).last_pk)
                except sqlite3.IntegrityError as ex:
                    raise StoreError(f"{sub.email}: already a subscriber") from ex
                self._event(new_id, sub.email, now, "created", cause, {"status": sub.status})
                count += 1
        return count

    def subscribers_by_id(self, ids: Sequence[int]) -> dict[int, Subscriber]:
        """The subscribers among these ids, keyed by id (removed ones are absent), read in
        chunks below SQLite's variable limit."""
        columns = ", ".join(_SUBSCRIBER_COLUMNS)
        found: dict[int, Subscriber] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            sql = f"select {columns} from subscribers where id in ({marks})"
            for row in self.db.execute(sql, chunk).fetchall():
                sub = _subscriber_from_values(list(row))
                found[sub.id or 0] = sub
        return found

    def resume_expired_pauses(self, now: datetime) -> list[str]:
        """Subscribers paused `until` a time that has passed become active again."""
        at = time_text(now, "now")
        with self.write():
            rows = self.db.execute(
                "select id, email from subscribers where status = 'paused'"
                " and paused_until is not null and paused_until <= ?",
                [at],
            ).fetchall()
            for sub_id, email in rows:
                self.db.execute(
                    "update subscribers set status = 'active', paused_until = null,"
                    " updated_at = ? where id = ?",
                    [at, sub_id],
                )
                self._event(sub_id, email, now, "active", "pause ended", {})
        return [r[1] for r in rows]

    def erase_subscriber(self, sub_id: int, email_hash: str, now: datetime, cause: str) -> None:
        """Delete my data: the subscriber, their deliveries, what was sent and their history
        go; a suppression hash stays so the address is not mailed again unless it subscribes
        anew."""
        # a hash, not the address: we keep no personal data, only the means to recognise it
        with self.write():
            for table in ("sent_papers", "deliveries", "subscriber_events"):
                self.db.execute(f"delete from {table} where subscriber_id = ?", [sub_id])
            self.db.execute("delete from subscribers where id = ?", [sub_id])
            self.db.execute(
                "insert or replace into suppressions (email_hash, at, cause) values (?, ?, ?)",
                [email_hash, time_text(now, "now"), cause],
            )

    def is_suppressed(self, email_hash: str) -> bool:
        """Whether this address erased its data: imports and the purge must not bring it back."""
        sql = "select 1 from suppressions where email_hash = ?"
        return self.db.execute(sql, [email_hash]).fetchone() is not None

    def lift_suppression(self, email_hash: str) -> None:
        """Only the person's own confirmed signup may call this: their consent, given again."""
        with self.write():
            self.db.execute("delete from suppressions where email_hash = ?", [email_hash])

    def purge_pending(self, older_than: datetime, now: datetime) -> int:
        """Signups left unconfirmed since the cut-off are removed (the removal is logged);
        the clock starts at the latest (re)signup, not at the first one."""
        with self.write():
            rows = self.db.execute(
                "select id, email from subscribers where status = 'pending' and updated_at < ?",
                [time_text(older_than, "older_than")],
            ).fetchall()
            for sub_id, email in rows:
                self.db.execute("delete from deliveries where subscriber_id = ?", [sub_id])
                self.db.execute("delete from sent_papers where subscriber_id = ?", [sub_id])
                self.db.execute("delete from subscribers where id = ?", [sub_id])
                self._event(sub_id, email, now, "removed", "never confirmed", {})
        return len(rows)

    def topic_counts(self) -> dict[str, int]:
        """Subscribers (active or paused) per topic, most followed first, for `stats`."""
        sql = (
            "select value, count(*) from subscribers, json_each(subscribers.topics)"
            " where status in ('active', 'paused') group by value order by 2 desc"
        )
        return {r[0]: r[1] for r in self.db.execute(sql).fetchall()}


def _json_list(text: str) -> Any:
    """A JSON column as we wrote it, decoded without `json.loads`'s per-call overhead (half
    the cost of reading a subscriber); anything else gets `json.loads` and its errors."""
    try:
        value, end = _RAW_DECODE(text)
    except ValueError:
        value, end = None, -1
    return value if end == len(text) else json.loads(text)


def _columns(
    wanted: Collection[str] | None,
) -> tuple[str, tuple[Any, ...], Callable[[tuple[Any, ...]], tuple[Any, ...]], int]:
    """The select list for these fields (only those columns: a constant selected for every
    row costs SQLite a value per row), the defaults of the others, a getter putting (row +
    defaults) in field order, and where id is in the row."""
    if wanted is None:
        return ", ".join(_SUBSCRIBER_COLUMNS), (), tuple, _ID_AT
    unknown = set(wanted) - set(_SUBSCRIBER_COLUMNS)
    if unknown:
        raise StoreError(f"no subscriber field {sorted(unknown)[0]!r}")
    keep = {*wanted, "id", "email"}
    read = [c for c in _SUBSCRIBER_COLUMNS if c in keep]
    rest = [c for c in _SUBSCRIBER_COLUMNS if c not in keep]
    at = {c: k for k, c in enumerate(read + rest)}
    order = itemgetter(*(at[c] for c in _SUBSCRIBER_COLUMNS))
    return ", ".join(read), tuple(_DEFAULTS[c] for c in rest), order, read.index("id")


def _subscriber_from_values(values: list[Any]) -> Subscriber:
    """A row read positionally, in field order, as a Subscriber: lists decoded, status and
    cadence as enums, times as datetimes. This feeds the match over every subscriber."""
    for at in (_QUERIES_AT, _TOPICS_AT):
        text = values[at]
        values[at] = _json_list(text) if text and text != "[]" else []
    values[_STATUS_AT] = _STATUS_OF.get(values[_STATUS_AT]) or SubscriberStatus(values[_STATUS_AT])
    values[_CADENCE_AT] = _CADENCE_OF.get(values[_CADENCE_AT]) or Cadence(values[_CADENCE_AT])
    for at in _TIMES_AT:
        if values[at] is not None:
            values[at] = legacy_text_time(values[at])
    return Subscriber(*values)


def _fields(sub: Subscriber) -> dict[str, Any]:
    """A subscriber's fields by name, without copying lists as `asdict` would."""
    return {f.name: getattr(sub, f.name) for f in fields(Subscriber)}


def _subscriber_row(sub: Subscriber) -> dict[str, Any]:
    """A Subscriber as a row: its query and topic lists as JSON text, times as stored text."""
    row = _fields(sub)
    for key in _SUBSCRIBER_JSON:
        row[key] = json.dumps(row[key], ensure_ascii=False)
    for key in _TIMES:
        row[key] = maybe_time_text(row[key], key)
    return row


def _subscriber_from_row(row: dict[str, Any]) -> Subscriber:
    """A row back to a Subscriber (columns in any order)."""
    return _subscriber_from_values([row[name] for name in _SUBSCRIBER_COLUMNS])


def _last_id(pk: object) -> int:
    """The rowid SQLite gave an insert (sqlite-utils types it loosely)."""
    if not isinstance(pk, int):
        raise StoreError(f"insert returned no row id ({pk!r})")
    return pk
