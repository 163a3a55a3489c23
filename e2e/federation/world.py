"""A federated PixelMesh on loopback: three regions, each with its NATS, its cluster and its gateway.

Each region has a single-server NATS cluster (joined into a supercluster, plus a member of the
`geo` cluster stretched over all regions), its own control plane (etcd, kube-apiserver,
kube-controller-manager), a process kubelet that runs its worker Pods as real `pixelmesh worker`
processes, and a gateway whose home it is. The first region's control plane is the hub: it holds
the CRDs, the RegionPools, the ImagePipelines and the members' kubeconfig Secrets, and the operator
runs against it in this process, as a ServiceAccount holding exactly the rules of
`pixelmesh.operator.rbac` (read when the world starts, so a rule added there is in force here).
Each member cluster has a ServiceAccount bound to the same rules; its token is what the hub's
Secret carries.

`lose(region)` is a region outage: its NATS servers, its worker processes and its control plane
are SIGKILLed together. `recover(region)` brings them back on the same ports and data directories
(etcd's data survives, so the cluster's objects do), and a fresh kubelet restarts the Pods still
bound to the region's node.

Caveats: the region's gateway keeps running through a loss unless asked (`gateway=True`), since
clients elsewhere may still reach it; losing the hub region stops the operator's API server, which
the operator then sees as any outage. Everything started is stopped by PID in `stop()`, also when
`start()` fails half-way.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import TypeVar
from urllib.parse import urlsplit

import yaml

from e2e.cluster import ApiError, Binaries, ControlPlane
from e2e.federation.gateway import GatewayProcess
from e2e.federation.hub_operator import HubOperator
from e2e.federation.manifests import (
    JsonObject,
    ProbeSettings,
    backup_ring,
    kubeconfig_secret,
    region_pool,
)
from e2e.kubelet import ProcessKubelet
from e2e.netsplit import Netsplit
from e2e.regions import GEO_CLUSTER, Supercluster
from pixelmesh.operator import names, rbac
from pixelmesh.operator.settings import OperatorSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

REGIONS = ("r1", "r2", "r3")
SYSTEM_NAMESPACE = "pixelmesh-system"
OPERATOR_ACCOUNT = "pixelmesh-operator"
CRDS = Path(__file__).resolve().parents[2] / "crds"
QUICK_WORKERS = {
    "PIXELMESH_FETCH_TIMEOUT_SECONDS": "0.5",
    "PIXELMESH_LOG_FORMAT": "text",
    "PIXELMESH_STATS_SECONDS": "1",
    "PIXELMESH_DRAIN_CHECK_SECONDS": "0.5",
}
"""Worker settings for a test: short fetch timeouts, so drains and scale-downs take little time;
service-rate reports every second, so a traffic shift's guard reads a region's errors quickly; a
drain named in the routing table is picked up within half a second."""


class WorldError(RuntimeError):
    """The world could not be started, changed or stopped as asked."""


def wait_for(probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """Call `probe` until it returns something truthy; WorldError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise WorldError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (from /proc); 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def member_secret_name(region: str) -> str:
    """The hub Secret holding `region`'s kubeconfig."""
    return f"region-{region}-kubeconfig"


def pipeline_path(namespace: str, name: str) -> str:
    return f"/apis/{names.API_VERSION}/namespaces/{namespace}/{names.PIPELINE_PLURAL}/{name}"


def pool_path(name: str) -> str:
    return f"/apis/{names.API_VERSION}/{names.POOL_PLURAL}/{name}"


def condition(body: JsonObject | None, type_: str) -> JsonObject:
    """The condition of `type_` in an object's status, or {}."""
    for found in (body or {}).get("status", {}).get("conditions", []):
        if found.get("type") == type_:
            return dict(found)
    return {}


@dataclass
class Region:
    """One region: its NATS (in the supercluster), its control plane, kubelet and gateway."""

    name: str
    supercluster: Supercluster
    control_plane: ControlPlane
    work_dir: Path
    kubelet: ProcessKubelet | None = None
    gateway: GatewayProcess | None = None
    lost_at: float | None = None
    """`time.monotonic()` of the last `lose()`, None while the region is up."""

    @property
    def nats_url(self) -> str:
        return self.supercluster.url(self.name)

    @property
    def geo_url(self) -> str:
        """The client URL of this region's member of the stretched `geo` cluster."""
        return self.supercluster.geo_url(self.name)

    @property
    def lost(self) -> bool:
        return self.lost_at is not None

    def start_kubelet(self) -> ProcessKubelet:
        """A kubelet for this region's worker Pods (a new one after a loss: the old one stopped)."""
        self.kubelet = ProcessKubelet(
            self.control_plane.api(),
            self.work_dir / "kubelet",
            node_name=f"node-{self.name}",
            label_selector=f"{names.LABEL_NAME}={names.WORKER_APP}",
            zone=f"{self.name}-a",
            extra_env=QUICK_WORKERS,
        )
        self.kubelet.start()
        return self.kubelet

    def worker_pids(self, namespace: str | None = None) -> list[int]:
        """PIDs of the worker processes running here now (of one namespace, if given)."""
        if self.kubelet is None:
            return []
        return [
            pod.process.pid
            for key, pod in self.kubelet.pods.items()
            if pod.process is not None
            and pod.running()
            and (namespace is None or key.startswith(f"{namespace}/"))
        ]


