"""Planning a Pod's process: env resolution, volumes as directories, ports and paths rewritten."""

from __future__ import annotations

import base64
import itertools
from pathlib import Path

import pytest

from e2e.kubelet.launch import JsonObject, plan_launch, resolve_env

CONFIG_MAP = {"data": {"pipeline.yaml": "variants: []\n", "LEVEL": "debug"}}
SECRET = {"data": {"token": base64.b64encode(b"s3cret").decode()}}


def lookup(kind: str, name: str) -> JsonObject | None:
    return {("ConfigMap", "cfg"): CONFIG_MAP, ("Secret", "sec"): SECRET}.get((kind, name))


def pod(container: JsonObject, volumes: list[JsonObject] | None = None) -> JsonObject:
    return {
        "metadata": {"name": "w-1", "namespace": "ns", "uid": "u-1", "labels": {"app": "w"}},
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": "main", **container}],
            "volumes": volumes or [],
            "terminationGracePeriodSeconds": 45,
        },
    }


def test_env_resolves_literals_fields_and_references() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CM_"}],
        "env": [
            {"name": "A", "value": "1"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
            {"name": "LVL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}},
        ],
    }
    env = resolve_env(pod(container), container, lookup)
    assert env == {
        "CM_pipeline.yaml": "variants: []\n",
        "CM_LEVEL": "debug",
        "A": "1",
        "POD": "w-1",
        "APP": "w",
        "TOKEN": "s3cret",
        "LVL": "debug",
    }


def test_missing_required_key_is_an_error() -> None:
    container = {"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]}
    with pytest.raises(ValueError, match="has no key nope"):
        resolve_env(pod(container), container, lookup)


def test_volumes_ports_and_probe_are_mapped_to_the_host(tmp_path: Path) -> None:
    container = {
        "command": ["/usr/bin/env"],
        "args": ["--config", "/etc/pm/pipeline.yaml"],
        "env": [
            {"name": "PIPELINE", "value": "/etc/pm/pipeline.yaml"},
            {"name": "METRICS_PORT", "value": "9090"},
            {"name": "SCRATCH", "value": "/scratch"},
        ],
        "ports": [{"name": "metrics", "containerPort": 9090}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}},
        "volumeMounts": [
            {"name": "pipeline", "mountPath": "/etc/pm"},
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
        ],
    }
    volumes = [
        {
            "name": "pipeline",
            "configMap": {"name": "cfg", "items": [{"key": "pipeline.yaml", "path": "pipeline.yaml"}]},
        },
        {"name": "scratch", "emptyDir": {}},
        {"name": "kube-api-access", "projected": {"sources": []}},
    ]
    ports = itertools.count(41000)
    launch = plan_launch(pod(container, volumes), lookup, tmp_path, lambda: next(ports))
    assert launch.ports == {9090: 41000}
    assert launch.env["METRICS_PORT"] == "41000"
    assert launch.env["PIPELINE"] == str(tmp_path / "volumes/pipeline/pipeline.yaml")
    assert launch.env["SCRATCH"] == str(tmp_path / "volumes/scratch")
    assert launch.argv == ["/usr/bin/env", "--config", str(tmp_path / "volumes/pipeline/pipeline.yaml")]
    assert launch.files == {Path("volumes/pipeline/pipeline.yaml"): b"variants: []\n"}
    assert launch.readiness == ("/readyz", 41000)
    assert launch.grace_seconds == 45.0
    assert "/var/run/secrets/kubernetes.io/serviceaccount" not in launch.mounts


def test_pixelmesh_entry_point_maps_to_this_environment(tmp_path: Path) -> None:
    launch = plan_launch(pod({"args": ["worker"]}), lookup, tmp_path, lambda: 1)
    assert Path(launch.argv[0]).name in {"pixelmesh", "python", "python3"}
    assert launch.argv[-1] == "worker"


def test_host_executable_under_a_mount_point_is_not_rewritten(tmp_path: Path) -> None:
    """A checkout under /tmp runs its venv's `pixelmesh` even when the Pod mounts /tmp."""
    container = {
        "args": ["worker", "--scratch", "/tmp/work"],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    volumes = [{"name": "tmp", "emptyDir": {}}]
    launch = plan_launch(
        pod(container, volumes),
        lookup,
        tmp_path,
        lambda: 1,
        argv_for=lambda c: ["/tmp/venv/bin/pixelmesh", *c["args"]],
    )
    assert launch.argv == [
        "/tmp/venv/bin/pixelmesh",
        "worker",
        "--scratch",
        str(tmp_path / "volumes/tmp/work"),
    ]
