"""Operator settings: command line over environment over defaults, validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelmesh.operator.settings import OperatorSettings, parse_settings


def test_defaults_watch_every_namespace() -> None:
    settings = parse_settings([], environ={})
    assert settings.clusterwide
    assert settings.namespaces == ()
    assert settings == OperatorSettings()


def test_the_command_line_wins_over_the_environment() -> None:
    environ = {
        "PIXELMESH_OPERATOR_REGION": "eu-west",
        "PIXELMESH_OPERATOR_NATS_URLS": "nats://a:4222,nats://b:4222",
    }
    settings = parse_settings(
        ["--region", "us-east", "--namespace", "media", "--namespace", "shop"], environ=environ
    )
    assert settings.region == "us-east"
    assert settings.nats_urls == ("nats://a:4222", "nats://b:4222")
    assert settings.namespaces == ("media", "shop")
    assert not settings.clusterwide


def test_numbers_and_paths_are_parsed() -> None:
    settings = parse_settings(
        ["--resync-seconds", "2.5", "--metrics-port", "0", "--kubeconfig", "/tmp/kc"],
        environ={"PIXELMESH_OPERATOR_HEALTH_PORT": "9000"},
    )
    assert settings.resync_seconds == 2.5
    assert settings.metrics_port == 0
    assert settings.health_port == 9000
    assert settings.kubeconfig == Path("/tmp/kc")


def test_invalid_settings_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="resync_seconds must be positive"):
        parse_settings(["--resync-seconds", "0"], environ={})


def test_the_cross_region_cluster_of_geo_pipelines_is_configurable_and_checked() -> None:
    settings = parse_settings(
        ["--geo-replicas", "5"], environ={"PIXELMESH_OPERATOR_GEO_CLUSTER": "stretched"}
    )
    assert (settings.geo_cluster, settings.geo_replicas) == ("stretched", 5)
    with pytest.raises(ValueError, match="geo_replicas"):
        parse_settings(["--geo-replicas", "7"], environ={})
