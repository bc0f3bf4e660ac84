"""The daily job's commands: `digest run` (cron) and `digest send` (what is pending)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from digest.cli.app import (
    EXIT_CODES,
    ConfigOption,
    app,
    err,
    error_line,
    fails_cleanly,
    open_topics,
    out,
    terminal_safe,
)
from digest.config import Config, load_config
from digest.models import Topic
from digest.ops import preflight
from digest.pipeline import Pipeline, RunReport, run_async
from digest.schedule import RunLock
from digest.send import SendStats
from digest.store import Store

QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")]


def _shard(value: str | None) -> tuple[int, int] | None:
    """`--shard K/N` as (K, N); a malformed one is a usage error before anything runs."""
    if value is None:
        return None
    try:
        k, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not K/N, e.g. 1/4", param_hint="--shard") from None
    if not 1 <= k <= n:
        raise typer.BadParameter(f"{value!r}: K must be between 1 and N", param_hint="--shard")
    return k, n


def _stats_table(stats: SendStats, seconds: float) -> Table:
    """The send counters as one row, for a person watching a run on a terminal."""
    table = Table(title="send", title_justify="left")
    columns = ("sent", "skipped", "retried", "deferred", "failed", "errors", "possible dup.")
    for column in (*columns, "time", "emails/s"):
        table.add_column(column, justify="right")
    rate = stats.sent / seconds if seconds else 0.0
    table.add_row(
        str(stats.sent), str(stats.skipped), str(stats.retried), str(stats.deferred),
        str(stats.failed), str(stats.errors), str(stats.possible_duplicates),
        f"{seconds:.1f}s", f"{rate:.1f}",
    )  # fmt: skip
    return table


# a bad night can fail thousands of deliveries: cron mail gets the first 20 and a pointer
MAX_LINES = 20


def _finish(report: RunReport, quiet: bool, interactive: bool) -> None:
    """Cron gets one line (or nothing with --quiet); people get tables. Every failure is one
    line on stderr, also under --quiet, and makes the exit status 1."""
    stats = report.send
    problems = list(report.source_errors) + report.skip_lines + stats.failures
    problems += report.bounces.errors if report.bounces else []
    problems += [f"recommendations: {e}" for e in report.plan.recommend_errors]
    problems += report.plan.errors
    if interactive and not quiet:
        out.print(_stats_table(stats, report.seconds))
    if not quiet:
        out.print(escape(terminal_safe(report.summary())), highlight=False, soft_wrap=True)
    for problem in problems[:MAX_LINES]:
        error_line(problem)
    if len(problems) > MAX_LINES:
        error_line(f"... and {len(problems) - MAX_LINES} more (digest stats)")
    # nothing sent while some tried: the relay, not the subscribers, is the likely cause
    stalled = stats.sent == 0 and (stats.deferred > 0 or stats.failed > 0 or stats.errors > 0)
    all_sources_failed = bool(report.collected) and all(r.error for r in report.collected)
    if stalled or all_sources_failed:
        error_line(
            "nothing could be sent: check the SMTP server (digest doctor)"
            if stalled
            else "every source failed: check the network and the source URLs"
        )
    if report.failed or stalled or all_sources_failed:
        raise typer.Exit(1)


def _ready(config_path: Path | None, check: bool = True) -> tuple[Config, dict[str, Topic], Store]:
    """Config, preflight, then the database: a setup mistake refuses to start (exit 2) before
    anything is touched."""
    cfg = load_config(config_path)
    topics = open_topics(cfg)
    if check:
        preflight(cfg, topics)
    return cfg, topics, Store(cfg.database.path)


def _progress(interactive: bool) -> tuple[Progress, TaskID]:
    """A progress bar on stderr, disabled (a no-op) for cron and pipes."""
    bar = Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not interactive,
    )
    task = bar.add_task("send", total=None, last="")
    return bar, task


def _advance(bar: Progress, task: TaskID) -> Callable[[str, str], None]:
    """The run's progress hook: advance the bar as each delivery ends, naming it."""

    def done(email: str, status: str) -> None:
        bar.update(task, advance=1, last=terminal_safe(f"{status} {email}"))

    return done


