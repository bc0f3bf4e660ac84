"""The one error this package raises: a DigestError, so the CLI prints it as one line."""

from __future__ import annotations

from digest.errors import DigestError

__all__ = ["RecommendError"]


class RecommendError(DigestError):
    """A recommendation input or saved state that cannot be used; the message says which."""
