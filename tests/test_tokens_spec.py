"""The signed tokens' specification: each purpose its own key, a token bound to one person (and
for feedback to one paper), time judged by an injected clock, old secrets that read but never
sign, a form that survives any URL, and refusals that say "not valid" for anything else."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer

from digest.errors import ConfigError, TokenError
from digest.tokens import (
    FEEDBACK_KINDS,
    LINK_PATHS,
    PURPOSES,
    MissingSecret,
    TokenClaims,
    TokenExpired,
    Tokens,
    email_tag,
    feedback_links,
    link,
    subscriber_links,
)

SECRET = "spec-secret-0123456789abcdef0123456789"
T0 = 1_800_000_000.0
URL_SAFE = re.compile(r"^[A-Za-z0-9_\-.]+$")


class Clock:
    """The time tokens are made and read at, moved by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# Purposes


@pytest.mark.parametrize(("made", "read"), list(itertools.permutations(PURPOSES[:5], 2)))
def test_a_token_of_one_purpose_is_refused_for_every_other(made: str, read: str) -> None:
    tokens = Tokens(SECRET)
    with pytest.raises(TokenError, match=f"this {read} link is not valid"):
        tokens.read(read, tokens.make(made, 5, "ada@example.org"))


@pytest.mark.parametrize("purpose", PURPOSES[:5])
def test_a_feedback_token_opens_no_page_and_no_page_token_records_feedback(purpose: str) -> None:
    tokens = Tokens(SECRET)
    with pytest.raises(TokenError):
        tokens.read(purpose, tokens.make_paper(5, "ada@example.org", "2606.00001"))
    with pytest.raises(TokenError, match="feedback link is not valid"):
        tokens.read_paper(tokens.make(purpose, 5, "ada@example.org"))


@pytest.mark.parametrize("purpose", ["admin", "", "Confirm", "unsubscribe "])
def test_an_unknown_purpose_is_refused_both_ways(purpose: str) -> None:
    tokens = Tokens(SECRET)
    with pytest.raises(TokenError, match="unknown token purpose"):
        tokens.make(purpose, 1, "a@example.org")
    with pytest.raises(TokenError, match="unknown token purpose"):
        tokens.read(purpose, tokens.make("manage", 1, "a@example.org"))


def test_a_page_token_of_the_feedback_purpose_is_not_a_feedback_token() -> None:
    """`make("feedback", ...)` signs two fields; a feedback link needs three (the paper)."""
    tokens = Tokens(SECRET)
    with pytest.raises(TokenError, match="feedback link is not valid"):
        tokens.read_paper(tokens.make("feedback", 1, "a@example.org"))


# People and papers


@given(
    subscriber_id=st.integers(min_value=0, max_value=2**53),
    email=st.emails(),
    purpose=st.sampled_from(PURPOSES),
)
def test_every_token_round_trips_and_is_url_safe(
    subscriber_id: int, email: str, purpose: str
) -> None:
    tokens = Tokens(SECRET, clock=Clock())
    token = tokens.make(purpose, subscriber_id, email)
    assert URL_SAFE.match(token)
    claims = tokens.read(purpose, token)
    assert claims == TokenClaims(subscriber_id, email_tag(email))
    assert claims.is_for(email) and claims.is_for(f"  {email.upper()} ")


@given(paper_id=st.text(min_size=1, max_size=40))
def test_a_feedback_token_carries_any_paper_id_back_unchanged(paper_id: str) -> None:
    tokens = Tokens(SECRET)
    token = tokens.make_paper(9, "ada@example.org", paper_id)
    assert URL_SAFE.match(token)
    claims, paper = tokens.read_paper(token)
    assert paper == paper_id and claims.subscriber_id == 9 and claims.is_for("ada@example.org")


def test_the_address_is_not_in_the_token_only_a_short_tag_of_it() -> None:
    token = Tokens(SECRET).make("manage", 3, "ada.lovelace@example.org")
    assert "lovelace" not in token and "example" not in token
    assert re.fullmatch(r"[0-9a-f]{12}", email_tag("ada.lovelace@example.org"))


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("ada@example.org", "ADA@EXAMPLE.ORG", True),
        ("ada@example.org", " ada@example.org\n", True),
        ("ada@example.org", "ada@example.com", False),
        ("ada@example.org", "ada+x@example.org", False),
    ],
)
def test_the_tag_ignores_case_and_surrounding_space_but_nothing_else(
    a: str, b: str, same: bool
) -> None:
    assert (email_tag(a) == email_tag(b)) is same


def test_two_tokens_for_one_person_differ_only_by_what_they_open() -> None:
    tokens = Tokens(SECRET, clock=Clock())
    made = {p: tokens.make(p, 1, "a@example.org") for p in PURPOSES}
    assert len(set(made.values())) == len(PURPOSES)
    assert tokens.make("web", 1, "a@example.org") == made["web"]  # same clock: same token


# Time


def test_a_token_without_a_max_age_never_expires() -> None:
    clock = Clock()
    tokens = Tokens(SECRET, clock=clock)
    token = tokens.make("unsubscribe", 1, "a@example.org")
    clock.now += 10 * 365 * 86400
    assert tokens.read("unsubscribe", token).subscriber_id == 1


