"""One module per kind of source: fetch its bytes and parse them into Papers, writing nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date

import httpx

from digest.config import CollectConfig, SourceConfig
from digest.models import FetchResult
from digest.sources import arxiv, feed, hf
from digest.sources.http import Body, Sleep

Collector = Callable[
    [SourceConfig, httpx.AsyncClient, CollectConfig, date, date | None, Body | None, Sleep],
    Awaitable[FetchResult],
]

COLLECTORS: dict[str, Collector] = {
    "hf": hf.collect,
    "arxiv": arxiv.collect,
    "feed": feed.collect,
}
PARSERS = {"hf": hf.parse, "arxiv": arxiv.parse, "feed": feed.parse}

__all__ = ["COLLECTORS", "PARSERS", "Body", "Collector"]
