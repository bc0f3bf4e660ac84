"""The recommendations' specification, pure parts: BibTeX as libraries write it, seeds files of
every kind and what each line or row becomes, matching seeds to stored papers, what a profile
is learned from and when it is stale, its stored bytes, and the sentence that says why."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.errors import DigestError
from digest.models import Paper
from digest.recommend.bibtex import MAX_DEPTH, bibtex_entries, latex_to_text
from digest.recommend.errors import RecommendError
from digest.recommend.explain import Reason
from digest.recommend.profile import (
    Feedback,
    Method,
    Profile,
    ProfileInputs,
    fit_profile,
    needs_refit,
    read_profiles,
)
from digest.recommend.seeds import (
    MAX_TITLE,
    Resolution,
    SeedFormat,
    SeedKind,
    SeedRef,
    normalise_title,
    parse_seeds,
    resolve_seeds,
)

V1 = b"vocab-1"


def _refs(data: bytes, name: str = "") -> list[tuple[SeedKind, str]]:
    return [(r.kind, r.value) for r in parse_seeds(data, name).refs]


# BibTeX


def test_bibtex_reads_parenthesised_entries_quoted_values_and_concatenation() -> None:
    text = '@Article(key1, title = "Quoted {Title}", year = 2020, note = "a" # " b")\n'
    assert list(bibtex_entries(text)) == [
        (1, "article", "key1", {"title": "Quoted {Title}", "year": "2020", "note": "a b"})
    ]


def test_bibtex_skips_comments_strings_and_preambles_and_counts_lines_to_each_entry() -> None:
    text = (
        '@string{conf = "NeurIPS"}\n@comment{not a paper}\n@preamble{"\\newcommand"}\n'
        "@misc{k2,\n  TITLE={Nested {Braces {Deep}}},\n  eprint = 2101.00001}\n"
        "stray text @ here\n@INPROCEEDINGS{k3, title={Last}}\n"
    )
    entries = list(bibtex_entries(text))
    assert [(line, kind, key) for line, kind, key, _ in entries] == [
        (4, "misc", "k2"),
        (8, "inproceedings", "k3"),
    ]
    assert entries[0][3] == {"title": "Nested {Braces {Deep}}", "eprint": "2101.00001"}


def test_bibtex_field_names_are_case_folded_and_the_last_of_a_repeated_one_wins() -> None:
    ((_, _, _, fields),) = bibtex_entries("@misc{k, Title={One}, TITLE={Two}, DOI={10.1/x}}")
    assert fields == {"title": "Two", "doi": "10.1/x"}


def test_bibtex_nesting_deeper_than_the_limit_ends_the_entry_at_the_end_of_text() -> None:
    deep = "@misc{k, title={" + "{" * (MAX_DEPTH + 1) + "x" + "}" * (MAX_DEPTH + 2) + "}"
    ((_, _, key, _),) = bibtex_entries(deep + "\n@misc{later, title={Later}}")
    assert key == "k"  # the deep one swallowed the rest: bounded, never a crash


@pytest.mark.parametrize(
    ("latex", "text"),
    [
        ("\\v{S}koda", "Škoda"),
        ("\\k{a}", "ą"),
        ("\\r{u}", "ů"),
        ("Erd\\H{o}s", "Erdős"),
        ("\\l{}ukasz", "łukasz"),
        ("\\emph{Deep} \\texttt{code}", "Deep code"),
        ("50\\% of \\$1", "50% of $1"),
        ("a~b", "a b"),
        ("``quoted''", '"quoted"'),
        ("1990---2000", "1990—2000"),
        ("  many \n  spaces  ", "many spaces"),
        ("\\'\\i", "í"),
    ],
)
def test_latex_commands_become_the_characters_they_print(latex: str, text: str) -> None:
    assert latex_to_text(latex) == text


@given(st.text(max_size=200))
def test_latex_to_text_is_idempotent_on_braceless_plain_text(text: str) -> None:
    plain = "".join(c for c in text if c not in "\\{}~`'\"-$%&#_")
    once = latex_to_text(plain)
    assert latex_to_text(once) == once


# Seeds: formats


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b"2401.00001", "seeds.bib", SeedFormat.BIBTEX),
        (b"2401.00001", "Export.CSV", SeedFormat.CSV),
        (b"  @article{k, title={T}}", "", SeedFormat.BIBTEX),
        (b"Key,Item Type,Title\n", "", SeedFormat.CSV),
        (b"title,authors\n", "paste", SeedFormat.CSV),
        (b"2401.00001, 2401.00002", "", SeedFormat.TEXT),
        (b"", "", SeedFormat.TEXT),
    ],
)
def test_the_format_comes_from_the_file_name_else_from_the_first_lines(
    data: bytes, name: str, expected: SeedFormat
) -> None:
    assert parse_seeds(data, name).format is expected


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("https://arxiv.org/abs/2401.00001v2", (SeedKind.ARXIV, "2401.00001")),
        ("https://arxiv.org/pdf/2401.00001.pdf", (SeedKind.ARXIV, "2401.00001")),
        ("https://huggingface.co/papers/2401.00002", (SeedKind.ARXIV, "2401.00002")),
        ("https://www.alphaxiv.org/abs/2401.00003v3", (SeedKind.ARXIV, "2401.00003")),
        ("arXiv:2401.00004", (SeedKind.ARXIV, "2401.00004")),
        ("hep-th/9901001", (SeedKind.ARXIV, "hep-th/9901001")),
        ("arXiv:math.GT/0309136v1", (SeedKind.ARXIV, "math.GT/0309136")),
        ("1501.0001", (SeedKind.ARXIV, "1501.0001")),
        ("10.1145/3301.12345.", (SeedKind.DOI, "10.1145/3301.12345")),
        ("https://doi.org/10.1038/NATURE14539", (SeedKind.DOI, "10.1038/nature14539")),
        ("10.48550/arXiv.2303.04137", (SeedKind.ARXIV, "2303.04137")),
    ],
)
def test_each_pasted_identifier_names_one_paper(token: str, expected: tuple[SeedKind, str]) -> None:
    assert _refs(token.encode()) == [expected]


@pytest.mark.parametrize("token", ["12401.00001", "2401.001", "v2401.00001", "2401.00001x"])
def test_a_number_that_only_looks_like_an_arxiv_id_is_skipped(token: str) -> None:
    seeds = parse_seeds(token.encode())
    assert seeds.refs == [] and seeds.skipped_count == 1


def test_pasted_text_splits_on_spaces_commas_and_semicolons_and_ignores_comment_lines() -> None:
    data = b"# my favourites\n2401.00001, 2401.00002;2401.00003\n\n   \n2401.00004\n"
    seeds = parse_seeds(data)
    assert [r.value for r in seeds.refs] == ["2401.00001", "2401.00002", "2401.00003", "2401.00004"]
    assert [r.where for r in seeds.refs] == ["line 2", "line 2", "line 2", "line 5"]
    assert seeds.skipped_count == 0
    assert seeds.summary() == "4 paper(s) named in the text seeds"


def test_a_bare_number_in_bibtex_is_an_id_only_in_a_field_meant_for_one() -> None:
    data = (
        b"@misc{a, title={Pages}, journal={Proc. 2101.12345}}\n"
        b"@misc{b, title={Eprint}, eprint={2101.12345}}\n"
        b"@misc{c, title={Labelled}, note={arXiv preprint arXiv:2101.54321}}\n"
    )
    assert _refs(data, "x.bib") == [
        (SeedKind.TITLE, "Pages"),
        (SeedKind.ARXIV, "2101.12345"),
        (SeedKind.ARXIV, "2101.54321"),
    ]


def test_in_bibtex_an_arxiv_id_beats_a_doi_of_the_same_entry() -> None:
    data = b"@article{k, doi={10.1000/j.x}, eprint={2401.00009}, archivePrefix={arXiv}}"
    assert _refs(data, "x.bib") == [(SeedKind.ARXIV, "2401.00009")]


def test_a_bibtex_title_is_decoded_and_an_absurdly_long_one_is_skipped() -> None:
    long_title = "word " * (MAX_TITLE // 5 + 1)
    data = f"@misc{{ok, title={{M{{\\\"u}}ller's {{GAN}}}}}}\n@misc{{big, title={{{long_title}}}}}"
    seeds = parse_seeds(data.encode(), "x.bib")
    assert [(r.kind, r.value) for r in seeds.refs] == [(SeedKind.TITLE, "Müller's GAN")]
    assert seeds.skipped == [
        f"entry big (line 2): a title of {len(long_title)} characters is not a title"
    ]


def test_csv_without_a_usable_column_is_one_reason_and_no_papers() -> None:
    seeds = parse_seeds(b"Author,Year\nTuring,1950\n", "x.csv")
    assert seeds.refs == [] and seeds.skipped == [
        "the CSV has no Title, DOI, URL or arXiv ID column"
    ]


def test_csv_blank_rows_are_not_skipped_items_and_a_lone_dash_is_not_a_formula() -> None:
    data = b"Title,DOI,Notes\n,,\nA paper,-,\n,,\n"
    seeds = parse_seeds(data, "x.csv")
    assert [(r.kind, r.value, r.where) for r in seeds.refs] == [
        (SeedKind.TITLE, "A paper", "row 3")
    ]
    assert seeds.skipped_count == 0


def test_csv_reads_the_id_from_its_arxiv_column_before_any_url() -> None:
    data = b"Title,URL,arXiv ID\nT,https://arxiv.org/abs/2401.00001,2401.00002\n"
    assert _refs(data, "x.csv") == [(SeedKind.ARXIV, "2401.00002")]


@pytest.mark.parametrize(
    "data",
    [
        "Title\nCaf\u00e9 culture\n".encode("utf-16"),
        "Title\nCaf\u00e9 culture\n".encode("cp1252"),
        "\ufeffTitle\nCaf\u00e9 culture\n".encode(),
    ],
    ids=["excel-unicode-text", "windows-code-page", "utf8-with-bom"],
)
def test_spreadsheet_encodings_are_decoded(data: bytes) -> None:
    assert _refs(data, "x.csv") == [(SeedKind.TITLE, "Café culture")]


def test_an_oversized_seeds_file_is_a_recommend_error_a_one_line_digest_error() -> None:
    with pytest.raises(RecommendError) as info:
        parse_seeds(b"x" * (5 * 1024 * 1024 + 1), "")
    assert isinstance(info.value, DigestError)
    assert str(info.value).startswith("seeds: the file is 5.2 MB")


# Seeds: resolving against stored papers

STORED = [
    Paper(id="2401.00001", arxiv_id="2401.00001", title="Alpha"),
    Paper(id="2401.00002", title="Beta Networks"),  # an arXiv-shaped id, no arxiv_id field
    Paper(id="h:1", title="Gamma", doi="10.1000/ABC"),
    Paper(id="h:2", title="Gamma"),  # the same title later: the first one is found
]


@pytest.mark.parametrize(
    ("ref", "found"),
    [
        (SeedRef(SeedKind.ARXIV, "2401.00001", "l1"), "2401.00001"),
        (SeedRef(SeedKind.ARXIV, "2401.00002", "l1"), "2401.00002"),
        (SeedRef(SeedKind.DOI, "10.1000/abc", "l1"), "h:1"),
        (SeedRef(SeedKind.TITLE, "BETA  networks!", "l1"), "2401.00002"),
        (SeedRef(SeedKind.TITLE, "Gamma", "l1"), "h:1"),
        (SeedRef(SeedKind.DOI, "2401.00001", "l1"), None),
        (SeedRef(SeedKind.TITLE, "Alpha Beta", "l1"), None),
    ],
)
def test_a_reference_is_matched_by_its_own_kind_only(ref: SeedRef, found: str | None) -> None:
    resolution = resolve_seeds([ref], STORED)
    assert resolution.found == ([found] if found else [])
    assert resolution.unknown == ([] if found else [ref])


def test_a_paper_named_twice_is_found_once_in_first_order() -> None:
    refs = [
        SeedRef(SeedKind.TITLE, "Beta Networks", "row 2"),
        SeedRef(SeedKind.ARXIV, "2401.00001", "row 3"),
        SeedRef(SeedKind.ARXIV, "2401.00002", "row 4"),
    ]
    assert resolve_seeds(refs, STORED).found == ["2401.00002", "2401.00001"]


def test_a_stored_versioned_arxiv_id_still_matches_the_bare_id() -> None:
    stored = [Paper(id="2401.00007", arxiv_id="2401.00007v3", title="V")]
    ref = SeedRef(SeedKind.ARXIV, "2401.00007", "l1")
    assert resolve_seeds([ref], stored).found == ["2401.00007"]


def test_the_summary_names_five_unknown_papers_quotes_titles_and_counts_the_rest() -> None:
    unknown = [SeedRef(SeedKind.ARXIV, f"2401.0000{i}", "l") for i in range(6)]
    title = SeedRef(SeedKind.TITLE, "T" * 70, "l")
    text = Resolution(["a"], [title, *unknown]).summary()
    assert text == (
        "1 seed paper(s) added; 7 not found among stored papers: "
        f"'{'T' * 57}...', 2401.00000, 2401.00001, 2401.00002, 2401.00003 and 2 more"
    )
    assert Resolution().summary() == "0 seed paper(s) added"


@pytest.mark.parametrize(
    ("seed", "stored"),
    [
        ("深度学习", "Графовые сети"),
        ("α-OPSD: On-Policy Self-Distillation", "β-OPSD: On-Policy Self-Distillation"),
        ("—", "…"),  # no letter or digit: an empty key matches nothing
    ],
)
def test_a_title_matches_only_a_paper_of_that_title(seed: str, stored: str) -> None:
    ref = SeedRef(SeedKind.TITLE, seed, "line 1")
    assert resolve_seeds([ref], [Paper(id="h:other", title=stored)]).found == []


@given(st.text(max_size=80))
def test_normalised_titles_are_idempotent_and_keep_only_lower_case_words(title: str) -> None:
    once = normalise_title(title)
    assert normalise_title(once) == once
    assert all(part.isalnum() and part == part.lower() for part in once.split())


# Profiles: inputs, staleness, bytes

LESS, MORE = Feedback.LESS, Feedback.MORE


def test_profile_inputs_split_feedback_and_a_later_less_removes_a_seed() -> None:
    inputs = ProfileInputs.of(["s1", "s2"], {"s2": LESS, "m1": MORE, "l1": LESS})
    assert inputs.seeds == {"s1"}
    assert inputs.more == {"m1"} and inputs.less == {"s2", "l1"}
    assert inputs.liked == {"s1", "m1"}


@given(
    seeds=st.lists(st.sampled_from("abcdef"), max_size=6),
    more=st.lists(st.sampled_from("ghij"), max_size=4),
)
def test_the_fingerprint_ignores_order_and_repeats(seeds: list[str], more: list[str]) -> None:
    a = ProfileInputs.of(seeds, {m: MORE for m in more})
    b = ProfileInputs.of(list(reversed(seeds)) * 2, {m: MORE for m in reversed(more)})
    assert a.fingerprint(V1) == b.fingerprint(V1)


def test_the_fingerprint_changes_with_the_role_the_vocabulary_and_the_method() -> None:
    base = ProfileInputs.of(["p"])
    prints = {
        base.fingerprint(V1),
        ProfileInputs.of([], {"p": MORE}).fingerprint(V1),
        ProfileInputs.of([], {"p": LESS}).fingerprint(V1),
        base.fingerprint(b"vocab-2"),
        base.fingerprint(V1, Method.LOGISTIC),
    }
    assert len(prints) == 5


def test_a_refit_is_needed_without_a_profile_or_after_any_input_changes() -> None:
    inputs = ProfileInputs.of(["p"])
    profile = Profile(np.ones(3, np.float32), 0.0, inputs.fingerprint(V1))
    assert needs_refit(None, inputs, V1)
    assert not needs_refit(profile, ProfileInputs.of(["p", "p"]), V1)
    assert needs_refit(profile, ProfileInputs.of(["p", "q"]), V1)
    assert needs_refit(profile, inputs, b"vocab-2")


def test_the_centroid_is_unit_length_and_a_less_pulls_it_away() -> None:
    vectors = {
        "a": np.array([1, 0, 0], np.float32),
        "b": np.array([0, 1, 0], np.float32),
        "x": np.array([1, 0, 0], np.float32),
    }
    empty = np.zeros((0, 3), np.float32)
    liked = fit_profile(ProfileInputs.of(["a", "b"]), vectors, empty, V1)
    assert liked is not None and np.isclose(np.linalg.norm(liked.weights), 1.0)
    assert liked.weights[0] == pytest.approx(liked.weights[1])
    pushed = fit_profile(ProfileInputs.of(["a", "b"], {"x": LESS}), vectors, empty, V1)
    assert pushed is not None and pushed.weights[0] < pushed.weights[1]
    assert fit_profile(ProfileInputs.of(["zzz"], {"x": LESS}), vectors, empty, V1) is None


@given(
    weights=st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=16),
    bias=st.floats(-10, 10, width=32),
)
def test_a_profile_survives_its_bytes(weights: list[float], bias: float) -> None:
    fingerprint = ProfileInputs.of(["p"]).fingerprint(V1)
    profile = Profile(np.array(weights, np.float32), bias, fingerprint)
    back = Profile.from_bytes(profile.to_bytes())
    assert np.array_equal(back.weights, profile.weights)
    assert back.bias == pytest.approx(bias) and back.fingerprint == fingerprint


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b[:10], "too short"),
        (lambda b: b"XXXX" + b[4:], "damaged"),
        (lambda b: b[:-4], "damaged"),
        (lambda b: b + b"\x00\x00\x00\x00", "damaged"),
    ],
)
def test_a_damaged_stored_profile_is_one_error_asking_for_a_refit(
    mangle: object, message: str
) -> None:
    good = Profile(np.ones(4, np.float32), 0.5, "ab" * 32).to_bytes()
    with pytest.raises(RecommendError, match=f"{message}; fit it again"):
        Profile.from_bytes(mangle(good))  # type: ignore[operator]


def test_many_stored_profiles_stack_and_unusable_ones_are_zero_rows_marked_false() -> None:
    good = Profile(np.array([1, 2, 3], np.float32), 0.25, "00" * 32).to_bytes()
    other_size = Profile(np.ones(4, np.float32), 1.0, "00" * 32).to_bytes()
    weights, bias, ok = read_profiles([good, b"junk", other_size, b"XXXX" + good[4:]], 3)
    assert ok.tolist() == [True, False, False, False]
    assert weights[0].tolist() == [1, 2, 3] and bias[0] == 0.25
    assert not weights[1:].any() and not bias[1:].any()


# Reasons


@pytest.mark.parametrize(
    ("title", "shared", "text"),
    [
        ("Diffusion Policy", ("robot arms", "grasping"),
         "Like Diffusion Policy — shared: robot arms, grasping"),
        ("Diffusion Policy", (), "Like Diffusion Policy"),
        ("  Spread\n over   lines ", (), "Like Spread over lines"),
        ("A" * 90, (), "Like " + "A" * 90),
        ("A" * 91, ("x",), "Like " + "A" * 87 + "... — shared: x"),
    ],
)  # fmt: skip
def test_a_reason_is_one_sentence_naming_the_liked_paper_and_the_shared_terms(
    title: str, shared: tuple[str, ...], text: str
) -> None:
    assert Reason("2401.1", title, 0.8, shared).text() == text
