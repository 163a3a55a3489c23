"""Loops stopped by `cancel()` stop even when nats-py swallows the cancellation mid-publish."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from pixelmesh.api.messages import PipelineRevision
from pixelmesh.api.pipeline import PipelineSpec
from pixelmesh.cancellation import resume_cancellation
from pixelmesh.worker.stats import ServiceMeter, report_forever

REVISION = PipelineRevision(
    namespace="media",
    name="thumbs",
    generation=1,
    spec=PipelineSpec.model_validate(
        {"variants": [{"name": "thumb", "steps": [{"thumbnail": {"width": 64}}], "format": {"type": "jpeg"}}]}
    ),
)


class SwallowingBucket:
    """A KV bucket whose first put swallows a cancellation, as nats-py's flush hand-off does."""

    def __init__(self) -> None:
        self.putting = asyncio.Event()
        self.puts = 0

    async def put(self, key: str, value: bytes) -> int:
        self.puts += 1
        self.putting.set()
        if self.puts == 1:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)
        return self.puts


async def test_a_report_loop_cancelled_mid_put_stops() -> None:
    bucket = SwallowingBucket()
    task = asyncio.create_task(
        report_forever(
            bucket,  # type: ignore[arg-type]
            ServiceMeter(),
            revision=REVISION,
            worker="w-1",
            region="local",
            threads=1,
            interval=0.01,
        )
    )
    await bucket.putting.wait()

    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1.0)

    if not done:  # the loop went on: stop it for good before failing
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    assert done == {task}, f"the loop went on after its cancellation was swallowed ({bucket.puts} puts)"
    assert task.cancelled()
    assert bucket.puts == 1


async def test_resume_cancellation_raises_only_in_a_task_asked_to_stop() -> None:
    swallowed = asyncio.Event()

    async def loop() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            swallowed.set()
        resume_cancellation()
        await asyncio.sleep(10)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=1.0)
    assert swallowed.is_set()

    resume_cancellation()  # this task was not asked to stop: nothing happens
