"""What the bounce and webhook tests share: a stand-in for SNS's signing certificate, and
SNS's signature written out as AWS documents it (independently of the code under test)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


def sns_certificate(key: rsa.RSAPrivateKey, now: datetime) -> bytes:
    """A self-signed certificate standing in for SNS's signing certificate."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def sns_signature(
    key: rsa.RSAPrivateKey,
    message: Mapping[str, object],
    algorithm: hashes.HashAlgorithm | None = None,
) -> str:
    """The Signature of an SNS message: "Key\\nValue\\n" for each signed key present, in
    alphabetical order, signed with SHA256 (or the algorithm given) and base64-encoded."""
    if message["Type"] == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{k}\n{message[k]}\n" for k in keys if k in message)
    signature = key.sign(text.encode(), padding.PKCS1v15(), algorithm or hashes.SHA256())
    return base64.b64encode(signature).decode()
