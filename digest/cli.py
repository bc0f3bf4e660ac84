"""The `digest` command line: arguments, progress, tables, exit codes. No logic of its own.

Each command loads the config, opens the store, calls one library function and prints. A
DigestError becomes one red line on stderr and exit 1, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from digest import __version__
from digest.collect import SourceReport, collect, selected_sources
from digest.config import Config, load_config
from digest.errors import DigestError
from digest.store import Store

app = typer.Typer(
    help="Trending research papers, filtered per subscriber, in their inbox.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Config file (else $DIGEST_CONFIG, else config/digest.toml)."
    ),
]


def _error(message: str) -> None:
    err.print(f"[red]Error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def fails_cleanly(func: F) -> F:
    """Turn the library's own errors into one line on stderr and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DigestError as ex:
            _error(str(ex))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[red]Interrupted.[/red]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _open(config_path: Path | None) -> tuple[Config, Store]:
    config = load_config(config_path)
    return config, Store(config.database.path)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        message = f"{value!r} is not a date like 2026-11-24"
        raise typer.BadParameter(message, param_hint=option) from None


def _version(value: bool) -> None:
    if value:
        out.print(f"digest {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Trending research papers, filtered per subscriber, in their inbox."""


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
    cfg, store = _open(config)
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
                day=_day(day, "--date"),
                since=_day(since, "--since"),
                only=source,
                progress=advance,
            )
        _print_reports(reports, store.count_papers())
    failed = [r for r in reports if r.error]
    for report in failed:
        _error(report.error or "")
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
    _, store = _open(config)
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


def main() -> None:
    app()
