"""The filter language: parsing, errors, normalisation, evaluation, explanations, highlights."""

from __future__ import annotations

import ast
import importlib
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.errors import QueryError
from digest.models import Paper
from digest.query import (
    MAX_DEPTH,
    MAX_LENGTH,
    And,
    Hit,
    Not,
    Or,
    PaperIndex,
    Term,
    Upvotes,
    format_query,
    highlight_spans,
    normalize_words,
    parse,
    terms_of,
)


def t(text: str, field: str = "any") -> Term:
    """The Term the parser builds for one unfielded word or phrase, moved to `field`."""
    node = parse(text)
    assert isinstance(node, Term)
    return Term(field, node.words, node.prefix, node.text)


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("diffusion", t("diffusion")),
        ('"world model"', t('"world model"')),
        ("diffusion video", And((t("diffusion"), t("video")))),
        ("diffusion AND video", And((t("diffusion"), t("video")))),
        ("diffusion OR video", Or((t("diffusion"), t("video")))),
        ("NOT survey", Not(t("survey"))),
        ("-survey", Not(t("survey"))),
        ('-"world model"', Not(t('"world model"'))),
        ("-(a OR b)", Not(Or((t("a"), t("b"))))),
        ("diffus*", Term("any", ("diffus",), prefix=True)),
        ("title:diffusion", t("diffusion", "title")),
        ("abstract:robot", t("robot", "abstract")),
        ("author:hinton", t("hinton", "author")),
        ('author:"geoffrey hinton"', t('"geoffrey hinton"', "author")),
        ("cat:cs.CV", Term("category", ("cs.cv",))),
        ("cat:cs.*", Term("category", ("cs.",), prefix=True)),
        ("source:hf", Term("source", ("hf",))),
        ("Title:Diffusion", t("diffusion", "title")),
        ("upvotes>=10", Upvotes(">=", 10)),
        ("upvotes>3", Upvotes(">", 3)),
        ("upvotes<=3", Upvotes("<=", 3)),
        ("upvotes<3", Upvotes("<", 3)),
        ("upvotes=0", Upvotes("=", 0)),
        (
            "title:(diffusion OR gan)",
            Or((t("diffusion", "title"), t("gan", "title"))),
        ),
        ("title:(a -b)", And((t("a", "title"), Not(t("b", "title"))))),
        ("(a)(b)", And((t("a"), t("b")))),
        ('a"b c"', And((t("a"), t('"b c"')))),
    ],
)
def test_every_construct_parses_to_its_tree(query: str, expected: object) -> None:
    assert parse(query) == expected


def test_hyphenated_word_is_the_same_phrase_as_the_quoted_words() -> None:
    assert parse("world-model") == parse('"world model"') == parse("World-Models")
    assert parse("gpt-4") == Term("any", ("gpt", "4"))
    assert parse("3D") == Term("any", ("3d",))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a OR b c", Or((t("a"), And((t("b"), t("c")))))),
        ("a b OR c", Or((And((t("a"), t("b"))), t("c")))),
        ("a OR b AND c", Or((t("a"), And((t("b"), t("c")))))),
        ("NOT a b", And((Not(t("a")), t("b")))),
        ("NOT a OR b", Or((Not(t("a")), t("b")))),
        ("-a -b", And((Not(t("a")), Not(t("b"))))),
        ("(a OR b) c", And((Or((t("a"), t("b"))), t("c")))),
        ("a AND (b AND c)", And((t("a"), t("b"), t("c")))),
        ("NOT NOT a", Not(Not(t("a")))),
    ],
)
def test_not_binds_tighter_than_and_which_binds_tighter_than_or(
    query: str, expected: object
) -> None:
    assert parse(query) == expected


def test_lowercase_operators_are_plain_words() -> None:
    assert parse("a or b") == And((t("a"), t("or"), t("b")))


