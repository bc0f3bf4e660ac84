"""Matching an edition's papers to subscribers: shared work, ranking, never a paper twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest import subscribers as subs
from digest.cli import app
from digest.collect import collect
from digest.config import load_config, load_topics
from digest.edition import Edition, daily_window, papers_in
from digest.match import Matcher, match_subscribers
from digest.models import Paper, Subscriber
from digest.store import Store
from tests.conftest import ARXIV_RSS, DATA, HF_JUNE, make_config

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
TOPICS = load_topics(load_config(env={}).topics_path)


def collect_files(tmp_path: Path, store: Store, now: datetime, *names: str) -> None:
    kinds = {HF_JUNE: "hf"}
    sources = [
        {"name": f"s{i}", "kind": kinds.get(n, "arxiv"), "url": str(DATA / n)}
        for i, n in enumerate(names)
    ]
    collect(make_config(tmp_path, sources), store, now)


def person(email: str, **kw: object) -> Subscriber:
    kw.setdefault("status", "active")
    return Subscriber(email=email, **kw)  # type: ignore[arg-type]


def test_each_distinct_query_is_ranked_once_however_many_share_it(
    tmp_path: Path, store: Store
) -> None:
    collect_files(tmp_path, store, NOW, HF_JUNE)
    for n in range(30):
        subs.add(store, TOPICS, person(f"p{n}@example.org", topics=["llm-agents"]), NOW.isoformat())
    subs.add(store, TOPICS, person("q@example.org", queries=["agent*"]), NOW.isoformat())
    matcher = Matcher(papers_in(store, daily_window(store, NOW.date(), NOW)), TOPICS, NOW)
    results = list(match_subscribers(store, matcher, store.iter_subscribers(["active"])))
    assert len(results) == 31
    assert matcher.distinct_queries == 2
    first = [m.paper.id for m in results[0].matches]
    assert all([m.paper.id for m in r.matches] == first for r in results[:30])
    assert results[0].new_papers == 30


def test_every_match_says_why_with_terms_and_fields(tmp_path: Path, store: Store) -> None:
    collect_files(tmp_path, store, NOW, HF_JUNE)
    papers = store.list_papers(limit=None)
    sub = person("a@example.org", queries=['"memory evolution" OR author:"Peng Gao"'])
    matches = Matcher(papers, TOPICS, NOW).for_subscriber(sub)
    by_id = {m.paper.id: m for m in matches}
    evo = by_id["2606.13681"]
    assert {(h.term, h.field) for h in evo.reasons[0].hits} == {
        ("memory evolution", "title"),
        ("memory evolution", "abstract"),
    }
    gao = by_id["2606.12575"]
    assert [(h.term, h.field) for h in gao.reasons[0].hits] == [("Peng Gao", "author")]


def test_title_hits_rank_above_abstract_hits_and_ties_are_stable() -> None:
    papers = [
        Paper(id="2601.00003", title="Something else", abstract="About diffusion."),
        Paper(id="2601.00002", title="Diffusion for all", abstract="Nothing here."),
        Paper(id="2601.00001", title="Other", abstract="About diffusion too."),
        Paper(id="2601.00004", title="Popular", abstract="diffusion", upvotes=50),
    ]
    sub = person("a@example.org", queries=["diffusion"], max_papers=3)
    got = [m.paper.id for m in Matcher(papers, TOPICS, NOW).for_subscriber(sub)]
    assert got == ["2601.00002", "2601.00004", "2601.00001"]
    floor = person("a@example.org", queries=["diffusion"], min_upvotes=10)
    assert [m.paper.id for m in Matcher(papers, TOPICS, NOW).for_subscriber(floor)] == [
        "2601.00004"
    ]


def test_a_paper_matched_by_two_queries_appears_once_with_both_reasons() -> None:
    papers = [Paper(id="2601.00001", title="Robot world model", abstract="")]
    sub = person("a@example.org", queries=['"world model"'], topics=["robotics"])
    (match,) = Matcher(papers, TOPICS, NOW).for_subscriber(sub)
    assert [(r.kind, r.name) for r in match.reasons] == [
        ("topic", "robotics"),
        ("query", '"world model"'),
    ]


def test_never_the_same_paper_twice_across_days_sources_and_versions(
    tmp_path: Path, store: Store
) -> None:
    collect_files(tmp_path, store, NOW, ARXIV_RSS)
    sub = subs.add(
        store,
        TOPICS,
        person("a@example.org", queries=["cat:cs.LG OR cat:stat.ML"]),
        NOW.isoformat(),
    )
    day1 = daily_window(store, NOW.date(), NOW, open_it=True)
    matcher = Matcher(papers_in(store, day1), TOPICS, NOW)
    (first,) = match_subscribers(store, matcher, [sub])
    sent = [m.paper.id for m in first.matches]
    assert sorted(sent) == ["2009.13987", "2205.06398", "2609.26811", "2609.26820"]
    store.mark_papers_sent(sub.id, sent, Edition.daily(NOW.date()).name, NOW.isoformat())

    # Next day: a new version of a paper already sent, plus one genuinely new paper.
    later = NOW + timedelta(days=1)
    text = (DATA / ARXIV_RSS).read_text().replace("2009.13987v3", "2009.13987v4")
    text = text.replace("2205.06398", "2609.99999")
    (tmp_path / "day2.xml").write_text(text)
    config = make_config(tmp_path, [{"name": "s0", "kind": "arxiv", "url": "day2.xml"}])
    collect(config, store, later)
    day2 = daily_window(store, later.date(), later, open_it=True)
    papers = papers_in(store, day2)
    assert [p.id for p in papers] == ["2609.99999"]
    # Even matching over everything stored, what was sent stays sent.
    everything = Matcher(store.list_papers(limit=None), TOPICS, later)
    (second,) = match_subscribers(store, everything, [sub])
    assert [m.paper.id for m in second.matches] == ["2609.99999"]


@pytest.mark.parametrize("as_json", [True, False])
def test_preview_shows_ranked_explained_matches_and_sends_nothing(
    tmp_path: Path, as_json: bool
) -> None:
    runner = CliRunner()
    config = tmp_path / "c.toml"
    config.write_text(
        f'[[sources]]\nname = "hf"\nkind = "hf"\nurl = "{DATA / HF_JUNE}"\n', encoding="utf-8"
    )
    assert runner.invoke(app, ["collect", "-c", str(config)]).exit_code == 0
    args = ["preview", "-c", str(config), "--query", "title:agent* -survey", "--limit", "3"]
    result = runner.invoke(app, args + (["--json"] if as_json else []))
    assert result.exit_code == 0, result.output
    if as_json:
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert rows[0]["id"] == "2606.13681"
        assert set(rows[0]) == {"id", "title", "score", "why"}
        assert rows[0]["why"][0]["hits"] == [{"term": "agent*", "field": "title"}]
        assert rows[0]["score"] >= rows[1]["score"] >= rows[2]["score"]
    else:
        assert "8 of 30 papers match (edition" in result.stdout
        assert "; showing the first 3 (--limit)." in result.stdout
        assert "agent* (title)" in result.stdout


def test_preview_all_with_a_limit_counts_every_match_not_just_those_shown(
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    config = tmp_path / "c.toml"
    config.write_text(
        f'[[sources]]\nname = "hf"\nkind = "hf"\nurl = "{DATA / HF_JUNE}"\n', encoding="utf-8"
    )
    assert runner.invoke(app, ["collect", "-c", str(config)]).exit_code == 0
    args = ["preview", "-c", str(config), "--all", "--query", "agent*", "--limit", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "12 of 30 papers match (all stored papers); showing the first 2 (--limit)."
    assert [line[:4] for line in lines[1:] if line[:4].strip()[:1].isdigit()] == [" 1. ", " 2. "]


def test_preview_for_a_subscriber_and_a_bad_query(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(app, ["subscribers", "add", "a@example.org", "-t", "robotics", "--active"])
    result = runner.invoke(app, ["preview", "--subscriber", "a@example.org", "--json"])
    assert result.exit_code == 0 and result.stdout == ""
    bad = runner.invoke(app, ["preview", "--query", "a AND"])
    assert bad.exit_code == 1 and "Error:" in bad.stderr
    check = runner.invoke(app, ["query", "check", "diffusion AND (video"])
    assert check.exit_code == 1
    assert check.stderr.splitlines()[:2] == ["diffusion AND (video", "              ^"]


def test_the_cap_reports_how_many_matched_before_it() -> None:
    papers = [
        Paper(id=f"p{n}", title=f"agent study {n}", upvotes=n, abstract="agents") for n in range(9)
    ]
    matcher = Matcher(papers, TOPICS, NOW)
    capped = matcher.for_subscriber(person("a@example.org", queries=["agent"], max_papers=3))
    assert (len(capped), capped.total) == (3, 9)
    sent = ["p8", "p7", "p0", "elsewhere"]
    both = person("b@example.org", queries=["agent", "study"], max_papers=4, min_upvotes=2)
    found = matcher.for_subscriber(both, sent)
    assert [m.paper.id for m in found] == ["p6", "p5", "p4", "p3"]
    assert found.total == 5  # p2..p6: p0, p1 under the floor, p7 and p8 already sent
    everything = matcher.for_subscriber(person("c@example.org", queries=["agent"], max_papers=50))
    assert (len(everything), everything.total) == (9, 9)


def test_matching_streams_subscribers_in_batches(tmp_path: Path, store: Store) -> None:
    collect_files(tmp_path, store, NOW, HF_JUNE)
    people = [person(f"p{n}@example.org", queries=["agent"]) for n in range(2500)]
    store.add_subscribers_bulk(people, NOW.isoformat(), "test")
    matcher = Matcher(store.list_papers(limit=None), TOPICS, NOW)
    stream = match_subscribers(store, matcher, store.iter_subscribers(["active"]))
    first = next(stream)
    assert first.subscriber.email == "p0@example.org" and first.matches
    assert sum(1 for _ in stream) == 2499
