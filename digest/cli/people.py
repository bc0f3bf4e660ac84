"""Commands over people and their interests: `digest subscribers ...` and `digest topics`."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from digest import subscribers as subs
from digest.cli.app import (
    ConfigOption,
    app,
    confirm_or_exit,
    fails_cleanly,
    json_text,
    open_store,
    open_topics,
    out,
)
from digest.config import Config
from digest.errors import DigestError, SubscriberError
from digest.match import Matcher
from digest.models import SUBSCRIBER_STATUSES, Subscriber, SubscriberStatus
from digest.pipeline import send_confirmation
from digest.render import Renderer
from digest.send import make_transport
from digest.store import Store
from digest.tokens import Tokens, subscriber_links

group = typer.Typer(help="Add, list, change and remove subscribers.", no_args_is_help=True)
app.add_typer(group, name="subscribers")

QueryOpt = Annotated[
    list[str] | None, typer.Option("--query", "-q", help="A filter query (repeatable).")
]
TopicOpt = Annotated[
    list[str] | None, typer.Option("--topic", "-t", help="A topic name (repeatable).")
]
CadenceOpt = Annotated[str | None, typer.Option(help="daily or weekly.")]
WeekdayOpt = Annotated[str | None, typer.Option(help="For weekly: mon, tue, ... sun.")]
HourOpt = Annotated[int | None, typer.Option(help="Send hour, 0-23, in the subscriber's zone.")]
TzOpt = Annotated[str | None, typer.Option(help="IANA time zone, e.g. Europe/Paris.")]
MaxOpt = Annotated[int | None, typer.Option("--max", help="At most this many papers per email.")]
UpvotesOpt = Annotated[int | None, typer.Option(help="Only papers with at least N HF upvotes.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output.")]
RecommendOpt = Annotated[
    int | None,
    typer.Option(min=0, max=50, help="'Recommended for you' papers per email (0: off)."),
]


def _now() -> datetime:
    return datetime.now(UTC)


def _public(sub: Subscriber, store: Store) -> dict[str, Any]:
    """The interface of `show --json`: names from DESIGN.md's contract."""
    row = asdict(sub)
    row["deliveries"], row["papers_sent"] = store.sent_counts(sub.id or 0)
    return row


