"""Region health: verdicts per probe, and phases that move only with hysteresis."""

from __future__ import annotations

import pytest

from pixelmesh.operator.federation.health import (
    HealthPolicy,
    Probe,
    RegionHealth,
    RegionPhase,
    Verdict,
    advance,
    judge,
)

POLICY = HealthPolicy(failure_threshold=3, recovery_threshold=2)
GOOD = Probe(
    nats_reachable=True,
    jetstream_available=True,
    round_trip_seconds=0.002,
    ready_workers=2,
    desired_workers=2,
    error_rate=0.0,
    backlog_growth=0.0,
)
DOWN = Probe(nats_reachable=False, jetstream_available=False)


@pytest.mark.parametrize(
    ("probe", "verdict", "reason"),
    [
        (GOOD, Verdict.OK, "ProbeSucceeded"),
        (DOWN, Verdict.DOWN, "NatsUnreachable"),
        (Probe(nats_reachable=True, jetstream_available=False), Verdict.DOWN, "JetStreamUnavailable"),
        (
            Probe(nats_reachable=True, jetstream_available=True, api_reachable=False),
            Verdict.DOWN,
            "ApiServerUnreachable",
        ),
        (
            Probe(nats_reachable=True, jetstream_available=True, round_trip_seconds=3.0),
            Verdict.DEGRADED,
            "SlowRoundTrip",
        ),
        (
            Probe(nats_reachable=True, jetstream_available=True, error_rate=0.3),
            Verdict.DEGRADED,
            "HighErrorRate",
        ),
        (
            Probe(nats_reachable=True, jetstream_available=True, ready_workers=0, desired_workers=3),
            Verdict.DEGRADED,
            "NoReadyWorkers",
        ),
        (
            Probe(nats_reachable=True, jetstream_available=True, ready_workers=0, desired_workers=0),
            Verdict.OK,
            "ProbeSucceeded",
        ),
        (
            Probe(nats_reachable=True, jetstream_available=True, backlog_growth=500.0),
            Verdict.DEGRADED,
            "BacklogGrowing",
        ),
    ],
)
def test_judge(probe: Probe, verdict: Verdict, reason: str) -> None:
    got, got_reason, message = judge(probe, POLICY)
    assert (got, got_reason) == (verdict, reason)
    assert message.endswith(".")


def _run(probes: list[Probe], start: RegionHealth | None = None) -> list[RegionPhase]:
    health = start or RegionHealth()
    phases = []
    for i, probe in enumerate(probes):
        health = advance(health, probe, POLICY, float(i))
        phases.append(health.phase)
    return phases


def test_failed_only_after_the_threshold_of_consecutive_failures() -> None:
    phases = _run([GOOD, DOWN, DOWN, DOWN])
    assert phases == [RegionPhase.HEALTHY, RegionPhase.HEALTHY, RegionPhase.HEALTHY, RegionPhase.FAILED]


def test_one_good_probe_resets_the_failure_streak() -> None:
    phases = _run([GOOD, DOWN, DOWN, GOOD, DOWN, DOWN])
    assert RegionPhase.FAILED not in phases


def test_recovery_needs_its_own_streak() -> None:
    phases = _run([GOOD, DOWN, DOWN, DOWN, GOOD, DOWN, GOOD, GOOD])
    assert phases[3:] == [
        RegionPhase.FAILED,
        RegionPhase.FAILED,
        RegionPhase.FAILED,
        RegionPhase.FAILED,
        RegionPhase.HEALTHY,
    ]


def test_recovering_region_says_how_far_it_is() -> None:
    health = RegionHealth(phase=RegionPhase.FAILED, failures=5)
    health = advance(health, GOOD, POLICY, 10.0)
    assert health.phase is RegionPhase.FAILED
    assert health.reason == "Recovering"
    assert "1 of 2" in health.message


def test_unprobed_unreachable_region_is_failed_at_once() -> None:
    assert _run([DOWN]) == [RegionPhase.FAILED]


def test_degraded_is_immediate_and_still_routable() -> None:
    health = advance(
        RegionHealth(), Probe(nats_reachable=True, jetstream_available=True, error_rate=0.5), POLICY, 0.0
    )
    assert health.phase is RegionPhase.DEGRADED
    assert health.routable


def test_since_changes_only_when_the_phase_does() -> None:
    h1 = advance(RegionHealth(), GOOD, POLICY, 1.0)
    h2 = advance(h1, GOOD, POLICY, 2.0)
    h3 = advance(h2, DOWN, POLICY, 3.0)
    assert (h1.since, h2.since, h3.since) == (1.0, 1.0, 1.0)
    assert h3.failures == 1
    assert "1 consecutive failed probes" in h3.message
