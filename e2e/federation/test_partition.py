"""Scenario 6, a partition: a region is cut off from the others rather than killed.

Its own world, whose cross-region traffic runs through relays (`e2e.netsplit`): NATS gateways and
geo routes between regions, the hub operator's connections to the member's API server and NATS,
and the other regions' gateways' connections to it. Cutting r3 closes all of those both ways while
everything inside r3 (its NATS, API server, workers, gateway) keeps running and talking.

What must hold:
- the operator, which cannot tell a cut from a death, fails r3 over: weight 0, and its backup (r1)
  drains the mirror of r3's job stream;
- no split brain in the routing table: it has one writer (the operator, in the hub); r3's copy is a
  mirror that nobody in r3 can write, it stays at the last entry it received while cut off, and it
  catches up with the hub's once the cut heals;
- r3 keeps to itself and keeps serving: its gateway sends no job out of r3 and accepts into r3's
  own stream for the whole cut (r3 loses the JetStream meta leader some seconds after the cut, so
  everything on the accept path reads with direct gets, which need none), and r3's workers keep
  running the jobs in r3's stream to the end of the cut (storing an output reads with direct gets
  too);
- once healed, every job any gateway accepted is done, and a job both sides ran (drained by r1 and
  run by r3) was run into the same bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import nats
import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NoStreamResponseError

from e2e.cluster.binaries import Binaries
from e2e.federation.background import Beside
from e2e.federation.manifests import thumbnail_pipeline
from e2e.federation.report import ScenarioReport
from e2e.federation.scenario import (
    ReadyPipeline,
    after_loss_by_gateway,
    clean,
    ledger_for,
    paced_load,
    recent_region_events,
    settle,
    settle_records,
    since,
    start_pipeline,
)
from e2e.federation.watch import RoutingSample, RoutingWatch, first_sample
from e2e.federation.world import World, WorldError, wait_for
from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef

pytest_plugins = ["e2e.federation.fixtures"]
pytestmark = pytest.mark.slow

CUT = "r3"
BACKUP = "r1"
WEIGHTS = {"r1": 34, "r2": 33, "r3": 33}
FAILBACK = {"stepPercent": 50, "interval": "1s"}
CUT_SECONDS = 15.0
LATE_IN_CUT_SECONDS = 5.0
"""The end of the cut, well after r3 lost the JetStream meta leader (about 5 s after the cut)."""
MIRROR_RETRY_SECONDS = 150.0
"""How long a mirror may take to resume after the heal: past its longest retry backoff (2 min)."""


@pytest.fixture(scope="module")
def split_world(
    control_plane_binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """Three federated regions whose cross-region connections can be cut (this module's own)."""
    with World(
        tmp_path_factory.mktemp("split-world"), binaries=control_plane_binaries, partitionable=True
    ) as started:
        yield started


@pytest.fixture
def pipeline(split_world: World) -> Iterator[ReadyPipeline]:
    namespace = split_world.create_namespace("split")
    document = thumbnail_pipeline(namespace, "thumbs", WEIGHTS, traffic_shift=FAILBACK)
    ready = start_pipeline(split_world, document)
    yield ready
    if CUT in split_world.cut_off():
        split_world.heal(CUT)
    split_world.delete_pipeline(namespace, "thumbs")


def _between(moment: datetime | None, start: datetime, end: datetime) -> bool:
    return moment is not None and start < moment < end


def write_refused(nats_url: str, ref: PipelineRef, region: str) -> str:
    """Try to write `ref`'s routing entry into `region`'s copy from inside `region`: how it was refused."""

    async def run() -> str:
        client = await nats.connect(servers=[nats_url], connect_timeout=2)
        try:
            bucket = streams.routing_bucket(region)
            subject = streams.kv_subject(bucket, streams.routing_key(ref))
            try:
                await client.jetstream(timeout=2).publish(subject, b'{"generation": 999999}')
            except (NoStreamResponseError, NoRespondersError, NatsTimeoutError) as error:
                return type(error).__name__
            return ""
        finally:
            await client.close()

    return asyncio.run(run())


def test_a_partitioned_region_is_failed_over_without_split_brain_and_serves_its_own_callers(
    split_world: World,
    pipeline: ReadyPipeline,
    tiny_sources: list[bytes],
    federation_reports: list[ScenarioReport],
) -> None:
    world, ref = split_world, pipeline.ref
    ledger = ledger_for(world, ref, tiny_sources)
    hub_table = RoutingWatch(world.hub.nats_url, ref, world.hub.name)
    # r3's copy, read from inside r3 (the test reaches every region's own port).
    cut_table = RoutingWatch(world.regions[CUT].nats_url, ref, CUT)
    times: dict[str, float] = {}

    def converged() -> RoutingSample | None:
        hub, copy = hub_table.latest, cut_table.latest
        if hub is None or copy is None or times.get("healed") is None or copy.at < times["healed"]:
            return None
        return copy if (copy.generation, copy.weights) == (hub.generation, hub.weights) else None

    with Beside(hub_table.run, cut_table.run, name="watch"):
        with Beside(paced_load(ledger, list(world.regions_named)), name="load"):
            time.sleep(6.0)
            before = cut_table.latest
            assert before is not None, "r3's copy of the routing table was read"
            assert before.weights.get(CUT, 0) > 0, f"r3's copy: {before}"
            times["cut"], cut_wall_clock = world.cut(CUT), datetime.now(UTC)
            world.wait_region_phase(CUT, "Failed", timeout=60.0)
            times["failed"] = time.monotonic()
            refused = write_refused(world.regions[CUT].nats_url, ref, CUT)
            time.sleep(max(0.0, times["cut"] + CUT_SECONDS - time.monotonic()))
            during_cut = [s for s in cut_table.samples if times["cut"] <= s.at]
            times["healed"], healed_wall_clock = world.heal(CUT), datetime.now(UTC)
            world.wait_region_phase(CUT, "Healthy", timeout=60.0)
            times["healthy"] = time.monotonic()
            # A mirror retries its origin with a backoff that grows with each failure during the cut
            # (nats-server: 10 s per failed attempt, up to 2 min), so catching up may take a while.
            caught_up = wait_for(
                converged, timeout=MIRROR_RETRY_SECONDS, what="r3's routing copy to catch up with the hub's"
            )
            try:
                wait_for(
                    lambda: (latest := hub_table.latest) and not latest.drains and latest.weights == WEIGHTS,
                    timeout=60.0,
                    what="r3's weight to come back and its drain to close",
                )
            except WorldError as error:
                status = (world.pipeline(ref.namespace, ref.name) or {}).get("status", {})
                raise AssertionError(
                    f"{error}; the hub's table: {hub_table.latest}; traffic: {status.get('traffic')}"
                ) from error
            time.sleep(2.0)
        tally = settle(ledger, 90.0)
    records = settle_records(ledger)

    cut_at, healed_at = times["cut"], times["healed"]
    weight_zero = first_sample(hub_table.samples, cut_at, lambda s: s.weights.get(CUT) == 0)
    drain_opened = first_sample(hub_table.samples, cut_at, lambda s: CUT in s.drains)
    assert weight_zero is not None, f"r3's weight never went to 0 in the hub: {hub_table.samples[-3:]}"
    assert drain_opened is not None, f"no drain of r3 was opened: {hub_table.samples[-3:]}"
    assert weight_zero.at < healed_at, "the failover happened while r3 was cut off"

    # One writer: nobody inside r3 can write its copy, which held the last entry it received.
    assert refused, "a write into r3's routing copy from inside r3 was accepted"
    frozen = {(s.generation, tuple(sorted(s.weights.items()))) for s in during_cut}
    assert frozen <= {(before.generation, tuple(sorted(before.weights.items())))}, (
        f"r3's copy changed while it was cut off: {during_cut}"
    )
    generations = [s.generation for s in hub_table.samples]
    assert generations == sorted(generations), f"the hub's generations went back: {generations}"

    # r3 kept to itself: its gateway sent no job out of it, and its workers kept running its jobs.
    alone = [s for s in ledger.accepted.values() if s.gateway == CUT and cut_at <= s.accepted_at < healed_at]
    assert all(s.region == CUT for s in alone), after_loss_by_gateway(ledger, cut_at)
    # And it kept accepting after r3 lost the JetStream meta leader (within seconds of the cut).
    refused_by_cut_off = {k: v for k, v in ledger.refusal_reasons.items() if k.startswith(f"{CUT} ")}
    assert not refused_by_cut_off, f"r3's gateway refused jobs while cut off: {refused_by_cut_off}"
    late = [s for s in alone if s.accepted_at >= healed_at - LATE_IN_CUT_SECONDS]
    assert late, f"r3's gateway accepted nothing in the last {LATE_IN_CUT_SECONDS:.0f} s of the cut"
    failed_at = times["failed"]
    others = [
        s for s in ledger.accepted.values() if s.gateway != CUT and failed_at <= s.accepted_at < healed_at
    ]
    assert others, "r1's and r2's gateways accepted jobs meanwhile"
    assert all(s.region != CUT for s in others), "r1 and r2 sent nothing to r3 while it was cut off"
    # By the records' own clocks: the minority side cannot list them through the JetStream API
    # until the cut heals, but they were written then.
    done_in_cut = [
        job
        for job, found in records.items()
        if any(c.region == CUT and _between(c.finished_at, cut_wall_clock, healed_wall_clock) for c in found)
    ]
    assert done_in_cut, "r3's workers ran jobs while r3 was cut off"
    # Also without the meta leader: storing an output that exists (a source sent again) replaces it.
    late_in_cut = healed_wall_clock - timedelta(seconds=LATE_IN_CUT_SECONDS)
    done_late = [
        job
        for job, found in records.items()
        if any(c.region == CUT and _between(c.finished_at, late_in_cut, healed_wall_clock) for c in found)
    ]
    assert done_late, f"r3's workers finished nothing in the last {LATE_IN_CUT_SECONDS:.0f} s of the cut"

    assert clean(tally) == {"lost": [], "duplicates": []}, (
        "every accepted job is done, any twice into the same bytes"
    )
    federation_reports.append(
        ScenarioReport(
            scenario=f"6. region {CUT} cut off for {CUT_SECONDS:.0f} s (regional, backup {BACKUP})",
            tally=tally,
            duration_seconds=time.monotonic() - cut_at,
            failover_seconds={
                "reported_failed": round(times["failed"] - cut_at, 2),
                "weight_zero": since(cut_at, weight_zero) or 0.0,
                "drain_opened": since(cut_at, drain_opened) or 0.0,
                "reported_healthy_after_heal": round(times["healthy"] - healed_at, 2),
                "r3_copy_caught_up_after_heal": round(caught_up.at - healed_at, 2),
            },
            rpo_jobs=len(tally.lost_jobs),
            notes={
                "r3's routing copy during the cut (generation, weights)": (
                    f"unchanged at {before.generation}, {before.weights}"
                    if not frozen - {None}
                    else sorted(frozen)
                ),
                "a write into r3's copy from inside r3": f"refused ({refused})",
                "r3's gateway accepted while cut off (all into r3)": len(alone),
                f"of which in the last {LATE_IN_CUT_SECONDS:.0f} s of the cut": len(late),
                "r3's gateway refused while cut off": refused_by_cut_off,
                "jobs r3's workers finished while cut off": len(done_in_cut),
                f"finished in the last {LATE_IN_CUT_SECONDS:.0f} s of the cut": len(done_late),
                "jobs run on both sides into the same bytes": len(tally.reprocessed_jobs),
                "accepted after the cut, by gateway": after_loss_by_gateway(ledger, cut_at),
                "relayed connections refused by the cut": {
                    f"{source}->{destination}": count
                    for (source, destination), count in sorted(world.refused_connections().items())
                },
                "region events": recent_region_events(world),
            },
        )
    )
