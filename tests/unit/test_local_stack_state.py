"""The local stack's files: keys kept privately, the note for other commands, the YAML it reads."""

from __future__ import annotations

import os
from pathlib import Path

from pixelmesh.api.resources import RegionPool
from pixelmesh.local.stack import local_pool, read_manifests
from pixelmesh.local.state import StackSecrets, StackState

FILES = """\
apiVersion: pixelmesh.io/v1alpha1
kind: ImagePipeline
metadata: {name: thumbs}
spec:
  variants: [{name: small}]
---
apiVersion: pixelmesh.io/v1alpha1
kind: RegionPool
metadata: {name: eu}
spec: {region: eu-west, nats: {urls: ["nats://far:4222"], replicas: 3}}
"""


def test_keys_are_made_once_kept_private_and_the_environment_overrides_them(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("PIXELMESH_API_KEY", raising=False)
    monkeypatch.delenv("PIXELMESH_SIGNING_KEY", raising=False)
    first = StackSecrets.load_or_create(tmp_path)
    assert StackSecrets.load_or_create(tmp_path) == first
    assert first.api_key.startswith("pm_")
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("PIXELMESH_API_KEY", "from-env")
    overridden = StackSecrets.load_or_create(tmp_path)
    assert overridden.api_key == "from-env"
    assert overridden.signing_key == first.signing_key
    assert "from-env" not in (tmp_path / "secrets.json").read_text()


def test_the_note_is_read_back_only_while_its_process_lives(tmp_path: Path):
    state = StackState("http://127.0.0.1:1", "k", "s", "nats://127.0.0.1:2", str(tmp_path), os.getpid())
    state.save(tmp_path)
    assert '"gatewayUrl"' in (tmp_path / "stack.json").read_text()
    assert StackState.load(tmp_path) == state
    gone = StackState("http://127.0.0.1:1", "k", "s", "nats://x", str(tmp_path), 2**22 + 12345)
    gone.save(tmp_path)
    assert StackState.load(tmp_path) is None
    StackState.remove(tmp_path)
    assert StackState.load(tmp_path) is None


def test_broken_files_are_reported_and_the_others_still_load(tmp_path: Path):
    (tmp_path / "good.yaml").write_text(FILES)
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: pixelmesh.io/v1alpha1\nkind: ImagePipeline\nmetadata: {}\n"
    )
    (tmp_path / "ignored.txt").write_text("not: [yaml")
    found = read_manifests(tmp_path)
    assert [p.metadata.name for p in found.pipelines] == ["thumbs"]
    assert [p.spec.region for p in found.pools] == ["eu-west"]
    assert len(found.problems) == 1
    assert "bad.yaml" in found.problems[0]


def test_a_pool_written_for_a_cluster_runs_on_the_local_nats(tmp_path: Path):
    (tmp_path / "pool.yaml").write_text(FILES)
    (pool,) = read_manifests(tmp_path).pools
    local = local_pool(pool, "nats://127.0.0.1:4999")
    assert isinstance(local, RegionPool)
    assert local.spec.nats.urls == ["nats://127.0.0.1:4999"]
    assert local.spec.nats.replicas == 1
    assert local.spec.region == "eu-west"
    assert local.metadata.name == "eu"
