"""Plain-text helpers for emails: cleaning feed text, safe links, snippets, counts, subjects.

Pure functions over strings and numbers: no template is rendered and no markup built here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlsplit

from digest.errors import QueryError
from digest.query import Term, Upvotes, highlight_spans, parse, terms_of
from digest.query.highlight import TextWords

MAX_TITLE = 300
MAX_SNIPPET = 420
MAX_AUTHOR = 80
MAX_SUMMARY = 600
MAX_LABEL = 120
MAX_WHY = 160  # a compact card's one "Why:" line
MAX_SUBJECT = 100
SUBJECT_TARGET = 78  # what most inboxes show; the list of names stops before it
# Past the first FULL_CARDS papers (FULL_CARDS_LONG in an email of more than LONG_EMAIL), a
# compact card: the largest allowed digest (100 papers) stays under Gmail's ~102 KB clipping.
FULL_CARDS = 10
LONG_EMAIL = 40
FULL_CARDS_LONG = 5
MAX_COMPACT_TITLE = 160
MAX_COMPACT_AUTHORS = 100

CAUSES = {
    "weekend": "arXiv announces no new papers on weekends.",
    "holiday": "arXiv is closed for a holiday and announced no new papers.",
}

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip
_SPACE = re.compile(r"\s+")
_OPERATORS = re.compile(r"\b(?:AND|OR|NOT)\b|\b[A-Za-z]+:|[\"()*]|(?<!\w)-|[<>=]+\d*")
_HIDDEN = dict.fromkeys(
    [*range(0, 32), 127, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF], " "
)

_HIDDEN_IN = re.compile("[" + "".join(re.escape(chr(c)) for c in _HIDDEN) + "]")
_AUTHORITY_END = re.compile("[/?#]")


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """One email's content, ready for `digest.message` to wrap in headers: the subject line,
    the HTML part with its CSS inlined, and the plain-text part."""

    subject: str
    html: str
    text: str


def clean(text: str | None) -> str:
    """One line of plain text: control and bidi-override characters gone, spaces collapsed."""
    return _SPACE.sub(" ", (text or "").translate(_HIDDEN)).strip()


def shorten(text: str, limit: int) -> str:
    """Cut at a word boundary near `limit` characters, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def safe_url(url: str | None) -> str | None:
    """The URL if it is absolute http(s) and whole; anything else (javascript:, data:,
    relative, with spaces or control characters) is dropped."""
    url = (url or "").strip()
    if not url or len(url) > 2000 or _HIDDEN_IN.search(url) or " " in url:
        return None
    if url.startswith(("https://", "http://")):
        # what urlsplit makes of the scheme and host depends on the part before the path
        start = url.index("//") + 2
        end = _AUTHORITY_END.search(url, start)
        return url if _web_origin(url[: end.start() if end else len(url)]) else None
    return url if _is_web(url) else None


