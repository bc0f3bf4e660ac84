"""Commands over papers: `digest collect` and `digest papers`."""

from __future__ import annotations

import json
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
    open_store,
    out,
    parse_day,
)
from digest.collect import SourceReport, collect, selected_sources


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
    """Fetch new papers from every source into the database."""
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
            disable=not err.is_terminal,
        ) as bar:
            task = bar.add_task("collecting " + ", ".join(names), total=len(names))

            def advance(name: str, status: str) -> None:
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
    failed = [r for r in reports if r.error]
    for report in failed:
        error_line(report.error or "")
    if failed and len(failed) == len(reports):
        raise typer.Exit(1)


def _print_reports(reports: list[SourceReport], total: int) -> None:
    table = Table(title="collect", title_justify="left")
    for column in ("source", "fetched", "new", "updated", "errors", "time"):
        table.add_column(column, justify="left" if column == "source" else "right")
    table.add_column("note")
    for r in reports:
        table.add_row(
            r.source,
            str(r.fetched),
            str(r.new),
            str(r.updated),
            "1" if r.error else "0",
            f"{r.seconds:.2f}s",
            "failed (see below)" if r.error else escape(r.note or ""),
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
            for key in ("source", "raw_id"):
                row.pop(key)
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
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
        table.add_row(*(escape(c) for c in (p.id, p.title, authors, upvotes, ",".join(p.sources))))
    out.print(table)
    if not papers:
        out.print("No papers match." if search else "No papers yet: run `digest collect`.")
