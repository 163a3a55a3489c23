"""The pipeline example in docs/pipeline.md is a valid spec and runs as described."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pixelmesh.api.pipeline import OutputType, PipelineSpec
from pixelmesh.worker.pipeline import run_pipeline
from tests.fixtures.images import decode

pytestmark = pytest.mark.usefixtures("libvips")

DOC = Path(__file__).resolve().parents[2] / "docs" / "pipeline.md"


def documented_spec() -> PipelineSpec:
    [block] = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    resource = yaml.safe_load(block)
    assert (resource["apiVersion"], resource["kind"]) == ("pixelmesh.io/v1alpha1", "ImagePipeline")
    return PipelineSpec.model_validate(resource["spec"])


def test_the_documented_pipeline_produces_every_variant(photo_jpeg: bytes):
    spec = documented_spec()
    outputs = run_pipeline(spec, photo_jpeg, formats={"web": OutputType.WEBP})
    sizes = {o.variant: (o.format, o.width, o.height) for o in outputs}
    assert sizes == {
        "thumb": (OutputType.WEBP, 200, 200),
        "card": (OutputType.AVIF, 320, 240),
        "zoom": (OutputType.JPEG, 320, 240),
        "web": (OutputType.WEBP, 320, 240),
    }
    for output in outputs:
        assert decode(output.data).width == output.width