def test_only_negative_query_is_allowed_and_matches_the_rest() -> None:
    index = PaperIndex([paper("survey of agents"), paper("agents")])
    assert index.matches(parse("-survey")) == [1]


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("a b", "a AND b"),
        ("a -b", "a AND NOT b"),
        ("(a OR b) c", "(a OR b) AND c"),
        ("a OR b c", "a OR b AND c"),
        ("-(a b)", "NOT (a AND b)"),
        ("title:(a OR b)", "title:a OR title:b"),
        ("Cat:cs.CV", "cat:cs.CV"),
        ('author:"Geoffrey Hinton"', 'author:"Geoffrey Hinton"'),
        ("UPVOTES>=10", "upvotes>=10"),
        ("world-model*", "world-model*"),
    ],
)
def test_format_query_is_canonical(query: str, canonical: str) -> None:
    assert format_query(parse(query)) == canonical
    assert parse(canonical) == parse(query)


def test_format_query_writes_terms_built_in_code() -> None:
    built = And((Term("any", ("world", "model")), Term("title", ("diffus",), prefix=True)))
    assert parse(format_query(built)) == built


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("query", "position", "message", "hint"),
    [
        ("diffusion AND (video", 14, "unclosed parenthesis", "add ')' or remove '('"),
        ("(a OR (b)", 0, "unclosed parenthesis", "add ')'"),
        ("a b)", 3, "unmatched ')'", "remove ')'"),
        (") a", 0, "unmatched ')'", "remove ')'"),
        ("diffusion AND", 10, "'AND' needs a term after it", "add a term"),
        ("a OR", 2, "'OR' needs a term after it", "add a term"),
        ("a AND OR b", 2, "'AND' needs a term after it", "add a term"),
        ("(a AND) b", 3, "'AND' needs a term after it", "add a term"),
        ("OR a", 0, "'OR' needs a term before it", "add a term"),
        ("a NOT", 2, "'NOT' needs a term after it", "add a term"),
        ("a - b", 2, "'-' needs a term right after it", "-word"),
        ('x "world model', 2, "unterminated quote", "closing"),
        ("foo:bar", 0, "unknown field 'foo:'", "title:, abstract:, author:, cat:, source:"),
        ("video upvotes:10", 6, "upvotes is compared", "upvotes>=N"),
        ("upvotes>=abc", 9, "upvotes>= needs a whole number", "upvotes>=10"),
        ("upvotes>=", 9, "upvotes>= needs a whole number", "upvotes>=10"),
        ("upvotes<2.5", 8, "upvotes< needs a whole number", "upvotes<10"),
        ("title:", 0, "'title:' needs a word, phrase or group", 'title:"a phrase"'),
        ("title: AND x", 0, "'title:' needs a word", "title:(a OR b)"),
        ("a title:(b author:c)", 11, "'author:' inside 'title:(...)'", "outside"),
        ("title:(upvotes>3)", 7, "'upvotes' inside 'title:(...)'", "outside"),
        ("a ()", 2, "empty parentheses", "put terms inside"),
        ("a & b", 2, "'&' has no letters or digits", "AND / OR / NOT"),
        ('a ""', 2, "has no letters or digits", "remove it"),
        ("a*", 0, "prefix too short", "at least 2 letters"),
        ("cat:*", 4, "empty cat: value", "cat:cs.*"),
    ],
)
def test_syntax_error_points_at_the_fault_with_a_hint(
    query: str, position: int, message: str, hint: str
) -> None:
    with pytest.raises(QueryError) as caught:
        parse(query)
    err = caught.value
    assert message in str(err)
    assert hint in err.hint
    assert (err.query, err.position) == (query, position)
    query_line, caret_line, *_, hint_line = err.caret().splitlines()
    assert query_line == query
    assert caret_line == " " * position + "^"
    assert hint_line == f"hint: {err.hint}"


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_an_error(query: str) -> None:
    with pytest.raises(QueryError, match="empty query") as caught:
        parse(query)
    assert caught.value.position == 0


def test_overlong_query_is_refused() -> None:
    with pytest.raises(QueryError, match="too long") as caught:
        parse("a " * MAX_LENGTH)
    assert caught.value.position == MAX_LENGTH
    assert isinstance(parse(("ab " * MAX_LENGTH)[: MAX_LENGTH - 1]), And)


@pytest.mark.parametrize(
    "query",
    ["(" * 200 + "a" + ")" * 200, "-" * 500 + "a", "NOT " * 200 + "a", "-(" * 100 + "a"],
)
def test_deep_nesting_is_a_query_error_not_a_recursion_error(query: str) -> None:
    with pytest.raises(QueryError, match="too deeply nested") as caught:
        parse(query)
    assert caught.value.position < len(query)


