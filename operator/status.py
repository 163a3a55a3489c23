"""Status as transactions: small pure functions from one status to the next.

The reconciler gathers what it found per region into `RegionReport`s and hands them, with the
problems of the spec, to `pipeline_status`, which applies the transactions in order: observed
generation, per-region entries and totals, the specific conditions (`StreamReady`,
`WorkersAvailable`, `Degraded`), `Ready` derived from them, then the phase. Conditions follow
metav1: `lastTransitionTime` moves only when `status` flips, so recomputing an unchanged state
yields an equal status and the handler writes nothing.

RegionPools get the same treatment in `pool_status`, with hysteresis: one failed probe does not
fail a region (`failureThreshold` consecutive ones do), and a failed region needs
`recoveryThreshold` good probes to be Healthy again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import ValidationError

from pixelmesh.api.resources import (
    Condition,
    ConditionStatus,
    ImagePipelineStatus,
    PipelinePhase,
    PipelineRegionStatus,
    RegionPhase,
    RegionPoolStatus,
    TrafficStatus,
)


class ConditionType(StrEnum):
    READY = "Ready"
    STREAM_READY = "StreamReady"
    WORKERS_AVAILABLE = "WorkersAvailable"
    DEGRADED = "Degraded"
    NATS_REACHABLE = "NatsReachable"
    JETSTREAM_AVAILABLE = "JetStreamAvailable"


class Reason(StrEnum):
    """Condition and Event reasons: CamelCase words a program can match on."""

    RECONCILED = "Reconciled"
    INVALID_SPEC = "InvalidSpec"
    POOL_NOT_FOUND = "PoolNotFound"
    NATS_UNREACHABLE = "NatsUnreachable"
    STREAM_CONFLICT = "StreamConflict"
    JETSTREAM_ERROR = "JetStreamError"
    STREAMS_READY = "StreamsReady"
    WORKERS_AVAILABLE = "MinimumReplicasAvailable"
    WORKERS_UNAVAILABLE = "WorkersUnavailable"
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"
    SCALED_TO_ZERO = "ScaledToZero"
    RUNTIME_FAILED = "RuntimeFailed"
    AS_EXPECTED = "AsExpected"
    NOT_RECONCILED = "NotReconciled"
    PROBE_SUCCEEDED = "ProbeSucceeded"
    PROBE_FAILED = "ProbeFailed"
    JETSTREAM_UNAVAILABLE = "JetStreamUnavailable"
    RECOVERING = "Recovering"
    CREATED = "Created"
    UPDATED = "Updated"
    SCALED = "Scaled"
    DELETED = "Deleted"
    CLEANUP_FAILED = "CleanupFailed"
    DRAINING = "Draining"
    REGION_FAILED = "RegionFailed"
    API_SERVER_UNREACHABLE = "ApiServerUnreachable"
    DRAIN_STOPPED = "DrainStopped"


TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
_Status = TypeVar("_Status", ImagePipelineStatus, RegionPoolStatus)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# --- conditions ------------------------------------------------------------------------------------


def find_condition(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """The conditions with `type_` set; its transition time moves only if `status` changed."""
    previous = find_condition(conditions, type_)
    since = previous.last_transition_time if previous is not None and previous.status == status else now
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    kept = [c for c in conditions if c.type != type_]
    return sorted([*kept, updated], key=lambda c: _CONDITION_ORDER.get(c.type, len(_CONDITION_ORDER)))


_CONDITION_ORDER = {t.value: i for i, t in enumerate(ConditionType)}


# --- what the reconciler found ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that is wrong, with the reason to report it under."""

    reason: Reason
    message: str


@dataclass(frozen=True, slots=True)
class RegionReport:
    """The pipeline in one region after a reconcile pass."""

    region: str
    pool: str
    weight: int
    stream_problem: Finding | None = None
    """None: the stream, consumer and buckets exist as specified."""
    workers_problem: Finding | None = None
    """None: the workers' objects (or processes) were applied."""
    desired_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    rolled_out: bool = True
    """Every replica runs the current pipeline revision."""
    backlog: int | None = None
    scaling_reason: str = ""

    @property
    def failure(self) -> Finding | None:
        return self.stream_problem or self.workers_problem

    @property
    def workers_ready(self) -> bool:
        return (
            self.workers_problem is None
            and self.rolled_out
            and self.available_replicas >= self.desired_replicas
        )


@dataclass(frozen=True, slots=True)
class PipelineFindings:
    """Everything `pipeline_status` needs besides the previous status."""

    generation: int
    regions: tuple[RegionReport, ...] = ()
    spec_problem: Finding | None = None
    """The spec cannot be acted on at all (invalid): regions were not touched."""
    placement_problems: tuple[Finding, ...] = ()
    """Regions that could not be placed (a missing pool); the others were reconciled."""
    pipeline_hash: str = ""
    pipeline_generation: int = 0
    traffic: TrafficStatus | None = None
    """Where the rollout of the weights stands; None: no routing decision this pass (keep the last)."""
    now: datetime = field(default_factory=utc_now)


