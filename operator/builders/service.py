"""The metrics Service (headless: Prometheus scrapes every worker, nothing load-balances)."""

from __future__ import annotations

from pixelmesh.operator import names
from pixelmesh.operator.builders.hashing import KubeObject, child_metadata, with_spec_hash
from pixelmesh.operator.target import WorkerTarget


def build_metrics_service(target: WorkerTarget) -> KubeObject:
    return with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": child_metadata(target, target.names.workers),
            "spec": {
                "clusterIP": "None",
                "selector": names.selector_labels(target.ref.name, target.region),
                "ports": [
                    {
                        "name": names.METRICS_PORT_NAME,
                        "port": names.METRICS_PORT,
                        "targetPort": names.METRICS_PORT_NAME,
                        "protocol": "TCP",
                    }
                ],
            },
        }
    )
