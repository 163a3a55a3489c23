"""The built-in autoscaler drives real worker processes from a real JetStream backlog, to zero and back.

The local control plane (the reconciler core with the process runtime) runs with its autoscaler as
`pixelmesh up` does, with windows short enough for a test: a 500 ms decision interval, a 3 s
scale-down window and 3 s before idling to zero. 3000 tiny jobs are queued before any worker runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

from pixelmesh.api import streams
from pixelmesh.api.messages import JobMessage, PipelineRef
from pixelmesh.api.resources import ImagePipeline
from pixelmesh.natsserver import NatsServer
from pixelmesh.operator.local import LocalControlPlane
from tests import imagegen
from tests.fixtures.nats import upload_source

pytestmark = pytest.mark.slow

REF = PipelineRef(namespace="default", name="burst")
REGION = "local"
JOBS = 3000
MAX_WORKERS = 4
WINDOW_SECONDS = 3.0
IDLE_SECONDS = 3.0
QUICK_WORKERS = {
    "PIXELMESH_FETCH_TIMEOUT_SECONDS": "0.5",
    "PIXELMESH_STATS_SECONDS": "0.5",
    "PIXELMESH_LOG_FORMAT": "text",
}


def pipeline() -> ImagePipeline:
    return ImagePipeline.model_validate(
        {
            "metadata": {"name": REF.name, "namespace": REF.namespace},
            "spec": {
                "variants": [
                    {"name": "tiny", "steps": [{"thumbnail": {"width": 8}}], "format": {"type": "jpeg"}}
                ],
                "autoscaling": {
                    "minReplicas": 0,
                    "scaleToZero": True,
                    "maxReplicas": MAX_WORKERS,
                    "targetBacklogPerReplica": 100,
                    "scaleDownDelay": f"{WINDOW_SECONDS:.0f}s",
                    "idleAfter": f"{IDLE_SECONDS:.0f}s",
                    "interval": "500ms",
                },
                "worker": {"concurrency": 8, "drainTimeout": "3s"},
            },
        }
    )


@pytest.fixture
async def plane(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[LocalControlPlane]:
    control = LocalControlPlane(
        tmp_path / "data", nats_urls=(nats_server.url,), worker_env=QUICK_WORKERS, autoscaler_interval=0.5
    )
    yield control
    await control.close()


async def queue_jobs(js: JetStreamContext, ids: list[str], source: bytes) -> None:
    key = await upload_source(js, source)
    for job_id in ids:
        job = JobMessage(job_id=job_id, pipeline=REF, generation=1, source_key=key, source_size=len(source))
        await js.publish_async(
            streams.job_subject(REF, "local"),
            job.model_dump_json(by_alias=True, exclude_none=True).encode(),
            headers={"Nats-Msg-Id": job_id},
        )
    await asyncio.wait_for(js.publish_async_completed(), 30.0)


async def completed(js: JetStreamContext, ids: list[str]) -> set[str]:
    """The job ids among `ids` that have a completion record."""
    kv = await js.key_value(streams.completions_bucket("local"))
    return set(await kv.keys()) & set(ids)


async def completion_count(js: JetStreamContext) -> int:
    """Completion records of any job (cheap to poll: the bucket's message count)."""
    return int((await js.stream_info("KV_" + streams.completions_bucket("local"))).state.messages)


@dataclass(frozen=True)
class Sample:
    at: float
    running: int
    """Worker processes alive."""
    desired: int
    reason: str
    need: int
    """The decision's unclamped recommendation: what the backlog asked for."""


class Timeline:
    """Running worker processes and the autoscaler's decision, sampled every 100 ms in the background."""

    def __init__(self, plane: LocalControlPlane) -> None:
        self.plane = plane
        self.samples: list[Sample] = []
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            fleet = self.plane.autoscaler.fleet(REF, REGION)
            decision = fleet.decision if fleet is not None else None
            if decision is not None:
                self.samples.append(
                    Sample(
                        time.monotonic(),
                        len(self.plane.runtime.pids(REF)),
                        decision.desired,
                        decision.reason.value,
                        decision.recommendation,
                    )
                )
            await asyncio.sleep(0.1)

    def __enter__(self) -> Timeline:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *_: Any) -> None:
        if self._task is not None:
            self._task.cancel()

    def most_workers(self) -> int:
        return max(s.running for s in self.samples)

    def reasons(self) -> set[str]:
        return {s.reason for s in self.samples}

    def since(self, moment: float) -> list[Sample]:
        return [s for s in self.samples if s.at >= moment]


