"""Operating commands: `digest serve`, `digest stats`, `digest doctor`."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from digest.cli.app import (
    ConfigOption,
    app,
    error_line,
    fails_cleanly,
    open_store,
    open_topics,
    out,
)
from digest.config import load_config
from digest.ops import doctor, stats
from digest.tokens import Tokens


@app.command("serve")
@fails_cleanly
def serve_command(
    host: Annotated[str | None, typer.Option(help="Address to listen on ([web].host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port ([web].port).")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the web app: subscribe, confirm, unsubscribe, preferences."""
    from digest.web import serve

    cfg = load_config(config)
    Tokens(cfg.secret, cfg.old_secrets)  # fail now, in one line, if DIGEST_SECRET is missing
    serve(cfg, open_topics(cfg), host or cfg.web.host, port or cfg.web.port)


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
        sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
        return
    people = ", ".join(f"{n} {s}" for s, n in sorted(data["subscribers"].items())) or "none"
    out.print(f"Subscribers: {escape(people)}.  Papers stored: {data['papers']}.", highlight=False)
    sends = Table(title=f"sends, last {days} days", title_justify="left")
    for column in ("day", "sent", "failed"):
        sends.add_column(column, justify="right")
    for day, sent, failed in data["sends_per_day"]:
        sends.add_row(day, str(sent), str(failed))
    out.print(sends)
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
        last = (s.last_success or "never")[:16]
        sources.add_row(escape(s.source), last, str(s.failures), escape(s.last_error or ""))
    out.print(sources)
    if data["recent_failures"]:
        failures = Table(title="recent failed deliveries", title_justify="left")
        for column in ("when", "email", "edition", "reply"):
            failures.add_column(column)
        for f in data["recent_failures"]:
            failures.add_row(f["updated_at"][:16], escape(f["email"]), f["edition"],
                             escape(f["last_reply"] or ""))  # fmt: skip
        out.print(failures)


@app.command("doctor")
@fails_cleanly
def doctor_command(config: ConfigOption = None) -> None:
    """Check the config, database, SMTP server (EHLO only), secret and public URL."""
    cfg = load_config(config)
    checks = doctor(cfg)
    styles = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    for check in checks:
        line = Text(f"{check.verdict.upper():>4}  ", style=styles[check.verdict])
        line.append(f"{check.name}: {check.detail}", style="default")
        out.print(line)
    failed = [c for c in checks if c.verdict == "fail"]
    if failed:
        error_line(f"{len(failed)} check(s) failed: {', '.join(c.name for c in failed)}")
        raise typer.Exit(1)
