"""Matching an edition's papers to subscribers: shared work, ranking, never a paper twice."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest import subscribers as subs
from digest.cli import app
from digest.collect import collect
from digest.config import load_config, load_topics
from digest.edition import Edition, daily_window, papers_in
from digest.match import (
    FIELD_WEIGHT,
    FRESHNESS_DAYS,
    FRESHNESS_WEIGHT,
    MATCH_FIELDS,
    POPULARITY_WEIGHT,
    Matcher,
    match_subscribers,
)
from digest.models import Paper, Subscriber, Topic
from digest.query import Node, PaperIndex, parse, positions
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
        subs.add(store, TOPICS, person(f"p{n}@example.org", topics=["llm-agents"]), NOW)
    subs.add(store, TOPICS, person("q@example.org", queries=["agent*"]), NOW)
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
        NOW,
    )
    day1 = daily_window(store, NOW.date(), NOW, open_it=True)
    matcher = Matcher(papers_in(store, day1), TOPICS, NOW)
    (first,) = match_subscribers(store, matcher, [sub])
    sent = [m.paper.id for m in first.matches]
    assert sorted(sent) == ["2009.13987", "2205.06398", "2609.26811", "2609.26820"]
    store.mark_papers_sent(sub.id, sent, Edition.daily(NOW.date()).name, NOW)

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
    store.add_subscribers_bulk(people, NOW, "test")
    matcher = Matcher(store.list_papers(limit=None), TOPICS, NOW)
    stream = match_subscribers(store, matcher, store.iter_subscribers(["active"]))
    first = next(stream)
    assert first.subscriber.email == "p0@example.org" and first.matches
    assert sum(1 for _ in stream) == 2499


WORDS = [
    "agent",
    "agents",
    "llm",
    "robot",
    "driving",
    "planning",
    "perception",
    "survey",
    "video",
    "egocentric",
    "diffusion",
    "model",
    "models",
    "graph",
    "memory",
    "reasoning",
    "tool",
    "manipulation",
    "language",
    "vision",
    "benchmark",
]
SURNAMES = ["Gao", "Chen", "Smith", "Okafor", "Ivanova", "Tanaka"]


DAYS = [datetime(2026, 6, 11, tzinfo=UTC), datetime(2026, 6, 9, 12, tzinfo=UTC),
        datetime(2026, 6, 1, tzinfo=UTC)]  # fmt: skip


def random_papers(rng: random.Random, count: int) -> list[Paper]:
    """Few words, so queries overlap; few upvote values and dates, so scores tie often."""
    papers = []
    for n in range(count):
        day = rng.choice([None, *DAYS])
        papers.append(
            Paper(
                id=f"2606.{n:05d}",
                title=" ".join(rng.choices(WORDS, k=rng.randint(2, 6))),
                abstract=" ".join(rng.choices(WORDS, k=rng.randint(0, 25))),
                authors=[f"Ann {rng.choice(SURNAMES)}" for _ in range(rng.randint(0, 3))],
                categories=rng.sample(["cs.RO", "cs.LG", "cs.CL", "cs.CV"], rng.randint(1, 2)),
                upvotes=rng.choice([None, 0, 0, 1, 2, 5, 5, 12, 40]),
                published=day,
            )
        )
    return papers


def random_query(rng: random.Random) -> str:
    w1, w2, w3 = rng.sample(WORDS, 3)
    return rng.choice(
        [
            w1,
            f"{w1} {w2}",
            f'"{w1} {w2}"',
            f"{w1} OR {w2}",
            f"{w1}  OR  {w2}",  # the same tree typed differently: one ranking, two sources
            f"{w1} -{w2}",
            f"title:{w1} OR title:{w2}",
            f"author:{rng.choice(SURNAMES)} OR {w3}",
            f"{w1[:3]}*",
            f"cat:cs.RO OR {w1}",
            f"({w1} OR {w2}) {w3}",
            "upvotes>4 " + w1,
        ]
    )


class TodaysMatcher:
    """The matcher as it was before rank tables, kept as the yardstick: each query ranked
    on its own; each subscriber reads each ranked list until it has k eligible papers,
    keeps a paper's best score, sorts by (-score, -upvotes, id) and caps."""

    def __init__(self, papers: list[Paper], topics: dict[str, Topic], now: datetime) -> None:
        self.papers, self.topics, self.index = papers, topics, PaperIndex(papers)
        self.base = [
            POPULARITY_WEIGHT * math.log1p(max(p.upvotes or 0, 0))
            + FRESHNESS_WEIGHT * self.freshness(p, now)
            for p in papers
        ]
        self.key = [(-(p.upvotes or 0), p.id) for p in papers]

    @staticmethod
    def freshness(paper: Paper, now: datetime) -> float:
        if paper.published is None:
            return 0.0
        age = (now - paper.published).total_seconds() / 86400
        return max(0.0, 1.0 - max(age, 0.0) / FRESHNESS_DAYS)

    def ranked(self, node: Node) -> list[tuple[float, int]]:
        selected = self.index.evaluate(node)
        score = self.base[:]
        by_term: dict[str, int] = {}
        for shown, fld, bits in self.index.term_field_bits(node):
            hit = bits & selected
            by_term[shown] = by_term.get(shown, 0) | hit
            for i in positions(hit):
                score[i] += FIELD_WEIGHT.get(fld, 0.5)
        for hit in by_term.values():
            for i in positions(hit):
                score[i] += 0.5
        order = sorted(positions(selected), key=lambda i: (-score[i], self.key[i]))
        return [(score[i], i) for i in order]

    def matches(self, sub: Subscriber, sent: set[str]) -> tuple[list[object], int]:
        sources = [("topic", n, parse(self.topics[n].query)) for n in sub.topics]
        sources += [("query", q, parse(q)) for q in sub.queries]
        floor, k, best = sub.min_upvotes or 0, sub.max_papers, {}
        union = 0
        for _, _, node in sources:
            union |= self.index.evaluate(node)
            eligible = 0
            for score, i in self.ranked(node):
                paper = self.papers[i]
                if (paper.upvotes or 0) < floor or paper.id in sent:
                    continue
                best[i] = max(best.get(i, -1.0), score)
                eligible += 1
                if eligible == k:
                    break
        chosen = sorted((-score, self.key[i], i) for i, score in best.items())[:k]
        total = sum(
            1
            for i in positions(union)
            if (self.papers[i].upvotes or 0) >= floor and self.papers[i].id not in sent
        )
        shown = []
        for neg, _, i in chosen:
            why = [
                (kind, name) for kind, name, node in sources if self.index.evaluate(node) >> i & 1
            ]
            shown.append((self.papers[i].id, -neg, why))
        return shown, max(total, len(shown))


