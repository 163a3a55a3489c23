"""A queue model that runs the scaling decision against arrival curves, second by second.

Jobs arrive at a rate given by a curve; each ready replica completes `service_rate` jobs per second;
a replica the autoscaler adds is ready only after `startup_delay` (a pod's scheduling, image pull
and NATS connect). Every `interval` seconds the decision sees what the operator would see: the
backlog, the arrival rate estimated from the stream's sequence numbers, and the measured service
rate. The figures that matter come out: how far the backlog grows, how long a job waits at worst,
how often the fleet changes direction (flapping), and the cost in replica-seconds against a fixed
fleet sized for the peak.

The model is fluid (fractional jobs) with seeded noise on arrivals, so a run is repeatable and fast: a
simulated day takes well under a second. `python -m pixelmesh.operator.autoscaling.simulate`
prints the table for the standard scenarios.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pixelmesh.operator.autoscaling.decision import (
    Measurements,
    ScalerMemory,
    ScalingPolicy,
    arrival_rate,
    decide,
)

ArrivalCurve = Callable[[float], float]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A traffic shape and the workers that serve it."""

    name: str
    arrivals: ArrivalCurve
    duration: float
    service_rate: float = 10.0
    """Jobs per second one replica completes."""
    startup_delay: float = 15.0
    interval: float = 5.0
    """Seconds between decisions (the operator's default)."""
    peak_rate: float = 0.0
    """The curve's highest rate, to size the fixed fleet it is compared with."""
    noise: bool = True
    """Draw each second's arrivals around the curve (Poisson-like), as real traffic is."""
    seed: int = 7
    rates: bool = True
    """Give the decision the arrival and service rates; False sizes by the backlog alone, as KEDA's
    JetStream scaler does (`ceil(lag / lagThreshold)`), for comparison."""


@dataclass(frozen=True, slots=True)
class Report:
    """What one run measured."""

    scenario: str
    arrived: float
    completed: float
    peak_backlog: float
    final_backlog: float
    max_wait: float
    """The longest any job waited between arrival and completion, in seconds (FIFO)."""
    direction_changes: int
    replica_seconds: float
    fixed_fleet: int
    fixed_replica_seconds: float
    peak_replicas: int
    scaled_to_zero: bool
    """The fleet went back to zero after having served traffic."""

    @property
    def cost_ratio(self) -> float:
        """Autoscaled cost over the fixed fleet's: below 1 is a saving."""
        return self.replica_seconds / self.fixed_replica_seconds


@dataclass
class _Fleet:
    """Replicas that serve, and replicas still starting (with the time each becomes ready)."""

    ready: int
    starting: list[float] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.ready + len(self.starting)

    def advance(self, now: float) -> None:
        self.ready += sum(1 for at in self.starting if at <= now)
        self.starting = [at for at in self.starting if at > now]

    def resize(self, desired: int, now: float, startup_delay: float) -> None:
        if desired > self.size:
            self.starting += [now + startup_delay] * (desired - self.size)
        elif desired < self.size:
            # A scale-down cancels replicas that are still starting before it stops serving ones.
            drop = self.size - desired
            cancelled = min(drop, len(self.starting))
            self.starting = self.starting[: len(self.starting) - cancelled]
            self.ready -= drop - cancelled


def simulate(scenario: Scenario, policy: ScalingPolicy, tick: float = 1.0) -> Report:
    """Run `scenario` under `policy`, advancing `tick` seconds at a time."""
    rng = random.Random(scenario.seed)
    fleet = _Fleet(ready=policy.floor)
    memory = ScalerMemory()
    backlog = arrived = completed = peak_backlog = replica_seconds = 0.0
    arrived_by: list[float] = []  # cumulative arrivals and completions after each tick, for FIFO waits
    completed_by: list[float] = []
    seq_samples: list[tuple[float, int]] = []
    last_direction = direction_changes = peak_replicas = 0
    scaled_to_zero = False
    next_decision = t = 0.0
    while t < scenario.duration:
        fleet.advance(t)
        expected = scenario.arrivals(t) * tick
        incoming = max(0.0, rng.gauss(expected, math.sqrt(expected))) if scenario.noise else expected
        done = min(backlog + incoming, fleet.ready * scenario.service_rate * tick)
        backlog += incoming - done
        arrived += incoming
        completed += done
        replica_seconds += fleet.size * tick
        peak_backlog = max(peak_backlog, backlog)
        arrived_by.append(arrived)
        completed_by.append(completed)

        if t >= next_decision:
            next_decision = t + scenario.interval
            seq_samples = [*seq_samples, (t, int(arrived))][-16:]
            m = Measurements(
                current_replicas=fleet.size,
                backlog=math.ceil(backlog) if backlog > 0.5 else 0,
                arrival_rate=arrival_rate(seq_samples, t) if scenario.rates else None,
                service_rate=scenario.service_rate if scenario.rates else None,
            )
            decision = decide(policy, m, memory, t)
            memory = decision.memory
            if decision.desired != fleet.size:
                direction = 1 if decision.desired > fleet.size else -1
                direction_changes += bool(last_direction and direction != last_direction)
                last_direction = direction
            fleet.resize(decision.desired, t, scenario.startup_delay)
            peak_replicas = max(peak_replicas, decision.desired)
            scaled_to_zero = scaled_to_zero or (decision.desired == 0 and peak_replicas > 0)
        t += tick

    peak = scenario.peak_rate or max(scenario.arrivals(s) for s in range(int(scenario.duration)))
    fixed = math.ceil(peak / (scenario.service_rate * policy.target_utilization))
    return Report(
        scenario=scenario.name,
        arrived=arrived,
        completed=completed,
        peak_backlog=peak_backlog,
        final_backlog=backlog,
        max_wait=fifo_max_wait(arrived_by, completed_by, tick),
        direction_changes=direction_changes,
        replica_seconds=replica_seconds,
        fixed_fleet=fixed,
        fixed_replica_seconds=fixed * scenario.duration,
        peak_replicas=peak_replicas,
        scaled_to_zero=scaled_to_zero,
    )


