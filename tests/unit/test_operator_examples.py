"""The examples a platform team applies are valid resources (the API server checks them too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelmesh.operator.local import load_manifests

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_parses_as_its_kind(path: Path) -> None:
    pipelines, pools = load_manifests([path])
    assert len(pipelines) + len(pools) == 1


def test_there_are_two_pipelines_and_a_pool_they_can_use() -> None:
    pipelines, pools = load_manifests(EXAMPLES)
    assert len(pipelines) == 2
    assert len(pools) == 1
    pool_names = {p.metadata.name for p in pools}
    for pipeline in pipelines:
        assert {r.pool for r in pipeline.spec.regions} <= pool_names
