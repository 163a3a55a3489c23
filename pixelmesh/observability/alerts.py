"""PixelMesh's alert rules as code: what pages a platform team, and where its runbook is.

Each rule is built from the metric objects of the components (via `series`), carries a summary, a
description with the labels that locate the problem, and a link to its section of
`docs/runbooks.md`. `rule_file()` renders them as a Prometheus rule file: the chart ships it in a
PrometheusRule, `promtool check rules` validates it and `promtool test rules` runs one test file per
alert (tests/unit/alerts/).

Thresholds are constants here rather than chart values: a team that needs other numbers copies the
rule, and the tested rule stays what the chart ships.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import yaml

from pixelmesh.api.messages import FailureReason
from pixelmesh.api.resources import RegionPhase
from pixelmesh.observability import promql, series
from pixelmesh.operator import metrics as operator_metrics
from pixelmesh.operator.autoscaling.decision import ScalingReason
from pixelmesh.worker import metrics as worker_metrics

RUNBOOK_BASE_URL = "https://github.com/pixelmesh/pixelmesh/blob/main/docs/runbooks.md"
GROUP_NAME = "pixelmesh"

Severity = Literal["warning", "critical"]

INPUT_REASONS: frozenset[FailureReason] = frozenset(
    {
        FailureReason.TOO_LARGE,
        FailureReason.TOO_MANY_PIXELS,
        FailureReason.TOO_MANY_FRAMES,
        FailureReason.UNSUPPORTED_FORMAT,
        FailureReason.CORRUPT,
        FailureReason.INVALID_JOB,
        FailureReason.UNKNOWN_VARIANT,
    }
)
"""Failures caused by what a client sent: a dead letter for these is the system working."""
PLATFORM_REASONS: frozenset[FailureReason] = frozenset(FailureReason) - INPUT_REASONS
"""Failures of the platform (retries exhausted, deadlines missed, sources lost): someone must look."""

ERROR_RATIO = 0.05
"""Failed / finished jobs above which a pipeline is failing."""
ERROR_RATE_MIN_JOBS_PER_SECOND = 0.1
"""Below this traffic a handful of bad uploads is not an outage."""
BACKLOG_FLOOR = 1000
"""A backlog smaller than this drains in moments whatever its trend: no page for it."""
MIRROR_LAG_LIMIT = 100
"""Jobs not yet mirrored to the backup region: what a region's loss may cost at most."""
CAPPED_REASONS = (ScalingReason.CAPACITY_CAPPED, ScalingReason.MAXIMUM)
"""Autoscaler decisions that wanted more replicas than the pipeline or its region allow."""
CAPPED_SHARE = 0.5
"""Share of decisions capped above which a pipeline is held below what it needs."""


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One alert: when it fires, how loud, and what the on-call engineer reads."""

    name: str
    expr: str
    duration: str
    """How long `expr` must hold before the alert fires (`for`)."""
    severity: Severity
    summary: str
    description: str
    """May use `{{ $labels.x }}` and `{{ $value }}` (Prometheus alert templating)."""

    @property
    def runbook_anchor(self) -> str:
        """The anchor of the alert's section in docs/runbooks.md (a `## <name>` heading)."""
        return self.name.lower()

    def to_rule(self, runbook_base_url: str = RUNBOOK_BASE_URL) -> dict[str, object]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.duration,
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": f"{runbook_base_url}#{self.runbook_anchor}",
            },
        }


