"""The PodDisruptionBudget: node drains take workers a quarter at a time.

Workers are stateless (an interrupted job is redelivered), so the budget protects throughput, not
data: `maxUnavailable: 25%` lets a drain proceed with one replica and keeps three quarters of a
large fleet working. Unhealthy pods may always be evicted, so a crash-looping worker never blocks
a node drain.
"""

from __future__ import annotations

from pixelmesh.operator import names
from pixelmesh.operator.builders.hashing import KubeObject, child_metadata, with_spec_hash
from pixelmesh.operator.target import WorkerTarget


def build_disruption_budget(target: WorkerTarget) -> KubeObject:
    return with_spec_hash(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": child_metadata(target, target.names.workers),
            "spec": {
                "maxUnavailable": "25%",
                "selector": {"matchLabels": names.selector_labels(target.ref.name, target.region)},
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
            },
        }
    )
