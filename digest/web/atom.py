"""A personal Atom feed (RFC 4287) as bytes: plain values in, XML out, built with ElementTree
so every text is escaped, and with the characters XML 1.0 cannot carry removed. No store."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

ATOM = "http://www.w3.org/2005/Atom"
# XML 1.0 allows no other C0 control, no surrogate and no U+FFFE/U+FFFF. ElementTree writes
# them anyway, and a reader then rejects the whole feed for one feed title.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Entry:
    """One paper of one email: id, title, updated (RFC 3339), its link, a text summary."""

    id: str
    title: str
    updated: str
    link: str | None
    summary: str
    categories: Sequence[str] = field(default_factory=tuple)


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, f"{{{ATOM}}}{tag}", {k: _xml(v) for k, v in attrs.items()})
    if text is not None:
        child.text = _xml(text)
    return child


def _xml(text: str) -> str:
    return _NOT_XML.sub("", text)


def feed_xml(
    *,
    feed_id: str,
    title: str,
    updated: str,
    self_url: str,
    alternate_url: str,
    author: str,
    entries: Sequence[Entry],
) -> bytes:
    """The feed document: id, title, updated, author and links, then one entry per paper
    (each with id, title, updated, an alternate link and a summary)."""
    ET.register_namespace("", ATOM)  # <feed xmlns=...>, not ElementTree's <ns0:feed>
    root = ET.Element(f"{{{ATOM}}}feed")
    _add(root, "id", feed_id)
    _add(root, "title", title)
    _add(root, "updated", updated)
    _add(root, "link", rel="self", type="application/atom+xml", href=self_url)
    _add(root, "link", rel="alternate", type="text/html", href=alternate_url)
    _add(_add(root, "author"), "name", author or "Paper Digest")
    for entry in entries:
        node = _add(root, "entry")
        _add(node, "id", entry.id)
        _add(node, "title", entry.title or "(untitled)")
        _add(node, "updated", entry.updated)
        if entry.link:
            _add(node, "link", rel="alternate", type="text/html", href=entry.link)
        for term in entry.categories:
            _add(node, "category", term=term)
        _add(node, "summary", entry.summary, type="text")
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
