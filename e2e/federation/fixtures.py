"""pytest fixtures for the federation e2e: the world, tiny sources, and the run's report.

- `world` (session): a started `World` (three regions, hub operator, gateways), stopped by PID at
  the end of the session, also when a test failed. Scenarios that lose a region recover it.
- `tiny_sources` (session): a handful of small distinct JPEGs; thousands of jobs over them run in
  seconds on two cores.
- `federation_reports` (function): a list to append `ScenarioReport`s to. At the end of the run they
  are printed in the terminal summary and written as JSON to `--federation-report PATH` (or
  `$PIXELMESH_E2E_REPORT`), when one is given.

Loaded through the root conftest's plugin list, or by a test module's `pytest_plugins`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cluster.binaries import Binaries
from e2e.federation.report import ScenarioReport, render, write_reports
from e2e.federation.world import World
from tests import imagegen

pytest_plugins = ["e2e.cluster.pytest_plugin"]

REPORT_OPTION = "--federation-report"
REPORT_ENV = "PIXELMESH_E2E_REPORT"
REPORTS = pytest.StashKey[list[ScenarioReport]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        REPORT_OPTION,
        default=None,
        metavar="PATH",
        help=f"write the federation e2e report as JSON to PATH (default: ${REPORT_ENV}, else not written)",
    )


def _report_path(config: pytest.Config) -> Path | None:
    given = config.getoption(REPORT_OPTION, default=None) or os.environ.get(REPORT_ENV)
    return Path(given) if given else None


@pytest.fixture(scope="session")
def world(control_plane_binaries: Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Three federated regions on loopback, started once per session."""
    with World(tmp_path_factory.mktemp("world"), binaries=control_plane_binaries) as started:
        yield started


@pytest.fixture(scope="session")
def tiny_sources() -> list[bytes]:
    """Eight distinct small photo-like JPEGs (48x36 to 62x46 pixels)."""
    return [imagegen.photo_jpeg(48 + 2 * i, 36 + i + i // 2) for i in range(8)]


@pytest.fixture
def federation_reports(request: pytest.FixtureRequest) -> list[ScenarioReport]:
    """Reports of this run's scenarios, printed and written at the end."""
    return request.config.stash.setdefault(REPORTS, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    reports = config.stash.get(REPORTS, [])
    if not reports:
        return
    terminalreporter.section("federation report")
    for report in reports:
        terminalreporter.write_line(render(report))
    path = _report_path(config)
    if path is not None:
        write_reports(reports, path)
        terminalreporter.write_line(f"written to {path}")