@app.command("run", epilog=EXIT_CODES)
@fails_cleanly
def run_command(
    edition: Annotated[
        str | None, typer.Option(help="Run as of this date (YYYY-MM-DD, for catching up).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show who would get what; change nothing.")
    ] = False,
    no_collect: Annotated[bool, typer.Option("--no-collect", help="Skip collecting.")] = False,
    no_send: Annotated[
        bool, typer.Option("--no-send", help="Collect and plan only; `digest send` workers send.")
    ] = False,
    quiet: QuietOpt = False,
    config: ConfigOption = None,
) -> None:
    """The daily job for cron: collect, match, render, send. Safe to run hourly and twice.

    Refuses to start (exit 2) without DIGEST_SECRET (32+ characters), with a DKIM key that
    does not sign, or templates that do not load. Exit 1 when a source failed, feed items were
    skipped or a delivery failed or was deferred; the rest went out.
    """
    now = datetime.now(UTC)
    if edition:
        try:
            # the end of that day, so every send hour of the edition has come
            now = datetime.fromisoformat(edition).replace(tzinfo=UTC, hour=23, minute=59)
        except ValueError:
            raise typer.BadParameter(f"{edition!r} is not a date", param_hint="--edition") from None
    cfg, topics, store = _ready(config, check=not dry_run)
    interactive = err.is_terminal and not quiet
    with store, RunLock(store.path):
        pipeline = Pipeline(cfg, store, topics, now, clock=lambda: datetime.now(UTC))
        bar, task = _progress(interactive and not dry_run)
        done = _advance(bar, task)
        with bar:
            report = run_async(
                pipeline.run(
                    collect=not no_collect, send=not no_send, dry_run=dry_run, on_done=done
                )
            )
    if dry_run:
        for email, key, titles in report.plan.preview:
            line = f"{email}\t{key}\t{len(titles)} papers\t{' | '.join(titles)}"
            sys.stdout.write(terminal_safe(line) + "\n")
        out.print(
            f"dry run: {len(report.plan.preview)} due, {report.plan.no_matches} without "
            f"matches, {report.plan.not_due} not due yet, {report.plan.already} already "
            "planned; nothing was collected, recorded or sent.",
            highlight=False,
        )
        return
    _finish(report, quiet, interactive)


@app.command("send", epilog=EXIT_CODES)
@fails_cleanly
def send_command(
    shard: Annotated[
        str | None, typer.Option(help="Only subscribers with id %% N == K-1, e.g. 1/4.")
    ] = None,
    quiet: QuietOpt = False,
    config: ConfigOption = None,
) -> None:
    """Send what is planned and pending (retries included); plans nothing new.

    Refuses to start (exit 2) on the same setup mistakes as `run`; exit 1 when a delivery
    failed or was deferred.
    """
    parts = _shard(shard)
    cfg, topics, store = _ready(config)
    interactive = err.is_terminal and not quiet
    now = datetime.now(UTC)
    # workers share the run lock (a `run` excludes them all) and each holds its own shard's
    shard_lock = RunLock(f"{store.path}.shard{parts[0]}of{parts[1]}") if parts else nullcontext()
    with store, RunLock(store.path, shared=parts is not None), shard_lock:
        pipeline = Pipeline(cfg, store, topics, now, clock=lambda: datetime.now(UTC))
        report = RunReport(edition=now.date().isoformat())
        report.recovered = store.recover_interrupted(now, parts)
        bar, task = _progress(interactive)
        done = _advance(bar, task)
        started = datetime.now(UTC)
        with bar:
            report.send = run_async(pipeline.send(parts, done))
        report.seconds = (datetime.now(UTC) - started).total_seconds()
    _finish(report, quiet, interactive)