Transaction = Callable[[ImagePipelineStatus], ImagePipelineStatus]


def _parse_status(model: type[_Status], raw: Mapping[str, Any] | None) -> _Status:
    """The stored status, or an empty one if it is missing or not ours."""
    try:
        return model.model_validate(dict(raw or {}))
    except ValidationError:
        return model()


def parse_pipeline_status(raw: Mapping[str, Any] | None) -> ImagePipelineStatus:
    return _parse_status(ImagePipelineStatus, raw)


def observe_generation(generation: int) -> Transaction:
    def apply(status: ImagePipelineStatus) -> ImagePipelineStatus:
        return status.model_copy(update={"observed_generation": generation})

    return apply


def record_traffic(findings: PipelineFindings) -> Transaction:
    """The rollout of the weights, with the reason a shift stopped or rolled back."""

    def apply(status: ImagePipelineStatus) -> ImagePipelineStatus:
        if findings.traffic is None:
            return status
        return status.model_copy(update={"traffic": findings.traffic})

    return apply


def record_regions(findings: PipelineFindings) -> Transaction:
    """Per-region entries, totals and the printer-column summary."""

    def apply(status: ImagePipelineStatus) -> ImagePipelineStatus:
        if findings.spec_problem is not None:
            return status  # nothing was observed: keep what was last seen
        regions = [
            PipelineRegionStatus(
                region=r.region,
                pool=r.pool,
                weight=r.weight,
                desired_replicas=r.desired_replicas,
                ready_replicas=r.ready_replicas,
                backlog=r.backlog,
                scaling_reason=r.scaling_reason,
                stream_ready=r.stream_problem is None,
                message=r.failure.message if r.failure is not None else "",
            )
            for r in findings.regions
        ]
        backlogs = [r.backlog for r in findings.regions if r.backlog is not None]
        return status.model_copy(
            update={
                "regions": regions,
                "desired_replicas": sum(r.desired_replicas for r in findings.regions),
                "ready_replicas": sum(r.ready_replicas for r in findings.regions),
                "backlog": sum(backlogs) if backlogs else None,
                "region_summary": ",".join(f"{r.region}={r.weight}" for r in findings.regions),
                "pipeline_hash": findings.pipeline_hash or status.pipeline_hash,
                "pipeline_generation": findings.pipeline_generation or status.pipeline_generation,
            }
        )

    return apply


def _condition(
    type_: ConditionType, status: ConditionStatus, finding: Finding, findings: PipelineFindings
) -> Transaction:

    def apply(current: ImagePipelineStatus) -> ImagePipelineStatus:
        conditions = set_condition(
            current.conditions,
            type_,
            status,
            finding.reason,
            finding.message,
            generation=findings.generation,
            now=findings.now,
        )
        return current.model_copy(update={"conditions": conditions})

    return apply


def _regions_text(count: int) -> str:
    return f"{count} region" + ("" if count == 1 else "s")


def stream_condition(findings: PipelineFindings) -> Transaction:
    if findings.spec_problem is not None:
        return _condition(ConditionType.STREAM_READY, UNKNOWN, findings.spec_problem, findings)
    broken = [r for r in findings.regions if r.stream_problem is not None]
    if broken:
        first = broken[0].stream_problem
        assert first is not None
        return _condition(ConditionType.STREAM_READY, FALSE, first, findings)
    if not findings.regions:
        return _condition(ConditionType.STREAM_READY, FALSE, _no_region(findings), findings)
    message = f"Job streams and consumers exist in {_regions_text(len(findings.regions))}."
    return _condition(ConditionType.STREAM_READY, TRUE, Finding(Reason.STREAMS_READY, message), findings)


def _no_region(findings: PipelineFindings) -> Finding:
    if findings.placement_problems:
        return findings.placement_problems[0]
    return Finding(Reason.POOL_NOT_FOUND, "The pipeline is placed in no region.")