def _is_web(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


_web_origin = functools.lru_cache(maxsize=4096)(_is_web)  # most links share a few hosts


def authors_line(authors: Sequence[str]) -> str:
    """`A, B, C and 12 more`; up to four names are all shown."""
    names = [shorten(clean(a), MAX_AUTHOR) for a in authors]
    names = [n for n in names if n]
    if len(names) > 4:
        return f"{', '.join(names[:3])} and {len(names) - 3} more"
    return and_list(names)


def and_list(items: Sequence[str]) -> str:
    """`A`, `A and B`, `A, B and C`."""
    return f"{', '.join(items[:-1])} and {items[-1]}" if len(items) > 1 else "".join(items)


def quick_fill(
    text: str,
    width: int,
    first: str = "",
    rest: str = "",
    *,
    break_long: bool = True,
    hyphens: bool = False,
) -> str | None:
    """What `textwrap.fill` (default options, `break_on_hyphens=hyphens`) makes of a text
    whose only whitespace is single spaces between words, by greedy packing; None for any
    other text, or a word too long for a line when `break_long`: use textwrap then.
    Wrapping was a tenth of rendering an email."""
    words = text.split()
    if not words or " ".join(words) != text or (hyphens and "-" in text):
        return None
    limit = width - len(rest)
    longest = max(map(len, words))
    if break_long and (longest > limit or len(words[0]) > width - len(first)):
        return None
    if len(text) <= width - len(first):
        return first + text
    if len(first) == len(rest) and longest <= limit:
        lines = _lines(limit).findall(text)
        return first + ("\n" + rest).join(lines)
    return _packed(words, width, first, rest)


@functools.lru_cache(maxsize=16)
def _lines(limit: int) -> re.Pattern[str]:
    """Greedy packing as a pattern: the longest run from a word's start to a word's end
    that fits (words are single-space separated and none is longer than `limit`)."""
    return re.compile(f"\\S.{{0,{limit - 1}}}(?= |$)")


def _packed(words: list[str], width: int, first: str, rest: str) -> str:
    lines: list[list[str]] = []
    line: list[str] = []
    used, limit = 0, width - len(first)
    for word in words:
        if line and used + 1 + len(word) <= limit:
            line.append(word)
            used += 1 + len(word)
            continue
        if line:
            lines.append(line)
            limit = width - len(rest)
        line, used = [word], len(word)
    lines.append(line)
    return "\n".join((rest if n else first) + " ".join(ws) for n, ws in enumerate(lines))


def segments(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[str, bool]]:
    """The text cut into (piece, is_hit) runs, for the templates' highlight loop; hits apart
    by a space read as one (`LLM agents`, not `LLM` `agents`)."""
    joined: list[tuple[int, int]] = []
    for start, end in spans:
        if joined and not text[joined[-1][1] : start].strip():
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    out: list[tuple[str, bool]] = []
    at = 0
    for start, end in joined:
        if start > at:
            out.append((text[at:start], False))
        out.append((text[start:end], True))
        at = end
    if at < len(text):
        out.append((text[at:], False))
    return out


def snippet(text: str, spans: Sequence[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """About MAX_SNIPPET characters of an abstract, from the sentence of the first hit when
    it lies further on, with the hits shifted into the snippet."""
    if len(text) <= MAX_SNIPPET + 60:
        return text, list(spans)
    start = 0
    if spans and spans[0][1] > MAX_SNIPPET - 60:
        first = spans[0][0]
        dot = text.rfind(". ", max(0, first - 200), first)
        start = dot + 2 if dot >= 0 else max(0, text.rfind(" ", 0, max(first - 60, 1)) + 1)
    end = start + MAX_SNIPPET
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start + MAX_SNIPPET // 2 else end
    prefix = "…" if start else ""
    body = prefix + text[start:end].strip() + ("…" if end < len(text) else "")
    shift = len(prefix) - start - (len(text[start:end]) - len(text[start:end].lstrip()))
    kept = [(max(a, start) + shift, min(b, end) + shift) for a, b in spans if b > start and a < end]
    return body, kept


def abstract_snippet(
    text: str, terms: Sequence[Term], words: TextWords | None = None
) -> tuple[str, list[tuple[int, int]]]:
    """The snippet and its highlights; the head alone is searched first, since a hit there
    decides the snippet. `words`, the text already tokenised (`TextWords(text)`, kept per
    paper for the edition), saves tokenising it for each card."""
    if not terms:
        return snippet(text, [])
    if words is not None and words.text != text:
        words = None
    if len(text) > MAX_SNIPPET + 60:
        space = text.rfind(" ", 0, MAX_SNIPPET)
        cut = space if space > MAX_SNIPPET // 2 else MAX_SNIPPET
        head = words.head(cut) if words else TextWords(text[:cut])
        spans = highlight_spans(head.text, terms, "abstract", words=head)
        if spans and spans[0][1] <= MAX_SNIPPET - 60:
            return snippet(text, spans)
    return snippet(text, highlight_spans(text, terms, "abstract", words=words))


def plural(n: int, word: str) -> str:
    """`1 paper`, `2 papers`, `1,204 papers`: a count as the emails say it."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def edition_label(edition_name: str, edition_date: date, long: bool) -> str:
    """The edition as a reader names it: `Tuesday 24 November 2026` or `Week 48, 2026` in a
    headline (`long`), `Tue 24 Nov` or `week 48` in a subject line."""
    week = re.fullmatch(r"(\d{4})-W(\d{2})", edition_name)
    if week:
        return f"Week {int(week[2])}, {week[1]}" if long else f"week {int(week[2])}"
    d = edition_date
    if long:
        return f"{_DAYS[d.weekday()]} {d.day} {_MONTHS[d.month - 1]} {d.year}"
    return f"{_DAYS[d.weekday()][:3]} {d.day} {_MONTHS[d.month - 1][:3]}"


def subject_for(count: int, names: Sequence[str], edition_name: str, edition_date: date) -> str:
    """`7 new papers: diffusion, world models - Tue 24 Nov`: one line, the names cut to fit
    about SUBJECT_TARGET characters (`and 2 more`), never over MAX_SUBJECT."""
    when = edition_label(edition_name, edition_date, long=False)
    head = f"{plural(count, 'new paper')}"
    shown: list[str] = []
    budget = SUBJECT_TARGET - len(head) - len(when) - 5
    cleaned = [shorten(clean(n), 40) for n in names if clean(n)]
    for n, name in enumerate(cleaned):
        rest = len(cleaned) - n - 1
        if len(", ".join([*shown, name])) > budget - (len(f" and {rest} more") if rest else 0):
            break
        shown.append(name)
    listed = ", ".join(shown)
    if len(shown) < len(cleaned):
        listed = f"{listed} and {len(cleaned) - len(shown)} more" if shown else ""
    subject = f"{head}: {listed} - {when}" if listed else f"{head} - {when}"
    return shorten(clean(subject), MAX_SUBJECT)


def nothing_new_note(new_papers: int | None, cause: str | None, when: str) -> list[str]:
    """The lines of a "nothing new" note: what came in `when` (`today`, `this week`), then why
    nothing matched when the cause is known (a known cause in words, any other text as given)."""
    if new_papers is None:
        first = f"None of the new papers matched what you follow {when}."
    elif new_papers:
        first = f"None of the {new_papers:,} new papers matched what you follow {when}."
    else:
        first = f"No new papers arrived {when}."
    why = CAUSES.get(cause or "") or (
        f"Why: {shorten(clean(cause), 300).rstrip('.')}." if cause else ""
    )
    return [first, why] if why else [first]


def readable_query(text: str) -> str:
    """A query as a person would say it, for subject lines: its positive words and phrases,
    without operators, field prefixes, quotes or wildcards
    (`kinematic OR "motion forecasting"` reads `kinematic, motion forecasting`)."""
    try:
        terms = terms_of(parse(text))
    except QueryError:
        return ", ".join(clean(_OPERATORS.sub(" ", text)).split())
    parts: dict[str, str] = {}
    for term in terms:
        if isinstance(term, Upvotes):
            shown = f"{term.value}+ upvotes" if term.op in (">=", ">") else ""
        elif term.field == "source":
            shown = ""
        else:
            shown = clean(_OPERATORS.sub(" ", term.text or " ".join(term.words))).rstrip(".")
        if shown:
            parts.setdefault(shown.lower(), shown)
    return ", ".join(parts.values())


def summary_line(shown: int, matched: int | None, new_papers: int | None) -> str:
    """`10 of 18 matches from 212 new papers`: what the cap left out is never hidden, and a
    count that is not known (None) is not stated."""
    if matched is None:
        head = plural(shown, "matching paper")
    elif matched > shown:
        head = f"{shown:,} of {matched:,} matches"
    else:
        head = f"{shown:,} match{'' if shown == 1 else 'es'}"
    return f"{head} from {plural(new_papers, 'new paper')}" if new_papers is not None else head
