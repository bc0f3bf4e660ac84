"""One exception hierarchy for the whole package.

The CLI turns any DigestError into one red line and exit 1; everything else is a bug.
"""


class DigestError(Exception):
    """Base of every error a user may see: the message says what, where and what to check."""


class ConfigError(DigestError):
    pass


class SourceError(DigestError):
    pass


class StoreError(DigestError):
    pass


class QueryError(DigestError):
    """A filter query that does not parse; `position` is the 0-based offset of the fault."""

    def __init__(self, message: str, query: str = "", position: int = 0, hint: str = "") -> None:
        super().__init__(message)
        self.query = query
        self.position = position
        self.hint = hint

    def caret(self) -> str:
        """The query with a caret under the fault, and the hint, for terminals and web forms."""
        lines = [self.query, " " * self.position + "^", str(self)]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


class SubscriberError(DigestError):
    pass


class RenderError(DigestError):
    pass


class SendError(DigestError):
    pass


class TokenError(DigestError):
    pass
