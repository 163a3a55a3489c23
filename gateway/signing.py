"""Signed on-the-fly URLs: `/v1/img/{signature}/{namespace}/{pipeline}/{variant}/{source}[?expires=T]`.

The signature is HMAC-SHA256 over the path after the signature segment, plus `?expires=T` when the
URL expires, encoded as unpadded base64url (43 characters). Whoever holds a key can mint URLs
for any pipeline, variant and stored source; nobody else can, and nobody can change a URL's
variant or stretch its expiry without breaking the signature.

Rotation: the gateway accepts several keys at once and signs with the first. Deploy the new key
second, then first, then drop the old one: URLs minted with either stay valid throughout.
Comparison is constant-time (`hmac.compare_digest`) against every key, so timing reveals neither
which key matched nor how much of a forged signature was right.

Pure and standard-library only: the CLI and the client sign with the same code the gateway checks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

IMG_PREFIX = "/v1/img"
SOURCE_KEY = re.compile(r"^[0-9a-f]{64}$")
"""A stored source's key: its sha256 as lowercase hex (the only thing a signed URL may name)."""


class Verdict(StrEnum):
    VALID = "valid"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ImageAddress:
    """What a signed URL names."""

    namespace: str
    pipeline: str
    variant: str
    source: str
    """The source's sha256 (its key in the region's source store)."""
    expires: int | None = None
    """Unix time after which the URL is refused."""

    def path(self) -> str:
        """`/{namespace}/{pipeline}/{variant}/{source}[?expires=T]`: what the signature covers."""
        parts = (self.namespace, self.pipeline, self.variant, self.source)
        path = "/" + "/".join(quote(part, safe="") for part in parts)
        if self.expires is not None:
            path += f"?expires={self.expires}"
        return path


def signature(key: bytes, address: ImageAddress) -> str:
    """The URL-safe signature of `address` under `key`."""
    digest = hmac.new(key, address.path().encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_path(key: bytes, address: ImageAddress) -> str:
    """The full path (and query) of a signed URL, to append to the gateway's base URL."""
    return f"{IMG_PREFIX}/{signature(key, address)}{address.path()}"


def verify(keys: Sequence[bytes], presented: str, address: ImageAddress, now: float) -> Verdict:
    """Whether `presented` signs `address` under any of `keys`, and the URL has not expired.

    The signature is checked first, so an expired URL is only reported as expired when it is
    genuine: a forger learns nothing from the difference.
    """
    candidate = presented.encode("utf-8", "replace")
    matched = False
    for key in keys:
        # No early exit: every key is compared, so the time taken does not depend on which matched.
        matched |= hmac.compare_digest(signature(key, address).encode(), candidate)
    if not matched:
        return Verdict.BAD_SIGNATURE
    if address.expires is not None and now > address.expires:
        return Verdict.EXPIRED
    return Verdict.VALID
