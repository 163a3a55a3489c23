"""The Grafana dashboards: committed JSON equals the generator's, laid out sanely, on real metrics."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from pixelmesh.api.resources import RegionPhase
from pixelmesh.gateway.metrics import GatewayMetrics
from pixelmesh.observability import chart_files, dashboards, series
from pixelmesh.observability.grafana import GRID_WIDTH
from pixelmesh.operator import metrics as operator_metrics
from pixelmesh.worker import metrics as worker_metrics

BUILT_IN_VARIABLES = {"__rate_interval", "__interval", "__range", "__all"}
# Labels Prometheus adds when it scrapes a target.
TARGET_LABELS = {"pod", "namespace", "instance", "job", "container", "service"}


@functools.cache
def exported() -> frozenset[str]:
    """Every series name the worker, gateway and operator code can expose."""
    return series.exported_series(
        [worker_metrics.REGISTRY, GatewayMetrics().registry, operator_metrics.REGISTRY]
    )


@functools.cache
def metric_labels() -> dict[str, frozenset[str]]:
    """Series name -> label names, from the metric objects of every component."""
    objects = [
        *(v for v in vars(worker_metrics).values() if hasattr(v, "_labelnames")),
        *(v for v in vars(operator_metrics).values() if hasattr(v, "_labelnames")),
        *(v for v in vars(GatewayMetrics()).values() if hasattr(v, "_labelnames")),
    ]
    labels: dict[str, frozenset[str]] = {}
    for metric in objects:
        (family,) = metric.describe()
        names = frozenset(series.labels(metric)) | ({"le"} if family.type == "histogram" else set())
        for suffix in ("", "_total", "_bucket", "_sum", "_count", "_info"):
            labels[family.name + suffix] = names
    return labels


def boards() -> list[dict[str, Any]]:
    return [board.to_json() for board in dashboards.dashboards()]


def queries(board: dict[str, Any]) -> list[str]:
    found = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    found += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return found


def test_the_committed_dashboards_and_rules_are_what_the_code_generates() -> None:
    assert chart_files.drifted() == [], "run `python -m pixelmesh.observability` and commit the result"


def test_the_drift_check_notices_a_hand_edit_and_a_stale_file(tmp_path: Path) -> None:
    for relative, content in chart_files.generated_files().items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(content)
    assert chart_files.drifted(tmp_path) == []
    edited = tmp_path / chart_files.dashboard_path(dashboards.OVERVIEW_UID)
    edited.write_text(edited.read_text().replace("PixelMesh / Overview", "Overview (edited)"))
    (tmp_path / chart_files.DASHBOARDS_DIR / "stale.json").write_text("{}")
    assert chart_files.drifted(tmp_path) == sorted(
        [chart_files.dashboard_path("stale"), chart_files.dashboard_path(dashboards.OVERVIEW_UID)]
    )
    assert chart_files.write(tmp_path)
    assert chart_files.drifted(tmp_path) == []


def test_dashboard_uids_are_unique_valid_and_name_their_files() -> None:
    uids = [board["uid"] for board in boards()]
    assert len(set(uids)) == len(uids) == 3
    for uid in uids:
        assert re.fullmatch(r"[a-z0-9-]{1,40}", uid)
        assert (chart_files.CHART_DIR / chart_files.dashboard_path(uid)).is_file()


@pytest.mark.parametrize("board", boards(), ids=lambda b: b["uid"])
def test_panels_have_unique_ids_and_do_not_overlap(board: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in board["panels"]]
    assert len(set(ids)) == len(ids)
    occupied: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= GRID_WIDTH
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells


@pytest.mark.parametrize("board", boards(), ids=lambda b: b["uid"])
def test_every_query_uses_only_defined_variables_and_the_datasource_variable(board: dict[str, Any]) -> None:
    defined = {v["name"] for v in board["templating"]["list"]} | BUILT_IN_VARIABLES
    for text in queries(board):
        used = set(re.findall(r"\$\{?(\w+)", text))
        assert used <= defined, f"{text} uses undefined {used - defined}"
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], f"panel {panel['title']!r} has no query"
            assert panel["description"]


@pytest.mark.parametrize("board", boards(), ids=lambda b: b["uid"])
def test_every_metric_a_dashboard_queries_is_exported_by_the_code(board: dict[str, Any]) -> None:
    referenced = set().union(*(series.referenced_series(text) for text in queries(board)))
    assert referenced
    assert sorted(referenced - exported()) == []


@pytest.mark.parametrize("board", boards(), ids=lambda b: b["uid"])
def test_queries_filter_and_group_only_by_labels_the_metric_has(board: dict[str, Any]) -> None:
    """A `region` filter on a metric without a region label would empty the panel silently."""
    labels = metric_labels()
    for text in queries(board):
        for name, matchers in re.findall(r"(pixelmesh_\w+)\{([^}]*)\}", text):
            used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
            assert used <= labels[name] | TARGET_LABELS, f"{name} has no label {used - labels[name]}"


def test_the_overview_shows_percentiles_reasons_backlog_and_replicas() -> None:
    overview = json.dumps(dashboards.overview().to_json())
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}," in overview
    assert "by (reason)" in overview
    for metric in (
        operator_metrics.BACKLOG,
        operator_metrics.DESIRED_REPLICAS,
        operator_metrics.READY_REPLICAS,
    ):
        assert series.gauge(metric) in overview
    variables = [v["name"] for v in dashboards.overview().to_json()["templating"]["list"]]
    assert variables == ["datasource", "namespace", "pipeline", "region"]


def test_the_worker_dashboard_shows_steps_queue_wait_and_libvips_memory() -> None:
    worker = json.dumps(dashboards.worker().to_json())
    for metric in (worker_metrics.STEP_DURATION, worker_metrics.QUEUE_WAIT):
        assert series.bucket(metric) in worker
    assert series.gauge(worker_metrics.LIBVIPS_MEMORY) in worker


def test_the_region_phase_panel_maps_every_phase_to_a_word() -> None:
    (panel,) = [p for p in dashboards.operator().to_json()["panels"] if p["title"] == "Region phase"]
    (mapping,) = panel["fieldConfig"]["defaults"]["mappings"]
    words = {option["text"] for option in mapping["options"].values()}
    assert words == {phase.value for phase in RegionPhase}
