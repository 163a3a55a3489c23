"""API keys on the job endpoints: `Authorization: Bearer <key>` or `X-API-Key: <key>`.

Keys are compared as SHA-256 digests with `hmac.compare_digest` against every configured key, so
neither the length of a key nor which key matched shows in the response time. No keys configured
means the endpoints are open (a laptop); the gateway logs that at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from pixelmesh.api.http import ProblemCode
from pixelmesh.gateway.problems import ProblemError

CHALLENGE = 'Bearer realm="pixelmesh"'


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries, if any."""
    authorization = headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = headers.get("X-API-Key", "").strip()
    return api_key or None


class ApiKeys:
    def __init__(self, keys: Sequence[str]) -> None:
        self._digests = tuple(hashlib.sha256(key.encode()).digest() for key in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def accepts(self, key: str | None) -> bool:
        if not self._digests:
            return True
        if key is None:
            return False
        digest = hashlib.sha256(key.encode("utf-8", "replace")).digest()
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(known, digest)
        return matched

    def require(self, headers: Mapping[str, str]) -> None:
        """Raise 401 unless the request carries an accepted key."""
        key = presented_key(headers)
        if not self.accepts(key):
            detail = "the API key is not valid" if key else "send an API key as `Authorization: Bearer <key>`"
            raise ProblemError(ProblemCode.UNAUTHORIZED, detail, headers={"WWW-Authenticate": CHALLENGE})
