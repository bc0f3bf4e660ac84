"""Specification of the filter language beyond tests/test_query.py: one test or table row per
rule a subscriber relies on when typing a query. The normaliser (what counts as the same word),
the lexer (what is a field, an operator, a comparison), the parser's refusals and their carets,
the printer, what each term matches in a paper, the "why" lines and the highlights. Everything
goes through `digest.query`'s exported names on hand-made papers."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from digest.cli import app
from digest.errors import DigestError, QueryError
from digest.models import Paper
from digest.query import (
    FIELDS,
    KNOWN,
    MAX_LENGTH,
    SYNTAX,
    And,
    Hit,
    Node,
    Not,
    Or,
    PaperIndex,
    Term,
    Upvotes,
    display,
    format_query,
    highlight_spans,
    normalize_words,
    parse,
    positions,
    stem,
    surface_words,
    terms_of,
    word_spans,
)
from digest.query.highlight import TextWords


def paper(
    pid: str,
    title: str = "",
    abstract: str = "",
    authors: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    upvotes: int | None = None,
    sources: tuple[str, ...] = (),
    source: str = "",
) -> Paper:
    return Paper(
        id=pid,
        title=title,
        abstract=abstract,
        authors=list(authors),
        categories=list(categories),
        upvotes=upvotes,
        sources=list(sources),
        source=source,
    )


def matched(papers: list[Paper], query: str) -> list[str]:
    index = PaperIndex(papers)
    return [index.papers[i].id for i in index.matches(parse(query))]


def error_of(query: str) -> QueryError:
    with pytest.raises(QueryError) as caught:
        parse(query)
    return caught.value


# ---------------------------------------------------------------- the normaliser


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Straße", ["strasse"]),  # ß folds to ss, as casefold does
        ("Ångström", ["angstrom"]),
        ("İstanbul", ["istanbul"]),  # a dotted capital I loses its dot
        ("Hinton\u2019s model", ["hinton", "model"]),  # a curly possessive too
        ("state_of_art", ["state", "of", "art"]),  # underscore separates words
        ("x², H₂O", ["x2", "h2o"]),  # compatibility forms fold to plain digits
        ("модели λόγοι", ["модели", "λογοι"]),  # other scripts: folded, never stemmed
        ("modèles", ["modele"]),  # an accent folded first, then the plural
        ("gas bus its", ["gas", "bus", "its"]),  # three letters are never a plural
        ("ties lies", ["tie", "lie"]),  # short -ies words lose only the s
        ("databases meshes buzzes", ["database", "mesh", "buzz"]),
        ("corpus status basis class", ["corpus", "status", "basis", "class"]),
        ("species series news", ["species", "series", "news"]),
        ("1990s GPT4s", ["1990s", "gpt4s"]),  # a word with a digit is never stemmed
        ("", []),
        ("... --- !!!", []),
    ],
)
def test_the_normaliser_folds_each_class_of_word(text: str, words: list[str]) -> None:
    assert normalize_words(text) == words


@pytest.mark.parametrize(
    ("singular", "plural"),
    [
        ("axis", "axes"),
        ("vertex", "vertices"),
        ("index", "indices"),
        ("hypothesis", "hypotheses"),
        ("canvas", "canvases"),
        ("box", "boxes"),
        ("query", "queries"),
    ],
)
def test_irregular_plurals_fold_to_their_singular(singular: str, plural: str) -> None:
    assert normalize_words(plural) == normalize_words(singular) == [singular]


@pytest.mark.parametrize(
    ("singular", "plural"),
    [
        ("gpu", "GPUs"),  # acronym plurals the -us/-is rules would keep: a table
        ("gru", "GRUs"),
        ("api", "APIs"),
        ("synthesis", "syntheses"),  # -theses and -yses: a rule
        ("parenthesis", "parentheses"),
        ("paralysis", "paralyses"),
        ("simplex", "simplices"),  # -ices of -ex, -zzes of -z, -ches of -che: the table
        ("quiz", "quizzes"),
        ("headache", "headaches"),
    ],
)
def test_a_query_for_the_singular_finds_the_plural(singular: str, plural: str) -> None:
    """README: words are "folded for case, accents and plurals": a subscriber asking for "GPU"
    finds a title about "GPUs" though the -us rule for corpus/status would keep it, and
    "synthesis" finds "syntheses", "quiz" finds "quizzes"."""
    assert matched([paper("p", plural)], singular) == ["p"]


def test_surface_words_fold_case_and_accents_but_keep_plurals() -> None:
    assert surface_words("Diffusion Modèles AGENTS") == ["diffusion", "modeles", "agents"]
    assert [stem(w) for w in surface_words("Diffusion Modèles AGENTS")] == normalize_words(
        "Diffusion Modèles AGENTS"
    )


def test_a_singular_from_the_irregular_table_stays_itself_and_stemming_is_idempotent() -> None:
    """`_plural_stem` tells "not in the table" by identity (`stem is w`), so the table's own
    string object (any interned "bias", or what stem("biases") returned) goes through the
    suffix rules: stem("bias") == "bia", and the memo then keeps "bia" for every later "bias"
    in the process. Run in a child process so the poisoned memo cannot leak into other tests."""
    code = (
        "from digest.query import stem, normalize_words\n"
        "print(stem(stem('atlases')), stem('bias'), *normalize_words('bias lens'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["atlas", "bias", "bias", "lens"]


WORDISH = st.text(alphabet=st.sampled_from(list("ab sS'’_-.ÉéßﬁİĲ\u0301ǰ1¼")), max_size=30)


@settings(max_examples=150)
@given(st.one_of(st.text(max_size=40), WORDISH))
def test_word_spans_point_into_the_original_text(text: str) -> None:
    """Offsets are into the unfolded text, ascending, and each covers the word it names."""
    spans = word_spans(text)
    assert [s[0] for s in spans] == surface_words(text)
    assert [s[1] for s in spans] == normalize_words(text)
    starts = [a for _, _, a, _ in spans]
    assert starts == sorted(starts)
    for surface, _, a, b in spans:
        assert 0 <= a < b <= len(text)
        assert surface in surface_words(text[a:b])


# ---------------------------------------------------------------- the lexer and parser


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("12:30", Term("any", ("12", "30"))),  # digits before ':' are no field
        ("cs.CV:foo", Term("any", ("cs", "cv", "foo"))),  # nor is a dotted name
        ('"diffus*"', Term("any", ("diffus",))),  # a star inside quotes is no prefix
        ("ab**", Term("any", ("ab",), prefix=True)),
        ("x-y*", Term("any", ("x", "y"), prefix=True)),  # a one-letter last word is fine
        ("agents*", Term("any", ("agents",), prefix=True)),  # a prefix is never stemmed
        ('cat:"cs.CV"', Term("category", ("cs.cv",))),
        ("source:HF", Term("source", ("hf",))),
        ('source:" hf "', Term("source", ("hf",))),
        ("AUTHOR:Hinton", Term("author", ("hinton",))),
        ("And a", And((Term("any", ("and",)), Term("any", ("a",))))),  # operators are upper
        ("--a", Not(Not(Term("any", ("a",))))),
        ("a\tOR\nb", Or((Term("any", ("a",)), Term("any", ("b",))))),
        ("upvotes>=007", Upvotes(">=", 7)),
        ("upvotes>=99999999999999999999", Upvotes(">=", 99999999999999999999)),
        (
            "title:(a (b OR c))",
            And((Term("title", ("a",)), Or((Term("title", ("b",)), Term("title", ("c",)))))),
        ),
        ("title:-(a)", None),
        ("a-b", Term("any", ("a", "b"))),  # a hyphen inside a word joins a phrase
        ("a -b", And((Term("any", ("a",)), Not(Term("any", ("b",)))))),  # before one, excludes
        ("a- b", And((Term("any", ("a",)), Term("any", ("b",))))),  # after one, is nothing
        ('"NOT survey"', Term("any", ("not", "survey"))),  # quoted operators are words
        ('title:"AND"', Term("title", ("and",))),
        ("title:AND", None),
    ],
)
def test_each_lexical_class_is_read_as_specified(query: str, expected: Node | None) -> None:
    if expected is None:
        assert "needs a word, phrase or group" in str(error_of(query))
    else:
        assert parse(query) == expected


def test_a_term_remembers_how_it_was_typed_but_compares_by_meaning() -> None:
    typed, plain = parse("World-Models"), parse('"world model"')
    assert typed == plain and hash(typed) == hash(plain)
    assert isinstance(typed, Term) and typed.text == "World-Models"
    assert format_query(typed) == "World-Models"


def test_each_known_field_has_one_spelling_both_ways() -> None:
    assert set(FIELDS) == {"title", "abstract", "author", "cat", "source"}
    assert all(SYNTAX[FIELDS[name]] == name for name in FIELDS)
    for name in FIELDS:
        assert f"{name}:" in KNOWN
    assert "upvotes>=N" in KNOWN


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        ("http://arxiv.org", 0, "unknown field 'http:'"),  # a URL must be quoted
        ("a:b", 0, "unknown field 'a:'"),
        ("x Upvotes:3", 2, "upvotes is compared, not searched"),
        ("upvotes >= 10", 8, "'>=' has no letters or digits"),  # no spaces in a comparison
        ("upvotes>=\u0661\u0660", 9, "upvotes>= needs a whole number"),  # ASCII digits only
        ("upvotes=-1", 8, "upvotes= needs a whole number"),
        ("title:upvotes>3", 0, "'title:' needs a word, phrase or group"),
        ("NOT", 0, "'NOT' needs a term after it"),
        ("(", 0, "unclosed parenthesis"),
        (")(", 0, "unmatched ')'"),
        ("a (b", 2, "unclosed parenthesis"),
        ("a AND AND b", 2, "'AND' needs a term after it"),
        ("é AND", 2, "'AND' needs a term after it"),  # positions count characters
        ('-""', 1, "has no letters or digits"),
        ("**", 0, "has no letters or digits"),
        ("cat:", 0, "'cat:' needs a word, phrase or group"),
        ('source:"  "', 7, "empty source: value"),
        ("title:(a OR cat:cs)", 12, "'cat:' inside 'title:(...)'"),
    ],
)
def test_each_fault_is_refused_where_it_is(query: str, position: int, message: str) -> None:
    err = error_of(query)
    assert message in str(err)
    assert err.position == position
    assert err.hint


def test_an_unknown_field_says_which_fields_exist_and_how_to_search_the_text() -> None:
    err = error_of("http://arxiv.org")
    assert KNOWN in err.hint and "quote it" in err.hint
    assert parse('"http://arxiv.org"') == Term("any", ("http", "arxiv", "org"))


def test_the_length_limit_is_inclusive() -> None:
    exact = "a" * MAX_LENGTH
    assert parse(exact) == Term("any", (exact,))
    err = error_of(exact + "a")
    assert f"{MAX_LENGTH + 1} characters, max {MAX_LENGTH}" in str(err)
    assert err.position == MAX_LENGTH


def test_a_query_error_is_a_digest_error_with_a_printable_caret() -> None:
    err = error_of("diffusion OR")
    assert isinstance(err, DigestError)
    assert err.caret().splitlines() == [
        "diffusion OR",
        "          ^",
        "'OR' needs a term after it",
        "hint: add a term or remove it",
    ]
    assert QueryError("bad", "q", 0).caret().splitlines() == ["q", "^", "bad"]


def test_a_caret_at_the_end_of_the_query_sits_just_past_it() -> None:
    err = error_of("upvotes<")
    assert err.position == len("upvotes<")
    assert err.caret().splitlines()[1] == " " * len("upvotes<") + "^"


def test_nots_and_parentheses_share_one_depth_budget() -> None:
    inner = "-(" * 16 + "a" + ")" * 16  # 32 levels: a Not and a group each
    assert parse(inner) == Not(Not(Not(Not(parse("-(" * 12 + "a" + ")" * 12)))))
    assert "too deeply nested" in str(error_of("-" + inner))


def test_a_field_applies_to_phrases_and_prefixes_inside_its_group() -> None:
    node = parse('author:("Geoffrey Hinton" OR lecun*)')
    assert node == Or(
        (Term("author", ("geoffrey", "hinton")), Term("author", ("lecun",), prefix=True))
    )


# ---------------------------------------------------------------- `digest query check`


@pytest.mark.parametrize(
    ("query", "stdout"),
    [
        ("a [b]", ["OK: a AND [b]", "highlights: a, [b]"]),  # brackets are no markup
        (
            "title:(a OR b) -c",
            ["OK: (title:a OR title:b) AND NOT c", "highlights: title:a, title:b"],
        ),
        ("upvotes>=3 cat:cs", ["OK: upvotes>=3 AND cat:cs", "highlights: upvotes>=3, cat:cs"]),
    ],
)
def test_query_check_prints_what_it_read_verbatim(query: str, stdout: list[str]) -> None:
    result = CliRunner().invoke(app, ["query", "check", query])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == stdout
    assert parse(stdout[0].removeprefix("OK: ")) == parse(query)


@pytest.mark.parametrize("query", ["[red]x AND", "é (x"])
def test_query_check_prints_the_same_caret_as_the_error_verbatim(query: str) -> None:
    result = CliRunner().invoke(app, ["query", "check", query])
    assert result.exit_code == 1
    assert result.stderr == error_of(query).caret() + "\n"
    assert result.stdout == ""


def test_the_caret_sits_under_the_fault_as_the_query_is_printed() -> None:
    """The query line keeps its tabs (which rich, and any terminal, widen to the next tab
    stop), so the caret line pads with the query's own tabs: in `a<TAB>OR` the caret lands
    under OR, not under the tab."""
    result = CliRunner().invoke(app, ["query", "check", "a\tOR"])
    printed, caret = result.stderr.splitlines()[:2]
    assert printed.index("OR") == caret.index("^")


# ---------------------------------------------------------------- the printer


@pytest.mark.parametrize(
    ("node", "text"),
    [
        (Not(Or((Term("any", ("a",)), Term("any", ("b",))))), 'NOT ("a" OR "b")'),
        (Not(Upvotes("<", 3)), "NOT upvotes<3"),
        (Or((And((Term("any", ("a",)), Term("any", ("b",)))), Term("any", ("c",)))), None),
        (Term("author", ("geoffrey", "hinton")), 'author:"geoffrey hinton"'),
        (Term("category", ("cs.",), prefix=True), "cat:cs.*"),
        (Term("source", ("hf",)), 'source:"hf"'),
        (Term("title", ("world", "mod"), prefix=True), "title:world-mod*"),
    ],
)
def test_the_printer_writes_trees_built_in_code_as_text_that_parses_back(
    node: Node, text: str | None
) -> None:
    printed = format_query(node)
    if text is not None:
        assert printed == text
    assert parse(printed) == node


def test_an_and_inside_an_or_needs_no_parentheses_but_an_or_inside_an_and_does() -> None:
    assert format_query(parse("a b OR c")) == "a AND b OR c"
    assert format_query(parse("(a OR b) (c OR d)")) == "(a OR b) AND (c OR d)"


# ---------------------------------------------------------------- what a term matches


PAPERS = [
    paper("0", "Robot world", "model of scenes", ("Ana García",), ("math-ph", "cs.RO"), 3),
    paper("1", "Learning agents", "For agent studies.", ("Li Wei",), ("math.OC",), None),
    paper("2", "World. Model", "", ("Wei Li",), ("CS.ro",), 0, source="arxiv"),
    paper("3", "Agent", "", (), ("csx.AI",), 10, sources=("hf", "arxiv-cs")),
]


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ('"world model"', ["2"]),  # a phrase never spans title and abstract; punctuation does
        ("world model", ["0", "2"]),  # separate words may sit in different fields
        ("agents*", ["1"]),  # a prefix matches as typed: "agents", not "agent"
        ("agent*", ["1", "3"]),
        ("agent", ["1", "3"]),  # a plain word matches singular and plural
        ('"agent study"', ["1"]),
        ('author:"wei li"', ["2"]),  # word order inside a name matters
        ("author:wei", ["1", "2"]),
        ("author:garc*", ["0"]),
        ("cat:math", ["1"]),  # a whole archive is the part before the dot: not math-ph
        ("cat:math*", ["0", "1"]),
        ("cat:cs", ["0", "2"]),  # not csx.AI
        ("cat:cs.ro", ["0", "2"]),  # category case is folded both ways
        ("source:arxiv", ["2"]),  # a row naming only one source still answers source:
        ("source:arxiv*", ["2", "3"]),
        ("source:hf", ["3"]),
        ("upvotes>=0", ["0", "2", "3"]),  # a paper without upvotes is never compared
        ("upvotes=0", ["2"]),
        ("upvotes>99999999999999999999", []),
        ("NOT upvotes>=0", ["1"]),
        ("-agent -robot", ["2"]),
        ("title:(agent OR robot) -abstract:studies", ["0", "3"]),
    ],
)
def test_what_each_term_matches(query: str, ids: list[str]) -> None:
    assert matched(PAPERS, query) == ids


def test_a_paper_with_empty_fields_matches_only_negations() -> None:
    blank = [paper("x")]
    assert matched(blank, "model OR author:x OR cat:cs OR source:hf OR upvotes>=0") == []
    assert matched(blank, "-model") == ["x"]


WORDS = ["agent", "agents", "world", "model", "robot"]
QUERIES = ["agent", "world", "model", "robot*", "title:world", "upvotes>=2", "cat:cs"]


@st.composite
def corpus(draw: st.DrawFn) -> list[Paper]:
    rows = draw(
        st.lists(
            st.tuples(
                st.lists(st.sampled_from(WORDS), max_size=4),
                st.lists(st.sampled_from(WORDS), max_size=6),
                st.sampled_from([(), ("cs.LG",), ("stat.ML",)]),
                st.none() | st.integers(0, 4),
            ),
            min_size=1,
            max_size=12,
        )
    )
    return [
        paper(str(k), " ".join(t), " ".join(a), categories=c, upvotes=u)
        for k, (t, a, c, u) in enumerate(rows)
    ]


@settings(max_examples=50, deadline=None)
@given(corpus(), st.sampled_from(QUERIES), st.sampled_from(QUERIES))
def test_the_operators_are_set_algebra(papers: list[Paper], a: str, b: str) -> None:
    """AND is intersection, OR union, NOT the complement within the edition; juxtaposition is
    AND; De Morgan holds; order does not matter."""
    index = PaperIndex(papers)
    ev = index.evaluate
    x, y = ev(parse(a)), ev(parse(b))
    assert ev(parse(f"{a} AND {b}")) == ev(parse(f"{a} {b}")) == x & y == ev(parse(f"{b} {a}"))
    assert ev(parse(f"{a} OR {b}")) == x | y == ev(parse(f"{b} OR {a}"))
    assert ev(parse(f"NOT {a}")) == index.all & ~x
    assert ev(parse(f"-({a} OR {b})")) == ev(parse(f"-{a} -{b}"))
    assert ev(parse(f"-({a} {b})")) == ev(parse(f"-{a} OR -{b}"))
    assert list(positions(x)) == [i for i in range(len(papers)) if x >> i & 1]


@settings(max_examples=40, deadline=None)
@given(corpus(), st.sampled_from(QUERIES), st.sampled_from(QUERIES))
def test_adding_a_condition_narrows_and_adding_an_alternative_widens(
    papers: list[Paper], a: str, b: str
) -> None:
    index = PaperIndex(papers)
    base = set(index.matches(parse(a)))
    assert set(index.matches(parse(f"({a}) {b}"))) <= base
    assert set(index.matches(parse(f"({a}) OR {b}"))) >= base
    printed = format_query(parse(f"({a}) -{b}"))
    assert index.matches(parse(printed)) == index.matches(parse(f"({a}) -{b}"))


# ---------------------------------------------------------------- why it matched


def test_why_names_the_authors_categories_and_sources_that_matched_as_stored() -> None:
    index = PaperIndex(PAPERS)
    node = parse("author:wei cat:cs OR source:arxiv* OR upvotes>=0")
    assert index.explain(node, 2) == [
        Hit("wei", "author", "Wei Li"),
        Hit("cat:cs", "category", "CS.ro"),
        Hit("source:arxiv*", "source", "arxiv"),
        Hit("upvotes>=0", "upvotes", "0"),
    ]
    assert index.explain(parse("source:arxiv*"), 3) == [Hit("source:arxiv*", "source", "arxiv-cs")]


def test_why_lists_the_terms_in_the_order_they_were_typed() -> None:
    index = PaperIndex([paper("v", "video robot", "robot")])
    assert index.explain(parse("video robot"), 0) == [
        Hit("video", "title"),
        Hit("robot", "title"),
        Hit("robot", "abstract"),
    ]
    assert index.explain(parse("robot video"), 0)[0] == Hit("robot", "title")


def test_why_lists_a_term_once_however_often_it_is_typed_and_skips_misses() -> None:
    index = PaperIndex(PAPERS)
    node = parse("agent OR agents OR (robot agent)")
    assert index.explain(node, 3) == [Hit("agent", "title")]
    assert index.explain(parse("-robot"), 1) == []  # nothing positive to name


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ('title:"World-Models!"', "World Models"),  # punctuation dropped, case kept
        ("Diffus*", "Diffus*"),
        ("cat:cs.CV", "cat:cs.CV"),
        ('source:" HF "', "source:HF"),
        ("upvotes>=10", "upvotes>=10"),
        ("author:García", "García"),
    ],
)
def test_a_term_reads_in_a_why_line_as_the_subscriber_typed_it(query: str, shown: str) -> None:
    (term,) = terms_of(parse(query))
    assert display(term) == shown


def test_a_term_built_in_code_reads_as_its_words() -> None:
    assert display(Term("any", ("world", "model"))) == "world model"
    assert display(Term("title", ("diffus",), prefix=True)) == "diffus*"


# ---------------------------------------------------------------- highlighting


def test_overlapping_hits_become_one_mark() -> None:
    text = "a world model here"
    terms = terms_of(parse('"world model" model world'))
    assert highlight_spans(text, terms) == [(2, 13)]


def test_a_phrase_cut_off_by_the_end_of_the_text_is_not_marked() -> None:
    assert highlight_spans("the world", terms_of(parse('"world model"'))) == []
    assert highlight_spans("", terms_of(parse("world"))) == []


def test_category_source_and_upvote_terms_are_never_marked_in_text() -> None:
    text = "cs hf 10"
    assert highlight_spans(text, terms_of(parse("cat:cs source:hf upvotes>=10"))) == []


def test_an_any_term_is_marked_in_title_and_abstract_but_not_in_authors() -> None:
    terms = terms_of(parse("wei"))
    assert highlight_spans("Wei Li", terms, "title") == [(0, 3)]
    assert highlight_spans("Wei Li", terms, "author") == []
    assert highlight_spans("Wei Li", terms_of(parse("author:wei")), "author") == [(0, 3)]


def test_a_prefix_phrase_marks_the_whole_last_word() -> None:
    text = "Large-Language-Modelling rocks"
    assert highlight_spans(text, terms_of(parse("large-lang*"))) == [(0, 14)]


def test_pre_tokenised_words_give_the_same_marks_and_are_ignored_for_another_text() -> None:
    text = "Diffusion policies for dexterous robots"
    terms = terms_of(parse("diffus* policy robot"))
    words = TextWords(text)
    assert highlight_spans(text, terms, words=words) == highlight_spans(text, terms)
    other = TextWords("unrelated words")
    assert highlight_spans(text, terms, words=other) == highlight_spans(text, terms)


@settings(max_examples=150)
@given(st.one_of(st.text(max_size=30), WORDISH), st.integers(0, 40))
def test_the_head_of_a_text_tokenises_as_that_prefix_would(text: str, end: int) -> None:
    """The card cache cuts long abstracts with `head`: it must mark exactly what tokenising
    the cut text afresh marks."""
    end = min(end, len(text))
    assert TextWords(text).head(end).words == TextWords(text[:end]).words


@settings(max_examples=60, deadline=None)
@given(corpus(), st.sampled_from(["agent", "world", "robot*", "model", '"world model"']))
def test_a_paper_matches_a_text_term_exactly_when_its_text_has_a_mark(
    papers: list[Paper], query: str
) -> None:
    """What is highlighted is exactly what matched: no unmarked match, no mark without one."""
    node = parse(query)
    hits = set(PaperIndex(papers).matches(node))
    marked = {
        i
        for i, p in enumerate(papers)
        if highlight_spans(p.title, terms_of(node), "title")
        or highlight_spans(p.abstract, terms_of(node), "abstract")
    }
    assert hits == marked
