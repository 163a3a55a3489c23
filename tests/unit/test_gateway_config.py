"""The gateway's settings from the environment."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from pixelmesh.gateway.config import PARSERS, SCALARS, GatewayConfig, parse_regions


def test_regions_parse_from_name_equals_urls_separated_by_semicolons():
    assert parse_regions("eu=nats://a:4222,nats://b:4222; us=nats://c:4222;") == {
        "eu": ("nats://a:4222", "nats://b:4222"),
        "us": ("nats://c:4222",),
    }
    for bad in ("eu", "=nats://a", "eu="):
        with pytest.raises(ValueError, match="region entry"):
            parse_regions(bad)


def test_settings_come_from_prefixed_variables_and_overrides_win():
    config = GatewayConfig.from_env(
        {
            "PIXELMESH_GATEWAY_PORT": "9000",
            "PIXELMESH_GATEWAY_REGIONS": "eu=nats://a:4222;us=nats://b:4222",
            "PIXELMESH_GATEWAY_HOME_REGION": "us",
            "PIXELMESH_GATEWAY_API_KEYS": "k1, k2",
            "PIXELMESH_GATEWAY_SIGNING_KEYS": "0123456789abcdef0123",
            "PIXELMESH_GATEWAY_PIPELINES": "a.yaml:dir",
            "PIXELMESH_GATEWAY_MAX_WAIT_SECONDS": "12.5",
        },
        host="0.0.0.0",
    )
    assert config.port == 9000
    assert config.host == "0.0.0.0"
    assert config.regions == {"eu": ("nats://a:4222",), "us": ("nats://b:4222",)}
    assert config.home == "us"
    assert config.api_keys == ("k1", "k2")
    assert config.signing_keys == ("0123456789abcdef0123",)
    assert config.pipelines == (Path("a.yaml"), Path("dir"))
    assert config.max_wait_seconds == 12.5


def test_the_home_region_defaults_to_the_first_region():
    assert GatewayConfig(regions={"b": ("x",), "a": ("y",)}).home == "b"


def test_invalid_settings_are_reported_together():
    with pytest.raises(ValueError, match=r"home region.*signing keys") as raised:
        GatewayConfig(regions={"eu": ("x",)}, home_region="us", signing_keys=("short",))
    assert "invalid gateway configuration" in str(raised.value)
    with pytest.raises(ValueError, match="PIXELMESH_GATEWAY_PORT"):
        GatewayConfig.from_env({"PIXELMESH_GATEWAY_PORT": "eighty"})


def test_every_setting_can_be_read_from_the_environment():
    for setting in fields(GatewayConfig):
        assert setting.name in PARSERS or str(setting.type) in SCALARS, setting.name
