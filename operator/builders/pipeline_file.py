"""The rendered pipeline: the file every worker of a pipeline reads at start-up.

It is a `PipelineRevision` (namespace, name, generation, the pipeline part of the spec) as JSON
with sorted keys, so its hash changes exactly when what the workers do changes. The hash goes onto
the pod template, which makes Kubernetes roll the workers; changing only autoscaling or placement
does not roll them.

The revision's `generation` is the pipeline generation: the ImagePipeline's `metadata.generation`
at which the pipeline part last changed. It is part of every output key, so outputs made before an
unrelated change (a new `maxReplicas`) keep their keys. The last one is remembered in the status
(`pipelineHash`, `pipelineGeneration`).
"""

from __future__ import annotations

from pixelmesh.api.messages import PipelineRef, PipelineRevision
from pixelmesh.api.pipeline import PipelineSpec
from pixelmesh.operator.builders.hashing import canonical_json, content_hash


def pipeline_spec_hash(spec: PipelineSpec) -> str:
    """The hash of what the workers do, independent of the generation it is labelled with."""
    return content_hash(spec.to_wire())


def pipeline_generation(
    spec: PipelineSpec, generation: int, *, last_hash: str | None, last_generation: int | None
) -> int:
    """The generation to label the revision with: unchanged while the pipeline part is unchanged."""
    if last_hash is not None and last_generation and last_hash == pipeline_spec_hash(spec):
        return last_generation
    return generation


def pipeline_revision(ref: PipelineRef, spec: PipelineSpec, generation: int) -> PipelineRevision:
    return PipelineRevision(namespace=ref.namespace, name=ref.name, generation=generation, spec=spec)


def render_pipeline_file(revision: PipelineRevision) -> str:
    """The file's text: canonical JSON (JSON is YAML, so a YAML reader takes it too)."""
    return canonical_json(revision.to_wire()) + "\n"


def revision_hash(revision: PipelineRevision) -> str:
    """The hash of the rendered file; on the pod template it rolls the workers."""
    return content_hash(revision.to_wire())
