"""The multi-region scenarios: steady split, a region lost under load, failback, a guarded shift.

Each scenario runs its own pipeline on the session's world and counts every job by id through a
`JobLedger`; its figures go into a `ScenarioReport` printed at the end of the run.

1. Steady state: thousands of jobs from callers with no home region spread over the regions by
   the pipeline's weights, and each completes exactly once, in the region that accepted it.
2. Region loss under load (`durability: regional`): r3 dies while every gateway keeps taking jobs.
   Its weight goes to 0, its backup (r1) drains the mirror of its job stream, and every job any
   gateway answered 202 for completes. Measured: seconds to weight 0, to the drain opening and
   emptying, the mirror lag before the loss and the jobs lost with r3 (the RPO).
3. Failback: r3 comes back; its weight returns in steps of the pipeline's `trafficShift`, the
   drain closes, and the jobs left in r3's stream are skipped or redone into the same bytes.
4. Guarded shift: weight moves toward a region whose workers fail every job; the shift's guard
   sees the error rate and rolls the weights back, with a `GuardBreached` Event.
5. Region loss under load with `durability: geo`: the jobs live on the NATS cluster stretched over
   the regions, so nothing accepted is lost; the backup takes the lost region's own stream. Its
   accept latency is reported beside scenario 2's.

Scenarios 2 and 3 share one pipeline and one ledger (3 continues where 2 left the world); if a
scenario leaves r3 lost, the module's teardown brings it back for the rest of the session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import nats
import pytest

from e2e.federation.background import Beside
from e2e.federation.ledger import JobLedger, Tally, record_streams
from e2e.federation.manifests import thumbnail_pipeline
from e2e.federation.report import ScenarioReport
from e2e.federation.scenario import (
    ReadyPipeline,
    after_loss_by_gateway,
    clean,
    ledger_for,
    operator_mirror_lag,
    paced_load,
    recent_region_events,
    refusals,
    settle,
    settle_records,
    shares,
    since,
    start_pipeline,
)
from e2e.federation.watch import (
    ConsumerWatch,
    MirrorLagWatch,
    RoutingSample,
    RoutingWatch,
    first_sample,
    weight_steps,
)
from e2e.federation.world import World, condition, wait_for
from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef

pytest_plugins = ["e2e.federation.fixtures"]
pytestmark = pytest.mark.slow

LOST = "r3"
BACKUP = "r1"
"""r3's backup in the world's ring (r1 -> r2 -> r3 -> r1)."""

STEADY_JOBS = 5000
STEADY_WEIGHTS = {"r1": 50, "r2": 30, "r3": 20}
SPLIT_TOLERANCE_POINTS = 5.0

FAILOVER_WEIGHTS = {"r1": 30, "r2": 30, "r3": 40}
FAILBACK_SHIFT = {"stepPercent": 15, "interval": "2s"}
RPO_WINDOW = 1.0
"""Seconds before a loss within which an accepted job may not have left the region yet (the mirror
and the record replicas copy within about a second on loopback)."""
DRAIN_AFTER_WEIGHT_ZERO = 10.0
"""Seconds a drain may trail its region's weight 0: JetStream elects new leaders after a region's
loss, and the operator retries opening the drain at each probe (every 0.5 s here) until one answers."""

GUARDED_BEFORE = {"r1": 50, "r2": 50, "r3": 0}
GUARDED_AFTER = {"r1": 25, "r2": 25, "r3": 50}
GUARDED_SHIFT = {"stepPercent": 20, "interval": "3s", "maxErrorRate": 0.05}
FAILING_WORKERS = {"PIXELMESH_JOB_TIMEOUT_SECONDS": "0.001"}
"""No job meets a one-millisecond budget: every job this region's workers take fails (`timeout`)."""


