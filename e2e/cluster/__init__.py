"""A real Kubernetes control plane for tests, built from the Kubernetes Go modules.

`ControlPlane` runs etcd, kube-apiserver and kube-controller-manager, pinned by the
Go tools modules under `tools/` and built once into the user's cache
(`ensure_binaries`). Use it as a context manager, through the pytest fixtures in
`e2e.cluster.pytest_plugin`, or from a shell:

    python -m e2e.cluster build      # build what is missing, print the bin directory
    python -m e2e.cluster up         # run one, print its kubeconfig, stop on Ctrl-C
"""

from e2e.cluster.api import ApiClient, ApiError
from e2e.cluster.binaries import Binaries, BuildError, ensure_binaries
from e2e.cluster.control_plane import ControlPlane, ControlPlaneError
from e2e.cluster.kubectl import Kubectl, KubectlError, kubectl_path

__all__ = [
    "ApiClient",
    "ApiError",
    "Binaries",
    "BuildError",
    "ControlPlane",
    "ControlPlaneError",
    "Kubectl",
    "KubectlError",
    "ensure_binaries",
    "kubectl_path",
]