def test_nesting_up_to_the_limit_parses() -> None:
    depth = MAX_DEPTH
    assert parse("(" * depth + "a" + ")" * depth) == t("a")
    node = parse("-" * depth + "a")
    for _ in range(depth):
        assert isinstance(node, Not)
        node = node.child


# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Models Agents Policies", ["model", "agent", "policy"]),
        ("analysis gaussian bus corpus class", ["analysis", "gaussian", "bus", "corpus", "class"]),
        ("classes matches boxes patches", ["class", "match", "box", "patch"]),
        ("biases caches lenses movies matrices", ["bias", "cache", "lens", "movie", "matrix"]),
        ("García Müller ﬁne", ["garcia", "muller", "fine"]),
        ("World-Model state_of_the_art", ["world", "model", "state", "of", "the", "art"]),
        ("GPT-4 3D 1990s", ["gpt", "4", "3d", "1990s"]),
        ("Hinton's model", ["hinton", "model"]),
        ("its has was", ["its", "has", "was"]),
    ],
)
def test_normalize_words_folds_case_accents_plurals_and_punctuation(
    text: str, words: list[str]
) -> None:
    assert normalize_words(text) == words


def test_plural_and_singular_normalise_alike() -> None:
    for singular, plural in [
        ("model", "models"),
        ("agent", "agents"),
        ("policy", "policies"),
        ("transformer", "transformers"),
        ("bias", "biases"),
        ("patch", "patches"),
        ("image", "images"),
    ]:
        assert normalize_words(singular) == normalize_words(plural)


@given(st.text(max_size=60))
def test_normalisation_is_idempotent(text: str) -> None:
    words = normalize_words(text)
    assert normalize_words(" ".join(words)) == words


# ---------------------------------------------------------------- evaluation


def paper(
    title: str,
    abstract: str = "",
    authors: list[str] | None = None,
    categories: list[str] | None = None,
    sources: list[str] | None = None,
    upvotes: int | None = None,
) -> Paper:
    return Paper(
        id=title,
        title=title,
        abstract=abstract,
        authors=authors or [],
        categories=categories or [],
        sources=sources or [],
        upvotes=upvotes,
    )


PAPERS = [
    paper(  # 0
        "World-Model Agents for Robots",
        "We train policies in learned world models.",
        ["Geoffrey Hinton", "Ana García"],
        ["cs.RO", "cs.LG"],
        ["hf", "arxiv-cv"],
        42,
    ),
    paper(  # 1
        "Diffusion Transformers for Video",
        "A survey of diffusion models; art and artificial intelligence.",
        ["Yann LeCun", "Geoffrey Smith"],
        ["cs.CV"],
        ["arxiv-cv"],
        5,
    ),
    paper(  # 2
        "Gaussian Splatting in 3D",
        "Scenes as gaussians; the world model of the scene is implicit.",
        ["Hinton Jones"],
        ["cs.GR", "stat.ML"],
        ["hf"],
        None,
    ),
    paper(  # 3
        "A Transformer for Art",
        "State-of-the-art results with GPT-4.",
        ["Marie Curie"],
        ["math.OC"],
        [],
        0,
    ),
]


