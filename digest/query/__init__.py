"""The subscriber filter language: parse -> tree -> evaluate over an edition, explain, highlight.

Pure: no SQL, no I/O, no printing. Its modules import one way: `normalise`, `tree` <- `syntax`
<- `highlight`; `normalise`, `tree` <- `index`; `index`, `highlight` <- `evaluate`. This package
re-exports their public names, the ones the rest of digest imports.
"""

from __future__ import annotations

from digest.query.evaluate import Hit, PaperIndex
from digest.query.highlight import display, highlight_spans
from digest.query.index import TermIndex, positions
from digest.query.normalise import normalize_words, stem, surface_words, word_spans
from digest.query.syntax import KNOWN, MAX_DEPTH, MAX_LENGTH, format_query, parse
from digest.query.tree import (
    FIELDS,
    SYNTAX,
    TEXT_FIELDS,
    And,
    Node,
    Not,
    Or,
    Term,
    Upvotes,
    terms_of,
)

__all__ = [
    "FIELDS",
    "KNOWN",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "SYNTAX",
    "TEXT_FIELDS",
    "And",
    "Hit",
    "Node",
    "Not",
    "Or",
    "PaperIndex",
    "Term",
    "TermIndex",
    "Upvotes",
    "display",
    "format_query",
    "highlight_spans",
    "normalize_words",
    "parse",
    "positions",
    "stem",
    "surface_words",
    "terms_of",
    "word_spans",
]
