"""Status transactions: conditions flip with their transition time, Ready follows the specifics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pixelmesh.api.resources import (
    ConditionStatus,
    ImagePipelineStatus,
    PipelinePhase,
    RegionPhase,
    RegionPoolStatus,
)
from pixelmesh.operator.status import (
    ConditionType,
    Finding,
    PipelineFindings,
    PoolFindings,
    ProbeResult,
    Reason,
    RegionReport,
    find_condition,
    pipeline_status,
    pool_status,
    set_condition,
    status_patch,
)

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def healthy(region: str = "local", ready: int = 2) -> RegionReport:
    return RegionReport(
        region=region,
        pool="",
        weight=100,
        desired_replicas=2,
        ready_replicas=ready,
        available_replicas=ready,
        backlog=7,
    )


def condition(status: ImagePipelineStatus, type_: ConditionType) -> tuple[str, str]:
    found = find_condition(status.conditions, type_)
    assert found is not None
    return found.status.value, found.reason


def test_transition_time_moves_only_when_the_status_flips() -> None:
    first = set_condition([], "Ready", ConditionStatus.FALSE, "Waiting", "a", generation=1, now=T0)
    same = set_condition(first, "Ready", ConditionStatus.FALSE, "StillWaiting", "b", generation=2, now=T1)
    assert same[0].last_transition_time == T0
    assert same[0].reason == "StillWaiting"
    assert same[0].observed_generation == 2
    flipped = set_condition(same, "Ready", ConditionStatus.TRUE, "Done", "c", generation=2, now=T1)
    assert flipped[0].last_transition_time == T1


def test_a_pipeline_with_streams_and_available_workers_is_ready() -> None:
    status = pipeline_status(
        ImagePipelineStatus(), PipelineFindings(generation=3, regions=(healthy(),), now=T0)
    )
    assert condition(status, ConditionType.READY) == ("True", Reason.RECONCILED)
    assert condition(status, ConditionType.STREAM_READY) == ("True", Reason.STREAMS_READY)
    assert condition(status, ConditionType.WORKERS_AVAILABLE) == ("True", Reason.WORKERS_AVAILABLE)
    assert condition(status, ConditionType.DEGRADED) == ("False", Reason.AS_EXPECTED)
    assert status.phase is PipelinePhase.READY
    assert status.observed_generation == 3
    assert (status.desired_replicas, status.ready_replicas, status.backlog) == (2, 2, 7)
    assert status.region_summary == "local=100"


def test_recomputing_an_unchanged_state_writes_nothing() -> None:
    findings = PipelineFindings(generation=3, regions=(healthy(),), now=T0)
    first = pipeline_status(ImagePipelineStatus(), findings)
    later = PipelineFindings(generation=3, regions=(healthy(),), now=T1)
    second = pipeline_status(first, later)
    assert status_patch(first.to_wire(), second.to_wire()) == {}


def test_waiting_for_workers_is_progressing_not_degraded() -> None:
    status = pipeline_status(
        ImagePipelineStatus(), PipelineFindings(generation=1, regions=(healthy(ready=0),), now=T0)
    )
    assert condition(status, ConditionType.READY) == ("False", Reason.WORKERS_UNAVAILABLE)
    assert condition(status, ConditionType.DEGRADED)[0] == "False"
    assert status.phase is PipelinePhase.PROGRESSING


def test_an_unreachable_nats_makes_the_pipeline_degraded_with_the_regions_message() -> None:
    broken = RegionReport(
        region="eu-west",
        pool="eu-west",
        weight=100,
        stream_problem=Finding(Reason.NATS_UNREACHABLE, "Region eu-west: NATS is unreachable."),
        desired_replicas=2,
        ready_replicas=2,
        available_replicas=2,
    )
    status = pipeline_status(
        ImagePipelineStatus(), PipelineFindings(generation=1, regions=(healthy(), broken), now=T0)
    )
    assert condition(status, ConditionType.STREAM_READY) == ("False", Reason.NATS_UNREACHABLE)
    assert condition(status, ConditionType.READY) == ("False", Reason.NATS_UNREACHABLE)
    assert condition(status, ConditionType.DEGRADED) == ("True", Reason.NATS_UNREACHABLE)
    assert status.phase is PipelinePhase.DEGRADED
    assert status.regions[1].message == "Region eu-west: NATS is unreachable."


def test_a_missing_pool_blocks_ready_while_the_other_regions_run() -> None:
    findings = PipelineFindings(
        generation=1,
        regions=(healthy(),),
        placement_problems=(Finding(Reason.POOL_NOT_FOUND, "RegionPool us-east does not exist."),),
        now=T0,
    )
    status = pipeline_status(ImagePipelineStatus(), findings)
    assert condition(status, ConditionType.READY) == ("False", Reason.POOL_NOT_FOUND)
    assert condition(status, ConditionType.WORKERS_AVAILABLE)[0] == "True"
    assert status.phase is PipelinePhase.DEGRADED


def test_an_invalid_spec_fails_without_forgetting_what_was_running() -> None:
    running = pipeline_status(
        ImagePipelineStatus(), PipelineFindings(generation=1, regions=(healthy(),), now=T0)
    )
    invalid = PipelineFindings(
        generation=2, spec_problem=Finding(Reason.INVALID_SPEC, "spec.variants: bad"), now=T1
    )
    status = pipeline_status(running, invalid)
    assert condition(status, ConditionType.READY) == ("False", Reason.INVALID_SPEC)
    assert condition(status, ConditionType.STREAM_READY) == ("Unknown", Reason.INVALID_SPEC)
    assert status.phase is PipelinePhase.FAILED
    assert status.regions == running.regions
    assert status.observed_generation == 2


def test_status_patch_removes_what_is_gone() -> None:
    assert status_patch({"backlog": 4, "phase": "Ready"}, {"phase": "Ready"}) == {"backlog": None}
    assert status_patch(None, {"phase": "Ready"}) == {"phase": "Ready"}


def pool_findings(*, ok: bool, now: datetime, failures: int = 3, recoveries: int = 2) -> PoolFindings:
    probe = ProbeResult(
        nats_reachable=ok, jetstream_available=ok, round_trip_seconds=0.002 if ok else None, message="down"
    )
    return PoolFindings(
        1, probe, active_workers=4, failure_threshold=failures, recovery_threshold=recoveries, now=now
    )


def test_a_region_fails_only_after_consecutive_failed_probes_and_recovers_slowly() -> None:
    status = pool_status(RegionPoolStatus(), pool_findings(ok=True, now=T0))
    assert status.phase is RegionPhase.HEALTHY
    assert status.round_trip_milliseconds == 2.0
    assert status.active_workers == 4
    phases = []
    for minute in range(1, 4):
        status = pool_status(status, pool_findings(ok=False, now=T0 + timedelta(minutes=minute)))
        phases.append(status.phase)
    assert phases == [RegionPhase.DEGRADED, RegionPhase.DEGRADED, RegionPhase.FAILED]
    status = pool_status(status, pool_findings(ok=True, now=T1))
    assert status.phase is RegionPhase.FAILED, "one good probe is not a recovery"
    status = pool_status(status, pool_findings(ok=True, now=T1 + timedelta(seconds=10)))
    assert status.phase is RegionPhase.HEALTHY


def test_a_steady_region_stops_changing_its_status() -> None:
    status = pool_status(RegionPoolStatus(), pool_findings(ok=True, now=T0))
    status = pool_status(status, pool_findings(ok=True, now=T0 + timedelta(seconds=10)))
    assert status.consecutive_successes == 2, "counters stop at their threshold"
    again = pool_status(status, pool_findings(ok=True, now=T0 + timedelta(seconds=20)))
    assert again == status, "the probe time is refreshed at most once a minute"
    later = pool_status(status, pool_findings(ok=True, now=T0 + timedelta(minutes=2)))
    assert later.last_probe_time == T0 + timedelta(minutes=2)
