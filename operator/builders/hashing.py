"""Content hashes and the metadata every child shares (labels, owner, spec hash).

The spec hash is taken over the object as built, before the hash annotation is added, with keys
sorted: the same desired object always gets the same hash, across processes and restarts.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from pixelmesh.operator import names
from pixelmesh.operator.target import WorkerTarget

KubeObject = dict[str, Any]

HASH_LENGTH = 16


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: object) -> str:
    """A short, stable hash of a JSON-compatible value."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:HASH_LENGTH]


def with_spec_hash(obj: KubeObject) -> KubeObject:
    """A copy of `obj` with the spec-hash annotation of its content."""
    stamped = copy.deepcopy(obj)
    metadata = stamped.setdefault("metadata", {})
    annotations = metadata.setdefault("annotations", {})
    annotations.pop(names.SPEC_HASH, None)
    annotations[names.SPEC_HASH] = content_hash(stamped)
    return stamped


def spec_hash_of(obj: KubeObject) -> str | None:
    """The spec-hash annotation of an observed object, if it has one."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(names.SPEC_HASH)
    return value if isinstance(value, str) else None


def owner_references(target: WorkerTarget) -> list[KubeObject]:
    """An owner reference to the ImagePipeline, when the child lives in the pipeline's cluster."""
    if not target.in_own_cluster:
        return []
    return [
        {
            "apiVersion": names.API_VERSION,
            "kind": names.PIPELINE_KIND,
            "name": target.ref.name,
            "uid": target.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def child_metadata(target: WorkerTarget, name: str) -> KubeObject:
    """Name, namespace, labels, the owner annotation and (in the same cluster) the owner reference."""
    metadata: KubeObject = {
        "name": name,
        "namespace": target.ref.namespace,
        "labels": names.worker_labels(target.ref.name, target.region, target.placement.pool),
        "annotations": {names.OWNER: names.owner_value(target.ref.namespace, target.ref.name)},
    }
    owners = owner_references(target)
    if owners:
        metadata["ownerReferences"] = owners
    return metadata
