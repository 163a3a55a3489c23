"""Build etcd, kube-apiserver and kube-controller-manager once, and find them afterwards.

The binaries come from the Go tools modules under `tools/` and live outside git, in
`$XDG_CACHE_HOME/pixelmesh/k8s/<kubernetes version>/bin/` (`~/.cache/...` by
default). Each binary has a stamp file next to it holding a digest of its tools
module and build flags: a binary is rebuilt only when it is missing or when that
digest changes, so bumping a pin rebuilds exactly what it pins.

The first build compiles Kubernetes from source and takes many minutes; later
builds of the same pins reuse Go's build cache and only link. Concurrent callers
(several pytest workers, `make` and a test run) serialise on a lock file so that
each binary is built once; a binary is written to a temporary name and renamed,
so nobody ever runs a half-written file.

Binaries are static (`CGO_ENABLED=0`, as Kubernetes releases are), stripped and
built with `-trimpath`. The Kubernetes ones carry the pinned release as their
version (`-X .../version.gitVersion=...`): kubectl and Helm compare server versions,
and an unstamped build reports `v0.0.0-master`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from e2e.cluster import pins

# Where Go lives when it is not on PATH (the official tarball's location).
_GO_FALLBACK = Path("/usr/local/go/bin/go")
# Packages whose version variables Kubernetes' own build stamps (hack/lib/version.sh).
_VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")


class BuildError(RuntimeError):
    """A binary could not be built; the message holds the command and Go's output."""


@dataclass(frozen=True)
class Binaries:
    """Paths of the built control-plane binaries and the Kubernetes version they are."""

    kubernetes_version: str
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path

    @property
    def bin_dir(self) -> Path:
        return self.kube_apiserver.parent


def cache_root() -> Path:
    """`$XDG_CACHE_HOME/pixelmesh/k8s`, or `~/.cache/pixelmesh/k8s`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pixelmesh" / "k8s"


def bin_dir() -> Path:
    """The directory holding the binaries of the pinned Kubernetes version."""
    return cache_root() / pins.kubernetes_version() / "bin"


def expected_binaries() -> Binaries:
    """Where the binaries of the current pins are, whether built yet or not."""
    directory = bin_dir()
    return Binaries(
        kubernetes_version=pins.kubernetes_version(),
        etcd=directory / pins.ETCD.name,
        kube_apiserver=directory / pins.KUBE_APISERVER.name,
        kube_controller_manager=directory / pins.KUBE_CONTROLLER_MANAGER.name,
    )


def missing_tools() -> list[pins.GoTool]:
    """The tools whose binary is absent or stale for the current pins."""
    directory = bin_dir()
    return [tool for tool in pins.ALL_TOOLS if not _is_current(tool, directory)]


def ensure_binaries(*, log: TextIO | None = None) -> Binaries:
    """Build whatever is missing or stale, then return the binaries. Idempotent."""
    directory = bin_dir()
    if missing_tools():
        mismatched = pins.staging_replace_mismatches()
        if mismatched:
            raise BuildError(
                f"{pins.KUBERNETES_TOOLS / 'go.mod'} pins Kubernetes {pins.kubernetes_version()} but "
                f"replaces staging modules with other releases: {', '.join(mismatched)}"
            )
        directory.mkdir(parents=True, exist_ok=True)
        with _build_lock(directory):
            # Another process may have built them while this one waited for the lock.
            for tool in pins.ALL_TOOLS:
                if not _is_current(tool, directory):
                    _build(tool, directory, log=log or sys.stderr)
    return expected_binaries()


def ldflags(tool: pins.GoTool) -> str:
    """Linker flags: strip symbols, and stamp the release into Kubernetes binaries."""
    flags = ["-s", "-w"]
    if tool.module_dir == pins.KUBERNETES_TOOLS:
        version = pins.kubernetes_version()
        major, minor = version.removeprefix("v").split(".")[:2]
        for package in _VERSION_PACKAGES:
            flags += [
                f"-X {package}.gitVersion={version}",
                f"-X {package}.gitMajor={major}",
                f"-X {package}.gitMinor={minor}",
                f"-X {package}.gitTreeState=clean",
            ]
    return " ".join(flags)


def go_executable() -> str:
    """The `go` command: from PATH, else the official install location."""
    found = shutil.which("go")
    if found:
        return found
    if _GO_FALLBACK.exists():
        return str(_GO_FALLBACK)
    raise BuildError("No `go` found on PATH or at /usr/local/go/bin/go; Go >= 1.26 is needed.")


def _stamp(tool: pins.GoTool) -> str:
    return json.dumps({"fingerprint": tool.fingerprint(), "ldflags": ldflags(tool)}, sort_keys=True)


def _stamp_path(tool: pins.GoTool, directory: Path) -> Path:
    return directory / f".{tool.name}.stamp"


def _is_current(tool: pins.GoTool, directory: Path) -> bool:
    binary, stamp = directory / tool.name, _stamp_path(tool, directory)
    return binary.is_file() and stamp.is_file() and stamp.read_text() == _stamp(tool)


@contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    with (directory / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(tool: pins.GoTool, directory: Path, *, log: TextIO) -> None:
    target = directory / tool.name
    partial = directory / f".{tool.name}.partial"
    command = [
        go_executable(),
        "build",
        "-trimpath",
        f"-ldflags={ldflags(tool)}",
        "-o",
        str(partial),
        tool.package,
    ]
    # -mod=readonly: a build must never rewrite the committed go.mod/go.sum.
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    print(f"Building {tool.name} from {tool.module_dir} (the first build takes minutes).", file=log)
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=tool.module_dir, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(
            f"`{' '.join(command)}` in {tool.module_dir} failed ({result.returncode}):\n"
            f"{result.stderr}{result.stdout}"
        )
    partial.replace(target)
    _stamp_path(tool, directory).write_text(_stamp(tool))
    print(f"Built {target} in {time.monotonic() - started:.0f} s.", file=log)
