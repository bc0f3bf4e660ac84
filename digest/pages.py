"""The web app's HTML pages: jinja2 templates under templates/web/, autoescaped.

Emails are render.py's; this module only turns a page name and plain values into HTML, so the
web app stays thin and every page escapes user and feed text the same way.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape

from digest.config import Config
from digest.errors import RenderError
from digest.render import templates_dir


class Pages:
    """The web templates, loaded once, and what every page shows (brand, postal address)."""

    def __init__(self, config: Config, brand: str) -> None:
        self.folder = templates_dir(config)
        self.env = Environment(
            loader=FileSystemLoader(self.folder),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.common = {"brand": brand, "postal_address": config.mail.postal_address}

    def render(self, name: str, **context: Any) -> str:
        """The page templates/web/<name>.html.j2 with `context`, escaped.

        Raises:
            RenderError: the template is missing, broken, or uses a value not given.
        """
        try:
            return self.env.get_template(f"web/{name}.html.j2").render(**self.common, **context)
        except TemplateError as ex:
            raise RenderError(f"web/{name}: {ex}") from ex

    def stylesheet(self) -> str:
        """The pages' one CSS file, served as /static/web.css (pages and emails' web view)."""
        return (self.folder / "web" / "web.css").read_text(encoding="utf-8")

    def script(self) -> str:
        """The forms' one script (the live preview), served as /static/preview.js: the CSP
        runs scripts from 'self' only, never inline."""
        return (self.folder / "web" / "preview.js").read_text(encoding="utf-8")
