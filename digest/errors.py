"""One exception hierarchy for the whole package.

The CLI turns any DigestError into one red line (exit 2 for ConfigError and StoreError, else
exit 1); anything else escaping is a bug.
"""


class DigestError(Exception):
    """Base of every error a user may see: the message says what, where and what to check."""


class ConfigError(DigestError):
    """Our own setup is wrong (config, topics, secret, key, templates): the CLI refuses to
    start with exit 2 and nothing is touched, so fixing it loses no edition."""


class SourceError(DigestError):
    """One source could not be fetched or read: it costs that source, the others still land."""


class StoreError(DigestError):
    """The database cannot be opened, migrated or written: exit 2, naming the file."""


class QueryError(DigestError):
    """A filter query that does not parse; `position` is the 0-based offset of the fault."""

    def __init__(self, message: str, query: str = "", position: int = 0, hint: str = "") -> None:
        super().__init__(message)
        self.query = query
        self.position = position
        self.hint = hint

    def caret(self) -> str:
        """The query with a caret under the fault, and the hint, for terminals and web forms.
        The padding copies the query's tabs, so the caret stays under the fault wherever the
        display puts its tab stops."""
        pad = "".join(c if c == "\t" else " " for c in self.query[: self.position])
        lines = [self.query, pad.ljust(self.position) + "^", str(self)]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


class SubscriberError(DigestError):
    """A subscriber's input or a change to them is refused (bad address, unknown topic, a
    status change the rules forbid); nothing was stored."""


class RenderError(DigestError):
    """Templates that do not load or an email that cannot be built from them."""


class SendError(DigestError):
    """A transport could not hand a message over (SMTP or the outbox)."""


class TokenError(DigestError):
    """A signed link that is not genuine, or no secret to sign links with."""