def test_results_are_identical_to_todays_matcher_subscriber_by_subscriber(store: Store) -> None:
    rng = random.Random(13)
    papers = random_papers(rng, 160)
    store.upsert_papers("test", papers, NOW)
    papers = store.list_papers(limit=None)
    queries = [random_query(rng) for _ in range(60)]
    filters = [  # a pool, so that many subscribers share a filter signature
        (rng.sample(queries, rng.randint(0, 4)), rng.sample(sorted(TOPICS), rng.randint(0, 2)))
        for _ in range(120)
    ]
    people = []
    for n in range(900):
        picked, topics = rng.choice(filters)
        floor = rng.choice([None, None, None, 0, 3, 12])
        cap = rng.choice([1, 3, 10, 10, 10, 17, 40, 200])
        people.append(
            person(
                f"p{n}@example.org",
                queries=picked,
                topics=topics,
                max_papers=cap,
                min_upvotes=floor,
            )
        )
    store.add_subscribers_bulk(people, NOW, "test")
    sent: dict[str, set[str]] = {}
    for sub in store.iter_subscribers():
        if rng.random() < 0.3:
            got = [p.id for p in rng.sample(papers, rng.randint(1, 12))] + ["1999.00001"]
            store.mark_papers_sent(sub.id or 0, got, "2026-06-11", NOW)
            sent[sub.email] = set(got)

    matcher = Matcher(papers, TOPICS, NOW)
    reference = TodaysMatcher(papers, dict(TOPICS), NOW)
    stream = store.iter_subscribers(["active"], fields=MATCH_FIELDS)
    compared = 0
    for result in match_subscribers(store, matcher, stream):
        ids = result.matches.paper_ids  # read before any Match object is made, as a plan does
        got = [(m.paper.id, m.score, [(r.kind, r.name) for r in m.reasons]) for m in result.matches]
        want = reference.matches(result.subscriber, sent.get(result.subscriber.email, set()))
        assert (got, result.matches.total) == want, result.subscriber
        assert ids == [paper_id for paper_id, _, _ in want[0]] == result.matches.paper_ids
        compared += 1
    assert compared == 900
    assert 0 < matcher.merged < 900  # shared signatures were merged once per batch