def replica_states(world: World, origin: str, ref: PipelineRef) -> dict[str, str]:
    """What the other regions hold of `origin`'s completion records, and `origin`'s job stream."""

    async def run() -> dict[str, str]:
        client = await nats.connect(servers=[world.hub.nats_url], connect_timeout=2)
        js = client.jetstream(timeout=3)
        states: dict[str, str] = {}
        names = [stream for stream, _ in record_streams(origin, world.regions_named)[1:]]
        for name in [*names, streams.job_stream(ref, origin)]:
            try:
                info = await js.stream_info(name)
                mirror = info.mirror
                states[name] = f"messages={info.state.messages} last_seq={info.state.last_seq}" + (
                    f" mirror_lag={mirror.lag} active={mirror.active}" if mirror is not None else ""
                )
            except Exception as error:  # a diagnosis: whatever it is, say it
                states[name] = repr(error)
        await client.close()
        return states

    return asyncio.run(run())


def routing_timeline(samples: list[RoutingSample], since_moment: float) -> list[str]:
    """The routing entries seen from a moment on: "+<s> <weights> drains=<origins>"."""
    return [
        f"{s.at - since_moment:+.1f}s {','.join(f'{r}={w}' for r, w in sorted(s.weights.items()))}"
        f" drains={','.join(s.drains) or '-'}"
        for s in samples
        if s.at >= since_moment - 1.0
    ]


# --- 1. steady state ------------------------------------------------------------------------------


@pytest.fixture
def steady(world: World) -> Iterator[ReadyPipeline]:
    """A pipeline weighted 50/30/20 over r1/r2/r3, deleted afterwards to free its workers."""
    namespace = world.create_namespace("steady")
    ready = start_pipeline(world, thumbnail_pipeline(namespace, "thumbs", STEADY_WEIGHTS))
    yield ready
    world.delete_pipeline(namespace, "thumbs")


def test_jobs_without_a_home_region_split_by_weight_and_complete_once(
    world: World, steady: ReadyPipeline, tiny_sources: list[bytes], federation_reports: list[ScenarioReport]
) -> None:
    ledger = ledger_for(world, steady.ref, tiny_sources)
    per_gateway = {
        region: STEADY_JOBS // 3 + (1 if i < STEADY_JOBS % 3 else 0)
        for i, region in enumerate(world.regions_named)
    }

    async def run() -> tuple[Tally, float, float]:
        async with ledger:
            began = time.monotonic()
            await ledger.submit_many(per_gateway, concurrency=6, home="", retries=5)
            submitted = time.monotonic() - began
            tally = await ledger.settle(240.0, interval=2.0)
            return tally, submitted, max(ledger.completed_at.values(), default=began) - began

    tally, submit_seconds, done_seconds = asyncio.run(run())

    accepted = {region: counts.accepted for region, counts in tally.regions.items()}
    assert sum(accepted.values()) == STEADY_JOBS, f"refused for good: {dict(ledger.refusal_reasons)}"
    split = shares(accepted)
    for region, weight in STEADY_WEIGHTS.items():
        assert abs(split.get(region, 0.0) - weight) <= SPLIT_TOLERANCE_POINTS, (
            f"region {region} took {split.get(region)}% of the jobs, its weight is {weight}%: {split}"
        )
    assert clean(tally) == {"lost": [], "duplicates": []}
    assert tally.reprocessed_jobs == (), "with no failure, no job runs in two regions"
    assert tally.total.completed == STEADY_JOBS
    assert tally.completed_by == accepted, "each job ran in the region that accepted it"

    federation_reports.append(
        ScenarioReport(
            scenario=f"1. steady state: {STEADY_JOBS} jobs with no home region, weights {STEADY_WEIGHTS}",
            tally=tally,
            duration_seconds=done_seconds,
            notes={
                "split %": split,
                "submitted in s": round(submit_seconds, 1),
                "throughput jobs/s": round(STEADY_JOBS / done_seconds, 1),
                "pipeline ready s": round(steady.ready_seconds, 1),
                "refusals retried": dict(ledger.refusal_reasons),
            },
        )
    )


# --- 2 and 3. region loss under load, failback ----------------------------------------------------


