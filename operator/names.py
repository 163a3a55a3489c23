"""One home for every name the operator writes: labels, annotations, the finalizer, child objects.

Children are made per pipeline x region, so two RegionPools served by the same cluster never
collide in one namespace. Kubernetes limits names in different ways (a Service name is a DNS-1035
label: 63 characters, starting with a letter; a label value is 63 characters), while an
ImagePipeline's name may be a 253-character DNS subdomain with dots. `fit_label` maps any name
onto a DNS-1035 label deterministically: unchanged when it already is one, otherwise cleaned,
shortened and suffixed with a hash of the original, so distinct pipelines keep distinct children.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pixelmesh.api.resources import API_VERSION, GROUP, VERSION

__all__ = ["API_VERSION", "GROUP", "VERSION"]

# --- the custom resources -------------------------------------------------------------------------

PIPELINE_KIND = "ImagePipeline"
PIPELINE_PLURAL = "imagepipelines"
PIPELINE_SINGULAR = "imagepipeline"
PIPELINE_SHORT_NAMES = ("ipl",)
POOL_KIND = "RegionPool"
POOL_PLURAL = "regionpools"
POOL_SINGULAR = "regionpool"
POOL_SHORT_NAMES = ("rpool",)
CATEGORY = "pixelmesh"

SERVICE_MONITOR_GROUP = "monitoring.coreos.com"
SERVICE_MONITOR_CRD = "servicemonitors.monitoring.coreos.com"
SCALED_OBJECT_GROUP = "keda.sh"
SCALED_OBJECT_VERSION = "v1alpha1"
SCALED_OBJECT_CRD = "scaledobjects.keda.sh"

# --- bookkeeping on our own objects ----------------------------------------------------------------

FINALIZER = "pixelmesh.io/cleanup"
"""Held by an ImagePipeline until what owner references cannot remove is gone (JetStream
resources under `deletionPolicy: Delete`, children in other clusters)."""
KOPF_PREFIX = "pixelmesh.io"
"""kopf keeps its progress and last-handled state in annotations under this prefix, not in status."""
KOPF_DIFFBASE = "pixelmesh.io/last-handled-configuration"

# --- labels (app.kubernetes.io/* plus our own selectors) -------------------------------------------

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PIPELINE = "pixelmesh.io/pipeline"
LABEL_REGION = "pixelmesh.io/region"
LABEL_POOL = "pixelmesh.io/pool"
"""The RegionPool a child was placed through; empty for the operator's own region."""

WORKER_APP = "pixelmesh-worker"
WORKER_COMPONENT = "worker"
PART_OF = "pixelmesh"
MANAGED_BY = "pixelmesh-operator"

# --- annotations on children -----------------------------------------------------------------------

SPEC_HASH = "pixelmesh.io/spec-hash"
"""The hash of the desired object a child was last written from; a difference means drift."""
PIPELINE_HASH = "pixelmesh.io/pipeline-hash"
"""On the pod template: the rendered pipeline's hash, so a change of steps rolls the workers."""
OWNER = "pixelmesh.io/owner"
"""`<namespace>/<name>` of the ImagePipeline, for children an owner reference cannot point from."""

# --- inside the worker pod -------------------------------------------------------------------------

CONTAINER = "worker"
METRICS_PORT_NAME = "metrics"
METRICS_PORT = 9090
PIPELINE_VOLUME = "pipeline"
PIPELINE_FILE_KEY = "pipeline.json"
PIPELINE_MOUNT_DIR = "/etc/pixelmesh"
TMP_VOLUME = "tmp"
TMP_MOUNT = "/tmp"  # noqa: S108 - an emptyDir under a read-only root filesystem
RUN_AS_USER = 10001

ENV_PREFIX = "PIXELMESH_"
ENV_PIPELINE_FILE = "PIXELMESH_PIPELINE_FILE"
ENV_NATS_URLS = "PIXELMESH_NATS_URLS"
ENV_NATS_CREDENTIALS = "PIXELMESH_NATS_CREDENTIALS"
ENV_REGION = "PIXELMESH_REGION"
ENV_WORKER_NAME = "PIXELMESH_WORKER_NAME"
ENV_CONCURRENCY = "PIXELMESH_CONCURRENCY"
ENV_DRAIN_GRACE = "PIXELMESH_DRAIN_GRACE_SECONDS"
ENV_METRICS_PORT = "PIXELMESH_METRICS_PORT"
ENV_LOG_LEVEL = "PIXELMESH_LOG_LEVEL"
ENV_LOG_FORMAT = "PIXELMESH_LOG_FORMAT"
NATS_CREDENTIALS_VOLUME = "nats-credentials"
NATS_CREDENTIALS_MOUNT_DIR = "/var/run/secrets/pixelmesh/nats"
NATS_CREDENTIALS_FILE = "nats.creds"

# --- name fitting ----------------------------------------------------------------------------------

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_HASH_LENGTH = 8
MAX_LABEL = 63


def short_hash(text: str, length: int = _HASH_LENGTH) -> str:
    """A stable hex digest prefix of `text`."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def fit_label(text: str, max_length: int = MAX_LABEL) -> str:
    """`text` as a DNS-1035 label of at most `max_length` characters, unchanged when it is one."""
    if len(text) <= max_length and _DNS1035.match(text):
        return text
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"p-{cleaned}"
    keep = max_length - _HASH_LENGTH - 1
    return f"{cleaned[:keep].rstrip('-')}-{short_hash(text)}"


def label_value(text: str) -> str:
    """`text` as a valid label value (63 characters, alphanumeric at both ends)."""
    if len(text) <= MAX_LABEL and _LABEL_VALUE.match(text):
        return text
    return fit_label(text)


@dataclass(frozen=True, slots=True)
class ChildNames:
    """The names of one pipeline's children in one region (all in the pipeline's namespace)."""

    workers: str
    """The Deployment, its Service, PodDisruptionBudget and ServiceMonitor."""
    pipeline_config: str
    """The ConfigMap holding the rendered pipeline."""
    nats_credentials: str
    """The Secret with the region's NATS credentials, copied into the pipeline's namespace."""


def child_names(pipeline: str, region: str) -> ChildNames:
    """Children of ImagePipeline `pipeline` in `region`: `<pipeline>-<region>` fitted to a label."""
    workers = fit_label(f"{pipeline}-{region}")
    return ChildNames(
        workers=workers, pipeline_config=f"{workers}-pipeline", nats_credentials=f"{workers}-nats"
    )


def owner_value(namespace: str, name: str) -> str:
    """The value of the `OWNER` annotation."""
    return f"{namespace}/{name}"


def selector_labels(pipeline: str, region: str) -> dict[str, str]:
    """The labels a worker Deployment selects its pods by (immutable once created)."""
    return {
        LABEL_NAME: WORKER_APP,
        LABEL_INSTANCE: child_names(pipeline, region).workers,
    }


def worker_labels(pipeline: str, region: str, pool: str = "") -> dict[str, str]:
    """Every label on a pipeline's children in a region and on its worker pods."""
    return {
        **selector_labels(pipeline, region),
        LABEL_COMPONENT: WORKER_COMPONENT,
        LABEL_PART_OF: PART_OF,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PIPELINE: label_value(pipeline),
        LABEL_REGION: region,
        LABEL_POOL: pool,
    }


def pipeline_selector(pipeline: str) -> str:
    """A label selector matching every child of a pipeline, in any region."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_PIPELINE}={label_value(pipeline)}"
