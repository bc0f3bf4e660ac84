"""The parsers on real recorded responses: field by field, quirks included."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.errors import SourceError
from digest.sources import arxiv, feed, hf
from digest.sources.common import split_arxiv_id
from digest.sources.parsed import FeedEntry, read_feed
from tests.conftest import (
    ARXIV_API,
    ARXIV_API_TRANSFORMER,
    ARXIV_ATOM,
    ARXIV_RSS,
    HF_JULY,
    HF_JUNE,
    TAKARA,
    recording,
)


def by_id(papers: list) -> dict:
    return {p.id: p for p in papers}


def test_hf_daily_papers_keeps_every_field_the_api_gives() -> None:
    papers = by_id(hf.parse(recording(HF_JUNE), "hf"))
    assert len(papers) == 30
    top = papers["2606.13681"]
    assert top.title == (
        "EvoArena: Tracking Memory Evolution for Robust LLM Agents in Dynamic Environments"
    )
    assert (top.upvotes, top.num_comments) == (118, 3)
    assert top.github_repo == "https://github.com/Aiden0526/EvoArena"
    assert top.github_stars == 9
    assert top.project_page == "https://aiden0526.github.io/EvoArena/"
    assert top.thumbnail.endswith("/papers/2606.13681.png")
    assert top.ai_keywords[:2] == ["large language model agents", "EvoArena"]
    assert top.ai_summary
    assert top.link == "https://arxiv.org/abs/2606.13681"
    assert top.hf_date == "2026-06-12"
    assert max(p.upvotes for p in papers.values()) == 118
    assert min(p.upvotes for p in papers.values()) == 0
    assert sum(1 for p in papers.values() if p.github_repo) == 16
    assert sum(1 for p in papers.values() if p.project_page) == 13


def test_hf_hidden_author_is_still_an_author_and_markup_stays_text() -> None:
    papers = by_id(hf.parse(recording(HF_JUNE), "hf"))
    assert "Dengyang Jiang" in papers["2606.12575"].authors
    assert len(papers["2606.12575"].authors) == 10
    assert "<swi>" in papers["2606.13106"].abstract
    assert "\n" not in papers["2606.09446"].abstract


def test_hf_optional_ai_fields_missing_on_some_days() -> None:
    papers = by_id(hf.parse(recording(HF_JULY), "hf"))
    assert len(papers) == 5
    assert all(p.ai_summary is None and p.ai_keywords == [] for p in papers.values())
    assert papers["2607.27958"].title.startswith("Σ-Mem:")
    assert papers["2607.28582"].title.startswith("β-OPSD:")
    assert papers["2607.28582"].upvotes == 17


def test_arxiv_rss_splits_authors_and_keeps_versions_types_categories() -> None:
    papers = arxiv.parse(recording(ARXIV_RSS), "arxiv")
    got = [(p.id, p.version, p.announce_type) for p in papers]
    assert got == [
        ("2609.26811", 1, "new"),
        ("2609.26820", 1, "new"),
        ("2205.06398", 2, "cross"),
        ("2009.13987", 3, "replace"),
    ]
    second = papers[1]
    assert second.authors == ["Naser Mansour", "Sidahmed Benabderrahmane", "Ameer Rahwan"]
    assert second.categories == ["cs.LG", "cs.AI"]
    assert papers[2].categories[0] == "stat.ME"
    assert papers[2].doi == "10.1093/bioinformatics/btac431"
    assert papers[0].abstract.startswith("Local learning trains each layer")
    assert "Announce Type" not in papers[0].abstract
    assert papers[0].raw_id == "oai:arXiv.org:2609.26811v1"
    assert papers[0].link == "https://arxiv.org/abs/2609.26811"
    assert papers[0].published == datetime(2026, 9, 24, 4, 0, tzinfo=UTC)


def test_arxiv_atom_real_entries_and_tex_accents_in_names() -> None:
    papers = arxiv.parse(recording(ARXIV_ATOM), "arxiv")[:4]  # only entries 1-4 are real
    assert [p.id for p in papers] == ["2508.13426", "2508.13428", "2508.13429", "2508.13434"]
    assert all(p.announce_type == "cross" and p.version == 1 for p in papers)
    assert papers[2].authors == ["Paulo André Lima de Castro"]
    assert papers[1].categories == ["cs.CV", "cs.AI", "cs.MM"]
    assert len(papers[3].authors) == 7


def test_arxiv_api_doi_journal_ref_comment_and_non_ascii_names() -> None:
    papers = by_id(arxiv.parse(recording(ARXIV_API), "api"))
    assert len(papers) == 20
    springer = papers["2604.26888"]
    assert springer.doi == "10.1007/978-3-031-85252-7_10"
    assert "Bäck" in springer.journal_ref
    assert springer.authors == ["Janis Mohr", "Jörg Frochte"]
    assert springer.pdf_url == "https://arxiv.org/pdf/2604.26888v1"
    assert papers["2604.26851"].doi == "10.1145/3805689.3806498"
    assert sum(1 for p in papers.values() if p.comment) == 12
    assert papers["2604.26926"].title.endswith(r"the $\ln\ln T$ Term from the Squint Bound")
    assert "p < 0.0001" in papers["2604.26869"].abstract


def test_arxiv_api_primary_category_first() -> None:
    papers = arxiv.parse(recording(ARXIV_API_TRANSFORMER), "api")
    assert [p.categories[0] for p in papers] == ["cs.RO", "cs.AI", "cs.LG", "cs.CV", "cs.DC"]
    assert papers[0].comment == "Project Page: https://zhaohengyin.github.io/mana"


def test_generic_feed_finds_arxiv_ids_in_links_and_reads_cdata() -> None:
    papers = feed.parse(recording(TAKARA), "takara")
    assert len(papers) == 50
    first = papers[0]
    assert first.id == "2604.26238" and first.arxiv_id == "2604.26238"
    assert first.link == "https://tldr.takara.ai/p/2604.26238"
    assert first.title == "EnerGS: Energy-Based Gaussian Splatting with Partial Geometric Priors"
    assert first.abstract.startswith("3D Gaussian Splatting (3DGS) has been widely adopted")
    assert first.authors == []


def test_generic_feed_without_arxiv_ids_keys_by_link_hash() -> None:
    doc = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>
    <item><title>A &amp; B: &lt;b&gt;bold&lt;/b&gt; claims</title><link>https://blog.example.org/post/1</link>
    <description>&lt;p&gt;First &amp;amp; <![CDATA[<i>only</i>]]>&lt;/p&gt;</description>
    <author>jane@example.org (Jane Doe)</author></item></channel></rss>"""
    (paper,) = feed.parse(doc, "blog")
    assert paper.id.startswith("h:") and paper.arxiv_id is None
    assert paper.id == feed.parse(doc, "blog")[0].id
    assert paper.abstract == "First & only"
    assert paper.link == "https://blog.example.org/post/1"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("oai:arXiv.org:2508.13426v1", ("2508.13426", 1)),
        ("http://arxiv.org/abs/2604.26951v12", ("2604.26951", 12)),
        ("https://arxiv.org/pdf/2604.26951.pdf", ("2604.26951", None)),
        ("2606.13681", ("2606.13681", None)),
        ("http://arxiv.org/abs/hep-th/9901001v2", ("hep-th/9901001", 2)),
        ("https://huggingface.co/papers/2606.13681", ("2606.13681", None)),
        ("https://blog.example.org/2024/05/post", None),
    ],
)
def test_arxiv_ids_with_and_without_versions(raw: str, expected: tuple | None) -> None:
    assert split_arxiv_id(raw) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[{]", "not valid JSON (line 1, column 3)"),
        (b'{"error": "Invalid date"}', "answered a JSON object, not a list: Invalid date"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML page, not a feed"),
        (b'[{"paper": {"id": "2606.1\xff"}}]', "is not UTF-8"),
        (b'[{"nothing": 1}, 5]', "none with an id and title"),
    ],
)
def test_hf_bad_bodies_are_one_clear_error(body: bytes, message: str) -> None:
    with pytest.raises(SourceError, match=r"^hf: ") as info:
        hf.parse(body, "hf", "https://hf.test/api/daily_papers")
    assert message in str(info.value)


