"""What a classified report changes: the bounce policy, applied once per message.

A hard bounce is counted on the subscriber (once per delivery) and `bounce_limit` of them
make the subscriber `bounced`; `soft_limit` soft bounces within `soft_days` do too; a complaint
unsubscribes at once; a mailed unsubscribe request unsubscribes its sender when the From is
the subscriber (and the one a token names, when there is a token). A verified VERP token
decides whom a report concerns, never the address written in the report; a refused token,
an auto-reply or an unparseable message changes nothing but is recorded and counted.
Without a token, a report is matched by the Message-ID of our original (which must agree with
the address the report names), else by the address of a delivery we sent.

The message's key is recorded in the same transaction as its effects, so a message is acted
on once, across runs and concurrent readers, whether or not the mailbox was marked after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from digest.bounces.events import Kind, RecipientStatus, Report, Source
from digest.config import Config
from digest.store import BounceEvent, BounceKind, BounceTarget, DeliveryRef, Origin, Store

KINDS = {
    Kind.HARD_BOUNCE: BounceKind.HARD,
    Kind.SOFT_BOUNCE: BounceKind.SOFT,
    Kind.DELAYED: BounceKind.DELAYED,
    Kind.COMPLAINT: BounceKind.COMPLAINT,
    Kind.UNSUBSCRIBE: BounceKind.UNSUBSCRIBE,
    Kind.AUTO_REPLY: BounceKind.AUTO_REPLY,
    Kind.INFORMATIONAL: BounceKind.INFORMATIONAL,
    Kind.REFUSED: BounceKind.REFUSED,
    Kind.UNPARSEABLE: BounceKind.UNPARSEABLE,
}
ACTED_ON = (Kind.HARD_BOUNCE, Kind.SOFT_BOUNCE, Kind.COMPLAINT)


class Action(StrEnum):
    """What was done about one message, the most consequential first."""

    BOUNCED = "bounced"  # the subscriber reached a limit and is no longer mailed
    UNSUBSCRIBED = "unsubscribed"
    BOUNCE_COUNTED = "bounce counted"
    SOFT_COUNTED = "soft bounce counted"
    ALREADY_COUNTED = "already counted"  # another report about the same delivery
    ALREADY_UNSUBSCRIBED = "already unsubscribed"
    UNMATCHED = "unmatched"  # no subscriber or delivery of ours
    REFUSED = "refused"  # a forged token, or a From that is not the subscriber
    IGNORED = "ignored"  # auto-reply, delay warning, informational, unparseable
    DUPLICATE = "already processed"


@dataclass(frozen=True, slots=True)
class Policy:
    """The thresholds, from [smtp] bounce_limit and [bounces] soft_limit / soft_days."""

    bounce_limit: int = 3
    soft_limit: int = 5
    soft_days: int = 30

    @classmethod
    def from_config(cls, config: Config) -> Policy:
        """The configured thresholds."""
        b = config.bounces
        return cls(config.smtp.bounce_limit, b.soft_limit, b.soft_days)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One message read and acted on: what `digest bounces --json` prints per message."""

    key: str
    kind: Kind
    source: Source
    reason: str
    action: Action
    recipient: str = ""
    subscriber_id: int | None = None
    edition: str | None = None
    matched_by: str = ""

    def as_json(self) -> dict[str, object]:
        """kind, recipient, delivery (subscriber and edition, or null), action, and why."""
        delivery = (
            {"subscriber_id": self.subscriber_id, "edition": self.edition}
            if self.subscriber_id is not None
            else None
        )
        return {
            "key": self.key,
            "kind": str(self.kind),
            "source": str(self.source),
            "recipient": self.recipient,
            "delivery": delivery,
            "matched_by": self.matched_by or None,
            "action": str(self.action),
            "reason": self.reason,
        }


@dataclass(slots=True)
class Target:
    """Whom (part of) a report concerns, once matched."""

    kind: Kind
    recipient: RecipientStatus | None
    subscriber: BounceTarget | None = None
    delivery: DeliveryRef | None = None
    edition: str | None = None
    matched_by: str = ""
    why: str = ""


