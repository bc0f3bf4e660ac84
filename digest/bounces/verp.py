"""VERP envelope senders: `bounces+TOKEN@domain`, where TOKEN names one delivery, signed.

A bounce is matched to the delivery by the address it was sent back to, so the token must be
unforgeable (HMAC with the app secret: a made-up bounce cannot unsubscribe anyone) and survive
MTAs that lowercase local parts (lowercase base32, digits, `-`). Pure: the secret is a
parameter; this module neither reads the environment nor touches the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

from digest.bounces.events import VerpDelivery
from digest.errors import TokenError

MAC_BYTES = 10  # 80 bits, 16 base32 characters: a forger has no offline oracle to grind
# id (at most 19 digits: an int64 rowid), edition (daily 20260924 or weekly 2026w39), MAC
TOKEN_RE = re.compile(r"([0-9]{1,19})-([0-9]{8}|[0-9]{4}w[0-9]{2})-([a-z2-7]{16})")


def compact_edition(edition: str) -> str:
    """`2026-09-24` -> `20260924`, `2026-W39` -> `2026w39`: the token's form of an edition."""
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", edition):
        return edition.replace("-", "")
    if re.fullmatch(r"[0-9]{4}-W[0-9]{2}", edition):
        return edition.replace("-W", "w")
    raise TokenError(f"edition {edition!r} is neither YYYY-MM-DD nor YYYY-Www")


def expand_edition(compact: str) -> str:
    """The inverse of `compact_edition`, for a token already matched by TOKEN_RE."""
    if "w" in compact:
        year, _, week = compact.partition("w")
        return f"{year}-W{week}"
    return f"{compact[:4]}-{compact[4:6]}-{compact[6:]}"


def mac(secret: str, subscriber_id: int, edition: str) -> str:
    """The token's signature: HMAC-SHA256 of (subscriber, edition), cut to MAC_BYTES, in
    lowercase base32 so a lowercasing MTA cannot break it."""
    digest = hmac.new(
        secret.encode("utf-8"), f"digest.verp:{subscriber_id}:{edition}".encode(), hashlib.sha256
    ).digest()[:MAC_BYTES]
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def make_token(secret: str, subscriber_id: int, edition: str) -> str:
    """The signed token for one delivery, e.g. `42-20260924-k5x...`.

    Raises:
        TokenError: no secret, an id outside int64's 0..2**63-1, or an edition of neither form.
    """
    if not secret:
        raise TokenError("DIGEST_SECRET is not set: VERP tokens must be signed")
    if not 0 <= subscriber_id < 2**63:
        raise TokenError(f"subscriber id {subscriber_id} cannot be in a VERP token")
    return f"{subscriber_id}-{compact_edition(edition)}-{mac(secret, subscriber_id, edition)}"


def read_token(secret: str, token: str, old_secrets: Sequence[str] = ()) -> VerpDelivery:
    """The delivery a genuine token names.

    Case-insensitive, since some MTAs lowercase (or uppercase) the local part on the way back.
    Tokens made with an old secret stay valid after a rotation.

    Raises:
        TokenError: a malformed, altered or forged token (the bounce is ignored, not acted on).
    """
    match = TOKEN_RE.fullmatch(token.strip().lower())
    if match is None:
        raise TokenError(f"{token[:80]!r} is not a VERP token")
    subscriber_id, edition = int(match[1]), expand_edition(match[2])
    for key in [secret, *old_secrets]:
        # constant time: response timing must not let anyone grind a MAC byte by byte
        if key and hmac.compare_digest(match[3], mac(key, subscriber_id, edition)):
            return VerpDelivery(subscriber_id, edition)
    raise TokenError(f"VERP token {token[:80]!r} does not verify (altered or forged)")


def envelope_sender(
    bounce_address: str, secret: str, subscriber_id: int, edition: str, delimiter: str = "+"
) -> str:
    """`bounces@example.org` -> `bounces+TOKEN@example.org`, the MAIL FROM of one delivery.

    Raises:
        TokenError: the bounce address is not local@domain, or the token cannot be made.
    """
    local, at, domain = bounce_address.strip().rpartition("@")
    if not local or not at or not domain:
        raise TokenError(f"bounce address {bounce_address!r} is not local@domain")
    return f"{local}{delimiter}{make_token(secret, subscriber_id, edition)}@{domain}"


def token_in_address(address: str, base_address: str, delimiter: str = "+") -> str | None:
    """The token part of `base+TOKEN@domain` when the address is a VERP form of
    `base_address` (compared case-insensitively), else None. Unverified."""
    # rpartition: a quoted local part may itself contain "@"
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base_local, _, base_domain = base_address.strip().rpartition("@")
    if not local or domain.lower() != base_domain.lower():
        return None
    prefix = f"{base_local}{delimiter}".lower()
    if not local.lower().startswith(prefix) or len(local) == len(prefix):
        return None
    return local[len(prefix) :]


def find_token(text: str) -> str | None:
    """A token-shaped word anywhere in `text` (a subject line); unverified."""
    match = TOKEN_RE.search(text.lower())
    return match[0] if match else None
