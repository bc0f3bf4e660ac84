"""The parsed form of a filter: frozen, hashable nodes, so equal queries share one result.

Only data and walks over it: no parsing, no evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field

__all__ = [
    "FIELDS",
    "SYNTAX",
    "TEXT_FIELDS",
    "And",
    "Node",
    "Not",
    "Or",
    "Term",
    "Upvotes",
    "terms_of",
]

TEXT_FIELDS = ("any", "title", "abstract", "author")
# How a field is written in a query -> the field a Term holds.
FIELDS = {
    "title": "title",
    "abstract": "abstract",
    "author": "author",
    "cat": "category",
    "source": "source",
}
SYNTAX = {v: k for k, v in FIELDS.items()}


@dataclass(frozen=True, slots=True)
class Term:
    """A word, phrase or prefix in one field; `text` is as typed and does not affect equality.

    `field` is "any" (title or abstract), "title", "abstract", "author", "category" or
    "source". For text fields `words` are normalised (a prefix keeps its last word unstemmed);
    for category and source it is the one lower-cased value.
    """

    field: str
    words: tuple[str, ...]
    prefix: bool = False
    text: str = dataclass_field(default="", compare=False)

    def as_typed(self) -> str:
        """The term as typed; for a Term built in code, text that parses back to it."""
        if self.text:
            return self.text
        if self.prefix:
            return "-".join(self.words) + "*"
        return '"' + " ".join(self.words) + '"'


@dataclass(frozen=True, slots=True)
class Upvotes:
    """A comparison of a paper's HF upvotes with a whole number; `op` is >=, >, <=, < or =."""

    op: str
    value: int


@dataclass(frozen=True, slots=True)
class Not:
    """Papers the child does not match."""

    child: Node


@dataclass(frozen=True, slots=True)
class And:
    """Papers every child matches; never nested directly in another And."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Papers any child matches; never nested directly in another Or."""

    children: tuple[Node, ...]


Node = Term | Upvotes | Not | And | Or


def terms_of(node: Node) -> list[Term | Upvotes]:
    """The positive (non-negated) terms, once each, in query order: what to highlight."""
    out: list[Term | Upvotes] = []

    def walk(n: Node, negated: bool) -> None:
        """Visit in order; a double negation counts as positive."""
        if isinstance(n, Not):
            walk(n.child, not negated)
        elif isinstance(n, And | Or):
            for c in n.children:
                walk(c, negated)
        elif not negated and n not in out:
            out.append(n)

    walk(node, False)
    return out
