"""Kubeconfig files for a control plane: one per identity (admin, a ServiceAccount).

The CA is embedded rather than referenced by path so that a kubeconfig stays valid
when copied elsewhere (into a Secret for a federated region, say). Credentials are
bearer tokens: the static admin token, or a TokenRequest token for a ServiceAccount.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_cert: Path,
    token: str,
    user: str,
    cluster: str = "pixelmesh-test",
    namespace: str | None = None,
) -> Path:
    """Write a kubeconfig with one cluster, one user and one current context."""
    context: dict[str, str] = {"cluster": cluster, "user": user}
    if namespace is not None:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_cert.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": f"{user}@{cluster}", "context": context}],
        "current-context": f"{user}@{cluster}",
        "preferences": {},
    }
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
