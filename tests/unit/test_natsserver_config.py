"""The nats-server configuration rendered from the launcher's typed model."""

from __future__ import annotations

from pathlib import Path

from pixelmesh.natsserver import ClusterConfig, GatewayConfig, GatewayRemote, NatsServerConfig, render_config


def test_a_single_server_listens_on_loopback_with_jetstream_in_its_store(tmp_path: Path) -> None:
    rendered = render_config(NatsServerConfig(store_dir=tmp_path / "js"))
    assert rendered["host"] == "127.0.0.1"
    assert rendered["port"] == -1, "port 0 asks the server for a random free port"
    assert rendered["jetstream"]["store_dir"] == str(tmp_path / "js")
    assert "cluster" not in rendered
    assert "gateway" not in rendered
    assert "http" not in rendered


def test_a_given_port_and_monitoring_port_are_kept(tmp_path: Path) -> None:
    rendered = render_config(NatsServerConfig(store_dir=tmp_path, port=4333, monitoring_port=8333))
    assert rendered["port"] == 4333
    assert rendered["http"] == "127.0.0.1:8333"


def test_cluster_and_gateway_blocks_join_servers_into_a_supercluster(tmp_path: Path) -> None:
    config = NatsServerConfig(
        store_dir=tmp_path,
        server_name="eu-1",
        cluster=ClusterConfig(name="eu", port=6222, routes=("nats-route://127.0.0.1:6222",)),
        gateway=GatewayConfig(
            name="eu", port=7222, remotes=(GatewayRemote(name="us", urls=("nats://127.0.0.1:7223",)),)
        ),
    )
    rendered = render_config(config)
    assert rendered["cluster"] == {
        "name": "eu",
        "host": "127.0.0.1",
        "port": 6222,
        "routes": ["nats-route://127.0.0.1:6222"],
    }
    assert rendered["gateway"]["name"] == "eu"
    assert rendered["gateway"]["gateways"] == [{"name": "us", "urls": ["nats://127.0.0.1:7223"]}]


def test_extra_settings_pass_through(tmp_path: Path) -> None:
    rendered = render_config(NatsServerConfig(store_dir=tmp_path, extra=(("lame_duck_duration", "5s"),)))
    assert rendered["lame_duck_duration"] == "5s"


def test_no_server_tags_or_unique_tag_are_rendered_unless_asked_for(tmp_path: Path) -> None:
    rendered = render_config(NatsServerConfig(store_dir=tmp_path))
    assert "server_tags" not in rendered
    assert "unique_tag" not in rendered["jetstream"]


def test_tags_and_unique_tag_spread_a_stretched_clusters_replicas_by_region(tmp_path: Path) -> None:
    config = NatsServerConfig(
        store_dir=tmp_path, server_name="geo-eu", tags=("region:eu", "zone:a"), unique_tag="region"
    )
    rendered = render_config(config)
    assert rendered["server_tags"] == ["region:eu", "zone:a"]
    assert rendered["jetstream"]["unique_tag"] == "region"


def test_a_unique_tag_without_jetstream_renders_no_jetstream_block(tmp_path: Path) -> None:
    rendered = render_config(NatsServerConfig(store_dir=tmp_path, jetstream=False, unique_tag="region"))
    assert "jetstream" not in rendered


def test_routes_and_gateways_can_advertise_another_address_than_they_listen_on(tmp_path: Path) -> None:
    config = NatsServerConfig(
        store_dir=tmp_path,
        cluster=ClusterConfig(name="geo", port=6222, advertise="127.0.0.1:16222"),
        gateway=GatewayConfig(name="geo", port=7222, advertise="127.0.0.1:17222"),
    )
    rendered = render_config(config)
    assert rendered["cluster"]["advertise"] == "127.0.0.1:16222"
    assert rendered["gateway"]["advertise"] == "127.0.0.1:17222"
    assert (
        "advertise"
        not in render_config(NatsServerConfig(store_dir=tmp_path, cluster=ClusterConfig("a", 1)))["cluster"]
    )
