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

With `geo=True` a further cluster named `geo` is stretched over the regions: one server per
region, tagged `region:<name>`, with JetStream's `unique_tag: region`, so an R3 stream placed in
cluster `geo` keeps one replica in each region (what `durability: geo` relies on). Losing a region
loses its regional server and its geo member together; the meta group then still has four of six
servers.
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

GEO_CLUSTER = "geo"
"""The name of the cluster stretched over the regions (also its gateway name)."""
REGION_TAG = "region"
"""Servers are tagged `region:<name>`; the geo cluster spreads replicas by this tag."""


class Supercluster:
    """Several single-server NATS clusters, one per region, joined by gateways."""

    def __init__(
        self, regions: Sequence[str], root: Path, *, geo: bool = False, startup_timeout: float = 60.0
    ) -> None:
        if len(set(regions)) != len(regions) or not regions:
            raise ValueError(f"region names must be unique and non-empty, got {list(regions)}")
        if geo and GEO_CLUSTER in regions:
            raise ValueError(f"{GEO_CLUSTER!r} names the stretched cluster; it cannot be a region")
        self.regions = list(regions)
        self.geo = geo
        self._root = root
        self._timeout = startup_timeout
        self.servers: dict[str, NatsServer] = {}
        self.geo_servers: dict[str, NatsServer] = {}
        """The stretched cluster's member in each region (empty without `geo`)."""

    def __enter__(self) -> Supercluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every region's server and return once each answers JetStream requests."""
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Start every server without waiting (quick): other set-up can run meanwhile."""
        # Gateway listen ports by cluster, one per server: the geo cluster has one in each region.
        gateways = {r: [free_port()] for r in self.regions}
        if self.geo:
            gateways[GEO_CLUSTER] = [free_port() for _ in self.regions]
        for region in self.regions:
            self.servers[region] = self._regional_server(region, gateways)
        if self.geo:
            routes = [free_port() for _ in self.regions]
            for index, region in enumerate(self.regions):
                self.geo_servers[region] = self._geo_member(region, index, routes, gateways)
        self._spawn(self.regions)

    def wait_ready(self) -> None:
        """Wait until every spawned server answers JetStream requests; stop them all if one fails."""
        self._wait_ready(self.regions)

    @staticmethod
    def _gateway(cluster: str, port: int, gateways: dict[str, list[int]]) -> GatewayConfig:
        remotes = tuple(
            GatewayRemote(name=other, urls=tuple(f"nats://127.0.0.1:{p}" for p in ports))
            for other, ports in gateways.items()
            if other != cluster
        )
        return GatewayConfig(name=cluster, port=port, remotes=remotes)

    def _regional_server(self, region: str, gateways: dict[str, list[int]]) -> NatsServer:
        route = free_port()
        config = NatsServerConfig(
            store_dir=self._root / region / "jetstream",
            server_name=f"nats-{region}",
            cluster=ClusterConfig(name=region, port=route, routes=(f"nats-route://127.0.0.1:{route}",)),
            gateway=self._gateway(region, gateways[region][0], gateways),
            tags=(f"{REGION_TAG}:{region}",),
        )
        return self._server(config, self._root / region)

    def _geo_member(
        self, region: str, index: int, routes: list[int], gateways: dict[str, list[int]]
    ) -> NatsServer:
        config = NatsServerConfig(
            store_dir=self._root / GEO_CLUSTER / region / "jetstream",
            server_name=f"nats-{GEO_CLUSTER}-{region}",
            cluster=ClusterConfig(
                name=GEO_CLUSTER,
                port=routes[index],
                routes=tuple(f"nats-route://127.0.0.1:{port}" for port in routes),
            ),
            gateway=self._gateway(GEO_CLUSTER, gateways[GEO_CLUSTER][index], gateways),
            tags=(f"{REGION_TAG}:{region}",),
            unique_tag=REGION_TAG,
        )
        return self._server(config, self._root / GEO_CLUSTER / region)

    def _server(self, config: NatsServerConfig, work_dir: Path) -> NatsServer:
        server = NatsServer(config=config, work_dir=work_dir)
        server.startup_timeout = self._timeout
        return server

    def _members(self, region: str) -> list[NatsServer]:
        """The servers that live in `region`: its own, and its geo member if there is one."""
        geo = self.geo_servers.get(region)
        return [self.servers[region]] if geo is None else [self.servers[region], geo]

    def _start_together(self, regions: Sequence[str]) -> None:
        self._spawn(regions)
        self._wait_ready(regions)

    def _spawn(self, regions: Sequence[str]) -> None:
        # Spawned on this thread: a server's death signal is tied to the thread that forked it.
        for region in regions:
            for server in self._members(region):
                server.spawn()

    def _wait_ready(self, regions: Sequence[str]) -> None:
        try:
            for region in regions:
                for server in self._members(region):
                    server.wait_ready()
        except BaseException:
            self.stop()
            raise

    def url(self, region: str) -> str:
        """The client URL of a region's NATS."""
        return self.servers[region].url

    def geo_url(self, region: str) -> str:
        """The client URL of the stretched cluster's member in `region` (needs `geo=True`)."""
        if not self.geo:
            raise ValueError("this supercluster has no geo cluster")
        return self.geo_servers[region].url

    def lose(self, region: str) -> None:
        """Kill a region's NATS at once (SIGKILL), its geo member too: a region outage."""
        for server in self._members(region):
            server.kill()

    def recover(self, region: str) -> None:
        """Start a lost region's servers again on their ports and stores."""
        self._start_together([region])

    def stop(self) -> None:
        """Stop every server this supercluster started."""
        for server in [*self.servers.values(), *self.geo_servers.values()]:
            if server.running:
                server.stop()
