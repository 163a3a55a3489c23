"""Region health: one probe's verdict, and a phase that changes only with hysteresis.

A region is judged on what a client of it would feel: can we reach its NATS and does JetStream
answer (without them no job is accepted or processed), does its API server answer (without it we
cannot steer its workers), and are its workers keeping up (ready replicas, error rate, backlog
growth). The first group makes a probe `down`; the second makes it `degraded`.

One bad probe is noise, not an outage: the phase turns `Failed` only after `failure_threshold`
consecutive `down` probes, and back to `Healthy` only after `recovery_threshold` consecutive good
ones. `Degraded` does not move traffic by itself (a traffic shift's guard reads it); `Failed` sends
the region's weight to zero and starts the failover.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class RegionPhase(StrEnum):
    """The phase a RegionPool reports."""

    UNKNOWN = "Unknown"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class Verdict(StrEnum):
    """One probe's judgement."""

    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """What one probe of a region saw. `None` means not measured (not a failure by itself)."""

    nats_reachable: bool
    jetstream_available: bool
    api_reachable: bool = True
    round_trip_seconds: float | None = None
    ready_workers: int | None = None
    desired_workers: int | None = None
    error_rate: float | None = None
    """Failed jobs over all jobs finished since the last probe."""
    backlog_growth: float | None = None
    """Change of the backlog per second since the last probe."""


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Thresholds from `RegionPool.spec.failover`."""

    failure_threshold: int = 3
    recovery_threshold: int = 3
    max_round_trip_seconds: float = 1.0
    max_error_rate: float = 0.05
    max_backlog_growth: float = 50.0
    """Jobs per second of sustained backlog growth that mark a region degraded."""


def judge(probe: Probe, policy: HealthPolicy) -> tuple[Verdict, str, str]:
    """The verdict of one probe with a CamelCase reason and a sentence saying why."""
    if not probe.nats_reachable:
        return Verdict.DOWN, "NatsUnreachable", "The region's NATS servers did not answer."
    if not probe.jetstream_available:
        return Verdict.DOWN, "JetStreamUnavailable", "NATS answered but JetStream did not."
    if not probe.api_reachable:
        return Verdict.DOWN, "ApiServerUnreachable", "The region's Kubernetes API server did not answer."
    if probe.round_trip_seconds is not None and probe.round_trip_seconds > policy.max_round_trip_seconds:
        return (
            Verdict.DEGRADED,
            "SlowRoundTrip",
            f"NATS round trip took {probe.round_trip_seconds:.3f}s (limit {policy.max_round_trip_seconds}s).",
        )
    if probe.error_rate is not None and probe.error_rate > policy.max_error_rate:
        return (
            Verdict.DEGRADED,
            "HighErrorRate",
            f"{probe.error_rate:.1%} of jobs failed (limit {policy.max_error_rate:.1%}).",
        )
    if (
        probe.ready_workers is not None
        and probe.desired_workers is not None
        and probe.desired_workers > 0
        and probe.ready_workers == 0
    ):
        return Verdict.DEGRADED, "NoReadyWorkers", f"0 of {probe.desired_workers} workers are ready."
    if probe.backlog_growth is not None and probe.backlog_growth > policy.max_backlog_growth:
        return (
            Verdict.DEGRADED,
            "BacklogGrowing",
            f"The backlog grows by {probe.backlog_growth:.0f} jobs/s.",
        )
    return Verdict.OK, "ProbeSucceeded", "NATS, JetStream and the API server answer; workers keep up."


@dataclass(frozen=True, slots=True)
class RegionHealth:
    """A region's phase and the streaks that move it."""

    phase: RegionPhase = RegionPhase.UNKNOWN
    reason: str = "NotProbed"
    message: str = "The region has not been probed yet."
    failures: int = 0
    """Consecutive `down` probes."""
    successes: int = 0
    """Consecutive probes that were not `down`."""
    since: float | None = None
    """When the phase last changed."""

    @property
    def routable(self) -> bool:
        """Whether new jobs may be sent here."""
        return self.phase in (RegionPhase.HEALTHY, RegionPhase.DEGRADED)


def advance(health: RegionHealth, probe: Probe, policy: HealthPolicy, now: float) -> RegionHealth:
    """The health after one more probe."""
    verdict, reason, message = judge(probe, policy)
    if verdict is Verdict.DOWN:
        failures, successes = health.failures + 1, 0
    else:
        failures, successes = 0, health.successes + 1

    phase = health.phase
    if verdict is Verdict.DOWN:
        if failures >= policy.failure_threshold or (phase is RegionPhase.UNKNOWN and failures >= 1):
            # An unprobed region that cannot be reached is not routable; a known-good one gets the
            # benefit of the doubt until the threshold.
            phase = RegionPhase.FAILED
    elif phase is RegionPhase.FAILED:
        if successes >= policy.recovery_threshold:
            phase = RegionPhase.DEGRADED if verdict is Verdict.DEGRADED else RegionPhase.HEALTHY
        else:
            reason = "Recovering"
            message = (
                f"{successes} of {policy.recovery_threshold} consecutive good probes before the region "
                "counts as healthy again."
            )
    else:
        phase = RegionPhase.DEGRADED if verdict is Verdict.DEGRADED else RegionPhase.HEALTHY

    since = now if phase is not health.phase else health.since
    if phase is health.phase and verdict is Verdict.DOWN:
        # Keep saying why the phase is what it is, but show the streak in the message.
        message = f"{message} ({failures} consecutive failed probes)"
    return replace(
        health,
        phase=phase,
        reason=reason,
        message=message,
        failures=failures,
        successes=successes,
        since=since,
    )
