"""The typer app and what every command shares: config loading, errors, consoles.

A DigestError becomes one red line on stderr, never a traceback (the process may hold SMTP
credentials, so locals are never shown either). Exit codes: 0 all done; 1 something failed and
the rest went out; 2 refused to start (configuration, secret, key, database: ConfigError and
StoreError). Text that may come from feeds or addresses is stripped of control characters
before it reaches a terminal.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from digest import __version__
from digest.config import Config, load_config, load_topics
from digest.errors import ConfigError, DigestError, QueryError, StoreError
from digest.models import Topic
from digest.query import parse
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


EXIT_CODES = (
    "Exit codes: 0 all done; 1 something failed and the rest went out (one line each on "
    "stderr, also with --quiet); 2 refused to start (configuration, secret, key, database)."
)
# ANSI/VT escape sequences (CSI, OSC and two-byte ones), then any other C0/C1 control
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """Feed titles, errors quoting a feed, addresses: shown, never obeyed by the terminal."""
    text = _ESCAPES.sub("", text)
    return _CONTROLS.sub("", text.replace("\r\n", " ").replace("\r", " "))


def error_line(message: str) -> None:
    """Print a failure as README promises: one red line on stderr, also under --quiet (a
    multi-line message is joined so cron mail and log greps see it whole)."""
    one = " ".join(terminal_safe(message).split("\n"))
    err.print(f"[red]Error:[/red] {escape(one)}", highlight=False, soft_wrap=True)


def json_value(value: object) -> str:
    """What JSON cannot hold, as text: a time in ISO 8601 as the store keeps it."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def json_text(data: object) -> str:
    """JSON for the terminal: text kept readable, times in ISO 8601."""
    return json.dumps(data, ensure_ascii=False, default=json_value)


def fails_cleanly(func: F) -> F:
    """Turn the library's own errors into one line on stderr: exit 2 when the setup refuses
    (configuration, database), else 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        """The command itself, with our errors mapped to exit codes instead of tracebacks."""
        try:
            return func(*args, **kwargs)
        except (ConfigError, StoreError) as ex:
            error_line(str(ex))
            raise typer.Exit(2) from None
        except DigestError as ex:
            error_line(str(ex))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[red]Interrupted.[/red]")
            raise typer.Exit(130) from None  # 128 + SIGINT: what a shell reports for Ctrl-C

    return wrapper  # type: ignore[return-value]


def open_store(config_path: Path | None) -> tuple[Config, Store]:
    """The config and its database, for commands that need both.

    Raises:
        ConfigError: the config does not load (the caller's `fails_cleanly` exits 2).
    """
    config = load_config(config_path)
    return config, Store(config.database.path)


def parse_day(value: str | None, option: str) -> date | None:
    """An ISO date from an option, or None when not given.

    Raises:
        typer.BadParameter: not YYYY-MM-DD (a usage error, exit 2, naming the option).
    """
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


def open_topics(config: Config) -> dict[str, Topic]:
    """The topic presets the config points at, for commands that validate or match topics.

    Raises:
        ConfigError: the topics file is missing or malformed, or a topic's query does not
            parse (named with the file and the topic, so the fix is obvious).
    """
    topics = load_topics(config.topics_path)
    for name, topic in topics.items():
        try:
            parse(topic.query)
        except QueryError as ex:
            raise ConfigError(f"{config.topics_path}: [{name}]: query: {ex}") from ex
    return topics


def confirm_or_exit(question: str, yes: bool) -> None:
    """Destructive commands ask; scripts pass --yes. Without a terminal, not asking is an error."""
    if yes:
        return
    if not err.is_terminal:
        raise typer.BadParameter("refusing without --yes (no terminal to ask on)")
    if not typer.confirm(question, err=True):
        raise typer.Exit(1)