@dataclass
class FailoverRun:
    """What scenario 2 leaves for scenario 3: the pipeline, the ledger, the routing seen so far."""

    pipeline: ReadyPipeline
    ledger: JobLedger
    lost_at: float | None = None
    lost_wall_clock: datetime | None = None
    samples: list[RoutingSample] = field(default_factory=list)
    unreplicated: dict[str, float] = field(default_factory=dict)
    """Jobs r3 accepted that were not found done while it was down -> seconds before the loss."""


@pytest.fixture(scope="module")
def failover(world: World, tiny_sources: list[bytes]) -> Iterator[FailoverRun]:
    """A `durability: regional` pipeline over the three regions, failing back in 15-point steps."""
    namespace = world.create_namespace("failover")
    document = thumbnail_pipeline(namespace, "thumbs", FAILOVER_WEIGHTS, traffic_shift=FAILBACK_SHIFT)
    pipeline = start_pipeline(world, document)
    yield FailoverRun(pipeline, ledger_for(world, pipeline.ref, tiny_sources))
    if world.regions[LOST].lost:
        world.recover(LOST)
        world.wait_region_phase(LOST, "Healthy", timeout=60.0)
    world.delete_pipeline(namespace, "thumbs")


def test_a_region_lost_under_load_fails_over_to_its_backup_and_every_accepted_job_completes(
    world: World, failover: FailoverRun, federation_reports: list[ScenarioReport]
) -> None:
    ref, ledger = failover.pipeline.ref, failover.ledger
    mirror = streams.job_mirror_stream(ref, LOST, BACKUP)
    backup_url = world.regions[BACKUP].nats_url
    routing = RoutingWatch(world.hub.nats_url, ref, world.hub.name)
    lag = MirrorLagWatch(backup_url, mirror)
    drain = ConsumerWatch(backup_url, mirror, streams.drain_consumer(ref, LOST))
    gateways = list(world.regions_named)
    with Beside(routing.run, lag.run, drain.run, name="watch"):
        # Every gateway takes jobs for its own region (no home header): r3's gateway feeds r3
        # right up to the loss, and afterwards answers as it can.
        with Beside(paced_load(ledger, gateways), name="load"):
            time.sleep(8.0)
            gauge = operator_mirror_lag(ref, LOST, BACKUP)
            lost_at, lost_wall_clock = world.lose(LOST), datetime.now(UTC)
            time.sleep(12.0)
        # While r3 stays down: what it accepted must be found done, by r1 from the mirror.
        lost_jobs = ledger.accepted_by(LOST)
        own = settle(ledger, 90.0, lost_jobs)
        wait_for(drain.drained_at, timeout=30.0, what="the drain of r3 in r1 to be empty")
    tally = settle(ledger, 60.0)
    done = [ledger.completed_at[j] for j in lost_jobs if j in ledger.completed_at]
    figures = {"r3_jobs_all_recorded": max(done) - lost_at} if done else {}
    failover.lost_at, failover.samples = lost_at, list(routing.samples)

    weight_zero = first_sample(routing.samples, lost_at, lambda s: s.weights.get(LOST) == 0)
    drain_opened = first_sample(routing.samples, lost_at, lambda s: LOST in s.drains)
    drained_at, drain_started = drain.drained_at(), drain.started_at()
    before_loss = lag.last_before(lost_at)
    lost_accepted = ledger.accepted_by(LOST)
    accepted_before = len(ledger.accepted_by(LOST, before=lost_at))
    assert accepted_before > 0, "r3 took jobs before it was lost"
    assert weight_zero is not None, f"r3's weight never went to 0: {routing.samples[-3:]}"
    assert drain_opened is not None, f"no drain of r3 was opened: {routing.samples[-3:]}"
    assert drain_opened.drains == (LOST,), (
        f"other regions were drained too: {routing.samples}; r1's events: {world.region_events(BACKUP)}"
    )
    # Weight 0 does not wait for the drain (no new job goes to the dead region either way); while
    # JetStream re-elects after the loss, opening the drain may fail once or twice and is retried
    # at the next probe of any region.
    assert drain_opened.at - weight_zero.at <= DRAIN_AFTER_WEIGHT_ZERO, (
        f"the drain came {drain_opened.at - weight_zero.at:.1f} s after the weight 0: "
        f"{routing_timeline(routing.samples, lost_at)}"
    )
    assert drained_at is not None, "r1's workers never emptied r3's mirror"
    # The RPO of regional durability: jobs r3 accepted whose copy (in the mirror) or completion
    # record (in the replicas) had not left r3 when it died. Only the last moment's can be such.
    # (The tally covers every accepted job; other regions' last ones may not be recorded yet.)
    unreplicated = {
        j: round(lost_at - ledger.accepted[j].accepted_at, 3)
        for j in sorted(set(lost_jobs) & set(own.lost_jobs))
    }
    assert all(before <= RPO_WINDOW for before in unreplicated.values()), (
        f"jobs r3 accepted well before its loss were not found done while it was down "
        f"(seconds before the loss): {unreplicated}"
    )
    failover.unreplicated, failover.lost_wall_clock = unreplicated, lost_wall_clock
    assert tally.duplicate_jobs == ()
    assert set(tally.lost_jobs) <= set(unreplicated), "only r3's unreplicated tail is missing"
    assert sum(c.accepted for c in tally.regions.values()) == len(ledger.accepted)

    federation_reports.append(
        ScenarioReport(
            scenario=f"2. region {LOST} lost under load (durability: regional, backup {BACKUP})",
            tally=tally,
            duration_seconds=time.monotonic() - lost_at,
            failover_seconds={
                "weight_zero": since(lost_at, weight_zero) or 0.0,
                "drain_opened": since(lost_at, drain_opened) or 0.0,
                **({"drain_first_delivery": round(drain_started - lost_at, 2)} if drain_started else {}),
                "drain_empty": round(drained_at - lost_at, 2),
                **{k: round(v, 2) for k, v in figures.items() if v is not None},
            },
            rpo_jobs=len(unreplicated),
            mirror_lag_messages=before_loss,
            notes={
                "r3 accepted (before / after the loss)": (
                    f"{accepted_before} / {len(lost_accepted) - accepted_before}"
                ),
                "r3 jobs redone by r1 into the same bytes": len(tally.reprocessed_jobs),
                "unreplicated r3 jobs (s accepted before the loss)": unreplicated,
                "refused (gateway:status)": refusals(ledger),
                "refusal reasons": dict(ledger.refusal_reasons),
                "operator mirror-lag gauge before the loss": gauge,
                "accepted after the loss, by gateway": after_loss_by_gateway(ledger, lost_at),
                "accept latency s (regional)": ledger.accept_latency(),
                "routing entries": routing_timeline(routing.samples, lost_at),
                "region events": recent_region_events(world),
            },
        )
    )


