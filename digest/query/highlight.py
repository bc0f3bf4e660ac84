"""Where a query's terms show in a paper's text, and how a term reads in a "why" line.

Both work on the normaliser's word spans, so what is highlighted is exactly what matched.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

from digest.query.normalise import word_spans
from digest.query.syntax import format_query
from digest.query.tree import SYNTAX, TEXT_FIELDS, Term, Upvotes

__all__ = ["TextWords", "display", "highlight_spans"]


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


class TextWords:
    """A text's word spans, tokenised once: the card cache keeps one per paper and field for
    the whole edition, so highlighting each subscriber's terms only looks words up."""

    __slots__ = ("_starts", "text", "words")

    def __init__(self, text: str) -> None:
        self.text = text
        self.words = word_spans(text)
        self._starts: dict[tuple[str, bool], list[int]] = {}

    def starts(self, word: str, prefix: bool) -> list[int]:
        """Where a term's word may begin, ascending: the positions of its stem, or of words
        starting with it (a prefix term's last word). Found once per word. A `head`'s list
        may run past its words: stop at `len(words)`."""
        found = self._starts.get((word, prefix))
        if found is None:
            if prefix:
                found = [j for j, w in enumerate(self.words) if w[0].startswith(word)]
            else:
                found = [j for j, w in enumerate(self.words) if w[1] == word]
            self._starts[(word, prefix)] = found
        return found

    def head(self, end: int) -> TextWords:
        """The words of `text[:end]`, as tokenising that prefix afresh would give them: the
        words before `end`, unless one straddles it (then the prefix is tokenised)."""
        kept = bisect_right([w[3] for w in self.words], end)
        if kept < len(self.words) and self.words[kept][2] < end:
            return TextWords(self.text[:end])
        head = TextWords.__new__(TextWords)
        head.text, head.words, head._starts = self.text[:end], self.words[:kept], self._starts
        return head


def highlight_spans(
    text: str,
    terms: Iterable[Term | Upvotes],
    field: str | None = None,
    *,
    words: TextWords | None = None,
) -> list[tuple[int, int]]:
    """(start, end) offsets into the original text of every hit, merged and sorted.

    `field` ("title", "abstract", "author") keeps only the terms that apply to it; without it
    every word, phrase and prefix term is highlighted. `words`, the text already tokenised
    (`TextWords(text)`), saves tokenising it again.
    """
    found = words if words is not None and words.text == text else TextWords(text)
    tokens = found.words
    spans: list[tuple[int, int]] = []
    for term in terms:
        if not isinstance(term, Term) or not _applies(term.field, field):
            continue
        n, last = len(term.words), len(term.words) - 1
        for j in found.starts(term.words[0], term.prefix and not last):
            if j + last >= len(tokens):
                break
            for k in range(1, n):
                surface, stem, _, _ = tokens[j + k]
                word = term.words[k]
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
