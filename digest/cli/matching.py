"""Commands over the filter language: `digest query check` and `digest preview`."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from digest import subscribers as subs
from digest.build import Built, Counts, build_digest
from digest.cli.app import (
    ConfigOption,
    app,
    err,
    fails_cleanly,
    open_store,
    open_topics,
    out,
    parse_day,
)
from digest.config import Config
from digest.edition import Edition, daily_window, papers_in
from digest.errors import QueryError
from digest.match import Match, Matcher, Matches, Recommended
from digest.models import Paper, Subscriber
from digest.plan import Recommender
from digest.query import format_query, highlight_spans, parse, terms_of
from digest.recommend.errors import RecommendError
from digest.render import Reading, Renderer, why_lines
from digest.store import Store
from digest.tokens import Tokens, subscriber_links

query_group = typer.Typer(help="Work with filter queries.", no_args_is_help=True)
app.add_typer(query_group, name="query")


@query_group.command("check")
def check_command(query: Annotated[str, typer.Argument(help="The query to check.")]) -> None:
    """Check a query: exit 0 and its canonical form, or a caret under the fault and exit 1."""
    try:
        node = parse(query)
    except QueryError as ex:
        err.print(escape(ex.caret()), highlight=False)
        raise typer.Exit(1) from None
    out.print(f"OK: {escape(format_query(node))}", highlight=False)
    terms = ", ".join(format_query(t) for t in terms_of(node))
    out.print(f"highlights: {escape(terms)}", highlight=False)


def _highlighted(text: str, match: Match, field: str) -> Text:
    rich_text = Text(text)
    for start, end in highlight_spans(text, match.terms, field):
        rich_text.stylize("bold yellow", start, end)
    return rich_text


def _why(match: Match) -> list[dict[str, object]]:
    return [
        {
            "kind": r.kind,
            "name": r.name,
            "hits": [{"term": h.term, "field": h.field} for h in r.hits],
        }
        for r in match.reasons
    ]


@app.command("preview")
@fails_cleanly
def preview_command(
    query: Annotated[str | None, typer.Option("--query", "-q", help="A query to try.")] = None,
    subscriber: Annotated[
        str | None, typer.Option(help="Preview this subscriber's next email.")
    ] = None,
    edition: Annotated[
        str | None, typer.Option(help="The edition's date (YYYY-MM-DD; default today).")
    ] = None,
    all_papers: Annotated[
        bool, typer.Option("--all", help="Match every stored paper, not just the edition's.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many (with --query).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the subscriber's email here (.html, .txt).", file_okay=False
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Show what a query or a subscriber would get, ranked and highlighted. Sends nothing."""
    if (query is None) == (subscriber is None):
        raise typer.BadParameter("give exactly one of --query or --subscriber")
    if out_dir is not None and subscriber is None:
        raise typer.BadParameter("--out needs --subscriber", param_hint="--out")
    now = datetime.now(UTC)
    cfg, store = open_store(config)
    topics = open_topics(cfg)
    # Links in the email are signed: without DIGEST_SECRET, fail before doing any work.
    tokens = Tokens(cfg.secret, cfg.old_secrets) if out_dir is not None else None
    with store:
        current = Edition.daily(parse_day(edition, "--edition") or now.date())
        if all_papers:
            papers = store.list_papers(limit=None)
        else:
            papers = papers_in(store, daily_window(store, current.day, now))
        person, sent = _who(store, subscriber, query, limit, papers)
        matches = Matcher(papers, topics, now).for_subscriber(person, sent)
        recs = _recommended(cfg, store, person, papers, matches, sent, now) if subscriber else []
    if out_dir is not None and tokens is not None:
        links = subscriber_links(tokens, cfg.web.base_url, person.id or 0, person.email)
        built = build_digest(
            cfg, Renderer(cfg, topics), person, matches, current, Counts(len(papers)), links, now,
            reading=Reading(recs),
        )  # fmt: skip
        written = write_email_files(built, current, person, out_dir)
        for path in written:
            out.print(f"wrote {escape(str(path))}", highlight=False)
        if not written:
            out.print("No email: nothing matched and \\[mail].no_matches is skip.", highlight=False)
        return
    if as_json:
        _print_json(matches, recs, sections=subscriber is not None)
        return
    scope = "all stored papers" if all_papers else f"edition {current.name}"
    _print_matches(
        matches, len(papers), scope, "--limit" if subscriber is None else "their max papers"
    )


