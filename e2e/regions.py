"""Regions on loopback: one NATS cluster per region, joined by gateways into a supercluster.

Production runs one NATS cluster (three servers, JetStream R3) per region, and joins the regions'
clusters with gateways so that streams can be placed in, mirrored to, and sourced from any region.
On one machine each region is a single-server cluster: enough to place and mirror streams by
cluster name, and to lose a region by stopping its server.

Two facts of NATS shape this (both checked by the tests):
- a one-server cluster only starts JetStream in clustered mode if its route list names itself;
- the JetStream meta group spans the supercluster, so it answers only after a meta leader is
  elected, and with three regions it keeps its quorum when one dies (two would not).
All servers are spawned first, then awaited: waiting for one before starting the next would wait
for a quorum that cannot exist yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from pixelmesh.natsserver import (
    ClusterConfig,
    GatewayConfig,
    GatewayRemote,
    NatsServer,
    NatsServerConfig,
    free_port,
)


class Supercluster:
    """Several single-server NATS clusters, one per region, joined by gateways."""

    def __init__(self, regions: Sequence[str], root: Path, *, startup_timeout: float = 60.0) -> None:
        if len(set(regions)) != len(regions) or not regions:
            raise ValueError(f"region names must be unique and non-empty, got {list(regions)}")
        self.regions = list(regions)
        self._root = root
        self._timeout = startup_timeout
        self.servers: dict[str, NatsServer] = {}

    def __enter__(self) -> Supercluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every region's server and return once each answers JetStream requests."""
        routes = {r: free_port() for r in self.regions}
        gateways = {r: free_port() for r in self.regions}
        clients = {r: free_port() for r in self.regions}
        for region in self.regions:
            remotes = tuple(
                GatewayRemote(name=other, urls=(f"nats://127.0.0.1:{gateways[other]}",))
                for other in self.regions
                if other != region
            )
            config = NatsServerConfig(
                store_dir=self._root / region / "jetstream",
                server_name=f"nats-{region}",
                port=clients[region],
                cluster=ClusterConfig(
                    name=region, port=routes[region], routes=(f"nats-route://127.0.0.1:{routes[region]}",)
                ),
                gateway=GatewayConfig(name=region, port=gateways[region], remotes=remotes),
            )
            server = NatsServer(config=config, work_dir=self._root / region)
            server.startup_timeout = self._timeout
            self.servers[region] = server
        self._start_together(self.regions)

    def _start_together(self, regions: Sequence[str]) -> None:
        # Spawned on this thread: a server's death signal is tied to the thread that forked it.
        for region in regions:
            self.servers[region].spawn()
        try:
            for region in regions:
                self.servers[region].wait_ready()
        except BaseException:
            self.stop()
            raise

    def url(self, region: str) -> str:
        """The client URL of a region's NATS."""
        return self.servers[region].url

    def lose(self, region: str) -> None:
        """Kill a region's NATS at once (SIGKILL): a region outage, not a maintenance stop."""
        self.servers[region].kill()

    def recover(self, region: str) -> None:
        """Start a lost region again on its ports and store."""
        self.servers[region].start()

    def stop(self) -> None:
        """Stop every server this supercluster started."""
        for server in self.servers.values():
            if server.running:
                server.stop()
