"""Tokens: scoped by purpose, bound to an address, expiring, rotation-proof, never forgeable."""

from __future__ import annotations

import pytest

from digest.errors import TokenError
from digest.tokens import TokenExpired, Tokens, link


def test_a_token_round_trips_and_is_bound_to_its_address() -> None:
    tokens = Tokens("s3cret")
    claims = tokens.read("unsubscribe", tokens.make("unsubscribe", 42, "Ada@Example.org"))
    assert claims.subscriber_id == 42
    assert claims.is_for("ada@example.org") and not claims.is_for("bob@example.org")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-3],  # truncated
        # one character of the signature changed (not the last: its low bits are padding)
        lambda t: (
            t[: t.rindex(".") + 1]
            + ("A" if t[t.rindex(".") + 1] != "A" else "B")
            + t[t.rindex(".") + 2 :]
        ),
        lambda t: "x" + t,
        lambda t: "",
        lambda t: "not-a-token",
    ],
)
def test_forged_or_truncated_tokens_are_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    tokens = Tokens("s3cret")
    with pytest.raises(TokenError, match="not valid"):
        tokens.read("manage", mangle(tokens.make("manage", 1, "a@example.org")))


def test_a_token_for_one_purpose_fails_for_another() -> None:
    tokens = Tokens("s3cret")
    with pytest.raises(TokenError):
        tokens.read("unsubscribe", tokens.make("confirm", 1, "a@example.org"))


def test_another_secret_cannot_read_it_but_a_rotated_one_can() -> None:
    old = Tokens("old-secret").make("unsubscribe", 7, "a@example.org")
    with pytest.raises(TokenError):
        Tokens("new-secret").read("unsubscribe", old)
    rotated = Tokens("new-secret", old_secrets=["old-secret"])
    assert rotated.read("unsubscribe", old).subscriber_id == 7
    assert Tokens("new-secret").read("unsubscribe", rotated.make("unsubscribe", 7, "a@x.org"))


def test_expiry_is_its_own_error() -> None:
    now = [1_800_000_000.0]
    tokens = Tokens("s3cret", clock=lambda: now[0])
    token = tokens.make("confirm", 1, "a@example.org")
    now[0] += 3600
    assert tokens.read("confirm", token, max_age=3600).subscriber_id == 1
    now[0] += 1
    with pytest.raises(TokenExpired, match="expired"):
        tokens.read("confirm", token, max_age=3600)


def test_no_secret_is_a_clear_error_and_links_are_absolute() -> None:
    with pytest.raises(TokenError, match="DIGEST_SECRET is not set"):
        Tokens("")
    assert link("https://d.example.org/", "unsubscribe", "T") == "https://d.example.org/u/T"
