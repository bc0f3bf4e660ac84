"""Signed tokens for the links in emails: confirm, unsubscribe, manage, and the read-only
"web" (an email as a page) and "feed" (a personal Atom feed).

A token carries the subscriber's id and a short tag of their address, signed (HMAC, via
itsdangerous) with the secret from the environment and salted by purpose, so a token for one
purpose never works for another and a reused id never opens someone else's page. Old secrets
stay accepted after a rotation, so unsubscribe links in old emails keep working.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
import json
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from digest.errors import ConfigError, TokenError

PURPOSES = ("confirm", "unsubscribe", "manage", "web", "feed", "feedback")
LINK_PATHS = {
    "confirm": "c",
    "unsubscribe": "u",
    "manage": "manage",
    "web": "w",
    "feed": "f",
    "feedback": "fb",
}
FEEDBACK_KINDS = ("more", "less")
CONFIRM_MAX_AGE = 48 * 3600


class TokenExpired(TokenError):
    """A well-signed token past its age: the page says so and offers a fresh link (410)."""


class MissingSecret(ConfigError, TokenError):
    """No DIGEST_SECRET: our own configuration, so commands refuse to start (exit 2), while
    code that catches TokenError still sees a token problem."""


@dataclass(frozen=True)
class TokenClaims:
    """What a genuine token says: a subscriber id and a tag of the address it was made for.
    A page opens only when `is_for` matches the address now under that id, so an id that
    has come to mean someone else (a rebuilt database) opens nothing."""

    subscriber_id: int
    email_tag: str

    def is_for(self, email: str) -> bool:
        """Constant-time check that the token was made for this address."""
        return hmac.compare_digest(self.email_tag, email_tag(email))


def email_tag(email: str) -> str:
    """A short hash of the address: a token opens only the page of the address it was made for,
    without putting the address itself in the URL."""
    return _tag(email)


@functools.lru_cache(maxsize=4096)
def _tag(email: str) -> str:
    """Every link of one email carries the same tag: hashed once."""
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()[:12]


_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def _plain(item: object) -> str | None:
    """An int or a string as compact JSON prints it, when that is plain; else None."""
    if type(item) is int:
        return str(item)
    if (
        type(item) is str
        and item.isascii()
        and item.isprintable()
        and '"' not in item
        and "\\" not in item
    ):
        return f'"{item}"'
    return None


def _json(obj: object) -> bytes:
    """`obj` as itsdangerous's compact JSON; a list of ints and plain strings (every token's
    payload) printed directly."""
    if type(obj) is list:
        printed = [_plain(item) for item in obj]
        if None not in printed:
            return f"[{','.join(printed)}]".encode()  # type: ignore[arg-type]
    return _COMPACT_JSON(obj).encode()


class _FastSigner:
    """Makes the tokens `URLSafeTimedSerializer(...).loads` reads (same JSON, timestamp and
    HMAC-SHA1 over the django-concat derived key), without rebuilding a signer, re-deriving
    the key and re-creating an encoder per token: a digest signs a dozen or more (each paper's
    feedback link), so itsdangerous's per-call setup was a fifth of building an email in the
    daily job. Payloads (ids and short hashes) are never zlib-packed: itsdangerous reads both
    forms, and trying zlib on each cost more than the bytes it could save. Reading stays with
    itsdangerous."""

    def __init__(self, secret: str, salt: str, clock: Callable[[], float]) -> None:
        key = hashlib.sha1(salt.encode() + b"signer" + secret.encode()).digest()
        self._mac = hmac.new(key, digestmod=hashlib.sha1)
        self._clock = clock

    def dumps(self, obj: object) -> str:
        """The signed, URL-safe token of `obj`."""
        payload = _b64(_json(obj))
        stamp = _b64(struct.pack(">Q", int(self._clock())).lstrip(b"\x00"))
        value = payload + b"." + stamp
        mac = self._mac.copy()
        mac.update(value)
        return (value + b"." + _b64(mac.digest())).decode()


def _signer_with(clock: Callable[[], float]) -> type[TimestampSigner]:
    """itsdangerous reads the time in its signer: one that asks `clock` lets tests make a token
    an hour old without waiting an hour."""

    class ClockSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return ClockSigner


class Tokens:
    """Makes and reads tokens; `old_secrets` are accepted but never used to sign."""

    def __init__(
        self,
        secret: str,
        old_secrets: Sequence[str] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Raises:
        TokenError: no secret: links in emails could not be signed.
        """
        if not secret:
            raise MissingSecret(
                "DIGEST_SECRET is not set: links in emails must be signed; set it to a long "
                "random string (python3 -c 'import secrets; print(secrets.token_hex(32))')"
            )
        keys = [s for s in old_secrets if s] + [secret]
        self._serializers = {
            purpose: URLSafeTimedSerializer(
                keys, salt=f"digest.{purpose}", signer=_signer_with(clock)
            )
            for purpose in PURPOSES
        }
        self._signers = {
            purpose: _FastSigner(secret, f"digest.{purpose}", clock) for purpose in PURPOSES
        }

    def make(self, purpose: str, subscriber_id: int, email: str) -> str:
        """A signed token for one subscriber's link of one purpose (URL-safe)."""
        self._serializer(purpose)  # an unknown purpose raises
        return self._signers[purpose].dumps([subscriber_id, email_tag(email)])

    def read(self, purpose: str, token: str, max_age: int | None = None) -> TokenClaims:
        """The claims of a genuine token of this purpose.

        Raises:
            TokenExpired: well signed but older than `max_age` (offer a fresh link).
            TokenError: forged, cut short, of another purpose or of an unknown one.
        """
        serializer = self._serializer(purpose)
        try:
            data = serializer.loads(token, max_age=max_age)
        except SignatureExpired as ex:
            raise TokenExpired(f"this {purpose} link has expired") from ex
        except BadSignature as ex:
            raise TokenError(f"this {purpose} link is not valid (mistyped or cut short?)") from ex
        if (
            not isinstance(data, list)
            or len(data) != 2
            or not isinstance(data[0], int)
            or not isinstance(data[1], str)
        ):
            raise TokenError(f"this {purpose} link is not valid")
        return TokenClaims(data[0], data[1])

    def make_paper(self, subscriber_id: int, email: str, paper_id: str) -> str:
        """A "More/Less like this" token: signed for one subscriber AND one paper, so it
        records an opinion on that paper only, and only for that person."""
        return self._signers["feedback"].dumps([subscriber_id, email_tag(email), paper_id])

    def read_paper(self, token: str) -> tuple[TokenClaims, str]:
        """The claims and paper id of a genuine feedback token.

        Raises:
            TokenError: forged, cut short, or not a feedback token.
        """
        try:
            data = self._serializer("feedback").loads(token)
        except BadSignature as ex:
            raise TokenError("this feedback link is not valid (mistyped or cut short?)") from ex
        if (
            not isinstance(data, list)
            or len(data) != 3
            or not isinstance(data[0], int)
            or not all(isinstance(x, str) for x in data[1:])
        ):
            raise TokenError("this feedback link is not valid")
        return TokenClaims(data[0], data[1]), data[2]

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        if purpose not in self._serializers:
            raise TokenError(f"unknown token purpose {purpose!r}")
        return self._serializers[purpose]


def link(base_url: str, purpose: str, token: str) -> str:
    """The absolute URL of a token's page: /c/, /u/, /manage/, /w/ (the latest email as a
    page; add `/EDITION` for one edition's) or /f/ (the Atom feed)."""
    return f"{base_url.rstrip('/')}/{LINK_PATHS[purpose]}/{token}"


def subscriber_links(
    tokens: Tokens, base_url: str, subscriber_id: int, email: str
) -> dict[str, str]:
    """The URLs every email to this subscriber carries: unsubscribe, manage, feed, and web
    (their latest email as a page; the renderer appends the edition for one email's own)."""
    return {
        purpose: link(base_url, purpose, tokens.make(purpose, subscriber_id, email))
        for purpose in ("unsubscribe", "manage", "feed", "web")
    }


def feedback_links(
    tokens: Tokens, base_url: str, subscriber_id: int, email: str, paper_id: str
) -> tuple[str, str]:
    """The "More like this" and "Less like this" URLs of one paper for one subscriber."""
    token = tokens.make_paper(subscriber_id, email, paper_id)
    base = base_url.rstrip("/")
    return f"{base}/fb/more/{token}", f"{base}/fb/less/{token}"