def _workers_finding(findings: PipelineFindings) -> tuple[bool, Finding]:
    for report in findings.regions:
        if report.workers_problem is not None:
            return False, report.workers_problem
    for report in findings.regions:
        if not report.rolled_out:
            return False, Finding(
                Reason.ROLLOUT_IN_PROGRESS,
                f"Region {report.region}: workers are rolling out a new pipeline revision.",
            )
        if report.available_replicas < report.desired_replicas:
            return False, Finding(
                Reason.WORKERS_UNAVAILABLE,
                f"Region {report.region}: {report.available_replicas} of {report.desired_replicas} "
                "workers available.",
            )
    if not findings.regions:
        return False, _no_region(findings)
    desired = sum(r.desired_replicas for r in findings.regions)
    available = sum(r.available_replicas for r in findings.regions)
    if desired == 0:
        return True, Finding(Reason.SCALED_TO_ZERO, "No workers are needed: the pipeline is scaled to zero.")
    return True, Finding(
        Reason.WORKERS_AVAILABLE,
        f"{available} of {desired} workers available in {_regions_text(len(findings.regions))}.",
    )


def workers_condition(findings: PipelineFindings) -> Transaction:
    if findings.spec_problem is not None:
        return _condition(ConditionType.WORKERS_AVAILABLE, UNKNOWN, findings.spec_problem, findings)
    ok, finding = _workers_finding(findings)
    return _condition(ConditionType.WORKERS_AVAILABLE, TRUE if ok else FALSE, finding, findings)


def _failures(findings: PipelineFindings) -> list[Finding]:
    found = list(findings.placement_problems)
    found += [r.failure for r in findings.regions if r.failure is not None]
    return found


def degraded_condition(findings: PipelineFindings) -> Transaction:
    if findings.spec_problem is not None:
        return _condition(ConditionType.DEGRADED, TRUE, findings.spec_problem, findings)
    failures = _failures(findings)
    if failures:
        return _condition(ConditionType.DEGRADED, TRUE, failures[0], findings)
    return _condition(
        ConditionType.DEGRADED, FALSE, Finding(Reason.AS_EXPECTED, "Every region is as specified."), findings
    )


def ready_condition(findings: PipelineFindings) -> Transaction:
    """`Ready` from the specific conditions: the first that is not fine gives its reason."""

    def apply(status: ImagePipelineStatus) -> ImagePipelineStatus:
        blocking = findings.spec_problem or next(iter(findings.placement_problems), None)
        if blocking is None:
            for type_ in (ConditionType.STREAM_READY, ConditionType.WORKERS_AVAILABLE):
                condition = find_condition(status.conditions, type_)
                if condition is None or condition.status != ConditionStatus.TRUE:
                    reason = Reason(condition.reason) if condition is not None else Reason.NOT_RECONCILED
                    blocking = Finding(reason, condition.message if condition is not None else "")
                    break
        if blocking is not None:
            return _condition(ConditionType.READY, FALSE, blocking, findings)(status)
        ready = sum(r.ready_replicas for r in findings.regions)
        message = f"Ready in {_regions_text(len(findings.regions))} with {ready} workers."
        return _condition(ConditionType.READY, TRUE, Finding(Reason.RECONCILED, message), findings)(status)

    return apply


def derive_phase(findings: PipelineFindings) -> Transaction:
    def apply(status: ImagePipelineStatus) -> ImagePipelineStatus:
        ready = find_condition(status.conditions, ConditionType.READY)
        degraded = find_condition(status.conditions, ConditionType.DEGRADED)
        if findings.spec_problem is not None or not findings.regions:
            phase = PipelinePhase.FAILED
        elif ready is not None and ready.status == ConditionStatus.TRUE:
            phase = PipelinePhase.READY
        elif degraded is not None and degraded.status == ConditionStatus.TRUE:
            phase = PipelinePhase.DEGRADED
        else:
            phase = PipelinePhase.PROGRESSING
        return status.model_copy(update={"phase": phase})

    return apply


def apply_transactions(
    status: ImagePipelineStatus, transactions: Iterable[Transaction]
) -> ImagePipelineStatus:
    for transaction in transactions:
        status = transaction(status)
    return status


def pipeline_status(previous: ImagePipelineStatus, findings: PipelineFindings) -> ImagePipelineStatus:
    """The status after a reconcile pass."""
    return apply_transactions(
        previous,
        [
            observe_generation(findings.generation),
            record_regions(findings),
            record_traffic(findings),
            stream_condition(findings),
            workers_condition(findings),
            degraded_condition(findings),
            ready_condition(findings),
            derive_phase(findings),
        ],
    )


def record_scaling(
    status: ImagePipelineStatus, region: str, desired: int, reason: str
) -> ImagePipelineStatus | None:
    """The autoscaler's decision for one region, between two reconcile passes.

    Only a region the last pass reported is updated (the pass creates the entry; None until it has);
    the total follows. Conditions wait for the next pass, which sees the workers the new count brings.
    """
    if not any(r.region == region for r in status.regions):
        return None
    regions = [
        r.model_copy(update={"desired_replicas": desired, "scaling_reason": reason})
        if r.region == region
        else r
        for r in status.regions
    ]
    return status.model_copy(
        update={"regions": regions, "desired_replicas": sum(r.desired_replicas for r in regions)}
    )