@pytest.fixture(scope="module")
def index() -> PaperIndex:
    return PaperIndex(PAPERS)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("world-model", [0, 2]),  # hyphen, case and plural ("World-Model", "world models")
        ('"world models"', [0, 2]),
        ("title:world-model", [0]),
        ("abstract:world-model", [0, 2]),
        ('"model world"', []),
        ("transformer", [1, 3]),  # plural folding: "Transformers" matches
        ("art", [1, 3]),  # word boundary: not "artificial", but "state-of-the-art"
        ("art*", [1, 3]),
        ("artif*", [1]),
        ("diffus*", [1]),
        ("garcia", []),  # authors are not searched by unfielded terms
        ("author:garcia", [0]),
        ("author:GARCÍA", [0]),
        ("author:hinton", [0, 2]),
        ('author:"geoffrey hinton"', [0]),
        ('author:"hinton ana"', []),  # a phrase never spans two authors
        ("author:geoff*", [0, 1]),
        ("cat:cs.CV", [1]),
        ("cat:CS.cv", [1]),
        ("cat:cs.*", [0, 1, 2]),
        ("cat:cs", [0, 1, 2]),
        ("cat:stat.ML OR cat:math.*", [2, 3]),
        ("source:hf", [0, 2]),
        ("source:arxiv*", [0, 1]),
        ("upvotes>=5", [0, 1]),
        ("upvotes>5", [0]),
        ("upvotes<5", [3]),
        ("upvotes<=5", [1, 3]),
        ("upvotes=0", [3]),
        ("NOT upvotes>=1", [2, 3]),  # a paper without upvotes only matches negations
        ("-survey", [0, 2, 3]),
        ("diffusion -survey", []),
        ("transformer -(survey OR video)", [3]),
        ("gpt-4", [3]),
        ("title:(video OR robots)", [0, 1]),
        ("3d gaussian", [2]),
        ("gaussian OR art upvotes>=0", [1, 2, 3]),
    ],
)
def test_evaluate_on_hand_made_papers(index: PaperIndex, query: str, expected: list[int]) -> None:
    node = parse(query)
    assert index.matches(node) == expected
    assert index.evaluate(node) == sum(1 << i for i in expected)


def test_results_are_cached_and_stable(index: PaperIndex) -> None:
    node = parse("world-model -survey")
    assert index.evaluate(node) == index.evaluate(parse("world-model -survey"))
    assert index.matches(node) == [0, 2]


def test_empty_index_matches_nothing() -> None:
    empty = PaperIndex([])
    assert empty.matches(parse("-survey OR upvotes>=0 OR cat:cs.*")) == []


def test_phrases_of_common_words_use_the_pair_index() -> None:
    papers = [
        paper(f"paper {i}", "large language model" if i % 2 else "model language large")
        for i in range(100)
    ]
    index = PaperIndex(papers)
    assert index.matches(parse('"large language"')) == list(range(1, 100, 2))
    assert index.matches(parse('"language large"')) == list(range(0, 100, 2))
    assert index.matches(parse('"large language model"')) == list(range(1, 100, 2))
    assert index.matches(parse("large-lang*")) == list(range(1, 100, 2))


def test_prefix_does_not_match_a_different_word_of_the_same_stem() -> None:
    index = PaperIndex([paper("one study"), paper("two studies")])
    assert index.matches(parse("studi*")) == [1]
    assert index.matches(parse("stud*")) == [0, 1]
    assert index.matches(parse("study")) == [0, 1]


# ---------------------------------------------------------------- explain and highlight


def test_explain_lists_the_positive_terms_that_hit_and_where(index: PaperIndex) -> None:
    node = parse("world-model author:hinton cat:cs.* upvotes>=10 source:hf -survey OR video")
    assert index.explain(node, 0) == [
        Hit("world model", "title"),
        Hit("world model", "abstract"),
        Hit("hinton", "author", "Geoffrey Hinton"),
        Hit("cat:cs.*", "category", "cs.RO, cs.LG"),
        Hit("upvotes>=10", "upvotes", "42"),
        Hit("source:hf", "source", "hf"),
    ]
    assert index.explain(parse("diffus* OR robot"), 1) == [
        Hit("diffus*", "title"),
        Hit("diffus*", "abstract"),
    ]


def test_negated_terms_never_appear_in_hits(index: PaperIndex) -> None:
    node = parse("transformer -(survey OR video) NOT NOT art")
    hits = index.explain(node, 3)
    assert {h.term for h in hits} == {"transformer", "art"}
    assert terms_of(node) == [t("transformer"), t("art")]


def test_terms_of_keeps_positive_terms_once_in_order() -> None:
    node = parse("a (b OR -c) a upvotes>3 -(d -e)")
    assert terms_of(node) == [t("a"), t("b"), Upvotes(">", 3), t("e")]