def test_hf_empty_day_is_not_an_error() -> None:
    assert hf.parse(json.dumps([]).encode(), "hf") == []


# --- issue 11: hostile and unusual items ------------------------------------------------


def test_hf_malformed_items_are_skipped_counted_and_the_rest_kept() -> None:
    data = json.loads(recording(HF_JULY))
    data[0]["paper"]["authors"] = "Jane Doe"
    data[1]["paper"]["ai_keywords"] = 7
    data[2]["paper"]["authors"] = None  # null is an absent list, not a fault
    data.append("not an item")
    batch = hf.parse_batch(json.dumps(data).encode(), "hf")
    assert len(batch.papers) == 3 and batch.skipped == 3
    assert batch.reasons == [
        f"item 1: {data[0]['paper']['id']}: authors is a string, expected a list",
        f"item 2: {data[1]['paper']['id']}: ai_keywords is a number, expected a list",
        "item 6: is a string, expected an object",
    ]
    assert by_id(batch.papers)[data[2]["paper"]["id"]].authors == []


ATOM_EMPTY_SUMMARY = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Lab</title>
<entry><title>Full text only</title><id>urn:lab:1</id><link href="https://lab.example.org/1"/>
<summary></summary><content type="html">&lt;p&gt;The whole&amp;nbsp;abstract.&lt;/p&gt;</content>
</entry></feed>"""


def test_atom_entry_with_an_empty_summary_takes_its_content() -> None:
    (paper,) = feed.parse(ATOM_EMPTY_SUMMARY, "lab")
    assert paper.abstract == "The whole abstract."


@pytest.mark.parametrize(
    "description",
    [
        b"<description>Text&amp;nbsp;with&amp;amp;leftovers&amp;#8212;yes</description>",
        b"<description><![CDATA[Text&nbsp;with&amp;leftovers&#8212;yes]]></description>",
    ],
    ids=["double-escaped", "cdata"],
)
def test_leftover_entities_in_abstracts_are_decoded(description: bytes) -> None:
    doc = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>B</title><item>'
        b"<title>T</title><link>https://blog.example.org/1</link>"
        + description
        + b"</item></channel></rss>"
    )
    (paper,) = feed.parse(doc, "blog")
    assert paper.abstract == "Text with&leftovers\u2014yes"


def test_hf_summary_with_a_literal_nbsp_is_decoded() -> None:
    data = json.loads(recording(HF_JULY))
    data[0]["paper"]["summary"] = "Fast&nbsp;and small"
    assert hf.parse(json.dumps(data).encode(), "hf")[0].abstract == "Fast and small"


RELATIVE = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>B</title>
<item><title>Relative</title><link>/posts/1</link></item>
<item xml:base="https://mirror.example.org/a/"><title>Based</title><link>b/2</link></item>
</channel></rss>"""


