"""What every source parser needs: safe feed parsing, arXiv ids, plain text from feed markup."""

from __future__ import annotations

import calendar
import hashlib
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import feedparser

from digest.errors import SourceError

ARXIV_ID = re.compile(r"(\d{4}\.\d{4,5})(?:v(\d+))?$|([a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v(\d+))?$")
_ARXIV_IN_URL = re.compile(
    r"(?:arxiv\.org/(?:abs|pdf|html)/|huggingface\.co/papers/|/p/|/papers?/|/abs/)"
    r"((?:\d{4}\.\d{4,5})|(?:[a-z\-]+(?:\.[A-Z]{2})?/\d{7}))(?:v(\d+))?(?:\.pdf)?/?(?:[?#].*)?$"
)
_SPACE = re.compile(r"\s+")
_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S)


def split_arxiv_id(raw: str) -> tuple[str, int | None] | None:
    """`2508.13426v1`, `oai:arXiv.org:2508.13426v1`, `http://arxiv.org/abs/hep-th/9901001v2`
    and the like -> (id without version, version)."""
    tail = raw.strip().rsplit(":", 1)[-1] if raw.startswith("oai:") else raw.strip()
    found = _ARXIV_IN_URL.search(tail)
    if found:
        return found.group(1), int(found.group(2)) if found.group(2) else None
    found = ARXIV_ID.search(tail)
    if not found:
        return None
    if found.group(1):
        return found.group(1), int(found.group(2)) if found.group(2) else None
    return found.group(3), int(found.group(4)) if found.group(4) else None


def link_key(link: str) -> str:
    """A stable id for a paper with no arXiv id: a hash of its link."""
    return "h:" + hashlib.sha256(link.strip().encode("utf-8")).hexdigest()[:16]


def clean_text(value: Any) -> str:
    """Collapse whitespace; `<` and `&` stay as they are (escaping is the renderer's job)."""
    return _SPACE.sub(" ", str(value or "")).strip()


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in ("p", "br", "div", "li"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def html_to_text(value: str) -> str:
    """Feed summaries declared as HTML become plain text: tags dropped, entities decoded."""
    parser = _TextExtractor()
    parser.feed(value)
    parser.close()
    return clean_text("".join(parser.parts))


def refuse_unsafe(name: str, url: str, content: bytes, content_type: str = "") -> None:
    """Entity declarations can expand without bound (billion laughs); HTML is not a feed."""
    if b"<!ENTITY" in content[:65536] or b"<!entity" in content[:65536]:
        raise SourceError(
            f"{name}: {url} declares XML entities (<!ENTITY); refused as unsafe to parse"
        )
    if "text/html" in content_type.lower() or _HTML_START.match(content[:4096]):
        raise SourceError(
            f"{name}: {url} returned an HTML page, not a feed; check the URL "
            "(a login page, an error page or a moved feed?)"
        )


def parse_feed(name: str, url: str, content: bytes, strict: bool) -> Any:
    """feedparser on bytes, never a URL; `strict` turns malformed XML into an error."""
    if not content.strip():
        raise SourceError(f"{name}: {url} returned an empty body; expected a feed")
    start = content.lstrip()[:1]
    if start != b"<" and not content.startswith(b"\xef\xbb\xbf"):
        raise SourceError(
            f"{name}: {url} is not an RSS or Atom feed (it starts with {start.decode('latin-1')!r})"
        )
    parsed = feedparser.parse(content, sanitize_html=False, resolve_relative_uris=False)
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    benign = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
    if problem is not None and not isinstance(problem, benign):
        where, detail = "", str(problem)
        if hasattr(problem, "getLineNumber"):
            where = f" at line {problem.getLineNumber()}, column {problem.getColumnNumber()}"
            detail = problem.getMessage()
        if strict or not parsed.entries:
            raise SourceError(f"{name}: {url} is not a well-formed feed{where}: {detail}")
    if not parsed.get("version") and not parsed.entries:
        raise SourceError(f"{name}: {url} is not an RSS or Atom feed (no channel or feed element)")
    return parsed


def entry_date(entry: Any) -> str | None:
    """An entry's publication time as ISO 8601 UTC, from whichever date it carries."""
    for key in ("published_parsed", "updated_parsed"):
        value = entry.get(key)
        if value:
            return datetime.fromtimestamp(calendar.timegm(value), UTC).isoformat()
    return None
