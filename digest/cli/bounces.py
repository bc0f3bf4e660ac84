"""`digest bounces`: read the bounce mailbox, act on what it holds, say what was done."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from digest.bounces.process import BounceReport, process_mailbox
from digest.cli.app import (
    ConfigOption,
    app,
    error_line,
    fails_cleanly,
    open_store,
    out,
    terminal_safe,
)

BOUNCES_EXIT_CODES = (
    "Exit codes: 0 the mailbox was read to the end (unparseable messages are counted, not "
    "failures); 1 the mailbox could not be read fully; 2 refused to start (no bounce "
    "mailbox configured, DIGEST_SECRET or DIGEST_IMAP_PASSWORD missing, database)."
)


@app.command("bounces", epilog=BOUNCES_EXIT_CODES)
@fails_cleanly
def bounces_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per message: what it was and did.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Read the bounce mailbox (the bounces section's maildir or imap_host): DSNs, complaints
    (ARF), auto-replies and unsubscribe requests. Hard bounces count toward bounce_limit, soft
    ones toward soft_limit, complaints and requests unsubscribe at once. Each message is
    handled once, then marked."""
    cfg, store = open_store(config)
    with store:
        report = process_mailbox(cfg, store, datetime.now(UTC))
    if as_json:
        # Straight to stdout: rich would wrap long lines at the console width (80 in a pipe)
        # and break the one-object-a-line contract.
        for outcome in report.outcomes:
            sys.stdout.write(json.dumps(outcome.as_json(), ensure_ascii=False) + "\n")
    else:
        print_table(report)
    for problem in report.errors:
        error_line(problem)
    if report.failed:
        raise typer.Exit(1)


def print_table(report: BounceReport) -> None:
    """Messages per kind and action, then the summary line."""
    table = Table(title="bounce mailbox", title_justify="left")
    for column in ("kind", "action", "messages"):
        table.add_column(column, justify="right" if column == "messages" else "left")
    pairs: dict[tuple[str, str], int] = {}
    for o in report.outcomes:
        pairs[(str(o.kind), str(o.action))] = pairs.get((str(o.kind), str(o.action)), 0) + 1
    for (kind, action), count in sorted(pairs.items()):
        table.add_row(kind, action, str(count))
    if pairs:
        out.print(table)
    out.print(escape(terminal_safe(report.summary())), highlight=False, soft_wrap=True)
