"""The federated world starts, runs one pipeline in all three regions, and completes every job once.

The first scenario of the multi-region e2e, and the check that the harness itself works: a
pipeline listing the three RegionPools becomes Ready with worker processes in each region's
cluster (two of them reached only through kubeconfig Secrets), and jobs sent through each region's
gateway are accepted there (home region first, all weights equal) and completed exactly once. Then
the harness's outage: a region lost at once is reported Failed, and once recovered it is Healthy
with its cluster's objects, its workers and its jobs back.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
import pytest

from e2e.federation.ledger import JobLedger, Tally
from e2e.federation.manifests import thumbnail_pipeline
from e2e.federation.report import ScenarioReport
from e2e.federation.scenario import ReadyPipeline, ledger_for, start_pipeline
from e2e.federation.world import Region, World, wait_for
from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.routing import RoutingEntry

pytest_plugins = ["e2e.federation.fixtures"]
pytestmark = pytest.mark.slow

JOBS_PER_GATEWAY = 30


@pytest.fixture(scope="module")
def thumbs(world: World) -> ReadyPipeline:
    """A tiny pipeline over the three regions, Ready (its workers run in every region)."""
    namespace = world.create_namespace("world")
    weights = dict.fromkeys(world.regions_named, 100)
    return start_pipeline(world, thumbnail_pipeline(namespace, "thumbs", weights))


async def run_jobs(ledger: JobLedger, per_gateway: dict[str, int], within: float) -> Tally:
    async with ledger:
        await ledger.submit_many(per_gateway)
        return await ledger.settle(within)


def deployments(region: Region, namespace: str) -> dict[str, str]:
    """The region's Deployments in `namespace`: name -> uid."""
    items = region.control_plane.api().get(f"/apis/apps/v1/namespaces/{namespace}/deployments")["items"]
    return {item["metadata"]["name"]: item["metadata"]["uid"] for item in items}


async def drains_listed(world: World, ref: PipelineRef) -> list[str]:
    """The origins the routing table (in the hub region, r1) still has drained."""
    client = await nats.connect(world.regions["r1"].nats_url)
    try:
        bucket = streams.routing_bucket("r1")
        message = await client.jetstream().get_last_msg(
            streams.kv_stream(bucket), streams.kv_subject(bucket, streams.routing_key(ref))
        )
        return [drain.origin for drain in RoutingEntry.model_validate_json(message.data or b"{}").drains]
    finally:
        await client.close()


def alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def test_a_pipeline_over_three_regions_runs_everywhere_and_completes_every_job_once(
    world: World, thumbs: ReadyPipeline, tiny_sources: list[bytes], federation_reports: list[ScenarioReport]
) -> None:
    began = time.monotonic()
    regions = {entry["region"]: entry for entry in thumbs.body["status"]["regions"]}
    assert set(regions) == set(world.regions_named)
    for name, region in world.regions.items():
        assert regions[name]["readyReplicas"] >= 1, f"no ready workers in {name}: {regions[name]}"
        assert region.worker_pids(thumbs.ref.namespace), f"no worker process runs in {name}"
        assert deployments(region, thumbs.ref.namespace), f"no worker Deployment in {name}'s cluster"

    ledger = ledger_for(world, thumbs.ref, tiny_sources, request_timeout=30.0)
    per_gateway = dict.fromkeys(world.regions_named, JOBS_PER_GATEWAY)
    tally = asyncio.run(run_jobs(ledger, per_gateway, within=60.0))

    assert not ledger.refused, f"refused submissions: {dict(ledger.refused)}"
    assert {name: counts.accepted for name, counts in tally.regions.items()} == per_gateway
    assert all(s.region == s.gateway for s in ledger.accepted.values()), "each gateway routes home first"
    assert tally.lost_jobs == ()
    assert tally.duplicate_jobs == ()
    assert tally.total.completed == JOBS_PER_GATEWAY * len(world.regions_named)
    assert tally.completed_by == per_gateway, "each region's workers ran the jobs its gateway took"

    federation_reports.append(
        ScenarioReport(
            scenario="world: one pipeline over three regions",
            tally=tally,
            duration_seconds=time.monotonic() - began,
            notes={
                "world start seconds": {k: round(v, 2) for k, v in world.timings.items()},
                "pipeline ready seconds": round(thumbs.ready_seconds, 2),
                "cpu seconds by part": {k: round(v, 1) for k, v in world.cpu_seconds().items()},
            },
        )
    )


def test_a_lost_region_is_failed_then_returns_with_its_cluster_state_and_workers(
    world: World, thumbs: ReadyPipeline, tiny_sources: list[bytes], federation_reports: list[ScenarioReport]
) -> None:
    """The harness's own outage: everything of the region dies at once and comes back as it was."""
    namespace, lost = thumbs.ref.namespace, world.regions["r3"]
    workers_before = lost.worker_pids(namespace)
    deployments_before = deployments(lost, namespace)
    servers = [lost.supercluster.servers["r3"].pid, lost.supercluster.geo_servers["r3"].pid]
    control_plane = lost.control_plane.pids()
    assert workers_before
    assert deployments_before

    lost_at = world.lose("r3")
    for pid in [*workers_before, *servers, *control_plane]:
        assert pid is not None
        assert not alive(pid), f"PID {pid} of the lost region still runs"
    world.wait_region_phase("r3", "Failed", timeout=30.0)
    failed_after = time.monotonic() - lost_at

    recovering_at = time.monotonic()
    recovered_in = world.recover("r3") - recovering_at
    world.wait_region_phase("r3", "Healthy", timeout=60.0)
    healthy_after = time.monotonic() - recovering_at
    assert deployments(lost, namespace) == deployments_before, "the cluster's objects survived in etcd"
    wait_for(lambda: lost.worker_pids(namespace), timeout=30.0, what="workers to run in r3 again")
    assert not set(lost.worker_pids(namespace)) & set(workers_before)
    world.wait_pipeline_ready(namespace, "thumbs", timeout=60.0)
    ready_after = time.monotonic() - recovering_at
    # While r1 still drains r3's mirror, r3's new jobs may run in both (into the same bytes); this
    # test counts where jobs run, so it starts once the operator has closed the drain.
    wait_for(
        lambda: not asyncio.run(drains_listed(world, thumbs.ref)), timeout=30.0, what="r3's drain to close"
    )

    ledger = ledger_for(world, thumbs.ref, tiny_sources, request_timeout=30.0)
    tally = asyncio.run(run_jobs(ledger, {"r3": JOBS_PER_GATEWAY}, within=60.0))
    assert not ledger.refused, f"refused submissions: {dict(ledger.refused)}"
    assert tally.regions["r3"].accepted == JOBS_PER_GATEWAY
    assert tally.total.completed == JOBS_PER_GATEWAY
    assert tally.completed_by == {"r3": JOBS_PER_GATEWAY}, "the recovered region runs its own jobs again"

    federation_reports.append(
        ScenarioReport(
            scenario="world: a region lost and recovered (no load during the outage)",
            tally=tally,
            duration_seconds=time.monotonic() - lost_at,
            failover_seconds={
                "reported_failed": failed_after,
                "region_restarted": recovered_in,
                "reported_healthy": healthy_after,
                "pipeline_ready_again": ready_after,
            },
        )
    )