@dataclass(slots=True)
class Context:
    """One message being applied: the store, the report and where it came from."""

    store: Store
    report: Report
    key: str
    origin: Origin
    now: datetime
    policy: Policy
    events: list[BounceEvent] = field(default_factory=list)

    @property
    def at(self) -> datetime:
        """The time every row of this message is stamped with."""
        return self.now

    def record(self, target: Target | None, action: Action) -> None:
        """One row of the bounce log for this message (and target)."""
        r = target.recipient if target else None
        sub = target.subscriber if target else None
        address = r.address if r else (self.report.sender or "")
        event = BounceEvent(
            kind=KINDS[target.kind if target else self.report.kind],
            origin=self.origin,
            message_key=self.key,
            at=self.at,
            subscriber_id=sub.id if sub else None,
            edition=target.edition if target else None,
            delivery_id=target.delivery.id if target and target.delivery else None,
            recipient=address,
            status=r.status if r else "",
            diagnostic=r.diagnostic if r else self.report.reason,
            report=str(self.report.source),
            matched_by=target.matched_by if target else "",
            action=str(action),
        )
        self.store.record_bounce_event(event)
        self.events.append(event)


def apply(
    store: Store, report: Report, key: str, origin: Origin, now: datetime, policy: Policy
) -> Outcome:
    """Act on one classified message, once: a key already processed changes nothing."""
    # check, act and record the key in one write transaction: two readers never both act
    with store.write():
        if store.is_processed(key):
            return Outcome(key, report.kind, report.source, report.reason, Action.DUPLICATE)
        ctx = Context(store, report, key, origin, now, policy)
        outcome = decide(ctx)
        store.mark_processed(key, origin, ctx.at, str(KINDS[report.kind]), str(outcome.action))
    return outcome


def decide(ctx: Context) -> Outcome:
    """Requests, ignorables, then the reports that change a subscriber: each recorded."""
    report = ctx.report
    if report.kind is Kind.UNSUBSCRIBE:
        return unsubscribe_request(ctx)
    if report.kind not in ACTED_ON:
        action = Action.REFUSED if report.kind is Kind.REFUSED else Action.IGNORED
        ctx.record(None, action)
        return outcome(ctx, None, action, report.reason)
    targets = match(ctx)
    results = [act(ctx, target) for target in targets]
    if not results:
        ctx.record(None, Action.UNMATCHED)
        return outcome(ctx, None, Action.UNMATCHED, f"{report.reason}: names no recipient")
    # one report is one delivery of ours; a report naming several is summed up by the most
    # consequential action taken
    order = list(Action)
    target, action = min(results, key=lambda pair: order.index(pair[1]))
    return outcome(ctx, target, action, target.why or report.reason)


def outcome(ctx: Context, target: Target | None, action: Action, reason: str) -> Outcome:
    """The message's line in the output, from the target it was applied to (if any)."""
    r = ctx.report
    sub = target.subscriber if target else None
    recipient = target.recipient.address if target and target.recipient else ""
    if not recipient:
        recipient = r.sender or (r.recipients[0].address if r.recipients else "")
    return Outcome(
        ctx.key,
        r.kind,
        r.source,
        reason,
        action,
        recipient,
        sub.id if sub else None,
        target.edition if target else None,
        target.matched_by if target else "",
    )


def match(ctx: Context) -> list[Target]:
    """Whom the report concerns: the token's subscriber, else the delivery with the
    original's Message-ID, else the deliveries sent to the failing addresses."""
    report, store = ctx.report, ctx.store
    if report.delivery is not None:
        sub = store.bounce_target(report.delivery.subscriber_id)
        delivery = store.delivery_of(report.delivery.subscriber_id, report.delivery.edition)
        recipient = own_recipient(report, sub.email if sub else "")
        kind = recipient.kind if recipient and sub else report.kind
        named = report.delivery.edition
        return [Target(kind, recipient or first(report), sub, delivery, named, "token")]
    if report.message_id:
        delivery = store.delivery_by_message_id(report.message_id)
        if delivery is not None:
            recipient = own_recipient(report, delivery.email)
            # a Message-ID can be guessed: it counts only with the address it was sent to
            if recipient is None and report.recipients:
                return [Target(report.kind, first(report), why="Message-ID of a delivery to "
                               "another address than the report names")]  # fmt: skip
            sub = store.bounce_target(delivery.subscriber_id)
            kind = recipient.kind if recipient else report.kind
            chosen = recipient or first(report)
            return [Target(kind, chosen, sub, delivery, delivery.edition, "message-id")]
    targets = []
    for recipient in report.recipients:
        if recipient.kind not in ACTED_ON:
            continue
        delivery = store.latest_delivery_to(recipient.address)
        sub = store.bounce_target(delivery.subscriber_id) if delivery else None
        edition = delivery.edition if delivery else None
        how = "recipient" if delivery else ""
        targets.append(Target(recipient.kind, recipient, sub, delivery, edition, how))
    return targets