def test_relative_links_resolve_against_the_document_url_and_xml_base() -> None:
    papers = feed.parse(RELATIVE, "blog", "https://blog.example.org/feeds/all.xml")
    assert [p.link for p in papers] == [
        "https://blog.example.org/posts/1",
        "https://mirror.example.org/a/b/2",
    ]


def test_a_link_that_stays_relative_is_keyed_by_its_source() -> None:
    one, two = feed.parse(RELATIVE, "one")[0], feed.parse(RELATIVE, "two")[0]
    assert one.link is None and two.link is None
    assert one.id != two.id and one.id == feed.parse(RELATIVE, "one")[0].id


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32", "utf-32-be"])
def test_wide_encodings_with_a_bom_are_decoded(codec: str) -> None:
    text = recording(ARXIV_RSS).decode().replace("version='1.0'", "version='1.0' encoding='x'")
    raw = text.encode(codec)
    if not codec.endswith("-be"):
        assert raw[:2] == b"\xff\xfe"
    else:
        raw = ("\ufeff" + text).encode(codec)
    assert [p.id for p in arxiv.parse(raw, "arxiv")][:2] == ["2609.26811", "2609.26820"]


def test_entities_declared_in_a_utf16_feed_are_still_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><rss version="2.0"></rss>'
    with pytest.raises(SourceError, match="declares XML entities"):
        feed.parse(bomb.decode().encode("utf-16"), "bad")