def _error_rate() -> AlertRule:
    jobs = series.total(worker_metrics.JOBS)
    finished = promql.one_of("outcome", (worker_metrics.Outcome.SUCCEEDED, worker_metrics.Outcome.FAILED))
    failed = f'outcome="{worker_metrics.Outcome.FAILED}"'
    keys = ("pipeline", "region")
    ratio = (
        f"{promql.rate_sum(jobs, failed, labels=keys, window='10m')}\n"
        f"  / {promql.rate_sum(jobs, finished, labels=keys, window='10m')}"
    )
    traffic = promql.rate_sum(jobs, finished, labels=keys, window="10m")
    return AlertRule(
        name="PixelMeshHighErrorRate",
        expr=(
            f"(\n  {ratio}\n) > {ERROR_RATIO}\n"
            f"and on (pipeline, region)\n  {traffic} > {ERROR_RATE_MIN_JOBS_PER_SECOND}"
        ),
        duration="10m",
        severity="warning",
        summary=(
            "More than 5% of the jobs of pipeline {{ $labels.pipeline }} fail in region {{ $labels.region }}."
        ),
        description=(
            "{{ $value | humanizePercentage }} of the jobs of {{ $labels.pipeline }} in {{ $labels.region }}"
            " failed over the last 10 minutes. The failure reasons (worker rejections and dead letters by"
            " reason) tell bad input from a broken pipeline or worker."
        ),
    )


def _dead_letters() -> AlertRule:
    dead = series.total(worker_metrics.DEAD_LETTERS)
    reasons = promql.one_of("reason", (reason.value for reason in PLATFORM_REASONS))
    return AlertRule(
        name="PixelMeshDeadLetters",
        expr=f"sum by (pipeline, reason) (increase({promql.selector(dead, reasons)}[15m])) > 0",
        duration="0m",
        severity="warning",
        summary="Jobs of pipeline {{ $labels.pipeline }} were dead-lettered: {{ $labels.reason }}.",
        description=(
            "About {{ $value | humanize }} jobs of {{ $labels.pipeline }} ended as dead letters with reason"
            " {{ $labels.reason }} in the last 15 minutes. These are platform failures (retries"
            " exhausted, deadlines missed, sources missing), not bad input: the clients did not get"
            " their images. The dead-letter records keep the jobs for inspection and replay."
        ),
    )


def _backlog_growing() -> AlertRule:
    backlog = series.gauge(operator_metrics.BACKLOG)
    keys = "namespace, pipeline, region"
    return AlertRule(
        name="PixelMeshBacklogGrowing",
        expr=(
            f"sum by ({keys}) ({backlog}) > {BACKLOG_FLOOR}\n"
            f"and on ({keys})\n  sum by ({keys}) (deriv({backlog}[15m])) > 0"
        ),
        duration="15m",
        severity="warning",
        summary=(
            "The backlog of {{ $labels.namespace }}/{{ $labels.pipeline }} in {{ $labels.region }}"
            " has grown for 15 minutes."
        ),
        description=(
            "{{ $value | humanize }} jobs of {{ $labels.namespace }}/{{ $labels.pipeline }} wait or run in"
            " {{ $labels.region }} and the number keeps growing: the workers are not keeping up with"
            " the arrivals. Latency grows with the backlog."
        ),
    )


def _workers_not_ready() -> AlertRule:
    desired = series.gauge(operator_metrics.DESIRED_REPLICAS)
    ready = series.gauge(operator_metrics.READY_REPLICAS)
    keys = "namespace, pipeline, region"
    return AlertRule(
        name="PixelMeshWorkersNotReady",
        expr=f"sum by ({keys}) ({desired})\n  - sum by ({keys}) ({ready})\n> 0",
        duration="15m",
        severity="warning",
        summary=(
            "{{ $value }} worker replicas of {{ $labels.namespace }}/{{ $labels.pipeline }}"
            " in {{ $labels.region }} are not ready."
        ),
        description=(
            "The operator has asked for more workers of {{ $labels.namespace }}/{{ $labels.pipeline }} in"
            " {{ $labels.region }} than are ready, for 15 minutes: {{ $value }} missing. Pods that cannot"
            " be scheduled, pull their image, or pass their readiness probe."
        ),
    )


