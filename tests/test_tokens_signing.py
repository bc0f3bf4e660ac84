"""The links' tokens are itsdangerous's tokens, only made faster: itsdangerous reads every
one with the same claims, links in emails already sent (zlib-packed or not) still read, and
where itsdangerous would not pack a payload, the bytes are its own, byte for byte."""

from __future__ import annotations

import json
import random
import time
import zlib

from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from digest.tokens import PURPOSES, Tokens, email_tag


def _reference(secret: str, purpose: str, now: float, data: list[object]) -> str:
    class At(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(now)

    serializer = URLSafeTimedSerializer([secret], salt=f"digest.{purpose}", signer=At)
    return str(serializer.dumps(data))


def _packs(data: list[object]) -> bool:
    """Whether itsdangerous zlib-packs this payload (when that saves 2 bytes or more)."""
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return len(zlib.compress(raw)) < len(raw) - 1


def test_tokens_read_as_itsdangerous_signs_them_for_every_purpose_and_paper() -> None:
    rng = random.Random(13)
    secret = "s3cret-0123456789abcdef0123456789abcdef"
    now = 1_764_500_000.7
    tokens = Tokens(secret, ["old-secret"], clock=lambda: now)
    # long repetitive ids pack: an old link's zlib form must still read
    papers = ["2509.12345", "hep-th/9901001", "é" * 3, "a" * 200, "x" * 40 + "2509.00001"]
    packed = 0
    for _ in range(200):
        sid = rng.randrange(1, 10**9)
        email = f"user{rng.randrange(10**6)}@Example.org"
        for purpose in PURPOSES:
            expected = _reference(secret, purpose, now, [sid, email_tag(email)])
            assert tokens.make(purpose, sid, email) == expected
            assert tokens.read(purpose, expected).subscriber_id == sid
        paper = rng.choice(papers)
        data: list[object] = [sid, email_tag(email), paper]
        expected = _reference(secret, "feedback", now, data)
        ours = tokens.make_paper(sid, email, paper)
        if _packs(data):
            packed += 1
            assert expected.startswith(".") and not ours.startswith(".")
            assert tokens.read_paper(expected) == tokens.read_paper(ours), "old links read"
        else:
            assert ours == expected
        assert tokens.read_paper(ours)[1] == paper
    assert packed > 20, "the packed form was exercised"


def test_a_token_made_by_the_fast_signer_reads_back_with_its_age_checked() -> None:
    tokens = Tokens("s3cret-0123456789abcdef0123456789abcdef", clock=time.time)
    token = tokens.make("confirm", 7, "a@example.org")
    claims = tokens.read("confirm", token, max_age=60)
    assert claims.subscriber_id == 7 and claims.is_for("A@example.org")
