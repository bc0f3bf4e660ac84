"""Queries evaluated over an edition's index as bitset algebra, and why a paper matched.

Pure and in-memory: it never touches the store. Bit i of every result stands for papers[i].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from digest.models import Paper
from digest.query.highlight import display, highlight_spans
from digest.query.index import TermIndex, positions, sources_of, value_matches
from digest.query.tree import And, Node, Not, Term, Upvotes, terms_of

__all__ = ["Hit", "PaperIndex"]

_Plan = list[tuple[Term | Upvotes, str, tuple[str, ...]]]


@dataclass(frozen=True, slots=True)
class Hit:
    """One positive term that matched one field of a paper.

    `detail` names what it matched when the field is not running text: the authors, the
    categories, the sources or the upvote count.
    """

    term: str
    field: str
    detail: str = ""


class PaperIndex:
    """Built once per edition, then shared by every distinct query; results cached per node.

    Not thread-safe: the caches fill as queries arrive.
    """

    def __init__(self, papers: Sequence[Paper]) -> None:
        self._terms = TermIndex(papers)
        self.papers = self._terms.papers
        self.all = self._terms.all
        self._cache: dict[Node, int] = {}
        self._plans: dict[int, tuple[Node, _Plan]] = {}

    def __len__(self) -> int:
        """How many papers the edition has (bit positions 0 .. len-1)."""
        return len(self.papers)

    def evaluate(self, node: Node) -> int:
        """Bitset of matching papers; every sub-tree's result is cached for later queries."""
        cached = self._cache.get(node)
        if cached is not None:
            return cached
        if isinstance(node, Term):
            terms = self._terms
            if node.field == "any":  # "any" is title or abstract, never author
                bits = terms.term_bits(node, "title") | terms.term_bits(node, "abstract")
            else:
                bits = terms.term_bits(node, node.field)
        elif isinstance(node, Upvotes):
            bits = self._terms.upvote_bits(node)
        elif isinstance(node, Not):
            bits = self.all & ~self.evaluate(node.child)
        elif isinstance(node, And):
            bits = self.all
            for child in node.children:
                bits &= self.evaluate(child)
                if not bits:  # nothing left to intersect: skip the remaining children
                    break
        else:
            bits = 0
            for child in node.children:
                bits |= self.evaluate(child)
        self._cache[node] = bits
        return bits

    def matches(self, node: Node) -> list[int]:
        """Positions of the matching papers, ascending."""
        return list(positions(self.evaluate(node)))

    def explain(self, node: Node, i: int) -> list[Hit]:
        """Why paper i matched: each positive term that hits it, once per field it hits."""
        paper, bit, hits = self.papers[i], 1 << i, []
        for term, shown, fields in self._plan(node):
            for fld in fields:
                if isinstance(term, Upvotes):
                    if self.evaluate(term) & bit:
                        hits.append(Hit(shown, fld, str(paper.upvotes)))
                    continue
                if not self._terms.term_bits(term, fld) & bit:
                    continue
                detail = ""
                if fld == "author":
                    detail = ", ".join(a for a in paper.authors if highlight_spans(a, [term]))
                elif fld != "title" and fld != "abstract":
                    values = paper.categories if fld == "category" else sources_of(paper)
                    detail = ", ".join(v for v in values if value_matches(term, v.strip().lower()))
                hit = Hit(shown, fld, detail)
                if hit not in hits:
                    hits.append(hit)
        return hits

    def term_field_bits(self, node: Node) -> list[tuple[str, str, int]]:
        """(term as shown, field, bitset of papers it hits there) for each positive term:
        lets ranking score every matched paper in a few bitset passes, explaining none."""
        out = []
        for term, shown, fields in self._plan(node):
            for fld in fields:
                if isinstance(term, Upvotes):
                    out.append((shown, fld, self.evaluate(term)))
                else:
                    out.append((shown, fld, self._terms.term_bits(term, fld)))
        return out

    def positive_terms(self, node: Node) -> list[Term | Upvotes]:
        """`terms_of(node)`, from the plan made once per node."""
        return [term for term, _, _ in self._plan(node)]

    def _plan(self, node: Node) -> _Plan:
        # Keyed by identity, not equality: equal queries may be typed (and shown) differently.
        # The node is kept alive in the value, so its id cannot be reused.
        found = self._plans.get(id(node))
        if found is None:
            plan = []
            for term in terms_of(node):
                if isinstance(term, Upvotes):
                    fields: tuple[str, ...] = ("upvotes",)
                else:
                    fields = ("title", "abstract") if term.field == "any" else (term.field,)
                plan.append((term, display(term), fields))
            found = self._plans[id(node)] = (node, plan)
        return found[1]
