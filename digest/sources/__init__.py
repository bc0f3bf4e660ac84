"""One module per kind of source: fetch its bytes and parse them into Papers, writing nothing.

Every kind answers the same `SourceRequest` with the same `SourceResult`, so the collector
knows no source's format and a new kind is one entry in COLLECTORS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from digest.models import Paper, SourceResult
from digest.sources import arxiv, feed, hf
from digest.sources.common import SourceRequest
from digest.sources.http import Body, Sleep

Collector = Callable[[SourceRequest], Awaitable[SourceResult]]
Parser = Callable[[bytes, str, str], list[Paper]]

COLLECTORS: dict[str, Collector] = {
    "hf": hf.collect,
    "arxiv": arxiv.collect,
    "feed": feed.collect,
}
PARSERS: dict[str, Parser] = {"hf": hf.parse, "arxiv": arxiv.parse, "feed": feed.parse}

__all__ = ["COLLECTORS", "PARSERS", "Body", "Collector", "Parser", "Sleep", "SourceRequest"]