# --- issue 12: typed edges ----------------------------------------------------------------

SOURCES = Path(hf.__file__).parent
ROOT = SOURCES.parent.parent
PRIMARY_AS_TEXT = b"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom">
<title>query</title><entry><id>http://arxiv.org/abs/2604.00001v2</id><title>Grasping</title>
<updated>2026-04-29T17:59:01Z</updated><category term="cs.LG"/><category term="cs.RO"/>
<arxiv:primary_category>cs.RO</arxiv:primary_category><author><name>Ada B</name></author>
</entry></feed>"""


def test_feed_entries_reach_the_parsers_as_typed_records() -> None:
    parsed = read_feed("api", "api", recording(ARXIV_API), strict=True)
    entry = parsed.entries[0]
    assert parsed.version == "atom10" and isinstance(entry, FeedEntry)
    assert entry.arxiv_primary_category == "cs.CL" and entry.tags[0] == "cs.CL"
    assert entry.authors[0] == "Gongbo Zhang" and entry.updated == "2026-04-29T17:59:01Z"
    assert entry.published_parsed is not None and entry.links[0].href.startswith("https://")


def test_a_primary_category_written_as_text_leads_the_categories() -> None:
    """feedparser keeps an attribute-less element as a string, not a dict: the entry used to be
    lost to an AttributeError."""
    (paper,) = arxiv.parse(PRIMARY_AS_TEXT, "api")
    assert (paper.id, paper.version, paper.categories) == ("2604.00001", 2, ["cs.RO", "cs.LG"])


def test_hf_items_are_read_into_typed_records_before_becoming_papers() -> None:
    item = json.loads(recording(HF_JULY))[0]
    item["paper"]["upvotes"] = "12"
    record = hf.read_item(item)
    assert isinstance(record, hf.DailyPaper)
    assert (record.raw_id, record.title) == (item["paper"]["id"], item["paper"]["title"])
    assert record.upvotes == 12 and all(isinstance(a, str) for a in record.authors)
    assert hf.to_paper(record, "hf") == hf.parse(json.dumps([item]).encode(), "hf")[0]


def names_used(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    found |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    found |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    return found | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


def test_only_the_wrapper_touches_feedparser_and_no_parser_touches_any() -> None:
    modules = sorted(SOURCES.glob("*.py"))
    assert [p.name for p in modules if "feedparser" in names_used(p)] == ["parsed.py"]
    assert [p.name for p in modules if "Any" in names_used(p)] == []


def functions(path: Path) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef, bool]]:
    """Every function of a module, and whether it is public (a method of a private class,
    like an HTMLParser override, is not)."""

    def walk(
        node: ast.AST, public: bool
    ) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield child, public and not child.name.startswith("_")
                yield from walk(child, False)
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, public and not child.name.startswith("_"))

    return walk(ast.parse(path.read_text(encoding="utf-8")), True)


def test_collector_functions_are_short_and_public_ones_say_what_for() -> None:
    problems = []
    for path in [*sorted(SOURCES.glob("*.py")), SOURCES.parent / "collect.py"]:
        for node, public in functions(path):
            where = f"{path.name}: {node.name}"
            doc = ast.get_docstring(node) or ""
            if node.end_lineno and node.end_lineno - node.lineno + 1 > 60:
                problems.append(f"{where} is over 60 lines")
            if public and not doc:
                problems.append(f"{where} has no docstring")
            raises = any(
                isinstance(n, ast.Raise) and "SourceError(" in ast.unparse(n)
                for n in ast.walk(node)
            )
            if public and raises and "Raises:" not in doc:
                problems.append(f"{where} raises SourceError without a Raises: section")
    assert problems == []


def test_sources_and_collect_type_check_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    command = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent"]
    command += ["--cache-dir", str(tmp_path), "digest/sources", "digest/collect.py"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
