"""Commands over papers: `digest collect` and `digest papers`."""

from __future__ import annotations

import re
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from digest.cli.app import (
    ConfigOption,
    app,
    err,
    error_line,
    fails_cleanly,
    json_text,
    open_store,
    out,
    parse_day,
)
from digest.collect import SourceReport, collect, selected_sources

# ANSI/VT escape sequences (CSI, OSC, other ESC forms), then any control or bidi-override
# character left: feed text must not move the cursor, retitle the terminal or reorder a line.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window title, hyperlinks
    r"|\x1b[@-Z\\-_]?"  # any other ESC form
)
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def for_terminal(text: str) -> str:
    """Text from a feed as a terminal may show it: escapes dropped, controls made spaces, and
    rich markup escaped."""
    return escape(_CONTROLS.sub(" ", _ESCAPES.sub("", text)))


def json_line(row: object) -> str:
    """One JSON object on one line, the text kept; the characters JSON leaves raw but a
    terminal or a line-splitting reader would act on (C1, U+2028, bidi overrides) escaped."""
    text = json_text(row)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


@app.command("collect")
@fails_cleanly
def collect_command(
    source: Annotated[str | None, typer.Option(help="Collect only this source (by name).")] = None,
    day: Annotated[
        str | None, typer.Option("--date", help="The day to collect (YYYY-MM-DD; default today).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Backfill every day from this one (YYYY-MM-DD).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Fetch new papers from every source into the database.

    Exit codes: 0 every source landed whole; 1 something was lost while the rest was stored (a
    source failed, or items were skipped as malformed or over [collect].max_items: one line
    each on stderr); 2 refused to start, or the database cannot be written (one line naming
    the file).
    """
    cfg, store = open_store(config)
    with store:
        names = [s.name for s in selected_sources(cfg, source)]
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} sources"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,  # cron and pipes get no spinner codes
        ) as bar:
            task = bar.add_task("collecting " + ", ".join(names), total=len(names))

            def advance(name: str, status: str) -> None:
                """Tick the bar as each source ends, naming it and how it went."""
                bar.advance(task)
                bar.update(task, description=f"{name} {status}")

            reports = collect(
                cfg,
                store,
                datetime.now(UTC),
                day=parse_day(day, "--date"),
                since=parse_day(since, "--since"),
                only=source,
                progress=advance,
            )
        _print_reports(reports, store.count_papers())
    for report in reports:
        if report.error:
            error_line(_plain(report.error))
        elif report.warning:
            err.print(
                f"[yellow]Warning:[/yellow] {for_terminal(report.warning)}",
                highlight=False,
                soft_wrap=True,
            )
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def _plain(text: str) -> str:
    """Controls out, markup kept literal: error_line escapes markup itself."""
    return _CONTROLS.sub(" ", _ESCAPES.sub("", text))


def _print_reports(reports: list[SourceReport], total: int) -> None:
    """One row per source (what it brought, what it cost), then the store's total."""
    table = Table(title="collect", title_justify="left")
    for column in ("source", "fetched", "new", "updated", "skipped", "errors", "time"):
        table.add_column(column, justify="left" if column == "source" else "right")
    table.add_column("note")
    for r in reports:
        note = "failed (see below)" if r.error else for_terminal(r.note or "")
        if r.skipped and not r.error:
            note = f"{r.skipped} skipped (see below)" + (f"; {note}" if note else "")
        table.add_row(
            for_terminal(r.source),
            str(r.fetched),
            str(r.new),
            str(r.updated),
            str(r.skipped),
            "1" if r.error else "0",
            f"{r.seconds:.2f}s",
            note,
        )
    out.print(table)
    out.print(f"{total} papers stored.")


@app.command("papers")
@fails_cleanly
def papers_command(
    search: Annotated[str | None, typer.Argument(help="Full-text search words.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    config: ConfigOption = None,
) -> None:
    """List stored papers, newest first."""
    _, store = open_store(config)
    with store:
        papers = store.list_papers(search, limit=limit)
    if as_json:
        for paper in papers:
            row = asdict(paper)
            for key in ("source", "raw_id"):  # internal bookkeeping, not in the JSON contract
                row.pop(key)
            sys.stdout.write(json_line(row) + "\n")
        return
    table = Table(show_lines=False)
    table.add_column("id", no_wrap=True)
    table.add_column("title")
    table.add_column("authors")
    table.add_column("up", justify="right")
    table.add_column("sources")
    for p in papers:
        authors = ", ".join(p.authors[:2]) + (
            f" +{len(p.authors) - 2}" if len(p.authors) > 2 else ""
        )
        upvotes = "" if p.upvotes is None else str(p.upvotes)
        cells = (p.id, p.title, authors, upvotes, ",".join(p.sources))
        table.add_row(*(for_terminal(c) for c in cells))
    out.print(table)
    if not papers:
        out.print("No papers match." if search else "No papers yet: run `digest collect`.")
