"""The typer app and what every command shares: config loading, errors, consoles.

A DigestError becomes one red line on stderr and exit 1, never a traceback (the process may
hold SMTP credentials, so locals are never shown either).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from digest import __version__
from digest.config import Config, load_config, load_topics
from digest.errors import DigestError
from digest.models import Topic
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


def error_line(message: str) -> None:
    err.print(f"[red]Error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def fails_cleanly(func: F) -> F:
    """Turn the library's own errors into one line on stderr and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DigestError as ex:
            error_line(str(ex))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[red]Interrupted.[/red]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def open_store(config_path: Path | None) -> tuple[Config, Store]:
    config = load_config(config_path)
    return config, Store(config.database.path)


def parse_day(value: str | None, option: str) -> date | None:
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
    return load_topics(config.topics_path)


def confirm_or_exit(question: str, yes: bool) -> None:
    """Destructive commands ask; scripts pass --yes. Without a terminal, not asking is an error."""
    if yes:
        return
    if not err.is_terminal:
        raise typer.BadParameter("refusing without --yes (no terminal to ask on)")
    if not typer.confirm(question, err=True):
        raise typer.Exit(1)
