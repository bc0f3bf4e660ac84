"""Recommendations: vectors and their bytes, profiles from seeds and feedback, batched scoring
equal to a per-reader loop, reasons a person reads, and seeds files with real-world quirks."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

from digest.errors import DigestError
from digest.models import Paper
from digest.recommend.bibtex import latex_to_text
from digest.recommend.explain import Explainer, explain
from digest.recommend.profile import (
    Feedback,
    Method,
    Profile,
    ProfileInputs,
    fit_profile,
    needs_refit,
)
from digest.recommend.score import (
    ProfileMatrix,
    score_all,
    stack_profile_bytes,
    stack_profiles,
)
from digest.recommend.seeds import (
    MAX_SEED_BYTES,
    MAX_SKIPPED,
    SeedFormat,
    SeedKind,
    normalise_title,
    parse_seeds,
    resolve_seeds,
)
from digest.recommend.vectorize import (
    Matrix,
    Vectorizer,
    fit_vectorizer,
    stack_vectors,
    vector_from_bytes,
    vector_to_bytes,
)

SEEDS = Path(__file__).parent / "data" / "seeds"
TOPICS = {
    "robots": [
        "diffusion policy",
        "dexterous manipulation",
        "robot grasping",
        "tactile sensing",
        "visuomotor control",
        "humanoid locomotion",
    ],
    "language": [
        "language models",
        "instruction tuning",
        "retrieval augmented generation",
        "tokenizer vocabulary",
        "chain of thought",
        "machine translation",
    ],
    "vision": [
        "semantic segmentation",
        "object detection",
        "vision transformer",
        "image restoration",
        "optical flow",
        "depth estimation",
    ],
    "graphs": [
        "graph neural networks",
        "message passing",
        "molecular property prediction",
        "node classification",
        "protein folding",
        "link prediction",
    ],
}
FILLER = ["scalable", "efficient", "benchmark", "training", "evaluation", "robust", "learning"]


def make_papers(per_topic: int = 16, seed: int = 0) -> list[Paper]:
    """A small corpus with four clearly separated topics sharing generic words."""
    rng = random.Random(seed)
    papers = []
    for topic, phrases in TOPICS.items():
        for j in range(per_topic):
            a, b, c = rng.sample(phrases, 3)
            title = f"{a.title()} meets {b} for {rng.choice(FILLER)} systems"
            abstract = (
                f"We study {a} and {b}. Our {c} approach is {rng.choice(FILLER)} and "
                f"{rng.choice(FILLER)}; experiments on {a} show gains in {c}."
            )
            papers.append(Paper(id=f"{topic}-{j}", title=title, abstract=abstract))
    return papers


@pytest.fixture(scope="module")
def corpus() -> list[Paper]:
    return make_papers()


@pytest.fixture(scope="module")
def vectorizer(corpus: list[Paper]) -> Vectorizer:
    return fit_vectorizer(corpus, dimensions=12)


@pytest.fixture(scope="module")
def vectors(corpus: list[Paper], vectorizer: Vectorizer) -> dict[str, Matrix]:
    return dict(zip([p.id for p in corpus], vectorizer.transform(corpus), strict=True))


@pytest.fixture(scope="module")
def background(corpus: list[Paper], vectors: dict[str, Matrix]) -> Matrix:
    return np.vstack([vectors[p.id] for p in corpus[::3]])


def topic_of(paper_id: str) -> str:
    return paper_id.split("-")[0]


# ---------------------------------------------------------------- vectors


def test_saved_vocabulary_reloads_and_vectorises_papers_identically(
    corpus: list[Paper], vectorizer: Vectorizer
) -> None:
    again = Vectorizer.from_bytes(vectorizer.to_bytes())
    assert again.version == vectorizer.version
    assert again.terms == vectorizer.terms
    np.testing.assert_allclose(again.transform(corpus), vectorizer.transform(corpus), atol=1e-6)


def test_damaged_saved_vocabulary_is_one_clear_error(vectorizer: Vectorizer) -> None:
    with pytest.raises(DigestError, match="saved vocabulary does not load"):
        Vectorizer.from_bytes(vectorizer.to_bytes()[:100])


def test_paper_vector_survives_bytes_for_sqlite(
    corpus: list[Paper], vectorizer: Vectorizer
) -> None:
    vector = vectorizer.transform(corpus[:1])[0]
    blob = vector_to_bytes(vector, vectorizer.version)
    assert isinstance(blob, bytes)
    np.testing.assert_array_equal(vector_from_bytes(blob, vectorizer.version), vector)
    assert stack_vectors([blob, blob], vectorizer.version).shape == (2, vectorizer.dimensions)


def test_vector_from_another_fit_or_cut_short_is_refused(
    corpus: list[Paper], vectorizer: Vectorizer
) -> None:
    blob = vector_to_bytes(vectorizer.transform(corpus[:1])[0], vectorizer.version)
    with pytest.raises(DigestError, match="another vocabulary fit"):
        vector_from_bytes(blob, b"\x00" * 8)
    with pytest.raises(DigestError, match="damaged"):
        vector_from_bytes(blob[:-3])


def test_vectors_are_unit_length_and_latex_is_not_a_topic(vectorizer: Vectorizer) -> None:
    paper = Paper(id="x", title="Diffusion policy", abstract="$\\mathcal{O}(n)$ dexterous")
    row = vectorizer.transform([paper])[0]
    assert abs(float(np.linalg.norm(row)) - 1.0) < 1e-5
    assert "mathcal" not in vectorizer.terms


def test_too_few_papers_to_fit_a_vocabulary_is_one_clear_error() -> None:
    with pytest.raises(DigestError, match="too few"):
        fit_vectorizer([Paper(id="a", title="one")])


# ---------------------------------------------------------------- profiles


@pytest.mark.parametrize("method", list(Method))
def test_profile_from_seeds_ranks_the_seeds_topic_first(
    method: Method,
    corpus: list[Paper],
    vectorizer: Vectorizer,
    vectors: dict[str, Matrix],
    background: Matrix,
) -> None:
    inputs = ProfileInputs.of(["robots-0", "robots-1", "robots-2"])
    profile = fit_profile(inputs, vectors, background, vectorizer.version, method)
    assert profile is not None
    fresh = make_papers(per_topic=5, seed=99)
    ranking = score_all(stack_profiles({"r": profile}), vectorizer.transform(fresh), 5)
    assert {topic_of(fresh[p].id) for p, _s in ranking.for_reader(0)} == {"robots"}


def test_less_like_this_pushes_that_topic_down(
    vectorizer: Vectorizer, vectors: dict[str, Matrix], background: Matrix
) -> None:
    seeds = ["robots-0", "vision-0"]
    fresh = make_papers(per_topic=5, seed=5)
    matrix = vectorizer.transform(fresh)
    vision = [i for i, p in enumerate(fresh) if topic_of(p.id) == "vision"]

    def vision_score(feedback: dict[str, Feedback]) -> float:
        inputs = ProfileInputs.of(seeds, feedback)
        profile = fit_profile(inputs, vectors, background, vectorizer.version)
        assert profile is not None
        return float((matrix[vision] @ profile.weights).mean())

    disliked = {f"vision-{i}": Feedback.LESS for i in range(1, 6)}
    assert vision_score(disliked) < vision_score({})


def test_refit_is_needed_only_when_the_readers_inputs_change(
    vectorizer: Vectorizer, vectors: dict[str, Matrix], background: Matrix
) -> None:
    inputs = ProfileInputs.of(["robots-0"], {"robots-3": Feedback.MORE})
    profile = fit_profile(inputs, vectors, background, vectorizer.version)
    version = vectorizer.version
    assert not needs_refit(profile, inputs, version)
    reordered = ProfileInputs.of(["robots-0"], {"robots-3": Feedback.MORE})
    assert not needs_refit(profile, reordered, version)
    changed = ProfileInputs.of(["robots-0"], {"robots-3": Feedback.LESS})
    assert needs_refit(profile, changed, version)
    assert needs_refit(profile, inputs, b"\x01" * 8)
    assert needs_refit(None, inputs, version)


def test_disliking_a_seed_removes_it_from_the_liked_papers() -> None:
    inputs = ProfileInputs.of(["a", "b"], {"a": Feedback.LESS, "c": Feedback.MORE})
    assert inputs.liked == {"b", "c"} and inputs.less == {"a"}


def test_reader_whose_seeds_we_never_collected_gets_no_profile(
    vectorizer: Vectorizer, vectors: dict[str, Matrix], background: Matrix
) -> None:
    inputs = ProfileInputs.of(["2401.99999"])
    assert fit_profile(inputs, vectors, background, vectorizer.version) is None


def test_profile_survives_bytes(
    vectorizer: Vectorizer, vectors: dict[str, Matrix], background: Matrix
) -> None:
    inputs = ProfileInputs.of(["graphs-1", "graphs-2"])
    profile = fit_profile(inputs, vectors, background, vectorizer.version)
    assert profile is not None
    again = Profile.from_bytes(profile.to_bytes())
    np.testing.assert_array_equal(again.weights, profile.weights)
    assert again.bias == pytest.approx(profile.bias)
    assert again.fingerprint == profile.fingerprint
    with pytest.raises(DigestError, match="damaged"):
        Profile.from_bytes(profile.to_bytes()[:60])


# ---------------------------------------------------------------- batched scoring


def per_reader_loop(
    profiles: ProfileMatrix, papers: Matrix, k: int, exclude: dict[str, list[int]]
) -> list[list[int]]:
    """The slow way: one scikit-learn model and one predict per reader."""
    out = []
    for r in range(len(profiles.readers)):
        model = LogisticRegression()
        model.classes_ = np.array([0, 1])
        model.coef_ = profiles.weights[r : r + 1].astype(np.float64)
        model.intercept_ = np.array([float(profiles.bias[r])])
        scores = model.decision_function(papers)
        scores[exclude.get(profiles.readers[r], [])] = -np.inf
        out.append([int(i) for i in np.argsort(-scores, kind="stable")[:k]])
    return out


@pytest.mark.parametrize(("chunk", "threads"), [(1, 1), (7, 2), (64, 3), (10_000, 2)])
def test_batch_scoring_ranks_exactly_like_a_per_reader_predict_loop(
    chunk: int, threads: int
) -> None:
    rng = np.random.default_rng(1)
    readers, dims, n_papers, k = 50, 12, 40, 5
    profiles = {
        f"r{i}@example.org": Profile(
            rng.normal(size=dims).astype(np.float32), float(rng.normal()), "0" * 64
        )
        for i in range(readers)
    }
    papers = rng.normal(size=(n_papers, dims)).astype(np.float32)
    exclude = {
        f"r{r}@example.org": rng.choice(n_papers, 3, replace=False).tolist()
        for r in range(0, readers, 4)
    }
    stacked = stack_profiles(profiles)
    ranking = score_all(stacked, papers, k, exclude, chunk=chunk, threads=threads)
    got = [[p for p, _s in ranking.for_reader(r)] for r in range(readers)]
    assert got == per_reader_loop(stacked, papers, k, exclude)
    assert ranking.readers == tuple(profiles)


def test_excluded_papers_are_never_recommended_even_when_few_remain() -> None:
    profile = Profile(np.ones(3, dtype=np.float32), 0.0, "0" * 64)
    papers = np.eye(3, dtype=np.float32)
    ranking = score_all(stack_profiles({"a": profile}), papers, 3, {"a": [0, 2]})
    [(paper, score)] = ranking.for_reader(0)
    assert (paper, score) == (1, 1.0)
    assert ranking.papers[0].tolist() == [1, -1, -1]


def test_no_readers_or_no_papers_score_to_empty_rankings() -> None:
    empty = score_all(stack_profiles({}), np.zeros((4, 3), np.float32), 10)
    assert empty.papers.shape[0] == 0 and empty.readers == ()
    profile = Profile(np.ones(3, dtype=np.float32), 0.0, "0" * 64)
    none = score_all(stack_profiles({"a": profile}), np.zeros((0, 3), np.float32), 10)
    assert none.for_reader(0) == []


def test_stored_profiles_stack_without_the_damaged_one_which_is_named() -> None:
    good = Profile(np.arange(3, dtype=np.float32), 0.5, "ab" * 32)
    other = Profile(np.ones(4, dtype=np.float32), 0.0, "0" * 64)
    blobs = {
        "a@example.org": good.to_bytes(),
        "cut@example.org": good.to_bytes()[:-1],
        "wide@example.org": other.to_bytes(),
        "junk@example.org": b"x" * len(good.to_bytes()),
        "b@example.org": good.to_bytes(),
    }
    stacked = stack_profile_bytes(blobs, 3)
    assert stacked.readers == ("a@example.org", "b@example.org")
    np.testing.assert_array_equal(stacked.weights, [[0, 1, 2], [0, 1, 2]])
    assert stacked.bias.tolist() == [0.5, 0.5]
    assert [line.split(":")[0] for line in stacked.refused] == [
        "cut@example.org",
        "wide@example.org",
        "junk@example.org",
    ]


def test_profiles_of_different_vocabularies_are_refused_not_mixed() -> None:
    a = Profile(np.ones(3, dtype=np.float32), 0.0, "0" * 64)
    b = Profile(np.ones(4, dtype=np.float32), 0.0, "0" * 64)
    with pytest.raises(DigestError, match="different sizes"):
        stack_profiles({"a": a, "b": b})
    with pytest.raises(DigestError, match="same vocabulary"):
        score_all(stack_profiles({"a": a}), np.ones((2, 4), np.float32), 1)


# ---------------------------------------------------------------- explanations


def test_reason_names_the_nearest_liked_paper_and_the_shared_key_terms(
    corpus: list[Paper], vectorizer: Vectorizer
) -> None:
    liked = [
        Paper(
            id="liked-robot",
            title="Diffusion Policy for Dexterous Manipulation",
            abstract="A diffusion policy learns dexterous manipulation from demonstrations.",
        ),
        Paper(
            id="liked-graph",
            title="Message Passing for Molecular Property Prediction",
            abstract="Graph neural networks with message passing.",
        ),
    ]
    paper = Paper(
        id="new",
        title="Scaling Diffusion Policy to Dexterous Manipulation with Tactile Sensing",
        abstract="We train a diffusion policy for dexterous manipulation of tools.",
    )
    reason = explain(
        vectorizer, paper, vectorizer.transform([paper])[0], liked, vectorizer.transform(liked)
    )
    assert reason is not None
    assert reason.liked_id == "liked-robot"
    assert set(reason.shared[:2]) == {"diffusion policy", "dexterous manipulation"}
    assert reason.text() == (
        "Like Diffusion Policy for Dexterous Manipulation — shared: " + ", ".join(reason.shared)
    )


def test_shared_terms_prefer_phrases_and_do_not_repeat_their_words(
    vectorizer: Vectorizer,
) -> None:
    a = Paper(id="a", title="Graph neural networks", abstract="message passing graph")
    b = Paper(id="b", title="Graph neural networks again", abstract="message passing")
    terms = Explainer(vectorizer, [a, b]).shared("a", "b", limit=5)
    words = [w for t in terms for w in t.split()]
    assert len(words) == len(set(words))
    assert any(" " in t for t in terms)


def test_shared_terms_skip_plurals_of_chosen_words_and_phrases_neither_paper_has(
    vectorizer: Vectorizer,
) -> None:
    a = Paper(id="a", title="Chain of thought for node classification with graph neural networks")
    b = Paper(id="b", title="Chain of thought in node classification, graph neural network")
    terms = Explainer(vectorizer, [a, b]).shared("a", "b", limit=6)
    assert "chain thought" in vectorizer.terms and "chain thought" not in terms
    assert "node classification" in terms
    words = [w.rstrip("s") for t in terms for w in t.split()]
    assert len(words) == len(set(words))


def test_one_explainer_names_each_readers_own_liked_paper(vectorizer: Vectorizer) -> None:
    liked = [
        Paper(id="robot", title="Dexterous Manipulation by Diffusion Policy"),
        Paper(id="graph", title="Message Passing in Graph Neural Networks"),
    ]
    edition = [
        Paper(id="new-robot", title="Diffusion Policy for Dexterous Manipulation at Scale"),
        Paper(id="new-graph", title="Graph Neural Networks with Message Passing Revisited"),
    ]
    explainer = Explainer(vectorizer, [*edition, *liked])
    new_vectors = vectorizer.transform(edition)
    liked_vectors = vectorizer.transform(liked)
    for n, expected in enumerate(liked):
        reason = explainer.reason(edition[n].id, new_vectors[n], ["robot", "graph"], liked_vectors)
        assert reason is not None
        assert reason.liked_id == expected.id
        assert reason.text().startswith(f"Like {expected.title} — shared: ")
    unknown = explainer.reason("never-seen", new_vectors[0], ["robot"], liked_vectors[:1])
    assert unknown is not None and unknown.shared == ()


def test_nothing_liked_means_no_reason(vectorizer: Vectorizer, corpus: list[Paper]) -> None:
    vector = vectorizer.transform(corpus[:1])[0]
    empty = np.zeros((0, vectorizer.dimensions), np.float32)
    assert explain(vectorizer, corpus[0], vector, [], empty) is None


# ---------------------------------------------------------------- seeds

STORED = [
    Paper(
        id="2303.04137",
        arxiv_id="2303.04137",
        title="Diffusion Policy: Visuomotor Policy Learning via Action Diffusion",
    ),
    Paper(
        id="2401.01234",
        arxiv_id="2401.01234",
        title="Dexterous Manipulation with Reinforcement Learning: Über-robust Grasping",
    ),
    Paper(id="2312.05432", arxiv_id="2312.05432", title="World Models for Robot Learning"),
    Paper(
        id="nips-attention",
        title="Attention Is All You Need",
        doi="10.5555/3295222.3295349",
    ),
    Paper(id="1234abcd", title="Naive Bayes for Angstrom-scale Strasse Mapping"),
    Paper(id="hash-naive", title="Naïve Bayes for Ångström-scale Straße Mapping"),
]


def refs(name: str) -> list[tuple[SeedKind, str]]:
    return [(r.kind, r.value) for r in parse_seeds((SEEDS / name).read_bytes(), name).refs]


def test_bibtex_with_braces_accents_and_missing_ids_finds_every_paper() -> None:
    seeds = parse_seeds((SEEDS / "library.bib").read_bytes(), "library.bib")
    assert seeds.format is SeedFormat.BIBTEX
    assert [(r.kind, r.value) for r in seeds.refs] == [
        (SeedKind.ARXIV, "2303.04137"),  # eprint + archivePrefix
        (SeedKind.ARXIV, "2401.01234"),  # "arXiv preprint arXiv:2401.01234v2" in journal
        (SeedKind.DOI, "10.5555/3295222.3295349"),
        (SeedKind.TITLE, "Naïve Bayes for Ångström-scale Straße Mapping"),  # no id at all
        (SeedKind.ARXIV, "2312.05432"),  # arXiv's DOI 10.48550/arXiv.X
    ]
    assert seeds.skipped == ["entry empty_entry (line 40): no arXiv id, DOI or title"]
    found = resolve_seeds(seeds.refs, STORED)
    assert found.found == ["2303.04137", "2401.01234", "nips-attention", "1234abcd", "2312.05432"]
    assert found.unknown == []


def test_zotero_csv_export_with_bom_gives_ids_dois_and_titles() -> None:
    assert refs("zotero.csv") == [
        (SeedKind.ARXIV, "2303.04137"),
        (SeedKind.DOI, "10.5555/3295222.3295349"),
        (SeedKind.ARXIV, "2401.01234"),  # only in Extra: "arXiv: 2401.01234"
        (SeedKind.TITLE, "Naïve Bayes for Ångström-scale Straße Mapping"),
    ]


def test_mendeley_csv_with_versioned_id_and_a_paper_we_lack_reports_it() -> None:
    seeds = parse_seeds((SEEDS / "mendeley.csv").read_bytes(), "mendeley.csv")
    resolution = resolve_seeds(seeds.refs, STORED)
    assert resolution.found == ["2312.05432"]
    assert [r.value for r in resolution.unknown] == ["10.1234/not-stored.5"]
    assert resolution.summary() == (
        "1 seed paper(s) added; 1 not found among stored papers: 10.1234/not-stored.5"
    )


def test_pasted_ids_and_urls_are_read_and_unknown_ids_reported() -> None:
    seeds = parse_seeds((SEEDS / "ids.txt").read_bytes())
    assert seeds.format is SeedFormat.TEXT
    resolution = resolve_seeds(seeds.refs, STORED)
    assert resolution.found == ["2303.04137", "2401.01234", "2312.05432", "nips-attention"]
    assert [r.value for r in resolution.unknown] == ["9999.99999"]
    assert "9999.99999" in resolution.summary()
    assert seeds.skipped == ["line 6: 'not-an-id' is not an arXiv id, URL or DOI"]


def test_csv_formulas_are_ignored_and_counted_never_used() -> None:
    seeds = parse_seeds((SEEDS / "formulas.csv").read_bytes(), "formulas.csv")
    assert all("=" not in r.value and "cmd" not in r.value for r in seeds.refs)
    assert [(r.kind, r.value) for r in seeds.refs] == [
        (SeedKind.DOI, "10.5555/3295222.3295349"),
        (SeedKind.TITLE, "Diffusion Policy: Visuomotor Policy Learning via Action Diffusion"),
    ]
    assert seeds.skipped == [
        "row 2, title: a formula was ignored",
        "row 3, title: a formula was ignored",
        "row 4, url: a formula was ignored",
    ]


def test_many_formula_rows_keep_a_few_reasons_count_all_and_say_it_in_one_line() -> None:
    data = b"Title,DOI\n" + b"=1+1,@SUM(2)\n" * 1000
    seeds = parse_seeds(data, "export.csv")
    assert seeds.refs == []
    assert len(seeds.skipped) == MAX_SKIPPED
    assert seeds.skipped_count == 2000
    assert seeds.summary() == (
        "0 paper(s) named in the csv seeds; skipped row 2, title: a formula was ignored "
        "and 1999 more"
    )


def test_csv_field_over_the_csv_limit_ends_the_file_with_a_reason() -> None:
    data = b'Title,DOI\nFirst paper,\n"' + b"a" * 200_000 + b'",x\nLater paper,\n'
    seeds = parse_seeds(data, "export.csv")
    assert [r.value for r in seeds.refs] == ["First paper"]
    assert seeds.skipped[0].startswith("row 3: not readable as CSV (field larger than")


@pytest.mark.parametrize(
    "data",
    [
        b"@misc{k, title={" + b"{" * 1_000_000,
        b"@misc{k," + b" " * 1_000_000 + b"}",
        b"@misc{k, title={" + b"\\'" * 500_000 + b"}}",
        b"@" * 1_000_000,
    ],
    ids=["unclosed-braces", "a-million-spaces", "a-huge-title", "only-at-signs"],
)
def test_pathological_bibtex_under_the_size_limit_is_skipped_quickly(data: bytes) -> None:
    seeds = parse_seeds(data, "library.bib")
    assert seeds.refs == []
    assert seeds.skipped_count <= 1


def test_fifty_megabyte_bibtex_is_one_clear_error_before_parsing() -> None:
    entry = b"@misc{k, title={Diffusion Policy}, eprint={2303.04137}}\n"
    huge = entry * (50 * 1024 * 1024 // len(entry) + 1)
    with pytest.raises(DigestError) as caught:
        parse_seeds(huge, "library.bib")
    message = str(caught.value)
    assert "\n" not in message
    assert "library.bib is 52.4 MB, over the 5 MB limit" in message
    assert len(huge) > MAX_SEED_BYTES


def test_too_many_papers_in_one_seeds_file_is_one_clear_error() -> None:
    text = "\n".join(f"2401.{i:05d}" for i in range(2500)).encode()
    with pytest.raises(DigestError, match="names more than 2000 papers"):
        parse_seeds(text)


@pytest.mark.parametrize(
    ("latex", "text"),
    [
        ('M{\\"u}ller', "Müller"),
        ("Fran{\\c{c}}ois", "François"),
        ("Ch{\\'e}rif", "Chérif"),
        ('{Na\\"{\\i}ve}', "Naïve"),
        ("Stra{\\ss}e", "Straße"),
        ('{\\AA}ngstr{\\"o}m', "Ångström"),
        ("{BERT}: Pre-training -- fast \\& cheap", "BERT: Pre-training – fast & cheap"),
        ("\\textbf{Bold} claims", "Bold claims"),
    ],
)
def test_latex_accents_and_braces_become_plain_text(latex: str, text: str) -> None:
    assert latex_to_text(latex) == text


def test_titles_match_across_case_accents_and_punctuation() -> None:
    assert normalise_title("{BERT}: Pre-Training of Deep  Transformers") == normalise_title(
        "bert pre-training of deep transformers"
    )
    assert normalise_title("Naïve Ångström") == "naive angstrom"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe\x00\xd8",
        b"@misc{",
        b"@misc{k, title = {unclosed",
        b"Title\n\n\n",
        b"\x00" * 10,
    ],
)
def test_malformed_seed_files_never_crash(data: bytes) -> None:
    seeds = parse_seeds(data)
    assert isinstance(seeds.refs, list)