def first(report: Report) -> RecipientStatus | None:
    """The report's first recipient, when it names one."""
    return report.recipients[0] if report.recipients else None


def own_recipient(report: Report, email: str) -> RecipientStatus | None:
    """The report's verdict about this address, when it names it."""
    wanted = email.lower()
    return next((r for r in report.recipients if r.address.lower() == wanted and wanted), None)


def act(ctx: Context, target: Target) -> tuple[Target, Action]:
    """Apply the policy to one matched subscriber and record it."""
    sub = target.subscriber
    if sub is None:
        target.why = target.why or f"{ctx.report.reason}: no subscriber or delivery of ours"
        ctx.record(target, Action.UNMATCHED)
        return target, Action.UNMATCHED
    detail = {"report": str(ctx.report.source), "message": ctx.key, "origin": str(ctx.origin)}
    status = target.recipient.status if target.recipient else ""
    if target.kind is Kind.COMPLAINT:
        cause = f"complaint ({ctx.report.feedback_type or 'abuse'})"
        changed = ctx.store.unsubscribe_reported(sub.id, ctx.at, cause, detail)
        action = Action.UNSUBSCRIBED if changed else Action.ALREADY_UNSUBSCRIBED
    elif target.kind is Kind.HARD_BOUNCE:
        action = hard_bounce(ctx, sub, target.edition, status, detail)
    else:
        ctx.record(target, Action.SOFT_COUNTED)  # counted before the window is read
        since = ctx.now - timedelta(days=ctx.policy.soft_days)
        soft = ctx.store.soft_bounces_since(sub.id, since)
        action = Action.SOFT_COUNTED
        if soft >= ctx.policy.soft_limit:
            cause = f"{soft} soft bounces in {ctx.policy.soft_days} days"
            if ctx.store.set_bounced(sub.id, ctx.at, cause, {**detail, "status": status}):
                action = Action.BOUNCED
        return target, action
    ctx.record(target, action)
    return target, action


def hard_bounce(
    ctx: Context, sub: BounceTarget, edition: str | None, status: str, detail: dict[str, str]
) -> Action:
    """Counted once per delivery; the limit makes the subscriber `bounced`."""
    if edition and ctx.store.hard_bounce_recorded(sub.id, edition):
        return Action.ALREADY_COUNTED
    count = ctx.store.count_hard_bounce(sub.id)
    if count >= ctx.policy.bounce_limit:
        cause = f"{count} permanent failures"
        if ctx.store.set_bounced(sub.id, ctx.at, cause, {**detail, "status": status}):
            return Action.BOUNCED
    return Action.BOUNCE_COUNTED


def unsubscribe_request(ctx: Context) -> Outcome:
    """A message to the unsubscribe address: its From must be a subscriber, and the one a
    token names when the request carries one."""
    report, store = ctx.report, ctx.store
    sender = store.bounce_target(report.sender) if report.sender else None
    if report.delivery is not None:
        named = store.bounce_target(report.delivery.subscriber_id)
        # anyone can forward a digest: the token alone must not unsubscribe its owner
        if named is None or sender is None or named.id != sender.id:
            why = "unsubscribe request: the From is not the subscriber its token names"
            ctx.record(None, Action.REFUSED)
            return outcome(ctx, None, Action.REFUSED, why)
        who = named
        target = Target(Kind.UNSUBSCRIBE, None, named, None, report.delivery.edition, "token")
    elif sender is None:
        ctx.record(None, Action.UNMATCHED)
        return outcome(ctx, None, Action.UNMATCHED, "unsubscribe request from a non-subscriber")
    else:
        who = sender
        target = Target(Kind.UNSUBSCRIBE, None, sender, matched_by="sender")
    detail = {"report": str(report.source), "message": ctx.key, "origin": str(ctx.origin)}
    changed = store.unsubscribe_reported(
        who.id, ctx.at, "asked by email (List-Unsubscribe mailto)", detail
    )
    action = Action.UNSUBSCRIBED if changed else Action.ALREADY_UNSUBSCRIBED
    ctx.record(target, action)
    return outcome(ctx, target, action, report.reason)
