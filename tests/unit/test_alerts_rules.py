"""The alert rules: valid for Prometheus, each one tested by promtool, documented, on real metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pixelmesh.api.messages import FailureReason
from pixelmesh.observability import alerts, chart_files, series
from tests.unit.test_dashboards_generated import exported

ROOT = Path(__file__).resolve().parents[2]
RULE_FILE = chart_files.CHART_DIR / chart_files.ALERTS_FILE
RULE_TESTS = Path(__file__).parent / "alerts"
RUNBOOKS = ROOT / "docs" / "runbooks.md"


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: apt-get install -y --no-install-recommends prometheus"
    return found


def test_promtool_accepts_the_rule_file() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULE_FILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts.alert_rules())} rules found" in result.stdout


def test_every_alert_has_its_own_promtool_test_file() -> None:
    names = {rule.name for rule in alerts.alert_rules()}
    files = {path.name.removesuffix(".test.yaml") for path in RULE_TESTS.glob("*.test.yaml")}
    assert files == names


@pytest.mark.parametrize("rule", alerts.alert_rules(), ids=lambda r: r.name)
def test_each_test_file_checks_its_alert_firing_and_staying_quiet(rule: alerts.AlertRule) -> None:
    document = yaml.safe_load((RULE_TESTS / f"{rule.name}.test.yaml").read_text())
    checks = [check for test in document["tests"] for check in test["alert_rule_test"]]
    assert {check["alertname"] for check in checks} == {rule.name}
    assert any(check["exp_alerts"] for check in checks), "no case where the alert fires"
    assert any(not check["exp_alerts"] for check in checks), "no case where the alert stays quiet"


@pytest.mark.parametrize("rule", alerts.alert_rules(), ids=lambda r: r.name)
def test_promtool_runs_the_alerts_test_file(rule: alerts.AlertRule) -> None:
    test_file = RULE_TESTS / f"{rule.name}.test.yaml"
    result = subprocess.run(
        [promtool(), "test", "rules", test_file.name],
        cwd=RULE_TESTS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("rule", alerts.alert_rules(), ids=lambda r: r.name)
def test_each_alert_links_to_a_runbook_section_that_exists(rule: alerts.AlertRule) -> None:
    headings = re.findall(r"^#{2,3} (.+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    anchors = {github_anchor(heading) for heading in headings}
    assert rule.runbook_anchor in anchors
    section = RUNBOOKS.read_text().split(f"## {rule.name}\n", 1)[1].split("\n## ", 1)[0]
    assert len(section.split()) > 60, "a runbook section says what it means, how to check and what to do"


@pytest.mark.parametrize("rule", alerts.alert_rules(), ids=lambda r: r.name)
def test_each_alert_says_what_broke_and_where(rule: alerts.AlertRule) -> None:
    grouped_by: set[str] = set()
    for clause in re.findall(r"by \(([^)]*)\)", rule.expr):
        grouped_by.update(label.strip() for label in clause.split(","))
    annotated = set(re.findall(r"\$labels\.(\w+)", rule.summary + rule.description))
    assert annotated, "the summary and description name the object they are about"
    assert annotated <= grouped_by, "an annotation refers to a label the expression drops"
    assert rule.severity in {"warning", "critical"}
    assert re.fullmatch(r"\d+[smh]", rule.duration)


def test_every_metric_the_rules_query_is_exported_by_the_code() -> None:
    referenced = set().union(*(series.referenced_series(rule.expr) for rule in alerts.alert_rules()))
    assert referenced
    assert sorted(referenced - exported()) == []


def test_input_and_platform_failure_reasons_split_every_reason() -> None:
    assert alerts.INPUT_REASONS.isdisjoint(alerts.PLATFORM_REASONS)
    assert set(FailureReason) == alerts.INPUT_REASONS | alerts.PLATFORM_REASONS
    assert FailureReason.MAX_DELIVERIES in alerts.PLATFORM_REASONS
    assert FailureReason.CORRUPT in alerts.INPUT_REASONS
