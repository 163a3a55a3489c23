"""The worker Deployment: restricted pod security, probes, resources, zone spread, a long drain.

The pod meets the Kubernetes `restricted` Pod Security Standard: non-root, read-only root
filesystem (libvips writes temporary files to an emptyDir at /tmp), no privilege escalation, every
capability dropped, the runtime's default seccomp profile, no service account token (workers never
talk to the Kubernetes API).

`spec.replicas` is never set here. The replica count belongs to the autoscaler seam: the
reconciler sets it when it creates the Deployment and through a separate scale write afterwards,
so re-applying the spec never resets a count the autoscaler chose.

The termination grace period is the pipeline's drain timeout plus a margin for closing the NATS
connection, so a worker finishing a large image is not killed mid-job on a rollout.
"""

from __future__ import annotations

from pixelmesh.api.resources import duration_seconds
from pixelmesh.operator import names
from pixelmesh.operator.builders.hashing import KubeObject, child_metadata, with_spec_hash
from pixelmesh.operator.builders.pipeline_file import revision_hash
from pixelmesh.operator.target import WorkerTarget

DRAIN_MARGIN_SECONDS = 15
WORKER_ARGS = ("worker",)
"""Arguments to the image's `pixelmesh` entry point."""
TMP_SIZE_LIMIT = "2Gi"


def _seconds_text(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else str(seconds)


def worker_env(target: WorkerTarget) -> list[KubeObject]:
    """The worker's `PIXELMESH_*` configuration (see `pixelmesh.worker.config`)."""
    spec = target.spec
    env: list[KubeObject] = [
        {"name": names.ENV_PIPELINE_FILE, "value": f"{names.PIPELINE_MOUNT_DIR}/{names.PIPELINE_FILE_KEY}"},
        {"name": names.ENV_NATS_URLS, "value": ",".join(target.placement.nats_urls)},
        {"name": names.ENV_REGION, "value": target.region},
        {"name": names.ENV_WORKER_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": names.ENV_CONCURRENCY, "value": str(spec.worker.concurrency)},
        {"name": names.ENV_DRAIN_GRACE, "value": _seconds_text(duration_seconds(spec.worker.drain_timeout))},
        {"name": names.ENV_METRICS_PORT, "value": str(names.METRICS_PORT)},
        {"name": names.ENV_LOG_LEVEL, "value": spec.worker.log_level.upper()},
        {"name": names.ENV_LOG_FORMAT, "value": target.defaults.log_format},
    ]
    if target.placement.nats_credentials is not None:
        env.append(
            {
                "name": names.ENV_NATS_CREDENTIALS,
                "value": f"{names.NATS_CREDENTIALS_MOUNT_DIR}/{names.NATS_CREDENTIALS_FILE}",
            }
        )
    return env


def _quantities(values: dict[str, int | str]) -> dict[str, str]:
    return {name: str(value) for name, value in sorted(values.items())}


def _resources(target: WorkerTarget) -> KubeObject:
    resources = target.spec.worker.resources
    out: KubeObject = {}
    if resources.requests:
        out["requests"] = _quantities(resources.requests)
    if resources.limits:
        out["limits"] = _quantities(resources.limits)
    return out


def _probe(path: str, *, period: int, failures: int) -> KubeObject:
    return {
        "httpGet": {"path": path, "port": names.METRICS_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _container(target: WorkerTarget) -> KubeObject:
    container: KubeObject = {
        "name": names.CONTAINER,
        "image": target.spec.worker.image or target.defaults.image,
        "args": list(WORKER_ARGS),
        "env": worker_env(target),
        "ports": [{"name": names.METRICS_PORT_NAME, "containerPort": names.METRICS_PORT, "protocol": "TCP"}],
        "startupProbe": _probe("/healthz", period=2, failures=30),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=2),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": names.PIPELINE_VOLUME, "mountPath": names.PIPELINE_MOUNT_DIR, "readOnly": True},
            {"name": names.TMP_VOLUME, "mountPath": names.TMP_MOUNT},
        ],
    }
    pull_policy = target.spec.worker.image_pull_policy or target.defaults.image_pull_policy
    if pull_policy:
        container["imagePullPolicy"] = str(pull_policy)
    resources = _resources(target)
    if resources:
        container["resources"] = resources
    if target.placement.nats_credentials is not None:
        container["volumeMounts"].append(
            {
                "name": names.NATS_CREDENTIALS_VOLUME,
                "mountPath": names.NATS_CREDENTIALS_MOUNT_DIR,
                "readOnly": True,
            }
        )
    return container


def _volumes(target: WorkerTarget) -> list[KubeObject]:
    volumes: list[KubeObject] = [
        {
            "name": names.PIPELINE_VOLUME,
            "configMap": {
                "name": target.names.pipeline_config,
                "items": [{"key": names.PIPELINE_FILE_KEY, "path": names.PIPELINE_FILE_KEY}],
            },
        },
        {"name": names.TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
    ]
    if target.placement.nats_credentials is not None:
        volumes.append(
            {
                "name": names.NATS_CREDENTIALS_VOLUME,
                "secret": {
                    "secretName": target.names.nats_credentials,
                    "items": [{"key": names.NATS_CREDENTIALS_FILE, "path": names.NATS_CREDENTIALS_FILE}],
                },
            }
        )
    return volumes


def _topology_spread(target: WorkerTarget) -> list[KubeObject]:
    selector = {"matchLabels": names.selector_labels(target.ref.name, target.region)}
    return [
        {
            "maxSkew": 1,
            "topologyKey": target.placement.placement.zone_topology_key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": selector,
            "matchLabelKeys": ["pod-template-hash"],
        },
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": selector,
            "matchLabelKeys": ["pod-template-hash"],
        },
    ]


def termination_grace_seconds(target: WorkerTarget) -> int:
    """Long enough for the worker to drain its jobs, then close its connection."""
    return int(duration_seconds(target.spec.worker.drain_timeout)) + DRAIN_MARGIN_SECONDS


def build_pod_spec(target: WorkerTarget) -> KubeObject:
    placement = target.placement.placement
    pod: KubeObject = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": names.RUN_AS_USER,
            "runAsGroup": names.RUN_AS_USER,
            "fsGroup": names.RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": termination_grace_seconds(target),
        "topologySpreadConstraints": _topology_spread(target),
        "containers": [_container(target)],
        "volumes": _volumes(target),
    }
    if target.spec.worker.priority_class_name:
        pod["priorityClassName"] = target.spec.worker.priority_class_name
    if placement.node_selector:
        pod["nodeSelector"] = dict(sorted(placement.node_selector.items()))
    if placement.tolerations:
        pod["tolerations"] = [t.to_wire() for t in placement.tolerations]
    return pod


def build_worker_deployment(target: WorkerTarget) -> KubeObject:
    """The worker Deployment, without `spec.replicas` (the autoscaler seam owns it)."""
    labels = names.worker_labels(target.ref.name, target.region, target.placement.pool)
    deployment: KubeObject = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(target, target.names.workers),
        "spec": {
            "selector": {"matchLabels": names.selector_labels(target.ref.name, target.region)},
            "revisionHistoryLimit": 5,
            "strategy": {
                "type": "RollingUpdate",
                # Surge instead of stopping workers first: the queue keeps its full service rate.
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {names.PIPELINE_HASH: revision_hash(target.revision)},
                },
                "spec": build_pod_spec(target),
            },
        },
    }
    return with_spec_hash(deployment)