@group.command("add")
@fails_cleanly
def add_command(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    query: QueryOpt = None,
    topic: TopicOpt = None,
    cadence: CadenceOpt = "daily",
    weekday: WeekdayOpt = "mon",
    hour: HourOpt = 8,
    tz: TzOpt = "UTC",
    max_papers: MaxOpt = 10,
    min_upvotes: UpvotesOpt = None,
    recommend: RecommendOpt = None,
    active: Annotated[
        bool, typer.Option("--active", help="Skip double opt-in (the operator vouches).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Add a subscriber: pending, and sent a confirmation email, unless --active."""
    cfg, store = open_store(config)
    topics = open_topics(cfg)
    wanted = Subscriber(
        email=subs.normalize_email(email),
        status=SubscriberStatus.ACTIVE if active else SubscriberStatus.PENDING,
        queries=query or [],
        topics=topic or [],
        cadence=subs.parse_cadence(email, cadence or "daily"),
        weekday=weekday or "mon",
        hour=8 if hour is None else hour,
        tz=tz or "UTC",
        max_papers=10 if max_papers is None else max_papers,
        min_upvotes=min_upvotes,
        recommend=recommend,
    )
    subs.validate(wanted, topics)  # a bad field is reported before a missing secret
    tokens = None if active else Tokens(cfg.secret, cfg.old_secrets)  # fail before adding
    with store:
        sub = subs.add(store, topics, wanted, _now())
    out.print(f"Added {escape(sub.email)} ({sub.status}).", highlight=False)
    if tokens is not None:
        _invite(cfg, [sub], tokens)


def _invite(cfg: Config, people: list[Subscriber], tokens: Tokens) -> None:
    """Send the double opt-in email to pending subscribers the operator added."""
    renderer = Renderer(cfg, open_topics(cfg))

    async def send_all() -> list[str]:
        failed = []
        async with make_transport(cfg) as transport:
            for sub in people:
                try:
                    await send_confirmation(cfg, renderer, tokens, sub, datetime.now(UTC),
                                            transport)  # fmt: skip
                except Exception as ex:  # one address that cannot be sent to never stops the rest
                    reason = str(ex) if isinstance(ex, DigestError) else f"{sub.email}: {ex!r}"
                    failed.append(reason)
        return failed

    failed = asyncio.run(send_all())
    out.print(f"Confirmation emails sent: {len(people) - len(failed)}.", highlight=False)
    if failed:
        raise SubscriberError(f"{len(failed)} not sent (retry with `digest subscribers invite`): "
                              + failed[0])  # fmt: skip


@group.command("invite")
@fails_cleanly
def invite_command(
    email: Annotated[str, typer.Argument(help="A pending subscriber's address.")],
    config: ConfigOption = None,
) -> None:
    """Send (again) the confirmation email to a pending subscriber."""
    cfg, store = open_store(config)
    tokens = Tokens(cfg.secret, cfg.old_secrets)
    with store:
        sub = subs.find(store, email)
    if sub.status is not SubscriberStatus.PENDING:
        raise SubscriberError(f"{sub.email} is {sub.status}, not pending: nothing to confirm")
    _invite(cfg, [sub], tokens)


@group.command("edit")
@fails_cleanly
def edit_command(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    query: QueryOpt = None,
    topic: TopicOpt = None,
    cadence: CadenceOpt = None,
    weekday: WeekdayOpt = None,
    hour: HourOpt = None,
    tz: TzOpt = None,
    max_papers: MaxOpt = None,
    min_upvotes: UpvotesOpt = None,
    recommend: RecommendOpt = None,
    clear_queries: Annotated[bool, typer.Option(help="Remove every query.")] = False,
    clear_topics: Annotated[bool, typer.Option(help="Remove every topic.")] = False,
    config: ConfigOption = None,
) -> None:
    """Change a subscriber's preferences; given lists replace the old ones."""
    changes: dict[str, Any] = {
        k: v
        for k, v in {
            "queries": query,
            "topics": topic,
            "cadence": cadence,
            "weekday": weekday,
            "hour": hour,
            "tz": tz,
            "max_papers": max_papers,
            "min_upvotes": min_upvotes,
            "recommend": recommend,
        }.items()
        if v is not None
    }
    if clear_queries:
        changes["queries"] = []
    if clear_topics:
        changes["topics"] = []
    if not changes:
        raise typer.BadParameter("nothing to change: give at least one option")
    cfg, store = open_store(config)
    with store:
        sub = subs.edit(store, open_topics(cfg), email, changes, _now())
    out.print(f"Updated {escape(sub.email)}.", highlight=False)


@group.command("list")
@fails_cleanly
def list_command(
    status: Annotated[str | None, typer.Option(help=f"One of {SUBSCRIBER_STATUSES}.")] = None,
    as_json: JsonOpt = False,
    config: ConfigOption = None,
) -> None:
    """List subscribers."""
    if status is not None and status not in SUBSCRIBER_STATUSES:
        raise typer.BadParameter(f"{status!r} is not one of {', '.join(SUBSCRIBER_STATUSES)}")
    _, store = open_store(config)
    with store:
        people = store.iter_subscribers((SubscriberStatus(status),) if status else None)
        if as_json:
            for sub in people:
                sys.stdout.write(json_text(asdict(sub)) + "\n")
            return
        table = Table()
        for column in ("email", "status", "cadence", "hour", "tz", "max", "topics", "queries"):
            table.add_column(column)
        count = 0
        for sub in people:
            count += 1
            when = sub.cadence if sub.cadence == "daily" else f"weekly ({sub.weekday})"
            table.add_row(
                *(
                    escape(str(c))
                    for c in (
                        sub.email,
                        sub.status,
                        when,
                        f"{sub.hour:02d}:00",
                        sub.tz,
                        sub.max_papers,
                        ", ".join(sub.topics),
                        " | ".join(sub.queries),
                    )
                )
            )
        counts = store.count_subscribers()
    out.print(table)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none yet"
    out.print(f"{count} shown; {summary}.")


@group.command("show")
@fails_cleanly
def show_command(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    as_json: JsonOpt = False,
    config: ConfigOption = None,
) -> None:
    """Show one subscriber, what they receive and their history."""
    _, store = open_store(config)
    with store:
        sub = subs.find(store, email)
        data = _public(sub, store)
        events = store.subscriber_events(sub.id or 0)
    if as_json:
        sys.stdout.write(json_text(data) + "\n")
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        table.add_row(key, escape("" if shown is None else str(shown)))
    out.print(table)
    history = Table(title="history", title_justify="left")
    for column in ("at", "event", "cause", "detail"):
        history.add_column(column)
    for event in events[-20:]:
        detail = json.dumps(event["detail"], ensure_ascii=False)
        history.add_row(
            f"{event['at']:%Y-%m-%dT%H:%M:%S}",
            event["event"],
            escape(event["cause"]),
            escape(detail),
        )
    out.print(history)


def _status_command(name: str, status: SubscriberStatus, cause: str, doc: str) -> None:
    @group.command(name, help=doc)
    @fails_cleanly
    def command(
        email: Annotated[str, typer.Argument(help="The subscriber's address.")],
        config: ConfigOption = None,
    ) -> None:
        _, store = open_store(config)
        with store:
            sub = subs.set_status(store, email, status, _now(), cause)
        out.print(f"{escape(sub.email)} is now {sub.status}.", highlight=False)


_status_command(
    "resume", SubscriberStatus.ACTIVE, "resumed by operator", "Resume (or activate) a subscriber."
)
_status_command(
    "unsubscribe",
    SubscriberStatus.UNSUBSCRIBED,
    "unsubscribed by operator",
    "Stop all mail to a subscriber.",
)


@group.command("pause")
@fails_cleanly
def pause_command(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    weeks: Annotated[int | None, typer.Option(min=1, help="Resume after N weeks.")] = None,
    config: ConfigOption = None,
) -> None:
    """Pause a subscriber's emails, for N weeks or until resumed."""
    until = None
    if weeks:
        until = datetime.now(UTC) + timedelta(weeks=weeks)
    _, store = open_store(config)
    with store:
        paused = SubscriberStatus.PAUSED
        sub = subs.set_status(store, email, paused, _now(), "paused by operator", until)
    note = f" until {until:%Y-%m-%d}" if until else ""
    out.print(f"{escape(sub.email)} is paused{note}.", highlight=False)


@group.command("remove")
@fails_cleanly
def remove_command(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    config: ConfigOption = None,
) -> None:
    """Erase a subscriber and what was sent to them (the removal itself is logged)."""
    _, store = open_store(config)
    with store:
        sub = subs.find(store, email)
        confirm_or_exit(f"Erase {sub.email} and their history?", yes)
        subs.remove(store, email, _now())
    out.print(f"Removed {escape(sub.email)}.", highlight=False)


@group.command("import")
@fails_cleanly
def import_command(
    path: Annotated[Path, typer.Argument(help="CSV with a header; '-' reads stdin.")],
    active: Annotated[bool, typer.Option("--active", help="Import as active.")] = False,
    config: ConfigOption = None,
) -> None:
    """Import subscribers from CSV: all rows or none; known addresses are skipped. Pending
    ones (without --active) are sent a confirmation email."""
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a BOM, which would become part of the
        # first header ("\ufeffemail") and hide the email column.
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as ex:
        raise SubscriberError(f"{path}: cannot read: {ex}") from ex
    cfg, store = open_store(config)
    tokens = None if active else Tokens(cfg.secret, cfg.old_secrets)
    started = _now()
    with store:
        report = subs.import_csv(
            store,
            open_topics(cfg),
            text,
            started,
            SubscriberStatus.ACTIVE if active else SubscriberStatus.PENDING,
        )
        # The rows this import added (the report counts them, it does not name them).
        pending = [
            s
            for s in store.iter_subscribers([SubscriberStatus.PENDING])
            if s.created_at is not None and s.created_at >= started
        ]
    out.print(
        f"Imported {report.added}; {len(report.existing)} already subscribed.", highlight=False
    )
    if tokens is not None and pending:
        _invite(cfg, pending, tokens)


@group.command("export")
@fails_cleanly
def export_command(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    config: ConfigOption = None,
) -> None:
    """Write every subscriber as CSV to stdout (the format `import` reads)."""
    _, store = open_store(config)
    with store:
        only = (subs.parse_status("export", status),) if status else None
        sys.stdout.write(subs.export_csv(store, only))


@app.command("topics")
@fails_cleanly
def topics_command(config: ConfigOption = None) -> None:
    """List the topic presets and how many stored papers each matches."""
    cfg, store = open_store(config)
    topics = open_topics(cfg)
    with store:
        papers = store.list_papers(limit=None)
    matcher = Matcher(papers, topics, datetime.now(UTC))
    table = Table()
    for column in ("topic", "title", "papers", "query"):
        table.add_column(column, justify="right" if column == "papers" else "left")
    for name, topic in topics.items():
        count = len(matcher.index.matches(matcher.node(topic.query)))
        table.add_row(name, escape(topic.title), str(count), escape(topic.query))
    out.print(table)
    out.print(f"{len(topics)} topics over {len(papers)} stored papers ({cfg.topics_path}).")


@group.command("links")
@fails_cleanly
def links_command(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    config: ConfigOption = None,
) -> None:
    """Print a subscriber's manage, unsubscribe and feed URLs, and the web page of their
    latest email (for support, scripts and the demo)."""
    cfg, store = open_store(config)
    with store:
        sub = subs.find(store, email)
        latest = store.sent_deliveries(sub.id or 0, 1)
    tokens = Tokens(cfg.secret, cfg.old_secrets)
    links = subscriber_links(tokens, cfg.web.base_url, sub.id or 0, sub.email)
    if latest:
        links["web"] = f"{links['web']}/{latest[0]['edition']}"
    for purpose, url in links.items():
        out.print(f"{purpose}: {url}", highlight=False, soft_wrap=True)
