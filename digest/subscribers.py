"""Subscribers: validation and every change to them, for the CLI and the web app alike.

Addresses are checked for syntax (email-validator, no DNS by default) and normalised; time
zones are IANA names; queries must parse; topics must exist. Every change goes through the
store, which records it as an event: nothing changes silently.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from digest.errors import QueryError, StoreError, SubscriberError
from digest.models import (
    SUBSCRIBER_STATUSES,
    WEEKDAYS,
    Cadence,
    Subscriber,
    SubscriberStatus,
    Topic,
)
from digest.query import parse
from digest.store import SignalKind, Store

MAX_PAPERS_LIMIT = 100
MAX_RECOMMEND = 50
# What one subscriber may ask for, whichever way they arrive (CLI, import, web form): enough for
# any real reading list, small enough that a form cannot turn us into a text relay or a CPU sink.
MAX_QUERIES = 20
MAX_QUERY_LENGTH = 200
MAX_TZ_LENGTH = 64
# Where a spreadsheet would read a formula (OWASP "CSV injection"); a leading quote defuses it.
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_ESCAPE = "'"
RESUBSCRIBE_REQUESTED = "resubscribe requested"
CSV_COLUMNS = (
    "email",
    "status",
    "queries",
    "topics",
    "cadence",
    "weekday",
    "hour",
    "tz",
    "max_papers",
    "min_upvotes",
    "paused_until",
    "recommend",
)
LIST_SEPARATOR = " | "  # between several queries or topics in one CSV cell
EDITABLE = {
    "queries",
    "topics",
    "cadence",
    "weekday",
    "hour",
    "tz",
    "max_papers",
    "min_upvotes",
    "recommend",
}


def normalize_email(raw: str, check_deliverability: bool = False) -> str:
    """The address as we store and compare it.

    Raises:
        SubscriberError: a line break or bad syntax, in one line saying what is wrong.
    """
    # Refused at the door: Python 3.11.7's email package can let a CR/LF through when it
    # folds a header (CVE-2024-6923), and an address ends up in To:.
    if any(c in raw for c in "\r\n"):
        raise SubscriberError(f"{raw!r}: an address cannot contain a line break")
    try:
        return validate_email(raw.strip(), check_deliverability=check_deliverability).normalized
    except EmailNotValidError as ex:
        raise SubscriberError(f"{raw!r} is not a valid email address: {ex}") from ex


def _show(value: str, width: int = 40) -> str:
    """A value quoted for a one-line message, cut short: a hostile field never floods it."""
    return repr(value if len(value) <= width else value[:width] + "...")


def _num(value: int) -> str:
    """A number for a message; one with thousands of digits is not worth printing (nor
    printable: str() refuses ints past 4,300 digits)."""
    return str(value) if -(10**9) < value < 10**9 else "(a number far out of range)"


def parse_status(who: str, value: str) -> SubscriberStatus:
    """A status as typed (CSV, CLI) or stored.

    Raises:
        SubscriberError: not one of SUBSCRIBER_STATUSES.
    """
    try:
        return SubscriberStatus(value)
    except ValueError:
        raise SubscriberError(
            f"{who}: status {value!r} is not one of {SUBSCRIBER_STATUSES}"
        ) from None


def parse_cadence(who: str, value: str) -> Cadence:
    """A cadence as typed (CSV, CLI, web form).

    Raises:
        SubscriberError: neither daily nor weekly.
    """
    try:
        return Cadence(value)
    except ValueError:
        raise SubscriberError(f"{who}: cadence {_show(value)} is not daily or weekly") from None


def parse_time(who: str, what: str, text: str) -> datetime | None:
    """An ISO 8601 time typed by an operator (a CSV cell); one without a zone is UTC, as the
    store keeps times; empty is None.

    Raises:
        SubscriberError: not ISO 8601.
    """
    if not text.strip():
        return None
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SubscriberError(f"{who}: {what} {_show(text)} is not an ISO 8601 time") from None
    return at if at.utcoffset() is not None else at.replace(tzinfo=UTC)


def check_query_limits(who: str, queries: Sequence[str]) -> None:
    """At most MAX_QUERIES queries of at most MAX_QUERY_LENGTH characters each, checked before
    any parsing so an oversized form costs nothing.

    Raises:
        SubscriberError: too many queries, or one too long.
    """
    if len(queries) > MAX_QUERIES:
        raise SubscriberError(
            f"{who}: {len(queries)} queries; at most {MAX_QUERIES} queries per subscriber"
        )
    for query in queries:
        if len(query) > MAX_QUERY_LENGTH:
            raise SubscriberError(
                f"{who}: query {_show(query)} has {len(query)} characters; at most "
                f"{MAX_QUERY_LENGTH} characters per query"
            )


def validate(sub: Subscriber, topics: Mapping[str, Topic]) -> Subscriber:
    """The subscriber tidied (weekday, repeated queries and topics) once every field is usable.

    Raises:
        SubscriberError: the first field that is not, named with its value.
    """
    who = sub.email
    status = parse_status(who, sub.status)
    cadence = parse_cadence(who, sub.cadence)
    weekday = sub.weekday.strip().lower()[:3]
    if weekday not in WEEKDAYS:
        raise SubscriberError(
            f"{who}: weekday {_show(sub.weekday)} is not one of {', '.join(WEEKDAYS)}"
        )
    if not 0 <= sub.hour <= 23:
        raise SubscriberError(f"{who}: hour {_num(sub.hour)} is not between 0 and 23")
    try:
        if len(sub.tz) > MAX_TZ_LENGTH:
            raise ValueError("too long")
        ZoneInfo(sub.tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as ex:  # OSError: a folder, a long name
        raise SubscriberError(
            f"{who}: unknown time zone {_show(sub.tz)}; use an IANA name such as Europe/Paris"
        ) from ex
    if not 1 <= sub.max_papers <= MAX_PAPERS_LIMIT:
        raise SubscriberError(
            f"{who}: max papers {_num(sub.max_papers)} is not 1..{MAX_PAPERS_LIMIT}"
        )
    if sub.min_upvotes is not None and sub.min_upvotes < 0:
        raise SubscriberError(f"{who}: min upvotes cannot be negative")
    if sub.recommend is not None and not 0 <= sub.recommend <= MAX_RECOMMEND:
        raise SubscriberError(f"{who}: recommend {_num(sub.recommend)} is not 0..{MAX_RECOMMEND}")
    queries = list(dict.fromkeys(q.strip() for q in sub.queries if q.strip()))
    check_query_limits(who, queries)
    for query in queries:
        try:
            parse(query)
        except QueryError as ex:
            raise SubscriberError(
                f"{who}: query {_show(query)}: {ex} at position {ex.position}"
            ) from ex
    names = list(dict.fromkeys(t.strip() for t in sub.topics if t.strip()))
    unknown = [t for t in names if t not in topics]
    if unknown:
        known = ", ".join(sorted(topics)) or "none defined"
        raise SubscriberError(f"{who}: unknown topic {_show(unknown[0])} (known: {known})")
    if not queries and not names and not sub.recommend:  # a reader of recommendations alone
        raise SubscriberError(f"{who}: give at least one query or topic")
    return replace(
        sub, status=status, cadence=cadence, weekday=weekday, queries=queries, topics=names
    )


def for_confirmation(sub: Subscriber) -> Subscriber:
    """What a confirmation email may repeat: topic names and how many queries, never the
    queries' text (anyone can type an address into the form, so whatever the email repeats
    is text a stranger could send from our address to any mailbox)."""
    count = len(sub.queries)
    mine = [f"{count} search {'query' if count == 1 else 'queries'} of your own"] if count else []
    return replace(sub, queries=[], topics=[*sub.topics, *mine])


def suppression_hash(email: str) -> str:
    """What remains of an erased address: enough to recognise it, not to read it back."""
    return hashlib.sha256(f"digest-suppression:{email.strip().lower()}".encode()).hexdigest()


def add(
    store: Store,
    topics: Mapping[str, Topic],
    sub: Subscriber,
    now: datetime,
    cause: str = "added by operator",
) -> Subscriber:
    """Validate and insert; `sub.status` says whether opt-in is still to come (pending).
    An address whose owner erased their data is refused: only they can subscribe it again.

    Raises:
        SubscriberError: an invalid field, an erased address, or one already subscribed.
    """
    checked = validate(replace(sub, email=normalize_email(sub.email)), topics)
    if store.is_suppressed(suppression_hash(checked.email)):
        raise SubscriberError(
            f"{checked.email} unsubscribed and its data was erased; only its owner can "
            "subscribe it again (through the subscribe page)"
        )
    try:
        return store.add_subscriber(checked, now, cause)
    except StoreError as ex:
        raise SubscriberError(str(ex)) from ex


def find(store: Store, email: str) -> Subscriber:
    """The subscriber with this address, normalised first so any case or spacing finds them.

    Raises:
        SubscriberError: the address is not valid, or nobody has it.
    """
    sub = store.get_subscriber(normalize_email(email))
    if sub is None:
        raise SubscriberError(f"{email}: no such subscriber (see `digest subscribers list`)")
    return sub


def edit(
    store: Store,
    topics: Mapping[str, Topic],
    email: str,
    changes: Mapping[str, Any],
    now: datetime,
    cause: str = "edited by operator",
) -> Subscriber:
    """Change preferences (never status or address here); the change is validated whole.

    Raises:
        SubscriberError: a field that cannot be edited, an invalid value, or no such address.
    """
    bad = set(changes) - EDITABLE
    if bad:
        raise SubscriberError(f"{email}: cannot edit {sorted(bad)[0]!r} this way")
    sub = find(store, email)
    checked = validate(replace(sub, **changes), topics)
    values = {k: getattr(checked, k) for k in changes}
    return store.update_subscriber(sub.id or 0, values, now, "edited", cause)


# Unsubscribed people come back only through their own confirmed opt-in (confirm() below),
# never through a status change: pending rows are purged, and an unsubscribe must outlive that.
_S = SubscriberStatus
_TRANSITIONS = {
    _S.ACTIVE: {_S.PENDING, _S.PAUSED, _S.BOUNCED, _S.ACTIVE},
    _S.PAUSED: {_S.ACTIVE, _S.PAUSED},
    _S.UNSUBSCRIBED: set(SubscriberStatus),
    _S.BOUNCED: {_S.ACTIVE, _S.PAUSED, _S.PENDING, _S.BOUNCED},
    _S.PENDING: {_S.PENDING, _S.BOUNCED},
}


def set_status(
    store: Store,
    email: str,
    status: SubscriberStatus,
    now: datetime,
    cause: str,
    paused_until: datetime | None = None,
) -> Subscriber:
    """Move a subscriber along pending -> active <-> paused -> unsubscribed (or bounced).
    An unsubscribed or erased address is never made active this way: only by its owner.

    Raises:
        SubscriberError: no such address, or a move the rules above do not allow.
    """
    status = SubscriberStatus(status)  # a str from an untyped caller is compared by identity
    sub = find(store, email)
    if sub.status not in _TRANSITIONS[status]:
        raise SubscriberError(f"{sub.email}: cannot go from {sub.status} to {status}")
    if status is SubscriberStatus.ACTIVE and store.is_suppressed(suppression_hash(sub.email)):
        raise SubscriberError(
            f"{sub.email} unsubscribed and its data was erased; only its owner can make it "
            "active again, by confirming a new signup"
        )
    changes: dict[str, Any] = {"status": status, "paused_until": paused_until}
    if status is SubscriberStatus.ACTIVE:
        changes["bounces"] = 0  # else the next single failure would stop them again
    return store.update_subscriber(sub.id or 0, changes, now, status, cause)


def ask_to_come_back(
    store: Store, sub: Subscriber, prefs: Mapping[str, Any], now: datetime, cause: str
) -> Subscriber:
    """An unsubscribed address asked to come back: the request (and any new preferences) is
    recorded, the status stays `unsubscribed` until the owner confirms (confirm() below)."""
    if prefs:
        sub = store.update_subscriber(sub.id or 0, dict(prefs), now, "edited", cause)
    store.record_event(sub.id or 0, sub.email, now, RESUBSCRIBE_REQUESTED, cause)
    return sub


def signup(
    store: Store, topics: Mapping[str, Topic], sub: Subscriber, now: datetime
) -> tuple[Subscriber, bool]:
    """A self-service signup: (the subscriber, whether to send a confirmation email).

    New, pending or bounced addresses (re)start double opt-in with the new preferences; an
    unsubscribed one stays unsubscribed until its owner confirms (so no purge of pending
    signups can lose the unsubscribe); active or paused ones are left alone. The caller
    answers the same either way, so the page never tells whether an address is subscribed."""
    pending = SubscriberStatus.PENDING
    checked = validate(replace(sub, email=normalize_email(sub.email), status=pending), topics)
    existing = store.get_subscriber(checked.email)
    if existing is None:
        return store.add_subscriber(checked, now, "signed up on the web"), True
    if existing.status in (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED):
        return existing, False
    prefs = {k: getattr(checked, k) for k in EDITABLE}
    if existing.status is SubscriberStatus.UNSUBSCRIBED:
        return ask_to_come_back(store, existing, prefs, now, "signed up again on the web"), True
    updated = store.update_subscriber(
        existing.id or 0, {**prefs, "status": pending}, now, "pending", "signed up again"
    )
    return updated, True


def asked_to_come_back(store: Store, sub_id: int) -> bool:
    """Whether a request to come back was made after the latest unsubscribe."""
    for event in reversed(store.subscriber_events(sub_id)):
        if event["event"] == RESUBSCRIBE_REQUESTED:
            return True
        if event["event"] == "unsubscribed":
            return False
    return False


def confirm(store: Store, sub_id: int, now: datetime) -> Subscriber:
    """The owner confirmed (a POST from the confirmation page): pending becomes active, and so
    does an unsubscribed address that asked to come back since it unsubscribed. Confirming
    twice is fine; a link older than the unsubscribe does nothing.

    Raises:
        SubscriberError: the subscriber is gone, or unsubscribed after the link was sent.
    """
    sub = store.get_subscriber(sub_id)
    if sub is None:
        raise SubscriberError("this subscription no longer exists; please subscribe again")
    if sub.status is SubscriberStatus.UNSUBSCRIBED:
        if not asked_to_come_back(store, sub_id):
            raise SubscriberError(
                f"{sub.email} unsubscribed after this link was sent; to come back, subscribe "
                "again and confirm the new link"
            )
        changes = {"status": SubscriberStatus.ACTIVE, "bounces": 0, "paused_until": None}
        sub = store.update_subscriber(sub_id, changes, now, "active", "confirmed coming back")
        store.lift_suppression(suppression_hash(sub.email))
    elif sub.status is SubscriberStatus.PENDING:
        active = {"status": SubscriberStatus.ACTIVE}
        sub = store.update_subscriber(sub_id, active, now, "active", "confirmed")
        # an erased address that signed up again: its owner's confirmation is consent anew
        store.lift_suppression(suppression_hash(sub.email))
    return sub


def erase(
    store: Store, email: str, now: datetime, cause: str = "asked to erase their data"
) -> None:
    """Forget a subscriber (their right to erasure): the row, deliveries and history go; a
    one-way hash of the address stays, so no import or `add` mails it again until its owner
    signs up and confirms.

    Raises:
        SubscriberError: the address is not valid, or nobody has it.
    """
    sub = find(store, email)
    store.erase_subscriber(sub.id or 0, suppression_hash(sub.email), now, cause)


def remove(store: Store, email: str, now: datetime, cause: str = "removed by operator") -> None:
    """Delete a subscriber (the removal is logged). An unsubscribed one is erased instead,
    keeping the one-way hash: forgetting the unsubscribe would let an import or `add` mail
    the address again, and only its owner may undo an unsubscribe."""
    sub = find(store, email)
    if sub.status is SubscriberStatus.UNSUBSCRIBED:
        store.erase_subscriber(sub.id or 0, suppression_hash(sub.email), now, cause)
    else:
        store.delete_subscriber(sub.id or 0, now, cause)


@dataclass
class ImportReport:
    """What `import_csv` did: how many rows it added, and the addresses it skipped because
    they were already subscribed (so importing the same file twice is harmless)."""

    added: int = 0
    existing: list[str] = field(default_factory=list)


def defuse_cell(cell: str) -> str:
    """A cell a spreadsheet will not run: one starting like a formula (or with our escape
    quote) gets a leading quote, as OWASP advises. `restore_cell` undoes exactly this."""
    return CSV_ESCAPE + cell if cell.startswith((*CSV_FORMULA_STARTS, CSV_ESCAPE)) else cell


def restore_cell(cell: str) -> str:
    """Undo `defuse_cell`: the quote goes only where the export would have put it (before a
    formula character or another quote), so a hand-written leading quote stays."""
    if cell.startswith(CSV_ESCAPE) and cell[1:].startswith((*CSV_FORMULA_STARTS, CSV_ESCAPE)):
        return cell[1:]
    return cell


def _split(cell: str | None) -> list[str]:
    """Several values in one cell, separated by ' | ' (a bare '|' may be inside a query)."""
    return [part.strip() for part in (cell or "").split(LIST_SEPARATOR) if part.strip()]


def _row_to_subscriber(
    row: Mapping[str, str | None], default_status: SubscriberStatus
) -> Subscriber:
    def number(key: str, default: int | None) -> int | None:
        text = (row.get(key) or "").strip()
        if not text:
            return default
        if not (text.isascii() and text.isdigit() and len(text) <= 9):
            raise SubscriberError(f"{key} {_show(text)} is not a whole number (up to 9 digits)")
        return int(text)

    email = normalize_email(row.get("email") or "")
    status = (row.get("status") or "").strip()
    return Subscriber(
        email=email,
        status=parse_status(email, status) if status else default_status,
        queries=_split(row.get("queries")),
        topics=_split(row.get("topics")),
        cadence=parse_cadence(email, (row.get("cadence") or "daily").strip()),
        weekday=(row.get("weekday") or "mon").strip(),
        hour=number("hour", 8) or 0,
        tz=(row.get("tz") or "UTC").strip(),
        max_papers=number("max_papers", 10) or 0,
        min_upvotes=number("min_upvotes", None),
        paused_until=parse_time(email, "paused_until", row.get("paused_until") or ""),
        recommend=number("recommend", None),
    )


def import_csv(
    store: Store,
    topics: Mapping[str, Topic],
    text: str,
    now: datetime,
    default_status: SubscriberStatus = SubscriberStatus.PENDING,
) -> ImportReport:
    """All rows or none: every row is validated first and the first faults are reported by
    line. Addresses already subscribed are skipped, so importing twice is harmless.

    Raises:
        SubscriberError: a bad header or any bad row; nothing was imported.
    """
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "email" not in reader.fieldnames:
        raise SubscriberError("CSV import: the first line must be a header with an email column")
    unknown = set(reader.fieldnames) - set(CSV_COLUMNS)
    if unknown:
        raise SubscriberError(
            f"CSV import: unknown column {sorted(unknown)[0]!r} (known: {', '.join(CSV_COLUMNS)})"
        )
    subs: list[Subscriber] = []
    errors: list[str] = []
    seen: set[str] = set()
    report = ImportReport()
    for raw in reader:
        line = reader.line_num
        row = {k: restore_cell(v) if isinstance(v, str) else None for k, v in raw.items() if k}
        try:
            sub = validate(_row_to_subscriber(row, default_status), topics)
        except SubscriberError as ex:
            errors.append(f"line {line}: {ex}")
            continue
        key = sub.email.lower()  # as the store's unique index compares (collate nocase)
        if store.is_suppressed(suppression_hash(sub.email)):
            errors.append(
                f"line {line}: {sub.email} unsubscribed and its data was erased; only its "
                "owner can subscribe it again"
            )
        elif key in seen:
            errors.append(f"line {line}: {sub.email} appears twice in the file")
        elif store.get_subscriber(sub.email) is not None:
            report.existing.append(sub.email)
        else:
            subs.append(sub)
        seen.add(key)
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise SubscriberError("CSV import: nothing imported; " + "; ".join(errors[:3]) + more)
    report.added = store.add_subscribers_bulk(subs, now, "imported from CSV")
    return report


def export_csv(store: Store, statuses: Sequence[SubscriberStatus] | None = None) -> str:
    """Every subscriber as CSV that `import_csv` reads back unchanged; no cell starts like a
    spreadsheet formula (see `defuse_cell`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for sub in store.iter_subscribers(statuses):
        cells: dict[str, object] = {
            "email": sub.email,
            "status": sub.status,
            "queries": LIST_SEPARATOR.join(sub.queries),
            "topics": LIST_SEPARATOR.join(sub.topics),
            "cadence": sub.cadence,
            "weekday": sub.weekday,
            "hour": sub.hour,
            "tz": sub.tz,
            "max_papers": sub.max_papers,
            "min_upvotes": "" if sub.min_upvotes is None else sub.min_upvotes,
            "paused_until": sub.paused_until.isoformat() if sub.paused_until else "",
            "recommend": "" if sub.recommend is None else sub.recommend,
        }
        writer.writerow({k: defuse_cell(str(v)) for k, v in cells.items()})
    return buffer.getvalue()


# ---------------------------------------------------------------- what a reader likes


def record_feedback(
    store: Store, email: str, paper_id: str, kind: SignalKind, now: datetime, source: str
) -> Subscriber:
    """A reader's "More like this" or "Less like this" on one stored paper (the latest
    opinion on a paper wins; the next run re-fits their profile).

    Raises:
        SubscriberError: no such subscriber, or no such paper."""
    sub = find(store, email)
    if store.get_paper(paper_id.strip()) is None:
        raise SubscriberError(f"{paper_id[:80]!r}: no such paper (see `digest papers`)")
    store.record_signals(sub.id or 0, [paper_id.strip()], kind, now, source)
    return sub