async def wait_for(probe: Any, what: str, within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.2)


async def test_a_backlog_scales_workers_to_max_then_to_zero_and_one_job_brings_one_back(
    plane: LocalControlPlane, js: JetStreamContext
) -> None:
    plane.apply_pipeline(pipeline())
    outcomes = await plane.reconcile_once()
    assert outcomes[REF].status.regions[0].stream_ready
    assert plane.runtime.pids(REF) == [], "scaled to zero until there is work"

    ids = [f"burst-{i:04d}" for i in range(JOBS)]
    await queue_jobs(js, ids, imagegen.photo_jpeg(48, 32))
    info = await js.consumer_info(streams.job_stream(REF, "local"), streams.worker_consumer(REF))
    assert info.num_pending == JOBS

    stop = asyncio.Event()
    running = asyncio.get_running_loop().create_task(plane.run(stop, interval=1.0))
    try:
        with Timeline(plane) as timeline:

            async def all_done() -> bool:
                return await completion_count(js) >= JOBS

            await wait_for(all_done, f"{JOBS} completion records", within=150.0)
            drained_at = time.monotonic()
            assert await completed(js, ids) == set(ids), "every queued job id has its completion record"
            assert timeline.most_workers() == MAX_WORKERS, "the backlog took the fleet to maxReplicas"

            async def scaled_to_zero() -> bool:
                fleet = plane.autoscaler.fleet(REF, REGION)
                at_zero = fleet is not None and fleet.decision is not None and fleet.decision.desired == 0
                return at_zero and not plane.runtime.pids(REF)

            await wait_for(scaled_to_zero, "the workers to scale to zero", within=30.0)
            zero_at = time.monotonic()
            assert zero_at - drained_at >= IDLE_SECONDS - 1.0, (
                "zero only after idleAfter with nothing pending"
            )
            fleet = plane.autoscaler.fleet(REF, REGION)
            assert fleet is not None
            assert fleet.decision is not None
            assert fleet.decision.reason.value == "idle"
            assert fleet.rates.service_rate is not None
            assert fleet.rates.service_rate > 0, "the workers' reports gave a service rate"
            # Up for the backlog (clamped at maxReplicas when it is large), down when idle.
            assert "idle" in timeline.reasons()
            assert timeline.reasons() & {"backlog", "maximum"}

            # The first scale-down waited a window after the need first fell below the fleet.
            peak = next(s for s in timeline.samples if s.desired == MAX_WORKERS)
            fell = next(s for s in timeline.since(peak.at) if s.need < MAX_WORKERS)
            shrank = next(s for s in timeline.since(peak.at) if s.desired < MAX_WORKERS)
            assert shrank.at - fell.at >= WINDOW_SECONDS - 1.0
            assert shrank.reason in ("stabilising", "backlog", "idle")

            await wait_for(
                _status_says(plane, 0, "idle"), "the status to show zero workers and the reason", within=10.0
            )

            # Activation: one new job brings one worker back, which completes it.
            await queue_jobs(js, ["wake-up"], imagegen.photo_jpeg(48, 32))
            woke = time.monotonic()

            async def woken_done() -> bool:
                kv = await js.key_value(streams.completions_bucket("local"))
                try:
                    await kv.get("wake-up")
                except KeyNotFoundError:
                    return False
                return True

            await wait_for(woken_done, "the new job to complete", within=30.0)
            awake = timeline.since(woke)
            assert max(s.running for s in awake) == 1, "the first message brings back one replica"
            assert max(s.desired for s in awake) == 1
    finally:
        stop.set()
        await running


def _status_says(plane: LocalControlPlane, desired: int, reason: str) -> Any:
    async def check() -> bool:
        (region,) = plane.status(REF).regions
        return region.desired_replicas == desired and region.scaling_reason == reason

    return check
