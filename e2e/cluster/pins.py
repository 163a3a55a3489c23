"""The versions the control plane is built from, read from the Go tools modules.

The `go.mod` files under `tools/` are the only place a version is written down: the
build reads them, the cache directory is named after them, and a stamp of their
content decides when a cached binary is stale. Bumping Kubernetes or etcd is an
edit to a `go.mod` (and `go mod tidy`), nothing else.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent / "tools"
KUBERNETES_TOOLS = TOOLS_DIR / "kubernetes"
ETCD_TOOLS = TOOLS_DIR / "etcd"

KUBERNETES_MODULE = "k8s.io/kubernetes"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"


@dataclass(frozen=True)
class GoTool:
    """One binary, the tools module that pins it and the package to build."""

    name: str
    module_dir: Path
    package: str

    def fingerprint(self) -> str:
        """A digest of everything that decides the binary: the module's pins and its sums."""
        digest = hashlib.sha256()
        for file in ("go.mod", "go.sum"):
            digest.update(file.encode())
            digest.update((self.module_dir / file).read_bytes())
        return digest.hexdigest()


KUBE_APISERVER = GoTool("kube-apiserver", KUBERNETES_TOOLS, "k8s.io/kubernetes/cmd/kube-apiserver")
KUBE_CONTROLLER_MANAGER = GoTool(
    "kube-controller-manager", KUBERNETES_TOOLS, "k8s.io/kubernetes/cmd/kube-controller-manager"
)
ETCD = GoTool("etcd", ETCD_TOOLS, ETCD_MODULE)

ALL_TOOLS = (ETCD, KUBE_APISERVER, KUBE_CONTROLLER_MANAGER)


def required_version(module_dir: Path, module: str) -> str:
    """The version `module_dir/go.mod` requires of `module`, e.g. `v1.37.2`."""
    text = (module_dir / "go.mod").read_text()
    # Matches both `require m v1` and a line inside a `require ( ... )` block.
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
    if match is None:
        raise LookupError(f"{module_dir / 'go.mod'} does not require {module}.")
    return match.group(1)


def staging_replace_mismatches() -> list[str]:
    """`replace` lines of the Kubernetes tools module that do not match its pinned release.

    Kubernetes v1.X.Y goes with staging modules v0.X.Y; a bump that misses one
    builds a binary from mixed releases, or fails deep inside the compiler.
    """
    expected = "v0." + kubernetes_version().removeprefix("v1.")
    text = (KUBERNETES_TOOLS / "go.mod").read_text()
    replaces = re.findall(r"^\s*(k8s\.io/\S+)\s+=>\s+(k8s\.io/\S+)\s+(v\S+)", text, re.MULTILINE)
    return [f"{old} => {new} {version}" for old, new, version in replaces if version != expected]


def kubernetes_version() -> str:
    """The pinned Kubernetes release, e.g. `v1.37.2`."""
    return required_version(KUBERNETES_TOOLS, KUBERNETES_MODULE)


def etcd_version() -> str:
    """The pinned etcd release, e.g. `v3.7.3`."""
    return required_version(ETCD_TOOLS, ETCD_MODULE)