def test_a_recovered_region_gets_its_traffic_back_in_steps_and_its_drain_closes(
    world: World, failover: FailoverRun, federation_reports: list[ScenarioReport]
) -> None:
    assert failover.lost_at is not None, "scenario 2 lost r3"
    assert world.regions[LOST].lost, "r3 is still lost"
    ref, ledger = failover.pipeline.ref, failover.ledger
    routing = RoutingWatch(world.hub.nats_url, ref, world.hub.name)
    step = FAILBACK_SHIFT["stepPercent"]
    assert isinstance(step, int)
    times: dict[str, float] = {}
    accepted_before = set(ledger.accepted)

    def restored() -> RoutingSample | None:
        latest = routing.latest
        if latest is None or latest.drains:
            return None
        return latest if latest.weights.get(LOST) == FAILOVER_WEIGHTS[LOST] else None

    # Callers with no home region: the weights alone decide, so r3's share follows them.
    with (
        Beside(routing.run, name="watch"),
        Beside(paced_load(ledger, list(world.regions_named), home=""), name="load"),
    ):
        time.sleep(2.0)
        began = time.monotonic()
        times["recovering"] = began
        times["region_restarted"] = world.recover(LOST) - began
        world.wait_region_phase(LOST, "Healthy", timeout=60.0)
        times["reported_healthy"] = time.monotonic() - began
        wait_for(restored, timeout=60.0, what="r3's weight to be restored")
        time.sleep(3.0)
    tally = settle(ledger, 90.0)
    recovering = times["recovering"]
    steps = weight_steps(routing.samples, LOST, recovering)
    drain_closed = first_sample(routing.samples, recovering, lambda s: not s.drains)
    weights_seen = [weight for _, weight in steps]
    assert weights_seen[-1] == FAILOVER_WEIGHTS[LOST]
    assert len(weights_seen) >= 2, f"r3's weight came back in one jump: {steps}"
    assert weights_seen == sorted(weights_seen), f"r3's weight did not only rise: {steps}"
    increments = [b - a for a, b in zip([0, *weights_seen], weights_seen, strict=False)]
    assert max(increments) <= step, f"a failback step moved more than {step} points: {steps}"
    assert drain_closed is not None
    first_back = first_sample(routing.samples, recovering, lambda s: s.weights.get(LOST, 0) > 0)
    assert first_back is not None
    assert drain_closed.at <= first_back.at, "r3 gets new jobs only once r1 stopped draining it"
    assert clean(tally) == {"lost": [], "duplicates": []}, "every job any gateway took is done now"
    found = settle_records(ledger)
    tail = {
        job: [
            f"{c.region} {(c.finished_at - failover.lost_wall_clock).total_seconds():+.2f}s"
            for c in found.get(job, [])
            if c.finished_at is not None and failover.lost_wall_clock is not None
        ]
        for job in failover.unreplicated
    }
    new_jobs = set(ledger.accepted) - accepted_before
    back_in_r3 = [j for j in new_jobs if ledger.accepted[j].region == LOST]
    assert back_in_r3, "no job went to r3 after its weight came back"

    federation_reports.append(
        ScenarioReport(
            scenario=f"3. failback of {LOST} (trafficShift {FAILBACK_SHIFT})",
            tally=tally,
            duration_seconds=time.monotonic() - recovering,
            failover_seconds={
                "region_restarted": times["region_restarted"],
                "reported_healthy": times["reported_healthy"],
                "drain_closed": since(recovering, drain_closed) or 0.0,
                "weight_restored": steps[-1][0],
            },
            notes={
                "r3 weight steps (s after recovery, weight)": steps,
                "jobs over scenarios 2 and 3": len(ledger.accepted),
                "new jobs accepted in r3 during failback": len(back_in_r3),
                "jobs redone into the same bytes": len(tally.reprocessed_jobs),
                "scenario 2's unreplicated jobs: done in (s after the loss)": tail,
            },
        )
    )