@pytest.mark.parametrize(
    ("text", "query", "marked"),
    [
        ("A World-Model for Agents", "world-model", ["World-Model"]),
        ("learned world models, World Model", '"world model"', ["world models", "World Model"]),
        ("Ana García and Garcia", "author:garcia", ["García", "Garcia"]),
        ("Ana Garci\u0301a", "author:garcia", ["Garci\u0301a"]),
        ("diffusion-based Diffusers", "diffus*", ["diffusion", "Diffusers"]),
        ("art and artificial art", "art", ["art", "art"]),
        ("GPT-4 beats gpt 4", "gpt-4", ["GPT-4", "gpt 4"]),
        ("Policies and a policy", "policy -and", ["Policies", "policy"]),
        ("deep learning models", "deep learning model", ["deep", "learning", "models"]),
        ("ﬁne ﬁnetuning", "fine*", ["ﬁne", "ﬁnetuning"]),
    ],
)
def test_highlight_spans_map_to_the_original_text(text: str, query: str, marked: list[str]) -> None:
    spans = highlight_spans(text, terms_of(parse(query)))
    assert [text[a:b] for a, b in spans] == marked
    assert spans == sorted(spans)


def test_highlight_spans_respect_the_field() -> None:
    terms = terms_of(parse("title:robot author:hinton agent cat:cs.RO upvotes>1"))
    text = "robot agent hinton"
    assert highlight_spans(text, terms) == [(0, 5), (6, 11), (12, 18)]
    assert highlight_spans(text, terms, "title") == [(0, 5), (6, 11)]
    assert highlight_spans(text, terms, "abstract") == [(6, 11)]
    assert highlight_spans(text, terms, "author") == [(12, 18)]


# ---------------------------------------------------------------- properties

FRAGMENTS = [
    "AND", "OR", "NOT", "-", "(", ")", '"', "*", ":", " ", " ", " ", "title:", "abstract:",
    "author:", "cat:", "source:", "foo:", "upvotes", ">=", "<", "=", "10", "abc", "cs.*",
    "cs.CV", "diffusion", "world-model", "García", "gpt-4", "&", "'s", "é", "\u0301", "ﬁ",
    "İ", "\t", "x", "models",
]  # fmt: skip


@st.composite
def query_like(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=25))
    return "".join(parts)


def check_parse(text: str) -> None:
    try:
        node = parse(text)
    except QueryError as err:
        assert 0 <= err.position <= len(text)
        assert str(err) and err.hint
        return
    canonical = format_query(node)
    assert parse(canonical) == node
    assert format_query(parse(canonical)) == canonical
    hash(node)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_parse_raises_only_query_errors_on_any_text(text: str) -> None:
    check_parse(text)


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(query_like())
def test_grammar_like_queries_round_trip_through_format_query(text: str) -> None:
    check_parse(text)


@settings(max_examples=200, deadline=None)
@given(query_like(), st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_evaluation_and_highlighting_never_fail(text: str, titles: list[str]) -> None:
    try:
        node = parse(text)
    except QueryError:
        return
    index = PaperIndex(
        [paper(title, title, [title], [title], [title], len(title)) for title in titles]
    )
    for i in index.matches(node):
        index.explain(node, i)
        for a, b in highlight_spans(titles[i], terms_of(node)):
            assert 0 <= a < b <= len(titles[i])


def brute_force(node: object, p: Paper) -> bool:
    """The meaning of a query, evaluated the slow obvious way on one paper."""
    if isinstance(node, Not):
        return not brute_force(node.child, p)
    if isinstance(node, And):
        return all(brute_force(c, p) for c in node.children)
    if isinstance(node, Or):
        return any(brute_force(c, p) for c in node.children)
    if isinstance(node, Upvotes):
        if p.upvotes is None:
            return False
        return {
            ">=": p.upvotes >= node.value,
            ">": p.upvotes > node.value,
            "<": p.upvotes < node.value,
            "<=": p.upvotes <= node.value,
            "=": p.upvotes == node.value,
        }[node.op]
    assert isinstance(node, Term)
    if node.field in ("category", "source"):
        want = node.words[0]
        values = [v.lower() for v in (p.categories if node.field == "category" else p.sources)]
        if node.prefix:
            return any(v.startswith(want) for v in values)
        whole = node.field == "category" and "." not in want
        return any(v == want or (whole and v.startswith(want + ".")) for v in values)
    texts = {
        "any": [p.title, p.abstract],
        "title": [p.title],
        "abstract": [p.abstract],
        "author": p.authors,
    }[node.field]
    return any(highlight_spans(text, [node]) for text in texts)


WORDS = ["model", "models", "world", "large", "language", "agent", "García", "x"]
QUERY_PARTS = [
    "model", "world-model", '"large language model"', "large-lang*", "mod*", "-agent",
    "author:garcia", 'author:"garcia x"', "title:(world OR agent)", "cat:cs", "cat:cs.*",
    "source:hf", "upvotes>=3", "upvotes<2", "NOT", "OR", "(", ")", "abstract:x",
]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(WORDS), max_size=8),
            st.lists(st.sampled_from(WORDS), max_size=30),
            st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=2), max_size=3),
            st.lists(st.sampled_from(["cs.CV", "cs.LG", "stat.ML", "CS"]), max_size=2),
            st.lists(st.sampled_from(["hf", "arxiv"]), max_size=2),
            st.none() | st.integers(0, 5),
        ),
        min_size=1,
        max_size=120,
    ),
    st.lists(st.lists(st.sampled_from(QUERY_PARTS), min_size=1, max_size=5), max_size=10),
)
def test_index_agrees_with_brute_force(rows: list[tuple], queries: list[list[str]]) -> None:
    papers = [
        paper(" ".join(ti), "-".join(ab), [" ".join(a) for a in au], ca, so, up)
        for ti, ab, au, ca, so, up in rows
    ]
    index = PaperIndex(papers)
    for parts in queries:
        try:
            node = parse(" ".join(parts))
        except QueryError:
            continue
        expected = [i for i, p in enumerate(papers) if brute_force(node, p)]
        assert index.matches(node) == expected


