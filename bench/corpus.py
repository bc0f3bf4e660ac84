"""The benchmarks' papers: real arXiv announcement days and HF daily lists from the corpus in
../shared/fixtures/corpus (its SOURCES.md tells where each file comes from), read through our
own parsers so the text is what `digest collect` would store. Shared by bench/*.py.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections import defaultdict
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from digest.models import Paper  # noqa: E402
from digest.sources import arxiv, hf  # noqa: E402

# BENCH_CORPUS, not DIGEST_*: a bench reads none of the caller's digest settings.
CORPUS = Path(os.environ.get("BENCH_CORPUS") or ROOT.parent / "shared" / "fixtures" / "corpus")
HF_FIELDS = (
    "upvotes",
    "num_comments",
    "github_repo",
    "github_stars",
    "project_page",
    "thumbnail",
    "ai_summary",
    "ai_keywords",
    "hf_date",
)


def _arxiv_file() -> Path:
    found = sorted(CORPUS.glob("arxiv_papers*.jsonl.gz"))
    if not found:
        raise SystemExit(
            f"bench: no arxiv_papers*.jsonl.gz in {CORPUS}; set BENCH_CORPUS to the corpus folder"
        )
    return found[-1]


@lru_cache(maxsize=1)
def announcements() -> dict[str, list[dict]]:
    """Every record of the arXiv file, grouped by announcement day (YYYY-MM-DD)."""
    days: dict[str, list[dict]] = defaultdict(list)
    with gzip.open(_arxiv_file(), "rt", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            days[record["date"]].append(record)
    return dict(days)


def largest_day() -> str:
    """The biggest announcement day in the corpus (a Tuesday: 1,111 papers in this copy)."""
    days = announcements()
    return max(days, key=lambda d: len(days[d]))


def day_or_largest(day: str | None) -> str:
    if day is None:
        return largest_day()
    if day not in announcements():
        known = ", ".join(sorted(announcements())[:3])
        raise SystemExit(f"bench: no announcement day {day} in the corpus (e.g. {known}, ...)")
    return day


def arxiv_rss(records: list[dict], category: str = "cs.LG", announced: date | None = None) -> bytes:
    """An rss.arxiv.org document listing the records as that day's new submissions; with
    `announced`, dated that day instead (so a bench's "now" finds them fresh)."""
    items = []
    for r in records:
        day = announced or date.fromisoformat(r["date"])
        when = day.strftime("%a, %d %b %Y 00:00:00 -0500")
        abstract = escape(" ".join(r["abstract"].split()))
        items.append(
            f"<item><title>{escape(r['title'])}</title>"
            f"<link>https://arxiv.org/abs/{r['id']}</link>"
            f"<description>arXiv:{r['id']}v1 Announce Type: new \nAbstract: {abstract}"
            f'</description><guid isPermaLink="false">oai:arXiv.org:{r["id"]}v1</guid>'
            + "".join(f"<category>{escape(c)}</category>" for c in r["categories"])
            + f"<pubDate>{when}</pubDate>"
            "<arxiv:announce_type>new</arxiv:announce_type>"
            "<dc:rights>http://creativecommons.org/licenses/by/4.0/</dc:rights>"
            f"<dc:creator>{escape(', '.join(r['authors']))}</dc:creator></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>{category} updates on arXiv.org</title>"
        f"<link>http://rss.arxiv.org/rss/{category}</link>{''.join(items)}</channel></rss>"
    ).encode()


def hf_days() -> list[str]:
    return sorted(p.stem for p in (CORPUS / "hf_daily_papers").glob("*.json"))


def hf_file(day: str) -> tuple[str, bytes]:
    """HF's daily list for that day as the API served it, or the closest earlier day's."""
    earlier = [d for d in hf_days() if d <= day] or hf_days()[:1]
    if not earlier:
        raise SystemExit(f"bench: no HF daily files in {CORPUS / 'hf_daily_papers'}")
    picked = earlier[-1]
    return picked, (CORPUS / "hf_daily_papers" / f"{picked}.json").read_bytes()


@lru_cache(maxsize=8)
def hf_around(day: str, before: int = 7, after: int = 14) -> dict[str, Paper]:
    """HF's view of the papers it listed near that day (it lists arXiv papers days later)."""
    start = date.fromisoformat(day) - timedelta(days=before)
    end = date.fromisoformat(day) + timedelta(days=after)
    found: dict[str, Paper] = {}
    for name in hf_days():
        if start <= date.fromisoformat(name) <= end:
            content = (CORPUS / "hf_daily_papers" / f"{name}.json").read_bytes()
            for paper in hf.parse(content, "hf"):
                found.setdefault(paper.id, paper)
    return found


def day_papers(day: str | None = None, announced: date | None = None) -> list[Paper]:
    """A real announcement day's papers as our arXiv parser reads them from the RSS feed, with
    HF's fields (upvotes, AI summary, repository, stars) for those HF's daily lists carried."""
    records = announcements()[day_or_largest(day)]
    papers = arxiv.parse(arxiv_rss(records, announced=announced), "arxiv")
    seen = hf_around(records[0]["date"])
    for paper in papers:
        extra = seen.get(paper.id)
        if extra is None:
            continue
        for name in HF_FIELDS:
            setattr(paper, name, getattr(extra, name))
        paper.sources = ["arxiv", "hf"]
    return papers


def records_from(day: str | None, count: int) -> list[dict]:
    """`count` real records: that day's (default: the largest), then the following days'."""
    days = sorted(announcements())
    at = days.index(day_or_largest(day))
    out: list[dict] = []
    for name in days[at:] + days[:at]:
        out += announcements()[name]
        if len(out) >= count:
            break
    return out[:count]
