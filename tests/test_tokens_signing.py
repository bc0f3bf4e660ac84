"""The links' tokens are itsdangerous's tokens, byte for byte, only made faster: links in
emails already sent, and the web app reading them, must not notice the change."""

from __future__ import annotations

import random
import time

from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from digest.tokens import PURPOSES, Tokens, email_tag


def _reference(secret: str, purpose: str, now: float, data: list[object]) -> str:
    class At(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(now)

    serializer = URLSafeTimedSerializer([secret], salt=f"digest.{purpose}", signer=At)
    return str(serializer.dumps(data))


def test_tokens_are_exactly_what_itsdangerous_signs_for_every_purpose_and_paper() -> None:
    rng = random.Random(13)
    secret = "s3cret-0123456789abcdef0123456789abcdef"
    now = 1_764_500_000.7
    tokens = Tokens(secret, ["old-secret"], clock=lambda: now)
    # long repetitive ids compress: the zlib branch of the format is covered too
    papers = ["2509.12345", "hep-th/9901001", "é" * 3, "a" * 200, "x" * 40 + "2509.00001"]
    for _ in range(200):
        sid = rng.randrange(1, 10**9)
        email = f"user{rng.randrange(10**6)}@Example.org"
        for purpose in PURPOSES:
            expected = _reference(secret, purpose, now, [sid, email_tag(email)])
            assert tokens.make(purpose, sid, email) == expected
        paper = rng.choice(papers)
        expected = _reference(secret, "feedback", now, [sid, email_tag(email), paper])
        assert tokens.make_paper(sid, email, paper) == expected
        assert tokens.read_paper(tokens.make_paper(sid, email, paper))[1] == paper


def test_a_token_made_by_the_fast_signer_reads_back_with_its_age_checked() -> None:
    tokens = Tokens("s3cret-0123456789abcdef0123456789abcdef", clock=time.time)
    token = tokens.make("confirm", 7, "a@example.org")
    claims = tokens.read("confirm", token, max_age=60)
    assert claims.subscriber_id == 7 and claims.is_for("A@example.org")