# --- 4. guarded shift -----------------------------------------------------------------------------


@pytest.fixture
def guarded(world: World) -> Iterator[ReadyPipeline]:
    """A pipeline on r1/r2 with r3 at weight 0, whose r3 workers fail every job."""
    namespace = world.create_namespace("guarded")
    document = thumbnail_pipeline(namespace, "thumbs", GUARDED_BEFORE, traffic_shift=GUARDED_SHIFT)
    ready = start_pipeline(world, document)
    healthy = set(world.regions[LOST].worker_pids(namespace))
    world.break_workers(LOST, namespace, FAILING_WORKERS)
    wait_for(
        lambda: (pids := set(world.regions[LOST].worker_pids(namespace))) and not pids & healthy,
        timeout=30.0,
        what="r3's workers to run again with a timeout no job meets",
    )
    yield ready
    world.break_workers(LOST, namespace, {})
    world.delete_pipeline(namespace, "thumbs")


def test_a_shift_toward_a_failing_region_rolls_back_to_the_last_good_weights(
    world: World, guarded: ReadyPipeline, tiny_sources: list[bytes], federation_reports: list[ScenarioReport]
) -> None:
    ref = guarded.ref
    ledger = ledger_for(world, ref, tiny_sources)
    routing = RoutingWatch(world.hub.nats_url, ref, world.hub.name)
    document = thumbnail_pipeline(ref.namespace, ref.name, GUARDED_AFTER, traffic_shift=GUARDED_SHIFT)
    times: dict[str, float] = {}

    def rolled_back() -> RoutingSample | None:
        moved = first_sample(routing.samples, times["shift"], lambda s: s.weights.get(LOST, 0) > 0)
        if moved is None:
            return None
        return first_sample(routing.samples, moved.at, lambda s: s.weights.get(LOST) == 0)

    with (
        Beside(routing.run, name="watch"),
        Beside(paced_load(ledger, list(world.regions_named), home=""), name="load"),
    ):
        time.sleep(2.0)
        times["shift"] = time.monotonic()
        world.apply_pipeline(document)
        wait_for(rolled_back, timeout=45.0, what="the shift to r3 to roll back")
        # Held there: the same target is not tried again while the spec asks for it.
        time.sleep(4.0)
    tally = settle(ledger, 60.0)
    shift = times["shift"]
    steps = weight_steps(routing.samples, LOST, shift)
    moved = first_sample(routing.samples, shift, lambda s: s.weights.get(LOST, 0) > 0)
    assert moved is not None
    back = first_sample(routing.samples, moved.at, lambda s: s.weights.get(LOST) == 0)
    assert back is not None
    assert [w for _, w in steps] == [GUARDED_SHIFT["stepPercent"], 0], f"r3's weights: {steps}"
    assert routing.samples[-1].weights == GUARDED_BEFORE, "the weights are back to the last good ones"

    breached = wait_for(
        lambda: [e for e in world.pipeline_events(ref.namespace, ref.name) if e["reason"] == "GuardBreached"],
        timeout=20.0,
        what="a GuardBreached Event on the ImagePipeline",
    )
    assert "r3" in breached[-1]["message"]
    body = world.wait_pipeline_ready(ref.namespace, ref.name, timeout=30.0)
    status_weights = {r["region"]: r["weight"] for r in body["status"]["regions"]}
    assert status_weights == GUARDED_BEFORE, f"the status shows the rolled-back weights: {status_weights}"
    traffic = body["status"].get("traffic") or {}
    assert traffic.get("state") == "RolledBack", f"the status says the shift rolled back: {traffic}"
    assert "r3" in traffic.get("message", ""), f"the status says why: {traffic}"
    failed_in_r3 = tally.regions.get(LOST)
    assert failed_in_r3 is not None, "r3 took jobs during the shift"
    assert failed_in_r3.failed > 0, "r3's workers really failed jobs"
    assert clean(tally) == {"lost": [], "duplicates": []}

    federation_reports.append(
        ScenarioReport(
            scenario=f"4. guarded shift {GUARDED_BEFORE} -> {GUARDED_AFTER} toward failing {LOST}",
            tally=tally,
            duration_seconds=time.monotonic() - shift,
            failover_seconds={
                "first_step": since(shift, moved) or 0.0,
                "rolled_back": since(shift, back) or 0.0,
            },
            notes={
                "r3 weight steps (s after the spec change, weight)": steps,
                "event": breached[-1]["message"],
                "status Ready": condition(body, "Ready").get("message", ""),
                "status summary": body["status"].get("regionSummary", ""),
                "status traffic": f"{traffic.get('state')}: {traffic.get('message')}",
            },
        )
    )


