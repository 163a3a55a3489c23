"""The ServiceMonitor for the Prometheus Operator, built only when its CRD exists in the cluster."""

from __future__ import annotations

from pixelmesh.operator import names
from pixelmesh.operator.builders.hashing import KubeObject, child_metadata, with_spec_hash
from pixelmesh.operator.target import WorkerTarget

SCRAPE_INTERVAL = "15s"


def build_service_monitor(target: WorkerTarget) -> KubeObject:
    return with_spec_hash(
        {
            "apiVersion": f"{names.SERVICE_MONITOR_GROUP}/v1",
            "kind": "ServiceMonitor",
            "metadata": child_metadata(target, target.names.workers),
            "spec": {
                "selector": {"matchLabels": names.selector_labels(target.ref.name, target.region)},
                "namespaceSelector": {"matchNames": [target.ref.namespace]},
                "endpoints": [
                    {"port": names.METRICS_PORT_NAME, "path": "/metrics", "interval": SCRAPE_INTERVAL}
                ],
            },
        }
    )
