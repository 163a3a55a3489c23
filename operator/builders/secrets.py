"""The NATS credentials Secret: the region's `.creds` copied next to the workers that mount it.

A RegionPool names its credentials Secret in any namespace, but a pod can mount Secrets of its own
namespace only; the operator copies the file into the pipeline's namespace (owned by the pipeline,
so it goes with it).
"""

from __future__ import annotations

import base64

from pixelmesh.operator import names
from pixelmesh.operator.builders.hashing import KubeObject, child_metadata, with_spec_hash
from pixelmesh.operator.target import WorkerTarget


def build_nats_credentials_secret(target: WorkerTarget, credentials: bytes) -> KubeObject:
    return with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": child_metadata(target, target.names.nats_credentials),
            "type": "Opaque",
            "data": {names.NATS_CREDENTIALS_FILE: base64.b64encode(credentials).decode()},
        }
    )
