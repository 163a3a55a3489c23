"""The pipeline catalog read from ImagePipeline and PipelineRevision files."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.pipeline import OutputType
from pixelmesh.gateway.catalog import DirectoryCatalog, MemoryCatalog, entries_from_documents

PIPELINE = """\
apiVersion: pixelmesh.io/v1alpha1
kind: ImagePipeline
metadata: {name: thumbs, namespace: shop, generation: 4}
spec:
  input: {maxBytes: 1000}
  variants:
    - {name: small, format: {type: webp}}
    - {name: any, format: {type: auto}}
  autoscaling: {minReplicas: 2}
---
apiVersion: pixelmesh.io/v1alpha1
kind: RegionPool
metadata: {name: eu}
spec: {region: eu, nats: {urls: ["nats://x:4222"]}}
"""
REVISION = '{"namespace": "shop", "name": "rendered", "generation": 7, "spec": {"variants": [{"name": "v"}]}}'


def touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, (stat.st_atime + 5, stat.st_mtime + 5))


async def test_image_pipelines_and_rendered_revisions_are_both_pipelines(tmp_path: Path):
    (tmp_path / "pipelines.yaml").write_text(PIPELINE)
    (tmp_path / "rendered.yml").write_text(REVISION)
    (tmp_path / "notes.txt").write_text("not yaml: [")
    catalog = DirectoryCatalog([tmp_path])
    thumbs = await catalog.get(PipelineRef(namespace="shop", name="thumbs"))
    assert thumbs is not None
    assert thumbs.generation == 4
    assert thumbs.spec.input.max_bytes == 1000
    assert thumbs.auto_variants() == frozenset({"any"})
    assert thumbs.spec.variant("small").format.type is OutputType.WEBP
    rendered = await catalog.get(PipelineRef(namespace="shop", name="rendered"))
    assert rendered is not None
    assert rendered.generation == 7
    assert len(await catalog.entries()) == 2


async def test_a_broken_edit_keeps_the_last_good_pipeline_and_a_fixed_one_replaces_it(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    catalog = DirectoryCatalog([path], refresh_seconds=0.001)
    ref = PipelineRef(namespace="shop", name="thumbs")
    assert await catalog.get(ref) is not None

    path.write_text(PIPELINE.replace("variants:", "variants: 12\n  x:"))
    touch_later(path)
    catalog.reload()
    kept = await catalog.get(ref)
    assert kept is not None
    assert kept.spec.input.max_bytes == 1000

    path.write_text(PIPELINE.replace("maxBytes: 1000", "maxBytes: 2000"))
    touch_later(path)
    catalog.reload()
    fixed = await catalog.get(ref)
    assert fixed is not None
    assert fixed.spec.input.max_bytes == 2000


async def test_a_removed_file_removes_its_pipelines(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    catalog = DirectoryCatalog([tmp_path])
    assert len(await catalog.entries()) == 1
    path.unlink()
    catalog.reload()
    assert await catalog.entries() == []


async def test_a_memory_catalog_is_replaced_as_a_whole():
    (entry,) = entries_from_documents(yaml.safe_load_all(PIPELINE))
    catalog = MemoryCatalog([entry])
    assert await catalog.get(entry.ref) == entry
    catalog.replace([])
    assert await catalog.get(entry.ref) is None
    assert await catalog.entries() == []
