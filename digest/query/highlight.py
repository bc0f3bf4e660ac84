"""Where a query's terms show in a paper's text, and how a term reads in a "why" line.

Both work on the normaliser's word spans, so what is highlighted is exactly what matched.
"""

from __future__ import annotations

import copy
import sys
from array import array
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
    """Whether a term of this field is highlighted in text of that field (None: any text)."""
    if term_field not in TEXT_FIELDS:
        return False
    return fld is None or term_field == fld or (term_field == "any" and fld != "author")


class TextWords:
    """A text's word spans, tokenised once: the card cache keeps one per paper and field for
    the whole edition, so highlighting each subscriber's terms only looks words up.

    Kept compact (a paper's abstract is a few KB, not ~50 KB of tuples): per word its surface
    and stem (shared strings) and its start and end offsets into `text`. A `head` shares them
    and sees only its first `count` words.
    """

    __slots__ = ("_starts", "begins", "count", "ends", "stems", "surfaces", "text")

    def __init__(self, text: str) -> None:
        spans = word_spans(text)
        self.text = text
        self.count = len(spans)
        self.stems = [w[1] for w in spans]
        # a surface equal to its stem shares the stem's string; others are interned
        self.surfaces = [st if st == su else sys.intern(su) for su, st, _, _ in spans]
        # machine ints in arrays: 8 bytes an offset instead of a 28-byte int object
        self.begins = array("l", [w[2] for w in spans])
        self.ends = array("l", [w[3] for w in spans])
        self._starts: dict[tuple[str, bool], list[int]] = {}

    @property
    def words(self) -> list[tuple[str, str, int, int]]:
        """(surface, stem, start, end) per word, as `word_spans(text)` gives them."""
        at = range(self.count)
        return [(self.surfaces[i], self.stems[i], self.begins[i], self.ends[i]) for i in at]

    def starts(self, word: str, prefix: bool) -> list[int]:
        """Where a term's word may begin, ascending: the positions of its stem, or of words
        starting with it (a prefix term's last word). Found once per word, over the whole
        text, so a `head`'s list may run past its words: stop at `count`."""
        found = self._starts.get((word, prefix))
        if found is None:
            if prefix:
                found = [j for j, w in enumerate(self.surfaces) if w.startswith(word)]
            else:
                found = [j for j, w in enumerate(self.stems) if w == word]
            self._starts[(word, prefix)] = found
        return found

    def head(self, end: int) -> TextWords:
        """The words of `text[:end]`, as tokenising that prefix afresh would give them: the
        words before `end`, unless one straddles it or the last is an `s` that the prefix
        would read as a possessive (`model's_` cut after the s): then the prefix is tokenised."""
        kept = bisect_right(self.ends, end, 0, self.count)
        straddles = kept < self.count and self.begins[kept] < end
        if straddles or (kept and self.ends[kept - 1] == end and self.surfaces[kept - 1] == "s"):
            return TextWords(self.text[:end])
        head = copy.copy(self)  # shallow: the word lists are shared, only `count` differs
        head.text, head.count = self.text[:end], kept
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
    surfaces, stems, count = found.surfaces, found.stems, found.count
    spans: list[tuple[int, int]] = []
    for term in terms:
        if not isinstance(term, Term) or not _applies(term.field, field):
            continue
        n, last = len(term.words), len(term.words) - 1
        for j in found.starts(term.words[0], term.prefix and not last):
            if j + last >= count:  # the phrase would run past the text (or a head's end)
                break
            for k in range(1, n):
                word = term.words[k]
                if not (
                    surfaces[j + k].startswith(word)
                    if term.prefix and k == last
                    else stems[j + k] == word
                ):
                    break
            else:
                spans.append((found.begins[j], found.ends[j + last]))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        # overlapping or touching hits become one mark, so markup never nests
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