def fifo_max_wait(arrived_by: Sequence[float], completed_by: Sequence[float], tick: float) -> float:
    """The longest wait of a first-in-first-out queue, from cumulative arrival and completion curves.

    The work that had arrived by tick i is done at the first tick j where completions reach it;
    a job still waiting at the end counts up to the end.
    """
    worst, j = 0.0, 0
    for i, due in enumerate(arrived_by):
        j = max(j, i)
        while j < len(completed_by) and completed_by[j] < due - 1e-6:
            j += 1
        worst = max(worst, (j - i) * tick)
    return worst


def step_10x(base: float = 20.0, start: float = 600.0, end: float = 1800.0) -> ArrivalCurve:
    """Traffic jumps tenfold at `start` and falls back at `end`."""
    return lambda t: base * 10 if start <= t < end else base


def sine_day(low: float = 20.0, high: float = 200.0, period: float = 7200.0) -> ArrivalCurve:
    """A day compressed into `period` seconds: a 10x swing between night and afternoon."""
    mid, amplitude = (high + low) / 2, (high - low) / 2
    return lambda t: mid - amplitude * math.cos(2 * math.pi * t / period)


def burst(
    base: float = 30.0,
    peak: float = 600.0,
    start: float = 900.0,
    length: float = 60.0,
    quiet: tuple[float, float] = (300.0, 1800.0),
) -> ArrivalCurve:
    """Silence, steady traffic, a short burst 20x the base (a push notification), silence again."""

    def rate(t: float) -> float:
        if not quiet[0] <= t < quiet[1]:
            return 0.0
        return peak if start <= t < start + length else base

    return rate


def standard_scenarios() -> list[Scenario]:
    """The scenarios the test suite and the README figures use."""
    return [
        Scenario("step-10x", step_10x(), duration=2700.0, peak_rate=200.0),
        Scenario("sine-day", sine_day(), duration=14400.0, peak_rate=200.0),
        Scenario("burst", burst(), duration=2400.0, peak_rate=600.0),
    ]


def render(reports: Sequence[Report]) -> str:
    """The reports as a fixed-width table."""
    header = (
        f"{'scenario':<10} {'arrived':>9} {'peak backlog':>12} {'max wait s':>10} {'final':>6} "
        f"{'dir changes':>11} {'peak repl':>9} {'fixed':>5} {'cost vs fixed':>13} {'to zero':>7}"
    )
    rows = [
        f"{r.scenario:<10} {r.arrived:>9.0f} {r.peak_backlog:>12.0f} {r.max_wait:>10.1f} "
        f"{r.final_backlog:>6.0f} "
        f"{r.direction_changes:>11} {r.peak_replicas:>9} {r.fixed_fleet:>5} {r.cost_ratio:>13.2f} "
        f"{'yes' if r.scaled_to_zero else 'no':>7}"
        for r in reports
    ]
    return "\n".join([header, *rows])


def main() -> None:
    """Print the standard scenarios under the default policy (with room for the burst), then the same
    traffic sized by the backlog alone (KEDA's way) for comparison."""
    policy = ScalingPolicy(max_replicas=80)
    print(render([simulate(s, policy) for s in standard_scenarios()]))  # noqa: T201
    print("\nbacklog only (as KEDA's JetStream scaler sizes):")  # noqa: T201
    lag_only = [dataclasses.replace(s, rates=False) for s in standard_scenarios()]
    print(render([simulate(s, policy) for s in lag_only]))  # noqa: T201


if __name__ == "__main__":
    main()
