"""BibTeX as people's libraries really write it: entries with braces or quotes, nested
braces, bare values, `#` concatenation, LaTeX accents. Pure text in, fields out.

Bounded on hostile input: one regex scan per group and possessive quantifiers, so a
megabyte of spaces or braces costs a scan, not a quadratic backtrack.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["MAX_DEPTH", "bibtex_entries", "latex_to_text"]

MAX_DEPTH = 32

_ACCENTS = {
    "`": "\u0300", "'": "\u0301", "^": "\u0302", "~": "\u0303", "=": "\u0304", "u": "\u0306",
    ".": "\u0307", '"': "\u0308", "r": "\u030a", "H": "\u030b", "v": "\u030c", "c": "\u0327",
    "k": "\u0328", "d": "\u0323", "b": "\u0331",
}  # fmt: skip
_LETTERS = {
    "ss": "ß", "o": "ø", "O": "Ø", "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "aa": "å",
    "AA": "Å", "l": "ł", "L": "Ł", "i": "ı", "j": "ȷ",
}  # fmt: skip
_ACCENT_CMD = re.compile(
    r"\\([`'^~=.\"]|[uHvckrdb](?![a-zA-Z]))\s*(?:\{\s*(\\?[a-zA-Z])\s*\}|(\\?[a-zA-Z]))"
)
_LETTER_CMD = re.compile(r"\\(ss|ae|AE|oe|OE|aa|AA|[oOlLij])(?![a-zA-Z])\s?")
_OTHER_CMD = re.compile(r"\\(?:textit|textbf|emph|texttt|textrm|mathrm|mathcal|mbox|text)\b")
_ESCAPED = re.compile(r"\\([&%$#_{}])")


def latex_to_text(value: str) -> str:
    """BibTeX's field text as a person reads it: accents decoded, braces and markup dropped."""

    def accent(m: re.Match[str]) -> str:
        base = (m.group(2) or m.group(3) or "").lstrip("\\")
        base = {"i": "i", "j": "j"}.get(base, base)
        return unicodedata.normalize("NFC", base + _ACCENTS[m.group(1)])

    text = _ACCENT_CMD.sub(accent, value)
    text = _LETTER_CMD.sub(lambda m: _LETTERS[m.group(1)], text)
    text = _OTHER_CMD.sub("", text)
    text = _ESCAPED.sub(r"\1", text)
    text = text.replace("{", "").replace("}", "").replace("~", " ")
    text = text.replace("---", "—").replace("--", "–").replace("``", '"').replace("''", '"')
    return " ".join(text.split())


_ENTRY = re.compile(r"@\s*([a-zA-Z]+)\s*([{(])")
# Possessive quantifiers (`*+`): two optional runs of spaces side by side would otherwise
# backtrack quadratically on a field of a million spaces.
_FIELD_NAME = re.compile(r"\s*+,?\s*+([a-zA-Z][\w\-:.]*+)\s*+=\s*+")
_BARE_VALUE = re.compile(r"[^,#\s}]*+")
_SPACES = re.compile(r"\s*+")
_GROUP_ENDS = {
    "}": re.compile(r"[{}]"),
    ")": re.compile(r"[{})]"),
    '"': re.compile(r'[{}"]'),
}


def _closing(text: str, start: int, close: str) -> int:
    """Where the group opened just before `start` ends: the `close` character outside any
    nested braces ('}' balances them), or len(text) if it never does or nests deeper than
    any real title (MAX_DEPTH). A regex finds the
    next brace, so a megabyte without one costs one scan, not a Python step per character."""
    pattern = _GROUP_ENDS[close]
    depth = 0
    for m in pattern.finditer(text, start):
        c = m.group()
        if c == "{":
            depth += 1
            if depth > MAX_DEPTH:
                return len(text)
        elif c == "}" and depth:
            depth -= 1
        elif c == close and depth == 0:
            return m.start()
    return len(text)


def bibtex_entries(text: str) -> Iterable[tuple[int, str, str, dict[str, str]]]:
    """(line, entry type, key, fields) per entry; tolerant of quotes, nested braces, bare
    values and `#` concatenation, the way BibTeX files from Zotero, Google Scholar and
    hand-edited libraries differ."""
    pos, line, counted = 0, 1, 0
    while True:
        at = text.find("@", pos)
        if at < 0:
            return
        m = _ENTRY.match(text, at)
        if not m:
            pos = at + 1
            continue
        kind = m.group(1).lower()
        end = _closing(text, m.end(), "}" if m.group(2) == "{" else ")")
        body, pos = text[m.end() : end], end + 1
        if kind in ("comment", "string", "preamble"):
            continue
        key, _, rest = body.partition(",")
        line += text.count("\n", counted, at)
        counted = at
        yield line, kind, key.strip(), _bibtex_fields(rest)


def _after_spaces(text: str, i: int) -> int:
    m = _SPACES.match(text, min(i, len(text)))
    return m.end() if m else i


def _bibtex_fields(rest: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        m = _FIELD_NAME.match(rest, i)
        if not m:
            break
        name, i, parts = m.group(1).lower(), m.end(), []
        while i < n:
            if rest[i] in '{"':
                end = _closing(rest, i + 1, "}" if rest[i] == "{" else '"')
                parts.append(rest[i + 1 : end])
                i = end + 1
            else:
                v = _BARE_VALUE.match(rest, i)
                parts.append(v.group(0) if v else "")
                i = v.end() if v and v.end() > i else i + 1
            i = _after_spaces(rest, i)
            if i < n and rest[i] == "#":
                i = _after_spaces(rest, i + 1)
                continue
            break
        fields[name] = "".join(parts)
    return fields