# ---------------------------------------------------------------- scale


def test_one_index_evaluates_two_thousand_queries_over_a_thousand_papers() -> None:
    rng = random.Random(1)
    vocab = [
        "model", "diffusion", "video", "language", "large", "vision", "agent", "policy",
        "robot", "world", "gaussian", "splatting", "reasoning", "benchmark", "survey", "3d",
        "reward", "alignment", "token", "attention", "graph", "scene", "depth", "speech",
    ] + [f"w{k}" for k in range(2000)]  # fmt: skip

    def words(n: int) -> str:
        picked = rng.choices(vocab, weights=[1 / (k + 1) for k in range(len(vocab))], k=n)
        return " ".join(w + ("s" if rng.random() < 0.2 else "") for w in picked)

    papers = [
        paper(
            words(12),
            words(200),
            [f"{rng.choice(vocab)} {rng.choice(vocab)}" for _ in range(6)],
            rng.sample(["cs.CV", "cs.LG", "cs.CL", "cs.RO", "stat.ML"], 2),
            rng.sample(["hf", "arxiv-cv"], 1),
            rng.choice([None, rng.randint(0, 100)]),
        )
        for _ in range(1000)
    ]
    shapes = ['"{} {}"', "-{}", "title:{}", "{}*", "author:{}", "({} OR {})", "{}", "{}"]
    extras = ["cat:cs.CV", "cat:cs.*", "source:hf", "upvotes>=10"]
    queries: set[str] = set()
    while len(queries) < 2000:
        parts = []
        for _ in range(rng.randint(3, 6)):
            shape = rng.choice(shapes)
            pick = rng.choice(vocab[:24])
            parts.append(shape.format(pick[:3] if "*" in shape else pick, rng.choice(vocab[:24])))
        parts.append(rng.choice(extras))
        queries.add(" ".join(parts))
    index = PaperIndex(papers)
    nodes = [parse(q) for q in sorted(queries)]
    matched = 0
    for node in nodes:
        positions = index.matches(node)
        matched += len(positions)
        for i in positions[:3]:
            assert index.explain(node, i)
    assert matched > 0


# ---------------------------------------------------------------- the package's public face


def test_every_name_imported_from_the_filter_language_is_exported() -> None:
    """The rest of the code writes `from digest.query import X`: each X stays public there,
    whichever module of the package now holds it."""
    root = Path(__file__).parent.parent
    wanted: set[tuple[str, str]] = set()
    for path in [*root.glob("digest/**/*.py"), *root.glob("tests/*.py"), *root.glob("bench/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "digest.query":
                wanted.update((node.module, alias.name) for alias in node.names)
    assert ("digest.query", "parse") in wanted
    missing = [f"{m}.{n}" for m, n in sorted(wanted) if n not in importlib.import_module(m).__all__]
    assert not missing