def test_an_expired_token_is_also_a_token_error_and_says_which_link() -> None:
    clock = Clock()
    tokens = Tokens(SECRET, clock=clock)
    token = tokens.make("confirm", 1, "a@example.org")
    clock.now += 49 * 3600
    with pytest.raises(TokenError) as info:
        tokens.read("confirm", token, max_age=48 * 3600)
    assert isinstance(info.value, TokenExpired)
    assert str(info.value) == "this confirm link has expired"


def test_a_forged_token_is_not_valid_even_when_it_is_also_old() -> None:
    """Expiry is only ever reported for a genuine token: a forgery never learns it was close."""
    clock = Clock()
    token = Tokens("another-secret-of-some-length-00000", clock=clock).make("confirm", 1, "a@x.org")
    clock.now += 10 * 86400
    with pytest.raises(TokenError) as info:
        Tokens(SECRET, clock=clock).read("confirm", token, max_age=3600)
    assert not isinstance(info.value, TokenExpired)


# Secrets and rotation


def test_old_secrets_read_but_never_sign() -> None:
    rotated = Tokens("new-secret", old_secrets=["old-secret"])
    fresh = rotated.make("manage", 4, "a@example.org")
    with pytest.raises(TokenError):
        Tokens("old-secret").read("manage", fresh)
    assert Tokens("new-secret").read("manage", fresh).subscriber_id == 4


def test_every_old_secret_in_the_list_still_reads_its_links() -> None:
    first = Tokens("first").make("unsubscribe", 1, "a@example.org")
    second = Tokens("second").make_paper(2, "b@example.org", "2606.1")
    now = Tokens("third", old_secrets=["first", "", "second"])
    assert now.read("unsubscribe", first).subscriber_id == 1
    assert now.read_paper(second)[1] == "2606.1"


def test_no_secret_is_a_configuration_error_that_says_how_to_make_one() -> None:
    with pytest.raises(MissingSecret) as info:
        Tokens("", old_secrets=["an-old-one"])
    assert isinstance(info.value, ConfigError) and isinstance(info.value, TokenError)
    assert "secrets.token_hex(32)" in str(info.value)


# Tampering


@pytest.mark.parametrize(
    "payload",
    [
        ["1", "abcdefabcdef"],  # id as text
        [1],  # no tag
        [1, "abcdefabcdef", "extra"],
        {"id": 1},
        "1",
        [True, 3],
    ],
)
def test_a_genuinely_signed_token_with_another_shape_is_not_valid(payload: object) -> None:
    """A token someone signed with our key but for another layout (an old version, a bug)
    opens nothing instead of failing deeper down."""
    raw = URLSafeTimedSerializer(SECRET, salt="digest.manage").dumps(payload)
    with pytest.raises(TokenError, match=r"this manage link is not valid$"):
        Tokens(SECRET).read("manage", raw)


@pytest.mark.parametrize("payload", [[1, "tag"], [1, 2, "p"], ["1", "t", "p"], [1, "t", 3]])
def test_a_genuinely_signed_feedback_token_with_another_shape_is_not_valid(
    payload: object,
) -> None:
    raw = URLSafeTimedSerializer(SECRET, salt="digest.feedback").dumps(payload)
    with pytest.raises(TokenError, match=r"this feedback link is not valid$"):
        Tokens(SECRET).read_paper(raw)


@given(cut=st.integers(min_value=1, max_value=20))
def test_any_token_cut_short_is_refused(cut: int) -> None:
    tokens = Tokens(SECRET, clock=Clock())
    token = tokens.make("unsubscribe", 77, "a@example.org")
    with pytest.raises(TokenError):
        tokens.read("unsubscribe", token[:-cut])


# Links


def test_each_purpose_has_its_own_short_path_under_the_base_url() -> None:
    assert set(LINK_PATHS) == set(PURPOSES)
    assert len(set(LINK_PATHS.values())) == len(PURPOSES)
    for purpose, path in LINK_PATHS.items():
        assert link("https://d.example.org/app/", purpose, "T") == (
            f"https://d.example.org/app/{path}/T"
        )


def test_every_email_carries_four_links_each_opening_its_own_page() -> None:
    tokens = Tokens(SECRET)
    links = subscriber_links(tokens, "https://d.example.org", 8, "ada@example.org")
    assert set(links) == {"unsubscribe", "manage", "feed", "web"}
    for purpose, url in links.items():
        prefix = f"https://d.example.org/{LINK_PATHS[purpose]}/"
        assert url.startswith(prefix)
        claims = tokens.read(purpose, url.removeprefix(prefix))
        assert claims.subscriber_id == 8 and claims.is_for("ada@example.org")


def test_feedback_links_are_more_then_less_with_one_token_for_that_paper() -> None:
    tokens = Tokens(SECRET)
    more, less = feedback_links(tokens, "https://d.example.org/", 8, "a@example.org", "2606.7")
    assert FEEDBACK_KINDS == ("more", "less")
    assert more.startswith("https://d.example.org/fb/more/")
    assert less.startswith("https://d.example.org/fb/less/")
    token = more.rsplit("/", 1)[1]
    assert less.rsplit("/", 1)[1] == token
    claims, paper = tokens.read_paper(token)
    assert (claims.subscriber_id, paper) == (8, "2606.7")
