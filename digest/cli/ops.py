"""Operating commands: `digest serve`, `digest stats`, `digest doctor`."""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape as _escape
from rich.table import Table
from rich.text import Text

from digest.bounces.health import BOUNCE_COLUMNS, bounce_rows
from digest.cli.app import (
    EXIT_CODES,
    ConfigOption,
    app,
    error_line,
    fails_cleanly,
    json_text,
    open_store,
    open_topics,
    out,
    terminal_safe,
)
from digest.config import load_config
from digest.ops import doctor, preflight, stats


def escape(text: str) -> str:
    """For rich: markup escaped, and control characters from feeds or replies dropped."""
    return _escape(terminal_safe(text))


@app.command("serve", epilog=EXIT_CODES)
@fails_cleanly
def serve_command(
    host: Annotated[str | None, typer.Option(help="Address to listen on ([web].host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port ([web].port).")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Processes answering on the port (forked). Each keeps its own caches and "
            "rate limits: N processes let a client through up to N times the limits.",
        ),
    ] = 1,
    config: ConfigOption = None,
) -> None:
    """Run the web app: subscribe, confirm, unsubscribe, preferences.

    Refuses to start (exit 2) without DIGEST_SECRET (32+ characters), with a DKIM key that
    does not sign or templates that do not load.
    """
    from digest.web import serve  # here, so other commands never load starlette or uvicorn

    cfg = load_config(config)
    topics = open_topics(cfg)
    preflight(cfg, topics)
    serve(cfg, topics, host or cfg.web.host, port or cfg.web.port, workers)


@app.command("stats")
@fails_cleanly
def stats_command(
    days: Annotated[int, typer.Option(min=1, help="Days of sends to show.")] = 14,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
    config: ConfigOption = None,
) -> None:
    """Subscribers by status, sends per day, failures, top topics, source health."""
    _, store = open_store(config)
    with store:
        data = stats(store, datetime.now(UTC), days)
    if as_json:
        data["sources"] = [asdict(s) for s in data["sources"]]
        data["recent_failures"] = [asdict(f) for f in data["recent_failures"]]
        sys.stdout.write(json_text(data) + "\n")
        return
    people = ", ".join(f"{n} {s}" for s, n in sorted(data["subscribers"].items())) or "none"
    out.print(f"Subscribers: {escape(people)}.  Papers stored: {data['papers']}.", highlight=False)
    sends = Table(title=f"sends, last {days} days", title_justify="left")
    for column in ("day", "sent", "failed"):
        sends.add_column(column, justify="right")
    for day, sent, failed in data["sends_per_day"]:
        sends.add_row(day, str(sent), str(failed))
    out.print(sends)
    bounces = Table(title=f"bounces and complaints, last {days} days", title_justify="left")
    for column in BOUNCE_COLUMNS:
        bounces.add_column(column, justify="right")
    for row in bounce_rows(data["bounces_per_day"]):
        bounces.add_row(*row)
    out.print(bounces)
    topics = Table(title="top topics", title_justify="left")
    topics.add_column("topic")
    topics.add_column("subscribers", justify="right")
    for name, count in list(data["top_topics"].items())[:10]:
        topics.add_row(escape(name), str(count))
    out.print(topics)
    sources = Table(title="sources", title_justify="left")
    for column in ("source", "last success", "failures in a row", "last error"):
        sources.add_column(column)
    for s in data["sources"]:
        last = f"{s.last_success:%Y-%m-%dT%H:%M}" if s.last_success else "never"
        sources.add_row(escape(s.source), last, str(s.failures), escape(s.last_error or ""))
    out.print(sources)
    if data["recent_failures"]:
        failures = Table(title="recent failed deliveries", title_justify="left")
        for column in ("when", "email", "edition", "reply"):
            failures.add_column(column)
        for f in data["recent_failures"]:
            when = f"{f.updated_at:%Y-%m-%dT%H:%M}" if f.updated_at else ""
            failures.add_row(when, escape(f.email), f.edition,
                             escape(f.last_reply or ""))  # fmt: skip
        out.print(failures)


DOCTOR_EXIT_CODES = (
    "Exit codes: 0 all done; 1 something failed: a check failed (warnings pass); "
    "2 refused to start: the config does not load."
)


@app.command("doctor", epilog=DOCTOR_EXIT_CODES)
@fails_cleanly
def doctor_command(config: ConfigOption = None) -> None:
    """Check the config, database, SMTP server (EHLO only), secret, DKIM key (and the DNS
    record to publish for it) and public URL. Exit 1 when a check fails."""
    cfg = load_config(config)
    checks = doctor(cfg)
    styles = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    for check in checks:
        line = Text(f"{check.verdict.upper():>4}  ", style=styles[check.verdict])
        line.append(terminal_safe(f"{check.name}: {check.detail}"), style="default")
        out.print(line, soft_wrap=True)
    failed = [c for c in checks if c.verdict == "fail"]
    if failed:
        error_line(f"{len(failed)} check(s) failed: {', '.join(c.name for c in failed)}")
        raise typer.Exit(1)
