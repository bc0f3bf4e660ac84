"""temporary: the lead removes it when the importers move.

Re-exports the two names still imported from here (`digest.match`: positions,
`digest.render.cards`: display); both live in the `digest.query` package now.
"""

from __future__ import annotations

from digest.query import display, positions

__all__ = ["display", "positions"]
