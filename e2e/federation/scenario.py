"""What the federation scenarios share: starting a pipeline, a ledger on the world, paced load,
waiting for the jobs' records, and the figures every report carries."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from e2e.federation.background import Job
from e2e.federation.ledger import Completion, JobLedger, Tally
from e2e.federation.manifests import JsonObject
from e2e.federation.watch import RoutingSample
from e2e.federation.world import World
from pixelmesh.api.messages import PipelineRef
from pixelmesh.operator import metrics

LOAD_RATE = 24.0
"""Jobs a second while a region is lost or comes back: well under what the survivors can do."""


@dataclass(frozen=True, slots=True)
class ReadyPipeline:
    ref: PipelineRef
    body: JsonObject
    """The ImagePipeline as read once Ready (its status included)."""
    ready_seconds: float


def start_pipeline(world: World, document: JsonObject) -> ReadyPipeline:
    began = time.monotonic()
    meta = document["metadata"]
    world.apply_pipeline(document)
    body = world.wait_pipeline_ready(meta["namespace"], meta["name"], timeout=120.0)
    return ReadyPipeline(
        PipelineRef(namespace=meta["namespace"], name=meta["name"]), body, time.monotonic() - began
    )


def ledger_for(
    world: World, ref: PipelineRef, sources: list[bytes], *, request_timeout: float = 10.0
) -> JobLedger:
    return JobLedger(
        pipeline=ref,
        gateways=world.gateway_urls(),
        nats_urls=world.nats_urls(),
        api_key=world.api_key,
        sources=sources,
        request_timeout=request_timeout,
    )


def shares(counts: dict[str, int]) -> dict[str, float]:
    """Each region's share of the total, in percentage points."""
    total = sum(counts.values())
    return {region: round(100.0 * count / total, 2) for region, count in sorted(counts.items())}


def since(moment: float, sample: RoutingSample | None) -> float | None:
    return None if sample is None else round(sample.at - moment, 2)


def operator_mirror_lag(ref: PipelineRef, origin: str, backup: str) -> float | None:
    """The operator's `mirror_lag_messages` gauge for `origin`'s mirror in `backup` (it runs here)."""
    return metrics.REGISTRY.get_sample_value(
        metrics.PREFIX + "mirror_lag_messages",
        {"namespace": ref.namespace, "pipeline": ref.name, "region": origin, "backup": backup},
    )


def refusals(ledger: JobLedger) -> dict[str, int]:
    return {f"{gateway}:{status}": count for (gateway, status), count in sorted(ledger.refused.items())}


def after_loss_by_gateway(ledger: JobLedger, lost_at: float) -> dict[str, dict[str, int]]:
    """Gateway -> accepting region -> jobs accepted after `lost_at`."""
    found: dict[str, dict[str, int]] = {}
    for submission in ledger.accepted.values():
        if submission.accepted_at >= lost_at:
            by_region = found.setdefault(submission.gateway, {})
            by_region[submission.region] = by_region.get(submission.region, 0) + 1
    return {gateway: dict(sorted(regions.items())) for gateway, regions in sorted(found.items())}


def paced_load(ledger: JobLedger, gateways: list[str], *, home: str | None = None) -> Job:
    """Submit about `LOAD_RATE` jobs a second through `gateways` until stopped (a `Beside` job)."""

    async def load(stop: asyncio.Event) -> None:
        async with ledger:
            await ledger.submit_paced(gateways, LOAD_RATE, stop, home=home)

    return load


def settle(ledger: JobLedger, within: float, jobs: list[str] | None = None) -> Tally:
    """The ledger's tally once the jobs (all, if None) have records, or after `within` seconds."""

    async def run() -> Tally:
        async with ledger:
            return await ledger.settle(within, jobs=jobs)

    return asyncio.run(run())


def settle_records(ledger: JobLedger) -> dict[str, list[Completion]]:
    """Every completion record of the ledger's jobs, found now."""

    async def run() -> dict[str, list[Completion]]:
        async with ledger:
            return await ledger.completions()

    return asyncio.run(run())


def recent_region_events(world: World, count: int = 4) -> dict[str, list[str]]:
    """The last Events of every RegionPool (phase changes), to explain a routing change."""
    return {region: world.region_events(region)[-count:] for region in world.regions_named}


def clean(tally: Tally) -> dict[str, Any]:
    """What must hold of every scenario's jobs, as one comparable dict."""
    return {"lost": list(tally.lost_jobs), "duplicates": list(tally.duplicate_jobs)}