# --- 5. region loss under load, durability: geo ---------------------------------------------------

GEO_LOST = "r2"
GEO_BACKUP = "r3"
"""r2's backup in the ring; r2 is a member whose backup is another member."""
GEO_WEIGHTS = {"r1": 34, "r2": 33, "r3": 33}


@pytest.fixture
def geo(world: World) -> Iterator[ReadyPipeline]:
    """A `durability: geo` pipeline over the three regions; r2 is brought back afterwards."""
    namespace = world.create_namespace("geo")
    ready = start_pipeline(world, thumbnail_pipeline(namespace, "thumbs", GEO_WEIGHTS, durability="geo"))
    yield ready
    if world.regions[GEO_LOST].lost:
        world.recover(GEO_LOST)
        world.wait_region_phase(GEO_LOST, "Healthy", timeout=60.0)
    world.delete_pipeline(namespace, "thumbs")


def test_a_region_lost_under_load_with_geo_durability_loses_no_accepted_job(
    world: World, geo: ReadyPipeline, tiny_sources: list[bytes], federation_reports: list[ScenarioReport]
) -> None:
    ref = geo.ref
    ledger = ledger_for(world, ref, tiny_sources)
    routing = RoutingWatch(world.hub.nats_url, ref, world.hub.name)
    stream = streams.job_stream(ref, GEO_LOST)
    backlog = ConsumerWatch(world.regions[GEO_BACKUP].nats_url, stream, streams.worker_consumer(ref))
    with Beside(routing.run, backlog.run, name="watch"):
        with Beside(paced_load(ledger, list(world.regions_named)), name="load"):
            time.sleep(8.0)
            lost_at, lost_wall_clock = world.lose(GEO_LOST), datetime.now(UTC)
            time.sleep(10.0)
        lost_jobs = ledger.accepted_by(GEO_LOST)
        own = settle(ledger, 90.0, lost_jobs)
    tally = settle(ledger, 60.0)
    done = [ledger.completed_at[j] for j in lost_jobs if j in ledger.completed_at]
    figures = {"r2_jobs_all_recorded": max(done) - lost_at} if done else {}
    weight_zero = first_sample(routing.samples, lost_at, lambda s: s.weights.get(GEO_LOST) == 0)
    drain_opened = first_sample(routing.samples, lost_at, lambda s: GEO_LOST in s.drains)
    accepted_before = len(ledger.accepted_by(GEO_LOST, before=lost_at))
    assert accepted_before > 0, "r2 took jobs before it was lost"
    assert weight_zero is not None, f"r2's weight never went to 0: {routing.samples[-3:]}"
    assert drain_opened is not None, f"r2's stream was not handed to r3: {routing.samples[-3:]}"
    # Zero loss is the promise of geo durability: every job r2 accepted is done while r2 is still
    # down. (The tally covers every accepted job; other regions' last ones may not be recorded yet.)
    unfinished = sorted(set(lost_jobs) & set(own.lost_jobs))
    if unfinished:
        diagnosis = replica_states(world, GEO_LOST, ref)
        world.recover(GEO_LOST)
        world.wait_region_phase(GEO_LOST, "Healthy", timeout=60.0)
        settle(ledger, 60.0)
        found = settle_records(ledger)
        when = sorted(
            f"{job[:8]} {c.region} {(c.finished_at - lost_wall_clock).total_seconds():+.2f}s"
            for job in unfinished
            for c in found.get(job, [])
            if c.finished_at is not None
        )
        pytest.fail(
            f"{len(unfinished)} jobs r2 accepted were not found done while it was down; "
            f"once back, their records say (job, region, finished relative to the loss): {when}; "
            f"while it was down: {diagnosis}"
        )
    assert clean(tally) == {"lost": [], "duplicates": []}
    emptied = next((s.at for s in backlog.samples if s.at >= drain_opened.at and s.pending == 0), None)

    federation_reports.append(
        ScenarioReport(
            scenario=f"5. region {GEO_LOST} lost under load (durability: geo, backup {GEO_BACKUP})",
            tally=tally,
            duration_seconds=time.monotonic() - lost_at,
            failover_seconds={
                "weight_zero": since(lost_at, weight_zero) or 0.0,
                "drain_opened": since(lost_at, drain_opened) or 0.0,
                **({"r2_stream_empty": round(emptied - lost_at, 2)} if emptied is not None else {}),
                **{k: round(v, 2) for k, v in figures.items()},
            },
            rpo_jobs=len(unfinished),
            notes={
                "r2 accepted before the loss": accepted_before,
                "jobs redone into the same bytes": len(tally.reprocessed_jobs),
                "accepted after the loss, by gateway": after_loss_by_gateway(ledger, lost_at),
                "accept latency s (geo)": ledger.accept_latency(),
                "routing entries": routing_timeline(routing.samples, lost_at),
                "region events": recent_region_events(world),
                "refusal reasons": dict(ledger.refusal_reasons),
            },
        )
    )