def test_subscribers_with_the_same_filters_are_merged_once() -> None:
    papers = [Paper(id=f"p{n}", title=f"agent {n}", abstract="robot") for n in range(30)]
    matcher = Matcher(papers, TOPICS, NOW)
    same = [person(f"a{n}@example.org", queries=["agent", "robot"]) for n in range(50)]
    other = person("b@example.org", queries=["robot", "agent"])  # another order, other reasons
    results = list(matcher.for_subscribers([*same, other]))
    assert matcher.merged == 2
    assert [m.paper.id for m in results[0]] == [m.paper.id for m in results[49]]
    assert len(results) == 51 and all(len(r) == 10 and r.total == 30 for r in results)


def test_reading_only_the_match_fields_leaves_the_others_at_their_defaults(
    store: Store,
) -> None:
    full = person(
        "a@example.org",
        queries=["agent"],
        topics=["robotics"],
        max_papers=4,
        min_upvotes=3,
        tz="Europe/Paris",
        hour=6,
        cadence="weekly",
        bounces=2,
    )
    store.add_subscribers_bulk([full, person("b@example.org", status="paused")], NOW, "test")
    (lean,) = store.iter_subscribers(["active"], fields=MATCH_FIELDS)
    assert (lean.email, lean.queries, lean.topics, lean.max_papers, lean.min_upvotes) == (
        "a@example.org",
        ["agent"],
        ["robotics"],
        4,
        3,
    )
    assert (lean.id, lean.status) == (1, "active")
    assert (lean.tz, lean.hour, lean.cadence, lean.bounces, lean.created_at) == (
        "UTC",
        8,
        "daily",
        0,
        None,
    )
    (whole,) = store.iter_subscribers(["active"])
    assert (whole.tz, whole.hour, whole.cadence, whole.bounces) == ("Europe/Paris", 6, "weekly", 2)


def test_already_sent_papers_of_an_edition_come_from_one_join_for_everyone(
    store: Store,
) -> None:
    store.add_subscribers_bulk([person(f"p{n}@example.org") for n in range(3)], NOW, "test")
    store.mark_papers_sent(1, ["2606.00001", "2606.00002", "old"], "2026-06-11", NOW)
    store.mark_papers_sent(3, ["2606.00002"], "2026-06-11", NOW)
    store.mark_papers_sent(2, ["old"], "2026-06-10", NOW)
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    found = store.sent_by_subscriber(["2606.00001", "2606.00002", "2606.00003"])
    store.db.conn.set_trace_callback(None)
    assert found == {1: {"2606.00001", "2606.00002"}, 3: {"2606.00002"}}
    assert store.sent_by_subscriber([]) == {}
    (join,) = [s for s in statements if "sent_papers" in s]
    plan = " / ".join(row[3] for row in store.db.execute(f"explain query plan {join}"))
    assert "SCAN sent_papers" not in plan  # years of history are never read whole
