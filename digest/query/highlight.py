"""Where a query's terms show in a paper's text, and how a term reads in a "why" line.

Both work on the normaliser's word spans, so what is highlighted is exactly what matched.
"""

from __future__ import annotations

from collections.abc import Iterable

from digest.query.normalise import word_spans
from digest.query.syntax import format_query
from digest.query.tree import SYNTAX, TEXT_FIELDS, Term, Upvotes

__all__ = ["display", "highlight_spans"]


def display(term: Term | Upvotes) -> str:
    """How a term reads in a "why it matched" line: `world model`, `diffus*`, `cat:cs.CV`."""
    if isinstance(term, Upvotes):
        return format_query(term)
    text = term.as_typed()
    body = text[1:-1] if text.startswith('"') else text
    if term.field in ("category", "source"):
        return f"{SYNTAX[term.field]}:{body.strip()}"
    spans = word_spans(body.rstrip("*") if term.prefix else body)
    return " ".join(body[a:b] for _, _, a, b in spans) + ("*" if term.prefix else "")


def _applies(term_field: str, fld: str | None) -> bool:
    if term_field not in TEXT_FIELDS:
        return False
    return fld is None or term_field == fld or (term_field == "any" and fld != "author")


def highlight_spans(
    text: str, terms: Iterable[Term | Upvotes], field: str | None = None
) -> list[tuple[int, int]]:
    """(start, end) offsets into the original text of every hit, merged and sorted.

    `field` ("title", "abstract", "author") keeps only the terms that apply to it; without it
    every word, phrase and prefix term is highlighted.
    """
    tokens = word_spans(text)
    spans: list[tuple[int, int]] = []
    for term in terms:
        if not isinstance(term, Term) or not _applies(term.field, field):
            continue
        n, last = len(term.words), len(term.words) - 1
        for j in range(len(tokens) - last):
            for k, word in enumerate(term.words):
                surface, stem, _, _ = tokens[j + k]
                if not (surface.startswith(word) if term.prefix and k == last else stem == word):
                    break
            else:
                spans.append((tokens[j][2], tokens[j + n - 1][3]))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
