"""The syntax of the filter language: text -> tree (the parser) and tree -> text (the printer).

Every fault is a QueryError with a position and a hint. Pure: no I/O, no evaluation.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from digest.errors import QueryError
from digest.query.normalise import stem, surface_words
from digest.query.tree import FIELDS, SYNTAX, And, Node, Not, Or, Term, Upvotes

__all__ = ["KNOWN", "MAX_DEPTH", "MAX_LENGTH", "format_query", "parse"]

MAX_LENGTH = 1000
MAX_DEPTH = 32
KNOWN = "title:, abstract:, author:, cat:, source:, upvotes>=N"

# ---------------------------------------------------------------- lexer


class _Tok(NamedTuple):
    kind: str  # ( ) PHRASE WORD AND OR NOT - FIELD CMP
    text: str
    pos: int
    value: Any = None


_STARTS = {"(", "PHRASE", "WORD", "NOT", "-", "FIELD", "CMP"}
_CMP = re.compile(r"(?i)(upvotes)(>=|<=|>|<|=)(.*)")


def _lex(q: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(q)
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
        elif c in "()":
            toks.append(_Tok(c, c, i))
            i += 1
        elif c == '"':
            j = q.find('"', i + 1)
            if j < 0:
                raise QueryError("unterminated quote", q, i, "add a closing '\"' or remove it")
            toks.append(_Tok("PHRASE", q[i : j + 1], i))
            i = j + 1
        elif c == "-":
            if i + 1 == n or q[i + 1].isspace() or q[i + 1] == ")":
                raise QueryError("'-' needs a term right after it", q, i, "write -word to exclude")
            toks.append(_Tok("-", c, i))
            i += 1
        else:
            j = i
            while j < n and not q[j].isspace() and q[j] not in '()"':
                j += 1
            word = q[i:j]
            name = word.split(":", 1)[0] if ":" in word else ""
            if word in ("AND", "OR", "NOT"):
                toks.append(_Tok(word, word, i))
            elif m := _CMP.fullmatch(word):
                value, at = m[3], i + len(m[1]) + len(m[2])
                if not (value.isascii() and value.isdigit()):
                    msg = f"upvotes{m[2]} needs a whole number"
                    raise QueryError(msg, q, at, f"e.g. upvotes{m[2]}10")
                toks.append(_Tok("CMP", word, i, (m[2], int(value))))
            elif name.isascii() and name.isalpha():
                if name.lower() == "upvotes":
                    msg = "upvotes is compared, not searched"
                    raise QueryError(msg, q, i, "write upvotes>=N (or >, <=, <, =)")
                if name.lower() not in FIELDS:
                    hint = f"known fields: {KNOWN}; quote it to search the text"
                    raise QueryError(f"unknown field '{name}:'", q, i, hint)
                toks.append(_Tok("FIELD", name + ":", i, FIELDS[name.lower()]))
                j = i + len(name) + 1
            else:
                toks.append(_Tok("WORD", word, i))
            i = j
    return toks


# ---------------------------------------------------------------- parser


class _Parser:
    """Recursive descent over the tokens: OR binds loosest, then AND (also implicit, by
    juxtaposition), then NOT; `fld` is the field a `title:(...)` group imposes."""

    def __init__(self, query: str) -> None:
        self.q = query
        self.toks = _lex(query)
        self.i = 0

    def fail(self, message: str, pos: int, hint: str) -> QueryError:
        """The error to raise, carrying the query so it can draw its caret."""
        return QueryError(message, self.q, pos, hint)

    def peek(self) -> _Tok | None:
        """The next token, or None at the end."""
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        """Consume the next token (callers have checked there is one)."""
        self.i += 1
        return self.toks[self.i - 1]

    def need_operand(self, op: _Tok) -> None:
        """Refuse an operator with nothing after it, pointing at the operator, not the end."""
        nxt = self.peek()
        if nxt is None or nxt.kind not in _STARTS:
            raise self.fail(f"'{op.text}' needs a term after it", op.pos, "add a term or remove it")

    def run(self) -> Node:
        """The whole query as one tree; left-over tokens are an unmatched ')'."""
        node = self.or_(0, None)
        tok = self.peek()
        if tok is not None:  # only ')' can stop the loops early
            raise self.fail("unmatched ')'", tok.pos, "remove ')' or add '(' before it")
        return node

    def or_(self, depth: int, fld: str | None) -> Node:
        """A OR B OR ...: one Or, flattened."""
        parts = [self.and_(depth, fld)]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.need_operand(self.take())
            parts.append(self.and_(depth, fld))
        return _join(Or, parts)

    def and_(self, depth: int, fld: str | None) -> Node:
        """A AND B, or A B: one And, flattened."""
        parts = [self.unary(depth, fld)]
        while (tok := self.peek()) is not None and (tok.kind == "AND" or tok.kind in _STARTS):
            if tok.kind == "AND":
                self.need_operand(self.take())
            parts.append(self.unary(depth, fld))
        return _join(And, parts)

    def unary(self, depth: int, fld: str | None) -> Node:
        """NOT x or -x, counted against MAX_DEPTH like parentheses (no stack overflow)."""
        tok = self.peek()
        if tok is not None and tok.kind in ("NOT", "-"):
            self.need_operand(self.take())
            if depth >= MAX_DEPTH:
                raise self.fail(f"too deeply nested (max {MAX_DEPTH})", tok.pos, "simplify it")
            return Not(self.unary(depth + 1, fld))
        return self.primary(depth, fld)

    def primary(self, depth: int, fld: str | None) -> Node:
        """A term, a comparison, a field prefix or a parenthesised group, each fault named
        where it is."""
        tok = self.take()
        if tok.kind == ")":
            raise self.fail("unmatched ')'", tok.pos, "remove ')' or add '(' before it")
        if tok.kind in ("AND", "OR"):
            msg = f"'{tok.text}' needs a term before it"
            raise self.fail(msg, tok.pos, "add a term or remove it")
        if tok.kind == "(":
            if depth >= MAX_DEPTH:
                raise self.fail(f"too deeply nested (max {MAX_DEPTH})", tok.pos, "simplify it")
            nxt = self.peek()
            if nxt is not None and nxt.kind == ")":
                raise self.fail("empty parentheses", tok.pos, "put terms inside or remove them")
            if nxt is None:
                raise self.fail("unclosed parenthesis", tok.pos, "add ')' or remove '('")
            node = self.or_(depth + 1, fld)
            if self.peek() is None:
                raise self.fail("unclosed parenthesis", tok.pos, "add ')' or remove '('")
            self.take()
            return node
        if fld is not None and tok.kind in ("FIELD", "CMP"):
            inner = tok.text if tok.kind == "FIELD" else "upvotes"
            hint = "move it outside the parentheses"
            raise self.fail(f"'{inner}' inside '{SYNTAX[fld]}:(...)'", tok.pos, hint)
        if tok.kind == "CMP":
            return Upvotes(*tok.value)
        if tok.kind == "FIELD":
            nxt = self.peek()
            if nxt is None or nxt.kind not in ("WORD", "PHRASE", "("):
                hint = f'e.g. {tok.text}word, {tok.text}"a phrase" or {tok.text}(a OR b)'
                raise self.fail(f"'{tok.text}' needs a word, phrase or group", tok.pos, hint)
            return self.primary(depth, tok.value)  # the field applies to the next term or group
        return self.term(tok, fld or "any")

    def term(self, tok: _Tok, fld: str) -> Term:
        """A word, phrase or prefix as a Term: text normalised as the index normalises it."""
        quoted = tok.kind == "PHRASE"
        body = tok.text[1:-1] if quoted else tok.text
        prefix = not quoted and body.endswith("*")
        body = body.rstrip("*") if prefix else body
        if fld in ("category", "source"):
            value = body.strip().lower()
            if not value:
                msg = f"empty {SYNTAX[fld]}: value"
                raise self.fail(msg, tok.pos, "e.g. cat:cs.CV or cat:cs.*")
            return Term(fld, (value,), prefix, tok.text)
        words = surface_words(body)
        if not words:
            hint = "remove it; use AND / OR / NOT for logic"
            raise self.fail(f"{tok.text!r} has no letters or digits", tok.pos, hint)
        if prefix and len(words) == 1 and len(words[0]) < 2:
            raise self.fail("prefix too short", tok.pos, "use at least 2 letters before '*'")
        # a prefix's last word is matched as typed: stemming "agents*" would widen it
        last = words[-1] if prefix else stem(words[-1])
        return Term(fld, (*map(stem, words[:-1]), last), prefix, tok.text)


def _join(kind: type[And] | type[Or], parts: list[Node]) -> Node:
    """One part as itself, several as one flat node: equal queries build equal trees."""
    if len(parts) == 1:
        return parts[0]
    flat: list[Node] = []
    for part in parts:
        flat.extend(part.children if isinstance(part, kind) else (part,))
    return kind(tuple(flat))


def parse(text: str) -> Node:
    """Parse a filter typed by a subscriber or an operator into a frozen tree.

    Raises:
        QueryError: for every fault (with the position and a hint for a caret message),
            never another exception, whatever the text.
    """
    if len(text) > MAX_LENGTH:
        msg = f"query too long ({len(text)} characters, max {MAX_LENGTH})"
        raise QueryError(msg, text, MAX_LENGTH, "split it into several queries")
    if not text.strip():
        raise QueryError("empty query", text, 0, 'write some words, e.g. diffusion "world model"')
    return _Parser(text).run()


def format_query(node: Node) -> str:
    """Canonical text, for `digest query check` and "why" lines: explicit operators, minimal
    parentheses; it parses back to an equal tree."""
    if isinstance(node, Term):
        return ("" if node.field == "any" else SYNTAX[node.field] + ":") + node.as_typed()
    if isinstance(node, Upvotes):
        return f"upvotes{node.op}{node.value}"
    if isinstance(node, Not):
        inner = format_query(node.child)
        return "NOT " + (f"({inner})" if isinstance(node.child, And | Or) else inner)
    if isinstance(node, And):
        parts = [(c, format_query(c)) for c in node.children]
        return " AND ".join(f"({p})" if isinstance(c, Or) else p for c, p in parts)
    return " OR ".join(format_query(c) for c in node.children)
