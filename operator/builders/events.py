"""A core/v1 Event about an ImagePipeline, for what the operator posts outside a kopf handler.

kopf posts the Events of its handlers itself; the autoscaler runs in its own loop and posts its
Events (a decision capped by a region's capacity, a scale) through the API directly, in the same
shape kopf uses: `generateName`, first and last timestamps, count 1, the operator as the source.
"""

from __future__ import annotations

from datetime import datetime

from pixelmesh.api.messages import PipelineRef
from pixelmesh.operator import names
from pixelmesh.operator.builders.hashing import KubeObject

MAX_MESSAGE = 1024
"""The API server refuses longer Event messages."""


def build_pipeline_event(
    ref: PipelineRef, uid: str, *, type_: str, reason: str, message: str, now: datetime
) -> KubeObject:
    """An Event whose involved object is the ImagePipeline `ref`."""
    timestamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    involved: KubeObject = {
        "apiVersion": names.API_VERSION,
        "kind": names.PIPELINE_KIND,
        "name": ref.name,
        "namespace": ref.namespace,
    }
    if uid:
        involved["uid"] = uid
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref.name[:200]}.", "namespace": ref.namespace},
        "involvedObject": involved,
        "type": type_,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "count": 1,
        "source": {"component": names.MANAGED_BY},
        "reportingComponent": names.MANAGED_BY,
        "reportingInstance": names.MANAGED_BY,
    }