@dataclass
class World:
    """Three regions federated by one operator; `with World(root) as world:` or `start()`/`stop()`."""

    root: Path
    regions_named: Sequence[str] = REGIONS
    binaries: Binaries | None = None
    probes: ProbeSettings = field(default_factory=ProbeSettings)
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    max_workers: int | None = 4
    """`capacity.maxWorkers` of every RegionPool: small, two cores run the whole world."""
    partitionable: bool = False
    """Cross-region traffic through relays (`e2e.netsplit`), so `cut()` can partition a region."""
    netsplit: Netsplit | None = None
    regions: dict[str, Region] = field(default_factory=dict)
    supercluster: Supercluster | None = None
    operator: HubOperator | None = None
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds each start-up phase took, in order, and `total`."""
    _planes: list[ControlPlane] = field(default_factory=list)
    _catalog_lock: threading.Lock = field(default_factory=threading.Lock)
    _relayed_nats: dict[str, str] = field(default_factory=dict)

    # --- what tests use ------------------------------------------------------------------

    @property
    def hub(self) -> Region:
        return self.regions[self.regions_named[0]]

    @property
    def members(self) -> list[Region]:
        return [self.regions[name] for name in self.regions_named[1:]]

    @property
    def catalog(self) -> Path:
        """The directory of ImagePipeline files every gateway reads."""
        return self.root / "catalog"

    def gateway_url(self, region: str) -> str:
        gateway = self.regions[region].gateway
        if gateway is None:
            raise WorldError(f"region {region} has no gateway")
        return gateway.url

    def gateway_urls(self) -> dict[str, str]:
        return {name: self.gateway_url(name) for name in self.regions_named}

    def nats_urls(self) -> dict[str, str]:
        return {name: region.nats_url for name, region in self.regions.items()}

    def pids(self) -> dict[str, list[int]]:
        """PIDs running now by part: `nats`, `control_planes`, `workers`, `gateways`."""
        supercluster = self.supercluster
        servers = (
            []
            if supercluster is None
            else [*supercluster.servers.values(), *supercluster.geo_servers.values()]
        )
        return {
            "nats": [pid for server in servers if server.running and (pid := server.pid) is not None],
            "control_planes": [
                pid for region in self.regions.values() for pid in region.control_plane.pids()
            ],
            "workers": [pid for region in self.regions.values() for pid in region.worker_pids()],
            "gateways": [
                pid
                for region in self.regions.values()
                if region.gateway is not None and (pid := region.gateway.pid) is not None
            ],
        }

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) used so far by each part's live processes, and by this one
        (the operator, the kubelets and the test)."""
        used = {part: sum(map(process_cpu_seconds, pids)) for part, pids in self.pids().items()}
        used["harness_and_operator"] = process_cpu_seconds(os.getpid())
        return used

    def create_namespace(self, prefix: str = "e2e") -> str:
        """A namespace of the same (random) name in every region's cluster."""
        name = f"{prefix[:50].rstrip('-')}-{secrets.token_hex(4)}"
        for region in self.regions.values():
            _create(region.control_plane, "/api/v1/namespaces", _namespace(name))
        return name

    def apply_pipeline(self, document: JsonObject) -> None:
        """`kubectl apply` the ImagePipeline in the hub, and put it in the gateways' catalog."""
        self.hub.control_plane.kubectl().apply(json.dumps(document))
        meta = document["metadata"]
        path = self.catalog / f"{meta['namespace']}.{meta['name']}.yaml"
        with self._catalog_lock:
            # Written aside, then renamed: a gateway never reads half a file.
            partial = path.with_suffix(".partial")
            partial.write_text(yaml.safe_dump(document, sort_keys=False))
            partial.replace(path)

    def pipeline(self, namespace: str, name: str) -> JsonObject | None:
        """The ImagePipeline as the hub holds it, or None."""
        return _get_or_none(self.hub.control_plane, pipeline_path(namespace, name))

    def region_pool(self, region: str) -> JsonObject | None:
        return _get_or_none(self.hub.control_plane, pool_path(region))

    def delete_pipeline(self, namespace: str, name: str) -> None:
        """Delete the ImagePipeline in the hub (the operator removes its workers everywhere) and
        take it out of the gateways' catalog."""
        self.hub.control_plane.kubectl().run(
            "delete", names.PIPELINE_PLURAL, name, "-n", namespace, "--wait=false"
        )
        with self._catalog_lock:
            (self.catalog / f"{namespace}.{name}.yaml").unlink(missing_ok=True)

    def pipeline_events(self, namespace: str, name: str) -> list[JsonObject]:
        """The Events the hub holds about the ImagePipeline, oldest first."""
        return self._events(namespace, name)

    def region_events(self, region: str) -> list[str]:
        """ "<time> <reason>: <message>" of the Events the hub holds about a RegionPool, oldest first."""
        return [
            f"{e.get('lastTimestamp') or e.get('eventTime')} {e.get('reason')}: {e.get('message')}"
            for e in self._events("default", region)
            if e.get("involvedObject", {}).get("kind") == "RegionPool"
        ]

    def _events(self, namespace: str, name: str) -> list[JsonObject]:
        items = self.hub.control_plane.api().get(
            f"/api/v1/namespaces/{namespace}/events",
            fieldSelector=f"involvedObject.name={name}",
        )["items"]
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def break_workers(self, region: str, namespace: str, env: dict[str, str]) -> list[int]:
        """Restart `namespace`'s worker processes in `region` with `env` added (e.g. a job timeout
        no job can meet); {} restores them. Returns the PIDs ended."""
        kubelet = self.regions[region].kubelet
        if kubelet is None:
            raise WorldError(f"region {region} has no kubelet (is it lost?)")
        kubelet.set_namespace_env(namespace, env)
        return kubelet.restart_namespace(namespace)

    def wait_pipeline_ready(self, namespace: str, name: str, timeout: float = 60.0) -> JsonObject:
        """The ImagePipeline once its status is current and `Ready=True`."""

        def ready() -> JsonObject | None:
            body = self.pipeline(namespace, name)
            if body is None:
                return None
            current = body.get("status", {}).get("observedGeneration") == body["metadata"]["generation"]
            return body if current and condition(body, "Ready").get("status") == "True" else None

        try:
            return wait_for(ready, timeout=timeout, what=f"ImagePipeline {namespace}/{name} to be Ready")
        except WorldError as error:
            status = (self.pipeline(namespace, name) or {}).get("status")
            raise WorldError(f"{error}; its status: {json.dumps(status, indent=1)}") from None

    def wait_region_phase(self, region: str, phase: str, timeout: float = 60.0) -> JsonObject:
        """The RegionPool once the operator reports `phase` for it."""
        return wait_for(
            lambda: (
                (pool := self.region_pool(region)) and pool.get("status", {}).get("phase") == phase and pool
            ),
            timeout=timeout,
            what=f"RegionPool {region} to be {phase}",
        )

    def lose(self, region: str, *, gateway: bool = False) -> float:
        """A region outage: SIGKILL its NATS (regional and geo), worker processes, control plane.

        Returns the `time.monotonic()` of the loss. `gateway=True` kills its gateway too.
        """
        target = self.regions[region]
        if target.lost:
            raise WorldError(f"region {region} is already lost")
        target.lost_at = time.monotonic()
        self._require(self.supercluster).lose(region)
        if target.kubelet is not None:
            target.kubelet.stop(kill=True)
            target.kubelet = None
        target.control_plane.kill()
        if gateway and target.gateway is not None:
            target.gateway.kill()
        log.warning("Region %s is lost (NATS, workers and control plane killed).", region)
        return target.lost_at

    def recover(self, region: str) -> float:
        """Bring a lost region back on its ports and data; `time.monotonic()` once it is up."""
        target = self.regions[region]
        if not target.lost:
            raise WorldError(f"region {region} is not lost")
        self._require(self.supercluster).recover(region)
        target.control_plane.restart()
        target.start_kubelet()
        if target.gateway is not None and not target.gateway.running:
            target.gateway.spawn()
            target.gateway.wait_ready()
        target.lost_at = None
        self._place_processes()
        log.warning("Region %s is back.", region)
        return time.monotonic()

    def cut(self, region: str) -> float:
        """A partition: `region` keeps running but reaches no other region, nor they it (the hub's
        operator included). Returns the `time.monotonic()` of the cut."""
        self._require(self.netsplit).cut(region)
        return time.monotonic()

    def heal(self, region: str) -> float:
        """End `region`'s partition; `time.monotonic()` of the heal."""
        self._require(self.netsplit).heal(region)
        return time.monotonic()

    def cut_off(self) -> frozenset[str]:
        """The regions cut off now."""
        return frozenset() if self.netsplit is None else self.netsplit.cut_off

    def refused_connections(self) -> dict[tuple[str | None, str], int]:
        """(source region, destination region) -> connections a cut refused so far."""
        return {} if self.netsplit is None else dict(self.netsplit.refused)

    def relayed_nats_url(self, region: str) -> str:
        """The URL other regions dial for `region`'s NATS (its own URL without relays)."""
        return self._relayed_nats.get(region) or self.regions[region].nats_url

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> World:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> World:
        """Start every part and return once the gateways answer; on failure stop what started."""
        if len(self.regions_named) < 3:
            raise WorldError("three regions at least: JetStream's meta group must survive losing one")
        started = time.monotonic()
        try:
            # NATS elects its meta leader while the control planes start.
            if self.partitionable:
                self.netsplit = Netsplit().start()
            self.supercluster = Supercluster(
                self.regions_named,
                self.root / "nats",
                geo=True,
                relay=None if self.netsplit is None else self.netsplit.relay,
            )
            self.supercluster.spawn()
            self._place_processes()
            with self._phase("control_planes"):
                for name in self.regions_named:
                    plane = ControlPlane(self.root / name / "control-plane", binaries=self.binaries)
                    self._planes.append(plane)
                    plane.start()
                    self.regions[name] = Region(name, self.supercluster, plane, self.root / name)
            with self._phase("nats"):
                self.supercluster.wait_ready()
                self._relay_nats_clients()
            with self._phase("hub"):
                operator_kubeconfig = self._prepare_hub()
            with self._phase("members"):
                for member in self.members:
                    self._join_member(member)
            with self._phase("region_pools"):
                self._apply_region_pools()
            with self._phase("kubelets"):
                for region in self.regions.values():
                    region.start_kubelet()
            with self._phase("operator"):
                self.operator = HubOperator(self._operator_settings(operator_kubeconfig))
                self.operator.start()
            with self._phase("gateways"):
                self._start_gateways()
            self._place_processes()
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop everything this world started, by PID, newest first; raise the first failure after."""
        failures: list[BaseException] = []

        def attempt(action: Callable[[], object]) -> None:
            try:
                action()
            except Exception as error:  # every part still gets stopped
                failures.append(error)

        for region in self.regions.values():
            if region.gateway is not None:
                attempt(region.gateway.stop)
        if self.operator is not None:
            attempt(self.operator.stop)
            self.operator = None
        for region in self.regions.values():
            if region.kubelet is not None:
                attempt(partial(region.kubelet.stop, kill=True))
                region.kubelet = None
        for plane in reversed(self._planes):
            attempt(plane.stop)
        self._planes.clear()
        if self.supercluster is not None:
            attempt(self.supercluster.stop)
        if self.netsplit is not None:
            attempt(self.netsplit.stop)
            self.netsplit = None
        if failures:
            raise WorldError(f"stopping the world failed {len(failures)} time(s)") from failures[0]

    # --- start-up steps ------------------------------------------------------------------

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        yield
        self.timings[name] = time.monotonic() - began

    def _prepare_hub(self) -> Path:
        """CRDs, the system namespace, the operator's account; its kubeconfig."""
        plane = self.hub.control_plane
        kubectl = plane.kubectl()
        kubectl.run("apply", "--server-side", "-f", str(CRDS))
        for crd in sorted(path.stem for path in CRDS.glob("*.yaml")):
            kubectl.run("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
        return self._operator_account(plane)

    def _operator_account(self, plane: ControlPlane) -> Path:
        """A ServiceAccount bound to exactly the operator's rules in `plane`; its kubeconfig."""
        _create(plane, "/api/v1/namespaces", _namespace(SYSTEM_NAMESPACE))
        plane.kubectl().apply(yaml.safe_dump_all(rbac.manifests(SYSTEM_NAMESPACE, OPERATOR_ACCOUNT)))
        return plane.service_account_kubeconfig(SYSTEM_NAMESPACE, OPERATOR_ACCOUNT, create=False)

    def _join_member(self, member: Region) -> None:
        """The operator's account in the member, its kubeconfig in a Secret of the hub."""
        kubeconfig = self._operator_account(member.control_plane)
        text = self._relay_kubeconfig(member.name, kubeconfig.read_text())
        secret = kubeconfig_secret(SYSTEM_NAMESPACE, member_secret_name(member.name), text)
        self.hub.control_plane.kubectl().apply(json.dumps(secret))

    def _apply_region_pools(self) -> None:
        backups = backup_ring(self.regions_named)
        pools = [
            region_pool(
                name,
                nats_urls=[self.relayed_nats_url(name)],
                backup_region=backups[name],
                placement_cluster=name,
                kubeconfig_secret=None
                if region is self.hub
                else (SYSTEM_NAMESPACE, member_secret_name(name)),
                max_workers=self.max_workers,
                probes=self.probes,
            )
            for name, region in self.regions.items()
        ]
        self.hub.control_plane.kubectl().apply(
            json.dumps({"apiVersion": "v1", "kind": "List", "items": pools})
        )

    def _operator_settings(self, kubeconfig: Path) -> OperatorSettings:
        return OperatorSettings(
            region=self.hub.name,
            nats_urls=(self.hub.nats_url,),
            kubeconfig=kubeconfig,
            resync_seconds=1.0,
            autoscaler_interval_seconds=1.0,
            metrics_port=0,
            health_port=0,
            log_format="text",
            worker_log_format="text",
        )

    def _start_gateways(self) -> None:
        self.catalog.mkdir(parents=True, exist_ok=True)
        for name, region in self.regions.items():
            # Its own region's NATS as is, the others' as other regions dial them.
            everywhere = {
                other: (region.nats_url if other == name else self.relayed_nats_url(other),)
                for other in self.regions
            }
            region.gateway = GatewayProcess(
                home=name,
                regions=everywhere,
                catalog=self.catalog,
                work_dir=region.work_dir,
                api_key=self.api_key,
            )
            region.gateway.spawn()
        for region in self.regions.values():
            assert region.gateway is not None
            region.gateway.wait_ready()

    def _relay_nats_clients(self) -> None:
        """Relays into each region's NATS client port, for the other regions' clients."""
        if self.netsplit is None:
            return
        for name in self.regions_named:
            port = urlsplit(self._require(self.supercluster).url(name)).port
            assert port is not None
            self._relayed_nats[name] = f"nats://127.0.0.1:{self.netsplit.relay(name, port)}"

    def _relay_kubeconfig(self, region: str, text: str) -> str:
        """A kubeconfig for `region`'s API server as the hub dials it (through a relay, if any)."""
        if self.netsplit is None:
            return text
        document = yaml.safe_load(text)
        for entry in document["clusters"]:
            server = urlsplit(entry["cluster"]["server"])
            assert server.port is not None
            relayed = self.netsplit.relay(region, server.port)
            entry["cluster"]["server"] = server._replace(netloc=f"{server.hostname}:{relayed}").geturl()
        return str(yaml.safe_dump(document))

    def _place_processes(self) -> None:
        """Tell the relays which region each process that dials another region belongs to."""
        if self.netsplit is None:
            return
        supercluster = self._require(self.supercluster)
        # The operator runs in this process: the hub's.
        self.netsplit.place(os.getpid(), self.regions_named[0])
        for name in self.regions_named:
            region = self.regions.get(name)
            gateway = None if region is None else region.gateway
            for process in [supercluster.servers[name], supercluster.geo_servers.get(name), gateway]:
                if process is not None and (pid := process.pid) is not None:
                    self.netsplit.place(pid, name)

    @staticmethod
    def _require(value: T | None) -> T:
        if value is None:
            raise WorldError("the world is not started")
        return value


def _namespace(name: str) -> JsonObject:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _create(plane: ControlPlane, path: str, body: JsonObject, attempts: int = 5) -> None:
    """Create an object; one that exists already is fine. A connection refused or reset is tried
    again (an API server just restarted after a region's recovery can drop the first ones)."""
    for attempt in range(1, attempts + 1):
        try:
            plane.api().post(path, body)
        except ApiError as error:
            if error.status != HTTPStatus.CONFLICT:
                raise
        except OSError as error:
            if attempt == attempts:
                raise
            log.warning("Creating %s failed (%r); trying again.", path, error)
            time.sleep(0.5 * attempt)
            continue
        return


def _get_or_none(plane: ControlPlane, path: str) -> JsonObject | None:
    try:
        return plane.api().get(path)
    except ApiError as error:
        if error.status == HTTPStatus.NOT_FOUND:
            return None
        raise


__all__ = [
    "GEO_CLUSTER",
    "QUICK_WORKERS",
    "REGIONS",
    "Region",
    "World",
    "WorldError",
    "condition",
    "wait_for",
]
