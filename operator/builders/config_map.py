"""The ConfigMap holding the rendered pipeline file the workers mount."""

from __future__ import annotations

from pixelmesh.operator import names
from pixelmesh.operator.builders.hashing import KubeObject, child_metadata, with_spec_hash
from pixelmesh.operator.builders.pipeline_file import render_pipeline_file
from pixelmesh.operator.target import WorkerTarget


def build_pipeline_config_map(target: WorkerTarget) -> KubeObject:
    """`<pipeline>-<region>-pipeline` with one key, the pipeline file."""
    return with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": child_metadata(target, target.names.pipeline_config),
            "data": {names.PIPELINE_FILE_KEY: render_pipeline_file(target.revision)},
        }
    )
