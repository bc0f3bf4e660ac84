"""The `digest` command line: arguments, progress, tables, exit codes. No logic of its own.

Each command loads the config, opens the store, calls one library function and prints.
"""

from digest.cli import (  # noqa: F401  (registers)
    bounces,
    daily,
    matching,
    ops,
    papers,
    people,
    reading,
)
from digest.cli.app import app


def main() -> None:
    """The `digest` console script and `python -m digest`: runs the typer app, whose exit
    code is the process's (0 done, 1 something failed, 2 refused to start)."""
    app()


__all__ = ["app", "main"]
