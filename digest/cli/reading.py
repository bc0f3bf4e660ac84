"""Commands over what readers like: `digest feedback` (what a click in the email records) and
`digest subscribers seed` (papers a reader likes, from ids, BibTeX or a Zotero CSV)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from digest import subscribers as subs
from digest.cli.app import ConfigOption, app, fails_cleanly, open_store, out, terminal_safe
from digest.cli.people import group
from digest.plan import add_seeds, read_seed_file
from digest.store import SignalKind


@app.command("feedback")
@fails_cleanly
def feedback_command(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    paper_id: Annotated[str, typer.Argument(help="A stored paper's id (arXiv id).")],
    more: Annotated[bool, typer.Option("--more", help="More like this.")] = False,
    less: Annotated[bool, typer.Option("--less", help="Less like this.")] = False,
    config: ConfigOption = None,
) -> None:
    """Record "More like this" or "Less like this" for a subscriber, as a click would."""
    if more == less:
        raise typer.BadParameter("give exactly one of --more or --less")
    kind = SignalKind.MORE if more else SignalKind.LESS
    _, store = open_store(config)
    with store:
        sub = subs.record_feedback(store, email, paper_id, kind, datetime.now(UTC), "cli")
    said = "More" if more else "Less"
    out.print(f"{escape(sub.email)}: {said} like {escape(paper_id.strip())}.", highlight=False)


@group.command("seed")
@fails_cleanly
def seed_command(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    file: Annotated[
        Path,
        typer.Argument(
            help="arXiv ids or URLs (one a line), a BibTeX file or a Zotero/Mendeley CSV.",
            exists=True,
            dir_okay=False,
        ),
    ],
    config: ConfigOption = None,
) -> None:
    """Add papers a subscriber likes (seeds): their recommendations learn from them."""
    _, store = open_store(config)
    with store:
        sub = subs.find(store, email)
        data = read_seed_file(str(file))
        line = add_seeds(store, sub, data, file.name, datetime.now(UTC), "cli")
    out.print(escape(terminal_safe(line)), highlight=False, soft_wrap=True)