def _replicas_capped() -> AlertRule:
    decisions = series.total(operator_metrics.AUTOSCALER_DECISIONS)
    capped = promql.one_of("reason", (reason.value for reason in CAPPED_REASONS))
    keys = ("namespace", "pipeline", "region")
    return AlertRule(
        name="PixelMeshReplicasCapped",
        expr=(
            f"{promql.rate_sum(decisions, capped, labels=keys, window='10m')}\n"
            f"  / {promql.rate_sum(decisions, labels=keys, window='10m')}\n"
            f"> {CAPPED_SHARE}"
        ),
        duration="15m",
        severity="warning",
        summary=(
            "The autoscaler of {{ $labels.namespace }}/{{ $labels.pipeline }} in {{ $labels.region }}"
            " is held at its ceiling."
        ),
        description=(
            "For 15 minutes, {{ $value | humanizePercentage }} of the scaling decisions of"
            " {{ $labels.namespace }}/{{ $labels.pipeline }} in {{ $labels.region }} wanted more workers"
            " than `autoscaling.maxReplicas` or the region's capacity allow. The pipeline runs below"
            " what its backlog and arrival rate need: latency grows."
        ),
    )


def _region_in_phase(phase: RegionPhase, name: str, duration: str, severity: Severity, why: str) -> AlertRule:
    in_phase = promql.selector(series.gauge(operator_metrics.REGION_PHASE), f'phase="{phase.value}"')
    return AlertRule(
        name=name,
        expr=f"max by (region) ({in_phase}) == 1",
        duration=duration,
        severity=severity,
        summary=f"Region {{{{ $labels.region }}}} is {phase.value}.",
        description=why,
    )


def _region_degraded() -> AlertRule:
    return _region_in_phase(
        RegionPhase.DEGRADED,
        "PixelMeshRegionDegraded",
        "10m",
        "warning",
        "The operator's probes of region {{ $labels.region }} (NATS round trip, JetStream, ready workers,"
        " error rate, backlog growth) have found it degraded for 10 minutes. It still takes traffic.",
    )


def _region_failed() -> AlertRule:
    return _region_in_phase(
        RegionPhase.FAILED,
        "PixelMeshRegionFailed",
        "2m",
        "critical",
        "Region {{ $labels.region }} has failed its probes: its weight is zero and its traffic goes to"
        " its backup region, which drains the mirrored jobs. Jobs accepted there and not yet mirrored"
        " wait for its return.",
    )


def _mirror_lagging() -> AlertRule:
    lag = series.gauge(operator_metrics.MIRROR_LAG)
    keys = "namespace, pipeline, region, backup"
    return AlertRule(
        name="PixelMeshMirrorLagging",
        expr=f"max by ({keys}) ({lag}) > {MIRROR_LAG_LIMIT}",
        duration="5m",
        severity="warning",
        summary=(
            "Jobs of {{ $labels.namespace }}/{{ $labels.pipeline }} accepted in {{ $labels.region }}"
            " are not reaching the mirror in {{ $labels.backup }}."
        ),
        description=(
            "For 5 minutes, {{ $value | humanize }} jobs of {{ $labels.namespace }}/{{ $labels.pipeline }}"
            " accepted in {{ $labels.region }} have not been copied to the mirror in its backup region"
            " {{ $labels.backup }}. Under `durability: regional` they are what a loss of"
            " {{ $labels.region }} would lose now (the RPO)."
        ),
    )


def alert_rules() -> tuple[AlertRule, ...]:
    """Every PixelMesh alert, in the order the rule file lists them."""
    return (
        _backlog_growing(),
        _error_rate(),
        _dead_letters(),
        _region_degraded(),
        _region_failed(),
        _mirror_lagging(),
        _replicas_capped(),
        _workers_not_ready(),
    )


def rule_groups(rules: Sequence[AlertRule] | None = None) -> dict[str, object]:
    """The rule file's document: one group holding every alert."""
    chosen = alert_rules() if rules is None else rules
    return {"groups": [{"name": GROUP_NAME, "rules": [rule.to_rule() for rule in chosen]}]}


class _RuleFileDumper(yaml.SafeDumper):
    """Multi-line expressions as literal blocks, so the rule file reads like hand-written PromQL."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_RuleFileDumper.add_representer(str, _represent_text)


def rule_file() -> str:
    """The committed rule file (charts/pixelmesh/files/alerts.yaml)."""
    header = "# Generated by `python -m pixelmesh.observability` from pixelmesh/observability/alerts.py.\n"
    body = yaml.dump(
        rule_groups(), Dumper=_RuleFileDumper, sort_keys=False, width=100_000, allow_unicode=True
    )
    return header + body
