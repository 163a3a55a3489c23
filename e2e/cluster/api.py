"""A minimal HTTPS client for the Kubernetes API, for the launcher and for tests.

The launcher needs a handful of calls (readiness, namespaces, ServiceAccounts,
TokenRequest) before any Kubernetes client library is configured, and tests need
to see raw status codes (403, 409) exactly as the server sends them. The standard
library does both without global configuration: `kubernetes.config` reads
`$KUBECONFIG` at import time, which does not mix with several servers per process.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

JsonObject = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class ApiError(Exception):
    """The server answered with an error status; `status` is the HTTP code."""

    def __init__(self, method: str, path: str, status: int, body: JsonObject) -> None:
        self.status = status
        self.body = body
        self.reason: str = str(body.get("reason", ""))
        self.message: str = str(body.get("message", ""))
        super().__init__(f"{method} {path} -> {status} {self.reason}: {self.message}")


class ApiClient:
    """Calls one API server with one bearer token, verifying it against one CA."""

    def __init__(self, server: str, token: str, ca_cert: Path, *, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._ssl = ssl.create_default_context(cafile=str(ca_cert))

    def request(
        self,
        method: str,
        path: str,
        body: JsonObject | None = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> JsonObject:
        """Send one request; return the decoded JSON answer or raise `ApiError`."""
        raw = self.request_raw(method, path, body, content_type=content_type, params=params)
        return json.loads(raw) if raw else {}

    def request_raw(
        self,
        method: str,
        path: str,
        body: JsonObject | None = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> str:
        url = self.server + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout, context=self._ssl) as reply:
                return str(reply.read().decode())
        except urllib.error.HTTPError as error:
            payload = error.read().decode(errors="replace")
            try:
                decoded = json.loads(payload)
            except ValueError:
                decoded = {"message": payload}
            if not isinstance(decoded, dict):
                decoded = {"message": payload}
            raise ApiError(method, path, error.code, decoded) from None

    def get(self, path: str, **params: str) -> JsonObject:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: JsonObject) -> JsonObject:
        return self.request("POST", path, body)

    def put(self, path: str, body: JsonObject) -> JsonObject:
        return self.request("PUT", path, body)

    def delete(self, path: str, body: JsonObject | None = None) -> JsonObject:
        return self.request("DELETE", path, body)

    def apply(self, path: str, body: JsonObject, *, field_manager: str, force: bool = False) -> JsonObject:
        """Server-side apply `body` to the object at `path` as `field_manager`."""
        params = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        return self.request("PATCH", path, body, content_type=APPLY_PATCH, params=params)