def _print_json(matches: Matches, recs: Sequence[Recommended], sections: bool) -> None:
    """One JSON object a line: the matches, then the recommendations; for a subscriber,
    `section` says which ("matches" or "recommended"; a query preview has only matches)."""
    for m in matches:
        row = {"id": m.paper.id, "title": m.paper.title, "score": round(m.score, 3)}
        row["why"] = _why(m)
        if sections:
            row["section"] = "matches"
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    for r in recs:
        rec = {"id": r.paper.id, "title": r.paper.title, "score": round(r.score, 3)}
        rec.update(why=r.why, section="recommended")
        sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")


def _recommended(
    cfg: Config,
    store: Store,
    person: Subscriber,
    papers: Sequence[Paper],
    matches: Matches,
    sent: set[str],
    now: datetime,
) -> list[Recommended]:
    """What the daily job would recommend this subscriber from the edition, after their
    matches (never one of them, nor a paper sent before)."""
    exclude = {person.id or 0: {m.paper.id for m in matches} | sent}
    try:
        planned = Recommender(cfg, store, now).recommend([person], papers, exclude)
    except RecommendError as ex:  # the matches are still worth showing
        err.print(f"recommendations left out: {escape(str(ex))}", highlight=False)
        return []
    by_id = {p.id: p for p in papers}
    return [Recommended(by_id[r.paper_id], r.score, r.why) for r in planned.get(person.id or 0, [])]


def _who(
    store: Store, subscriber: str | None, query: str | None, limit: int, papers: Sequence[Paper]
) -> tuple[Subscriber, set[str]]:
    """The subscriber to preview and the papers they already got; or, for a query, a
    stand-in subscriber asking for it (QueryError: the query does not parse)."""
    if subscriber:
        person = subs.find(store, subscriber)
        sent = store.sent_among([person.id or 0], [p.id for p in papers]).get(person.id or 0)
        return person, sent or set()
    parse(query or "")
    return Subscriber(email="preview@example.org", queries=[query or ""], max_papers=limit), set()


def _print_matches(matches: Matches, papers: int, scope: str, limit_name: str) -> None:
    line = f"{matches.total:,} of {papers:,} papers match ({scope})"
    if matches.total > len(matches):
        line += f"; showing the first {len(matches):,} ({limit_name})"
    out.print(line + ".", highlight=False)
    for n, m in enumerate(matches, 1):
        title = Text(f"{n:>2}. ")
        title.append(_highlighted(m.paper.title, m, "title"))
        title.append(f"  [{m.paper.id}, score {m.score:.1f}", style="dim")
        if m.paper.upvotes is not None:
            title.append(f", {m.paper.upvotes} upvotes", style="dim")
        title.append("]", style="dim")
        out.print(title)
        for reason, (label, terms) in zip(m.reasons, why_lines(m.reasons), strict=True):
            where = ", ".join(f"{term} ({fields})" for term, fields in terms)
            out.print(f"      {reason.kind} {escape(label)}: {escape(where)}", style="dim")


def write_email_files(
    built: Built | None, edition: Edition, person: Subscriber, out_dir: Path
) -> list[Path]:
    """The email as the subscriber would get it, built as the daily job builds it:
    `<edition>-<email>.html`, `.txt`, `.eml` (none when there is nothing to send)."""
    if built is None:
        return []
    files: dict[str, str | bytes] = {
        ".html": built.rendered.html,
        ".txt": built.rendered.text,
        ".eml": built.message.data,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{edition.name}-{re.sub(r'[^A-Za-z0-9@._+-]', '_', person.email)}"
    written = []
    for suffix, content in files.items():
        path = out_dir / f"{stem}{suffix}"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
