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

With a `relay` (`e2e.netsplit.Netsplit.relay`), the servers of one region reach those of another
only through relays: gateway remotes and geo routes name them, and each server advertises its own
relay, so no server learns another region's real port. Cutting a relay then partitions regions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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

Relay = Callable[[str, int], int]
"""(region, port of a listener there) -> the port other regions should dial instead."""


class Supercluster:
    """Several single-server NATS clusters, one per region, joined by gateways."""

    def __init__(
        self,
        regions: Sequence[str],
        root: Path,
        *,
        geo: bool = False,
        startup_timeout: float = 60.0,
        relay: Relay | None = None,
    ) -> None:
        if len(set(regions)) != len(regions) or not regions:
            raise ValueError(f"region names must be unique and non-empty, got {list(regions)}")
        if geo and GEO_CLUSTER in regions:
            raise ValueError(f"{GEO_CLUSTER!r} names the stretched cluster; it cannot be a region")
        self.regions = list(regions)
        self.geo = geo
        self._root = root
        self._timeout = startup_timeout
        self._relay = relay
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
        # What other clusters dial: the same ports, or relays into the region of each listener.
        dialed = {
            cluster: [
                self._relayed(self._region_of(cluster, index), port) for index, port in enumerate(ports)
            ]
            for cluster, ports in gateways.items()
        }
        for region in self.regions:
            self.servers[region] = self._regional_server(region, gateways, dialed)
        if self.geo:
            routes = [free_port() for _ in self.regions]
            dialed_routes = [
                self._relayed(region, port) for region, port in zip(self.regions, routes, strict=True)
            ]
            for index, region in enumerate(self.regions):
                self.geo_servers[region] = self._geo_member(
                    region, index, (routes, dialed_routes), gateways, dialed
                )
        self._spawn(self.regions)

    def wait_ready(self) -> None:
        """Wait until every spawned server answers JetStream requests; stop them all if one fails."""
        self._wait_ready(self.regions)

    def _region_of(self, cluster: str, index: int) -> str:
        """The region a cluster's `index`th server lives in (the geo cluster has one per region)."""
        return self.regions[index] if cluster == GEO_CLUSTER else cluster

    def _relayed(self, region: str, port: int) -> int:
        return port if self._relay is None else self._relay(region, port)

    def _advertised(self, port: int, dialed: int) -> str | None:
        return None if port == dialed else f"127.0.0.1:{dialed}"

    def _gateway(
        self, cluster: str, index: int, gateways: dict[str, list[int]], dialed: dict[str, list[int]]
    ) -> GatewayConfig:
        remotes = tuple(
            GatewayRemote(name=other, urls=tuple(f"nats://127.0.0.1:{p}" for p in ports))
            for other, ports in dialed.items()
            if other != cluster
        )
        port = gateways[cluster][index]
        advertise = self._advertised(port, dialed[cluster][index])
        return GatewayConfig(name=cluster, port=port, remotes=remotes, advertise=advertise)

    def _regional_server(
        self, region: str, gateways: dict[str, list[int]], dialed: dict[str, list[int]]
    ) -> NatsServer:
        route = free_port()
        config = NatsServerConfig(
            store_dir=self._root / region / "jetstream",
            server_name=f"nats-{region}",
            cluster=ClusterConfig(name=region, port=route, routes=(f"nats-route://127.0.0.1:{route}",)),
            gateway=self._gateway(region, 0, gateways, dialed),
            tags=(f"{REGION_TAG}:{region}",),
        )
        return self._server(config, self._root / region)

    def _geo_member(
        self,
        region: str,
        index: int,
        routes: tuple[list[int], list[int]],
        gateways: dict[str, list[int]],
        dialed: dict[str, list[int]],
    ) -> NatsServer:
        """`routes`: every member's route port, and the port the other regions dial for it."""
        ports, dialed_routes = routes
        # Its own route as is (a server dialling itself only learns it is itself), the others'
        # as the other regions dial them.
        route_ports = [ports[i] if i == index else dialed_routes[i] for i in range(len(ports))]
        config = NatsServerConfig(
            store_dir=self._root / GEO_CLUSTER / region / "jetstream",
            server_name=f"nats-{GEO_CLUSTER}-{region}",
            cluster=ClusterConfig(
                name=GEO_CLUSTER,
                port=ports[index],
                routes=tuple(f"nats-route://127.0.0.1:{port}" for port in route_ports),
                advertise=self._advertised(ports[index], dialed_routes[index]),
            ),
            gateway=self._gateway(GEO_CLUSTER, index, gateways, dialed),
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
