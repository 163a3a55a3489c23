"""The autoscaler's decisions in an ImagePipeline's status and Events, written through the API.

The reconciler writes status through kopf at the end of each pass; the autoscaler decides between
passes and writes its part itself: the region's `desiredReplicas` and `scalingReason`, as a merge
patch of the status subresource carrying the resourceVersion it was computed from (a conflict
means a pass wrote in between; the next tick tries again). It holds the pipeline's lock, so it never
interleaves with a pass of the same pipeline in this operator. Events are posted as kopf would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pixelmesh.operator.autoscaler import ScalingChange
from pixelmesh.operator.builders.events import build_pipeline_event
from pixelmesh.operator.clients.kube import PIPELINE, KubeClient, KubeError
from pixelmesh.operator.status import parse_pipeline_status, record_scaling, status_patch, utc_now
from pixelmesh.operator.target import WorkerTarget

logger = logging.getLogger(__name__)

LockFor = Callable[[str], asyncio.Lock]


class KubeScalingReporter:
    """`ScalingReporter` for pipelines stored in a Kubernetes API server."""

    def __init__(self, kube: KubeClient, lock_for: LockFor) -> None:
        self._kube = kube
        self._lock_for = lock_for

    async def report(self, target: WorkerTarget, change: ScalingChange) -> bool:
        ref = target.ref
        for note in change.events:
            event = build_pipeline_event(
                ref, target.uid, type_=note.type, reason=note.reason, message=note.message, now=utc_now()
            )
            try:
                await self._kube.post_event(event)
            except KubeError as error:
                logger.warning(
                    "Posting the Event %s about ImagePipeline %s failed: %s", note.reason, ref, error
                )
        async with self._lock_for(target.uid):
            body = await self._kube.get(PIPELINE, ref.namespace, ref.name)
            if body is None or (target.uid and body["metadata"].get("uid") != target.uid):
                return True  # the pipeline is gone: nothing left to report on
            stored = body.get("status") or {}
            status = parse_pipeline_status(stored)
            updated = record_scaling(status, target.region, change.desired, change.reason)
            if updated is None:
                return False
            patch = status_patch(stored, updated.to_wire())
            if not patch:
                return True
            try:
                await self._kube.patch(
                    PIPELINE,
                    ref.namespace,
                    ref.name,
                    {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]}, "status": patch},
                    subresource="status",
                )
            except KubeError as error:
                if error.conflict:
                    return False
                raise
        return True