def status_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch turning the stored status `old` into `new` (empty: nothing to write)."""
    old = dict(old or {})
    patch: dict[str, Any] = {key: value for key, value in new.items() if old.get(key) != value}
    patch.update({key: None for key in old if key not in new})
    return patch


# --- RegionPool ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe of a region's NATS found."""

    nats_reachable: bool
    jetstream_available: bool
    round_trip_seconds: float | None = None
    message: str = ""
    api_reachable: bool = True
    """The region's Kubernetes API server answered (its workers can be steered)."""

    @property
    def ok(self) -> bool:
        return self.nats_reachable and self.jetstream_available and self.api_reachable


@dataclass(frozen=True, slots=True)
class PoolFindings:
    generation: int
    probe: ProbeResult
    active_workers: int
    failure_threshold: int
    recovery_threshold: int
    now: datetime = field(default_factory=utc_now)


REFRESH_INTERVAL = timedelta(seconds=60)
"""The probe time and round trip are rewritten at most this often when nothing else changes."""


def parse_pool_status(raw: Mapping[str, Any] | None) -> RegionPoolStatus:
    return _parse_status(RegionPoolStatus, raw)


def _next_phase(
    previous: RegionPoolStatus, failures: int, successes: int, findings: PoolFindings
) -> RegionPhase:
    if findings.probe.ok:
        if previous.phase == RegionPhase.FAILED and successes < findings.recovery_threshold:
            return RegionPhase.FAILED
        return RegionPhase.HEALTHY
    if failures >= findings.failure_threshold:
        return RegionPhase.FAILED
    if previous.phase == RegionPhase.UNKNOWN:
        return RegionPhase.UNKNOWN
    return RegionPhase.FAILED if previous.phase == RegionPhase.FAILED else RegionPhase.DEGRADED


def pool_status(previous: RegionPoolStatus, findings: PoolFindings) -> RegionPoolStatus:
    """The RegionPool's status after a probe. Counters stop at their thresholds, so a region that
    stays down (or up) stops changing its status."""
    probe = findings.probe
    if probe.ok:
        successes = min(previous.consecutive_successes + 1, findings.recovery_threshold)
        failures = 0
    else:
        failures = min(previous.consecutive_failures + 1, findings.failure_threshold)
        successes = 0
    phase = _next_phase(previous, failures, successes, findings)
    generation, now = findings.generation, findings.now
    conditions = set_condition(
        previous.conditions,
        ConditionType.NATS_REACHABLE,
        ConditionStatus.TRUE if probe.nats_reachable else ConditionStatus.FALSE,
        Reason.PROBE_SUCCEEDED if probe.nats_reachable else Reason.NATS_UNREACHABLE,
        "NATS answered." if probe.nats_reachable else probe.message,
        generation=generation,
        now=now,
    )
    conditions = set_condition(
        conditions,
        ConditionType.JETSTREAM_AVAILABLE,
        ConditionStatus.TRUE if probe.jetstream_available else ConditionStatus.FALSE,
        Reason.PROBE_SUCCEEDED if probe.jetstream_available else Reason.JETSTREAM_UNAVAILABLE,
        "JetStream answered." if probe.jetstream_available else probe.message,
        generation=generation,
        now=now,
    )
    if phase == RegionPhase.HEALTHY:
        ready = (ConditionStatus.TRUE, Reason.PROBE_SUCCEEDED, "The region's NATS and JetStream answer.")
    elif phase == RegionPhase.FAILED and probe.ok:
        ready = (
            ConditionStatus.FALSE,
            Reason.RECOVERING,
            f"Probes succeed again ({successes} of {findings.recovery_threshold} needed to recover).",
        )
    else:
        if not probe.nats_reachable:
            reason = Reason.NATS_UNREACHABLE
        elif not probe.jetstream_available:
            reason = Reason.JETSTREAM_UNAVAILABLE
        else:
            reason = Reason.API_SERVER_UNREACHABLE
        ready = (ConditionStatus.FALSE, reason, probe.message)
    conditions = set_condition(conditions, ConditionType.READY, *ready, generation=generation, now=now)
    round_trip = round(probe.round_trip_seconds * 1000.0, 1) if probe.round_trip_seconds is not None else None
    candidate = previous.model_copy(
        update={
            "observed_generation": generation,
            "phase": phase,
            "conditions": conditions,
            "consecutive_failures": failures,
            "consecutive_successes": successes,
            "active_workers": findings.active_workers,
        }
    )
    fresh = previous.last_probe_time is None or now - previous.last_probe_time >= REFRESH_INTERVAL
    if candidate != previous or fresh:
        return candidate.model_copy(update={"last_probe_time": now, "round_trip_milliseconds": round_trip})
    return previous
