"""Operating commands: `digest serve` (the web app)."""

from __future__ import annotations

from typing import Annotated

import typer

from digest.cli.app import ConfigOption, app, fails_cleanly, open_topics
from digest.config import load_config
from digest.tokens import Tokens


@app.command("serve")
@fails_cleanly
def serve_command(
    host: Annotated[str | None, typer.Option(help="Address to listen on ([web].host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port ([web].port).")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the web app: subscribe, confirm, unsubscribe, preferences."""
    from digest.web import serve

    cfg = load_config(config)
    Tokens(cfg.secret, cfg.old_secrets)  # fail now, in one line, if DIGEST_SECRET is missing
    serve(cfg, open_topics(cfg), host or cfg.web.host, port or cfg.web.port)
