"""The embedded nats-server: starts on a free port, keeps its port and data across restarts, and is
stopped by its own PID."""

from __future__ import annotations

import os
from pathlib import Path

import nats
import pytest

from pixelmesh.natsserver import NatsServer, NatsServerConfig, NatsServerError


async def test_a_restarted_server_keeps_its_port_and_its_jetstream_data(tmp_path: Path) -> None:
    async with NatsServer(config=NatsServerConfig(store_dir=tmp_path / "js"), work_dir=tmp_path) as server:
        url, first_pid = server.url, server.pid
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(name="KEEP", subjects=["keep"])
        await js.publish("keep", b"precious")
        await nc.close()

        for hard in (False, True):
            await server.arestart(hard=hard)
            assert server.url == url
            assert server.pid != first_pid
            nc = await nats.connect(url)
            info = await nc.jetstream().stream_info("KEEP")
            assert info.state.messages == 1
            await nc.close()


def test_stop_ends_exactly_its_own_process(tmp_path: Path) -> None:
    server = NatsServer(config=NatsServerConfig(store_dir=tmp_path / "js"), work_dir=tmp_path)
    server.start()
    pid = server.pid
    assert pid is not None
    assert server.stop() == 0, "nats-server exits cleanly on SIGTERM"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert server.stop() is None, "stopping twice is harmless"


def test_a_port_in_use_fails_with_the_server_log(tmp_path: Path) -> None:
    with NatsServer.ephemeral() as running:
        clash = NatsServer(
            config=NatsServerConfig(store_dir=tmp_path / "js", port=running.port),
            work_dir=tmp_path,
            startup_timeout=5,
        )
        with pytest.raises(NatsServerError, match="address already in use"):
            clash.start()
        assert not clash.running


def test_monitoring_port_zero_picks_a_free_port(tmp_path: Path) -> None:
    with NatsServer.ephemeral(monitoring_port=0) as server:
        assert server.monitoring_url is not None
        assert server.monitoring_url.startswith("http://127.0.0.1:")
        assert not server.monitoring_url.endswith(":0")
