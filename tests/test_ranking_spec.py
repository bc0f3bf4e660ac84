"""Specification of matching and ranking beyond tests/test_match.py: the score a paper gets
(field weights, a bonus per distinct term, log-scaled upvotes, freshness), the order of ties,
the cap, the floor, what was already sent, why each paper is there, and the edition matchers
that rebuild a planned email. Through `digest.match`'s exported names, on hand-made papers
(and a real SQLite store where editions are involved)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.edition import Edition, Window, daily_window
from digest.errors import QueryError
from digest.match import (
    FIELD_WEIGHT,
    FRESHNESS_DAYS,
    FRESHNESS_WEIGHT,
    POPULARITY_WEIGHT,
    EditionMatchers,
    Matcher,
    Matches,
    SubscriberMatches,
    match_subscribers,
)
from digest.models import Paper, Subscriber, Topic
from digest.query import Hit
from digest.sources import hf
from digest.store import Store

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
TOPICS = {
    "robots": Topic("robots", "Robotics", "robot*"),
    "video": Topic("video", "Video generation", "video -survey"),
}


def person(*queries: str, **kw: object) -> Subscriber:
    kw.setdefault("status", "active")
    return Subscriber("a@example.org", queries=list(queries), **kw)  # type: ignore[arg-type]


def ids(matches: Sequence[object]) -> list[str]:
    return [m.paper.id for m in matches]  # type: ignore[attr-defined]


def only_score(paper: Paper, query: str) -> float:
    (match,) = Matcher([paper], TOPICS, NOW).for_subscriber(person(query))
    return match.score


# ---------------------------------------------------------------- the score


@pytest.mark.parametrize(
    ("paper", "query", "relevance"),
    [
        (Paper("p", "robot"), "robot", FIELD_WEIGHT["title"] + 0.5),
        (Paper("p", "x", "robot"), "robot", FIELD_WEIGHT["abstract"] + 0.5),
        (Paper("p", "robot", "robot"), "robot", FIELD_WEIGHT["title"] + 1.0 + 0.5),
        (Paper("p", "x", authors=["Ada"]), "author:ada", FIELD_WEIGHT["author"] + 0.5),
        (Paper("p", "x", categories=["cs.RO"]), "cat:cs", FIELD_WEIGHT["category"] + 0.5),
        (Paper("p", "x", sources=["hf"]), "source:hf", FIELD_WEIGHT["source"] + 0.5),
        (Paper("p", "robot video"), "robot video", 2 * (FIELD_WEIGHT["title"] + 0.5)),
        (Paper("p", "robot video"), "robot OR video", 2 * (FIELD_WEIGHT["title"] + 0.5)),
        (Paper("p", "robot"), "robot OR video", FIELD_WEIGHT["title"] + 0.5),
        (Paper("p", "robot"), "robot -survey", FIELD_WEIGHT["title"] + 0.5),
        (Paper("p", "robot"), "robot robot", FIELD_WEIGHT["title"] + 0.5),
        (Paper("p", "robot"), "-survey", 0.0),  # nothing positive: popularity and freshness only
    ],
)
def test_relevance_is_a_weight_per_field_hit_plus_half_a_point_per_distinct_term(
    paper: Paper, query: str, relevance: float
) -> None:
    """A paper without upvotes or a date scores its relevance alone."""
    assert only_score(paper, query) == pytest.approx(relevance)


def test_an_upvote_comparison_counts_as_a_hit_of_half_a_point() -> None:
    paper = Paper("p", "robot", upvotes=5)
    popularity = POPULARITY_WEIGHT * math.log1p(5)
    assert only_score(paper, "upvotes>=5") == pytest.approx(0.5 + 0.5 + popularity)


@pytest.mark.parametrize("upvotes", [None, 0, -7])
def test_no_negative_or_missing_upvotes_add_or_take_anything(upvotes: int | None) -> None:
    assert only_score(Paper("p", "robot", upvotes=upvotes), "robot") == pytest.approx(3.5)


@pytest.mark.parametrize("upvotes", [1, 10, 118, 5000])
def test_upvotes_add_their_log(upvotes: int) -> None:
    expected = 3.5 + POPULARITY_WEIGHT * math.log1p(upvotes)
    assert only_score(Paper("p", "robot", upvotes=upvotes), "robot") == pytest.approx(expected)


def test_a_title_hit_outranks_an_abstract_hit_with_up_to_about_118_more_upvotes() -> None:
    papers = [
        Paper("abstract-100", "x", "robot", upvotes=100),
        Paper("title-0", "robot", upvotes=0),
        Paper("abstract-200", "x", "robot", upvotes=200),
    ]
    got = Matcher(papers, TOPICS, NOW).for_subscriber(person("robot"))
    assert ids(got) == ["abstract-200", "title-0", "abstract-100"]


@pytest.mark.parametrize(
    ("published", "freshness"),
    [
        (NOW, 1.0),
        (NOW - timedelta(days=1), 1 - 1 / FRESHNESS_DAYS),
        (NOW - timedelta(days=3, hours=12), 0.5),
        (NOW - timedelta(days=FRESHNESS_DAYS), 0.0),
        (NOW - timedelta(days=40), 0.0),
        (NOW + timedelta(days=2), 1.0),  # a date in the future counts as now
        (NOW.astimezone(timezone(timedelta(hours=2))), 1.0),
        (None, 0.0),
    ],
)
def test_freshness_falls_linearly_to_nothing_over_a_week(
    published: datetime | None, freshness: float
) -> None:
    paper = Paper("p", "robot", published=published)
    expected = 3.5 + FRESHNESS_WEIGHT * freshness
    assert only_score(paper, "robot") == pytest.approx(expected)


@pytest.mark.parametrize(
    ("published", "freshness"),
    [
        ("2026-06-12T09:00:00Z", 1.0),
        ("2026-06-12T11:00:00+02:00", 1.0),
        ("2026-06-12T09:00:00", 0.0),  # no time zone: unknown age, no bonus
        ("12 June 2026", 0.0),
        ("", 0.0),
    ],
)
def test_an_hf_publication_time_is_fresh_only_with_its_time_zone(
    published: str, freshness: float
) -> None:
    item = {"paper": {"id": "2606.00001", "title": "robot", "publishedAt": published}}
    paper = hf.parse_item(item, "hf")
    expected = 3.5 + FRESHNESS_WEIGHT * freshness
    assert only_score(paper, "robot") == pytest.approx(expected)


def test_a_paper_scores_its_best_query_not_the_sum_of_them() -> None:
    paper = Paper("p", "robot", "video")
    (match,) = Matcher([paper], TOPICS, NOW).for_subscriber(person("robot", "video"))
    assert match.score == pytest.approx(FIELD_WEIGHT["title"] + 0.5)
    assert [r.name for r in match.reasons] == ["robot", "video"]


# ---------------------------------------------------------------- order, cap, floor, history


def test_equal_scores_order_by_id_whatever_order_the_papers_came_in() -> None:
    papers = [Paper(pid, "robot") for pid in ["b", "c", "a", "d"]]
    for seed in range(5):
        random.Random(seed).shuffle(papers)
        assert ids(Matcher(papers, TOPICS, NOW).for_subscriber(person("robot"))) == [
            "a",
            "b",
            "c",
            "d",
        ]


PAPERS = [
    Paper("p0", "robot video", upvotes=0),
    Paper("p1", "robot", "video", upvotes=9),
    Paper("p2", "robot", upvotes=10),
    Paper("p3", "x", "robot", upvotes=50),
    Paper("p4", "video", upvotes=None),
    Paper("p5", "robots everywhere", upvotes=3),
]


def test_the_cap_keeps_the_best_and_the_total_counts_what_it_left_out() -> None:
    matcher = Matcher(PAPERS, TOPICS, NOW)
    full = matcher.for_subscriber(person("robot", max_papers=50))
    capped = matcher.for_subscriber(person("robot", max_papers=2))
    assert ids(capped) == ids(full)[:2]
    assert (len(capped), capped.total, full.total) == (2, 5, 5)


def test_a_cap_of_zero_sends_nothing_but_still_counts() -> None:
    none = Matcher(PAPERS, TOPICS, NOW).for_subscriber(person("robot", max_papers=0))
    assert (list(none), none.total) == ([], 5)


@pytest.mark.parametrize(
    ("floor", "kept"),
    [(None, 6), (0, 6), (3, 4), (10, 2), (11, 1), (51, 0)],
)
def test_the_floor_keeps_papers_with_at_least_that_many_upvotes(
    floor: int | None, kept: int
) -> None:
    """A paper without upvotes counts as 0: below every floor above zero."""
    sub = person("robot OR video", min_upvotes=floor, max_papers=50)
    found = Matcher(PAPERS, TOPICS, NOW).for_subscriber(sub)
    assert len(found) == found.total == kept
    assert all((m.paper.upvotes or 0) >= (floor or 0) for m in found)


def test_what_was_sent_is_left_out_and_the_next_best_take_its_place() -> None:
    matcher = Matcher(PAPERS, TOPICS, NOW)
    best = ids(matcher.for_subscriber(person("robot", max_papers=50)))
    after = matcher.for_subscriber(person("robot", max_papers=2), [best[0], "not-here"])
    assert ids(after) == best[1:3]
    assert after.total == len(best) - 1
    assert ids(matcher.for_subscriber(person("robot", max_papers=2))) == best[:2]


def test_an_empty_edition_or_a_subscriber_with_no_filters_gets_nothing() -> None:
    empty = Matcher([], TOPICS, NOW)
    found = empty.for_subscriber(person("robot", topics=["robots"]))
    assert (list(found), found.total) == ([], 0)
    (batch,) = empty.for_subscribers([person("-robot")])
    assert (list(batch), batch.total) == ([], 0)
    nothing = Matcher(PAPERS, TOPICS, NOW).for_subscriber(person())
    assert (list(nothing), nothing.total) == ([], 0)


def test_an_only_negative_query_selects_everything_else_by_popularity() -> None:
    found = Matcher(PAPERS, TOPICS, NOW).for_subscriber(person("-video", max_papers=50))
    assert ids(found) == ["p3", "p2", "p5"]
    assert all(m.reasons[0].hits == () for m in found)


def test_a_topic_that_no_longer_exists_is_ignored_and_a_bad_query_is_refused() -> None:
    matcher = Matcher(PAPERS, TOPICS, NOW)
    gone = matcher.for_subscriber(person(topics=["retired"]))
    assert (list(gone), gone.total) == ([], 0)
    assert ids(matcher.for_subscriber(person(topics=["retired", "robots"]))) == ids(
        matcher.for_subscriber(person("robot*"))
    )
    with pytest.raises(QueryError):
        matcher.for_subscriber(person("robot AND"))


def test_equal_queries_typed_differently_are_ranked_once() -> None:
    matcher = Matcher(PAPERS, TOPICS, NOW)
    for typed in ["robot", "Robots", "ROBOT", "robots"]:
        matcher.for_subscriber(person(typed))
    assert matcher.distinct_queries == 1
    matcher.for_subscriber(person(topics=["robots"]))
    matcher.for_subscriber(person("robot*"))
    assert matcher.distinct_queries == 2
    matcher.for_subscriber(person("title:robot"))  # another field is another query
    assert matcher.distinct_queries == 3


# ---------------------------------------------------------------- why each paper is there


def test_each_reason_names_its_topic_or_query_and_the_terms_that_hit() -> None:
    papers = [Paper("v", "Video robots", "a video of robots", upvotes=3)]
    sub = person("upvotes>=2", '"video of robots"', "survey", topics=["video", "robots"])
    (match,) = Matcher(papers, TOPICS, NOW).for_subscriber(sub)
    assert [(r.kind, r.name, r.label) for r in match.reasons] == [
        ("topic", "video", "Video generation"),
        ("topic", "robots", "Robotics"),
        ("query", "upvotes>=2", "upvotes>=2"),
        ("query", '"video of robots"', '"video of robots"'),
    ]
    assert match.reasons[0].hits == (Hit("video", "title"), Hit("video", "abstract"))
    assert match.reasons[2].hits == (Hit("upvotes>=2", "upvotes", "3"),)
    assert match.reasons[3].hits == (Hit("video of robots", "abstract"),)


def test_the_terms_to_highlight_are_the_positive_words_of_the_selecting_queries() -> None:
    papers = [Paper("v", "Video robots")]
    sub = person("video -survey upvotes<3", "robot* OR drone", "zebra", topics=["video"])
    (match,) = Matcher(papers, TOPICS, NOW).for_subscriber(sub)
    assert [t.as_typed() for t in match.terms] == ["video", "robot*", "drone"]


def test_two_people_whose_emails_show_a_paper_alike_share_its_key() -> None:
    matcher = Matcher([Paper("v", "video robots")], TOPICS, NOW)
    (a,) = matcher.for_subscriber(person("video", "zebra"))
    (b,) = matcher.for_subscriber(person("video"))
    (c,) = matcher.for_subscriber(person("robot"))
    assert a.key == b.key == ("v", ("query:video",))
    assert c.key != a.key
    assert a.reasons == b.reasons


def test_a_planned_delivery_is_rebuilt_in_its_order_with_the_same_scores_and_reasons() -> None:
    matcher = Matcher(PAPERS, TOPICS, NOW)
    sub = person("robot", "video", max_papers=3)
    planned = matcher.for_subscriber(sub)
    order = list(reversed(ids(planned)))
    rebuilt = matcher.matches_for(sub, order)
    assert ids(rebuilt) == order
    by_id = {m.paper.id: m for m in planned}
    for match in rebuilt:
        assert match.score == by_id[match.paper.id].score
        assert match.reasons == by_id[match.paper.id].reasons


def test_a_rebuilt_paper_no_query_selects_any_more_has_no_reason_and_scores_nothing() -> None:
    matcher = Matcher(PAPERS, TOPICS, NOW)
    (match,) = matcher.matches_for(person("zebra"), ["p4"])
    assert (match.paper.id, match.score, match.reasons) == ("p4", 0.0, ())


def test_a_matcher_knows_which_papers_it_holds() -> None:
    matcher = Matcher(PAPERS, TOPICS, NOW)
    assert matcher.has(["p0", "p5"]) and not matcher.has(["p0", "elsewhere"])
    assert matcher.has_any(["elsewhere", "p5"]) and not matcher.has_any(["elsewhere"])
    assert matcher.has([])


def test_a_list_of_matches_never_counts_fewer_than_it_holds() -> None:
    matcher = Matcher(PAPERS, TOPICS, NOW)
    some = list(matcher.for_subscriber(person("robot", max_papers=3)))
    assert Matches(some).total == 3
    assert Matches(some, 1).total == 3
    assert Matches(some, 9).total == 9
    wrapped = SubscriberMatches(person("robot"), Matches(some, 9), len(PAPERS))
    assert (wrapped.matched, wrapped.new_papers) == (9, 6)


# ---------------------------------------------------------------- the batch path


SUBSCRIBER = st.builds(
    lambda queries, topics, cap, floor, sent: (
        person(*queries, topics=topics, max_papers=cap, min_upvotes=floor),
        sent,
    ),
    st.lists(st.sampled_from(["robot", "video", "robot -video", "upvotes>=5", "x"]), max_size=3),
    st.lists(st.sampled_from(["robots", "video", "retired"]), max_size=2),
    st.integers(0, 7),
    st.none() | st.sampled_from([0, 3, 10]),
    st.lists(st.sampled_from(["p0", "p2", "p5", "elsewhere"]), max_size=2),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(SUBSCRIBER, min_size=1, max_size=12))
def test_a_batch_gets_what_each_subscriber_gets_alone(
    people: list[tuple[Subscriber, list[str]]],
) -> None:
    """Same papers, order, scores, totals and reasons, however the batch shares its work."""
    subs = []
    for n, (sub, _) in enumerate(people):
        sub.id = n + 1
        subs.append(sub)
    sent = {sub.id or 0: set(paper_ids) for sub, (_, paper_ids) in zip(subs, people, strict=True)}
    matcher = Matcher(PAPERS, TOPICS, NOW)
    batch = list(matcher.for_subscribers(subs, sent))
    for sub, got in zip(subs, batch, strict=True):
        alone = Matcher(PAPERS, TOPICS, NOW).for_subscriber(sub, sent[sub.id or 0])
        assert ids(got) == ids(alone)
        assert [m.score for m in got] == [m.score for m in alone]
        assert got.total == alone.total
        assert [m.reasons for m in got] == [m.reasons for m in alone]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["robot", "robot video", "x"]), st.none() | st.integers(0, 60)),
        min_size=1,
        max_size=25,
    ),
    st.integers(1, 10),
)
def test_matches_come_best_first(rows: list[tuple[str, int | None]], cap: int) -> None:
    papers = [Paper(f"p{n:02d}", title, upvotes=up) for n, (title, up) in enumerate(rows)]
    found = Matcher(papers, TOPICS, NOW).for_subscriber(person("robot", "video", max_papers=cap))
    keys = [(-m.score, m.paper.id) for m in found]
    assert keys == sorted(keys)
    assert len(found) == min(cap, found.total)


# ---------------------------------------------------------------- editions


def _collect(store: Store, at: datetime, *papers: Paper) -> None:
    store.upsert_papers("test", list(papers), at)


def test_an_edition_matcher_covers_that_editions_papers_and_is_built_once(store: Store) -> None:
    _collect(store, NOW - timedelta(hours=2), Paper("old", "robot"))
    daily_window(store, NOW.date() - timedelta(days=1), NOW - timedelta(hours=1), open_it=True)
    _collect(store, NOW - timedelta(minutes=30), Paper("new", "robot"))
    daily_window(store, NOW.date(), NOW, open_it=True)
    matchers = EditionMatchers(store, TOPICS, NOW)
    today = matchers.of(Edition.daily(NOW.date()))
    assert [p.id for p in today.papers] == ["new"]
    assert matchers.of(Edition.daily(NOW.date())) is today
    yesterday = matchers.of(Edition.daily(NOW.date() - timedelta(days=1)))
    assert [p.id for p in yesterday.papers] == ["old"]


def test_a_weekly_matcher_covers_every_daily_edition_of_its_week(store: Store) -> None:
    monday = datetime(2026, 6, 8, 9, 0, tzinfo=UTC)
    for n in range(3):
        run = monday + timedelta(days=n)
        _collect(store, run - timedelta(hours=1), Paper(f"day{n}", "robot"))
        daily_window(store, run.date(), run, open_it=True)
    wednesday = monday + timedelta(days=2)
    matchers = EditionMatchers(store, TOPICS, wednesday)
    week = matchers.of(Edition.weekly(wednesday.date()))
    assert sorted(p.id for p in week.papers) == ["day0", "day1", "day2"]
    assert [p.id for p in matchers.of(Edition.daily(wednesday.date())).papers] == ["day2"]


def test_a_planned_window_overrides_the_stored_one(store: Store) -> None:
    _collect(store, NOW - timedelta(hours=2), Paper("a", "robot"))
    _collect(store, NOW - timedelta(hours=1), Paper("b", "robot"))
    edition = Edition.daily(NOW.date())
    window = Window(NOW - timedelta(hours=3), NOW - timedelta(hours=2))
    matchers = EditionMatchers(store, TOPICS, NOW, {edition: window})
    assert [p.id for p in matchers.of(edition).papers] == ["a"]


def test_a_delivery_is_rebuilt_whichever_edition_holds_its_papers(store: Store) -> None:
    """From its own edition, from today's edition of its cadence, or from its papers alone:
    the same papers in the same order for the same reasons."""
    _collect(store, NOW - timedelta(days=3), Paper("older", "robot video"))
    _collect(store, NOW - timedelta(minutes=5), Paper("today", "robot"))
    sub = person("robot", "video")
    matchers = EditionMatchers(store, TOPICS, NOW)
    yesterday = Edition.daily(NOW.date() - timedelta(days=1))
    got = matchers.matches_for(sub, yesterday, ["today"])
    assert ids(got) == ["today"] and got[0].reasons[0].name == "robot"
    got = matchers.matches_for(sub, yesterday, ["today", "older"])
    assert ids(got) == ["today", "older"]
    assert [r.name for r in got[1].reasons] == ["robot", "video"]


def test_match_subscribers_streams_in_order_and_counts_the_editions_papers(
    store: Store,
) -> None:
    _collect(store, NOW, *PAPERS)
    store.add_subscribers_bulk(
        [
            Subscriber("a@example.org", status="active", queries=["robot"]),
            Subscriber("b@example.org", status="active", queries=["video"]),
        ],
        NOW,
        "test",
    )
    people = list(store.iter_subscribers(["active"]))
    first = people[0]
    store.mark_papers_sent(first.id or 0, ["p0"], "2026-06-11", NOW)
    matcher = Matcher(PAPERS, TOPICS, NOW)
    results = list(match_subscribers(store, matcher, people))
    assert [r.subscriber.email for r in results] == ["a@example.org", "b@example.org"]
    assert all(r.new_papers == len(PAPERS) for r in results)
    assert "p0" not in ids(results[0].matches) and "p0" in ids(results[1].matches)
    assert results[0].matched == 4
