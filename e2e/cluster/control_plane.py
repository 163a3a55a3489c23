"""A real, throwaway Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager.

Mocks of the Kubernetes API hide the faults that break operators in production:
non-structural CRD schemas, RBAC one verb short, refused patches, resourceVersion
conflicts, OpenAPI validation in `kubectl apply`. This runs the real binaries, built
from the pinned Kubernetes release (see `binaries`), on 127.0.0.1 with free ports
and a directory of its own, so any number of them can run side by side (federation
tests run one per region).

The API server is configured as a small real cluster is: TLS with its own CA,
`Node,RBAC` authorization, ServiceAccount tokens signed by its own key and issued
through the TokenRequest API, the default admission plugins. Humans and tests log
in as `admin` (group `system:masters`) with a static token; the controller manager
logs in as `system:kube-controller-manager` and runs each controller under its own
ServiceAccount, so the bootstrap RBAC roles are exercised as in a real cluster.
There is no kubelet and no scheduler: a Deployment gets its ReplicaSet and Pods,
and the Pods stay Pending.

`kill()` then `restart()` plays a control plane that is lost and comes back: the processes are
SIGKILLed, then started again on the same ports with the same certificates, tokens and etcd data,
so the cluster's objects (and ServiceAccount tokens issued before) survive.

Test-only shortcuts, none of which changes what the API accepts or refuses: etcd
skips fsync, the controller manager skips leader election, and the `kubernetes`
Service gets no endpoints (nothing runs in the cluster to call it, and the only
address the API server listens on, loopback, is not a valid endpoint).
"""

from __future__ import annotations

import secrets
import shutil
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import TextIO, TypeVar

from e2e.cluster import binaries as binaries_module
from e2e.cluster.api import ApiClient, ApiError
from e2e.cluster.kubeconfig import write_kubeconfig
from e2e.cluster.kubectl import Kubectl
from e2e.cluster.pki import ClusterPki, write_pki
from e2e.cluster.ports import free_port
from e2e.cluster.process import ManagedProcess, ProcessExitedError

SERVICE_CIDR = "10.96.0.0/16"
# The first address of the service range: the `kubernetes` Service's ClusterIP.
SERVICE_IP = "10.96.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "admin"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"

_T = TypeVar("_T")
_Probe = Callable[[], bool]

_START_ATTEMPTS = 3
_POLL_INTERVAL = 0.05


class ControlPlaneError(RuntimeError):
    """The control plane did not start or did not become ready."""


class _PortTakenError(ControlPlaneError):
    """A process lost its port to someone else between our probe and its bind."""


@dataclass(frozen=True, slots=True)
class _Endpoints:
    """The ports and the controller manager's token, kept so a restart listens where clients look."""

    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    controller_manager_token: str

    @classmethod
    def allocate(cls) -> _Endpoints:
        return cls(free_port(), free_port(), free_port(), free_port(), secrets.token_urlsafe(32))


class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager), as a context manager.

    `with ControlPlane() as cp:` starts everything, waits until the API server's
    `/readyz` passes, and writes `cp.kubeconfig` for the admin. Leaving the block
    stops the processes it started and removes its directory (unless `directory`
    was given, which is then kept with its logs).
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        controller_manager: bool = True,
        binaries: binaries_module.Binaries | None = None,
        start_timeout: float = 90.0,
        build_log: TextIO | None = None,
    ) -> None:
        self._given_directory = directory
        self._with_controller_manager = controller_manager
        self._binaries = binaries
        self._start_timeout = start_timeout
        self._build_log = build_log
        self._processes: list[ManagedProcess] = []
        self._directory: Path | None = None
        self._admin_token = ""
        self._server = ""
        self._pki: ClusterPki | None = None
        self._endpoints: _Endpoints | None = None
        self.startup_seconds = 0.0

    # --- what tests use ---------------------------------------------------------------

    @property
    def directory(self) -> Path:
        return self._require(self._directory)

    @property
    def server(self) -> str:
        """The API server's URL, e.g. `https://127.0.0.1:41234`."""
        return self._require(self._server)

    @property
    def admin_token(self) -> str:
        return self._require(self._admin_token)

    @property
    def ca_cert(self) -> Path:
        return self._require(self._pki).ca_cert

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (user `admin`, group `system:masters`)."""
        return self.directory / "admin.kubeconfig"

    @property
    def kubernetes_version(self) -> str:
        return self._require(self._binaries).kubernetes_version

    @property
    def has_controller_manager(self) -> bool:
        return self._with_controller_manager

    def api(self, token: str | None = None) -> ApiClient:
        """An HTTP client for this server, as admin unless another `token` is given."""
        return ApiClient(self.server, token or self.admin_token, self.ca_cert)

    def kubectl(self, kubeconfig: Path | None = None) -> Kubectl:
        """The wheel's kubectl for this server, as admin unless `kubeconfig` is given."""
        return Kubectl(kubeconfig=kubeconfig or self.kubeconfig, cache_dir=self.directory / "kubectl-cache")

    def create_namespace(self, prefix: str = "test", *, labels: dict[str, str] | None = None) -> str:
        """Create a namespace named `<prefix>-<random>` and return its name."""
        name = f"{prefix[:50].rstrip('-')}-{secrets.token_hex(4)}"
        metadata: dict[str, object] = {"name": name}
        if labels:
            metadata["labels"] = labels
        self.api().post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
        return name

    def delete_namespace(self, name: str) -> None:
        """Ask for the namespace's deletion; the namespace controller finishes it."""
        try:
            self.api().delete(f"/api/v1/namespaces/{name}")
        except ApiError as error:
            if error.status != HTTPStatus.NOT_FOUND:
                raise

    def create_service_account(self, namespace: str, name: str) -> None:
        """Create a ServiceAccount; an existing one is fine."""
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
        try:
            self.api().post(f"/api/v1/namespaces/{namespace}/serviceaccounts", body)
        except ApiError as error:
            if error.status != HTTPStatus.CONFLICT:
                raise

    def service_account_token(self, namespace: str, name: str, *, expiration_seconds: int = 3600) -> str:
        """A bound token for the ServiceAccount, minted through the TokenRequest API."""
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": expiration_seconds},
        }
        reply = self.api().post(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", request)
        return str(reply["status"]["token"])

    def service_account_kubeconfig(
        self,
        namespace: str,
        name: str,
        *,
        create: bool = True,
        expiration_seconds: int = 3600,
        path: Path | None = None,
    ) -> Path:
        """A kubeconfig that acts as `system:serviceaccount:<namespace>:<name>`.

        It carries exactly the permissions RBAC grants that ServiceAccount, which is
        how tests run the operator with the rights the Helm chart gives it.
        """
        if create:
            self.create_service_account(namespace, name)
        token = self.service_account_token(namespace, name, expiration_seconds=expiration_seconds)
        return write_kubeconfig(
            path or self.directory / f"sa-{namespace}-{name}.kubeconfig",
            server=self.server,
            ca_cert=self.ca_cert,
            token=token,
            user=f"system:serviceaccount:{namespace}:{name}",
            namespace=namespace,
        )

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        """Start the processes and wait until the API server is ready."""
        if self._processes:
            raise ControlPlaneError("This control plane is already started.")
        if self._binaries is None:
            self._binaries = binaries_module.ensure_binaries(log=self._build_log or sys.stderr)
        self._directory = self._prepare_directory()
        started = time.monotonic()
        try:
            self._pki = write_pki(self.directory / "pki", service_ip=SERVICE_IP)
            self._admin_token = secrets.token_urlsafe(32)
            for attempt in range(1, _START_ATTEMPTS + 1):
                self._endpoints = _Endpoints.allocate()
                try:
                    self._start_processes()
                    break
                except _PortTakenError:
                    self._stop_processes()
                    shutil.rmtree(self.directory / "etcd", ignore_errors=True)
                    if attempt == _START_ATTEMPTS:
                        raise
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def pids(self) -> list[int]:
        """PIDs of the processes running now (etcd, API server, controller manager)."""
        return [pid for process in self._processes if process.running() and (pid := process.pid) is not None]

    def kill(self) -> None:
        """SIGKILL every process at once, keeping the directory and etcd's data (a lost region)."""
        for process in self._processes:
            process.kill()
        self._processes.clear()

    def restart(self) -> ControlPlane:
        """Start again after `kill()`: same ports, certificates, tokens and etcd data dir.

        Raises `ControlPlaneError` if a port was taken meanwhile (clients could not follow a move).
        """
        if self._processes:
            raise ControlPlaneError("This control plane is running; kill() it before restart().")
        self._require(self._endpoints)
        started = time.monotonic()
        try:
            self._start_processes()
        except BaseException:
            self._stop_processes()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def check_running(self) -> None:
        """Raise `ControlPlaneError` if any of the processes has exited."""
        for process in self._processes:
            try:
                process.check_running()
            except ProcessExitedError as error:
                raise ControlPlaneError(str(error)) from error

    def stop(self) -> None:
        """Stop exactly the processes this control plane started, newest first."""
        self._stop_processes()
        if self._given_directory is None and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)

    # --- internals ---------------------------------------------------------------------

    def _prepare_directory(self) -> Path:
        if self._given_directory is None:
            return Path(tempfile.mkdtemp(prefix="pixelmesh-cp-"))
        directory = self._given_directory.resolve()
        directory.mkdir(parents=True, exist_ok=True)
        if any(directory.iterdir()):
            # Old etcd data and certificates would not match the new ones.
            raise ControlPlaneError(f"{directory} is not empty; give a new or empty directory.")
        return directory

    def _start_processes(self) -> None:
        binaries = self._require(self._binaries)
        pki = self._require(self._pki)
        endpoints = self._require(self._endpoints)
        etcd_port, peer_port, apiserver_port = endpoints.etcd, endpoints.etcd_peer, endpoints.apiserver
        self._server = f"https://127.0.0.1:{apiserver_port}"
        controller_manager_token = endpoints.controller_manager_token
        tokens = self.directory / "tokens.csv"
        tokens.touch(mode=0o600)
        tokens.write_text(
            f'{self._admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n'
            f"{controller_manager_token},{CONTROLLER_MANAGER_USER},{CONTROLLER_MANAGER_USER}\n"
        )
        write_kubeconfig(
            self.kubeconfig,
            server=self.server,
            ca_cert=pki.ca_cert,
            token=self._admin_token,
            user=ADMIN_USER,
        )
        logs = self.directory / "logs"
        logs.mkdir(exist_ok=True)

        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        etcd = ManagedProcess(
            "etcd",
            [
                str(binaries.etcd),
                "--name=pixelmesh-test",
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=pixelmesh-test={peer_url}",
                # Durability across power loss is not a property tests need.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            log_path=logs / "etcd.log",
        )
        apiserver = ManagedProcess(
            "kube-apiserver",
            [
                str(binaries.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # The `kubernetes` Service's endpoints would be the advertise address,
                # and a loopback one is refused as an endpoint; no Pod runs here to use it.
                "--endpoint-reconciler-type=none",
                f"--secure-port={apiserver_port}",
                f"--cert-dir={self.directory / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki.service_account_public_key}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
            ],
            log_path=logs / "kube-apiserver.log",
        )
        # etcd and the API server start together: the API server retries etcd until
        # it answers, so waiting in between would only add latency. The controller
        # manager waits for readiness: it exits if the bootstrap RBAC roles that let it
        # read its authentication config do not exist yet.
        self._launch(etcd)
        self._launch(apiserver)
        deadline = time.monotonic() + self._start_timeout
        self._wait(etcd, lambda: _http_ok(f"{etcd_url}/health"), deadline)
        self._wait(apiserver, self._apiserver_ready, deadline)
        if self._with_controller_manager:
            controller_manager = self._controller_manager(binaries, pki, controller_manager_token, logs)
            self._launch(controller_manager)
            self._wait(controller_manager, self._controller_manager_healthy, deadline)

    def _controller_manager(
        self, binaries: binaries_module.Binaries, pki: ClusterPki, token: str, logs: Path
    ) -> ManagedProcess:
        kubeconfig = write_kubeconfig(
            self.directory / "controller-manager.kubeconfig",
            server=self.server,
            ca_cert=pki.ca_cert,
            token=token,
            user=CONTROLLER_MANAGER_USER,
        )
        return ManagedProcess(
            "kube-controller-manager",
            [
                str(binaries.kube_controller_manager),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self._require(self._endpoints).controller_manager}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                # One instance per cluster: nothing to elect, and electing costs seconds.
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki.service_account_key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--profiling=false",
            ],
            log_path=logs / "kube-controller-manager.log",
        )

    def _launch(self, process: ManagedProcess) -> None:
        process.start()
        self._processes.append(process)

    def _wait(self, process: ManagedProcess, ready: _Probe, deadline: float) -> None:
        while True:
            try:
                process.check_running()
            except ProcessExitedError as error:
                if "address already in use" in process.tail(200):
                    raise _PortTakenError(str(error)) from error
                raise ControlPlaneError(str(error)) from error
            if ready():
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{process.name} was not ready after {self._start_timeout:.0f} s. "
                    f"End of {process.log_path}:\n{process.tail()}"
                )
            time.sleep(_POLL_INTERVAL)

    def _apiserver_ready(self) -> bool:
        try:
            return self.api().request_raw("GET", "/readyz") == "ok"
        except (ApiError, OSError):
            return False

    def _controller_manager_healthy(self) -> bool:
        url = f"https://127.0.0.1:{self._require(self._endpoints).controller_manager}/healthz"
        return _http_ok(url, ca_cert=self.ca_cert)

    def _stop_processes(self) -> None:
        while self._processes:
            self._processes.pop().stop()

    @staticmethod
    def _require(value: _T | None) -> _T:
        if value is None or value == "":
            raise ControlPlaneError("The control plane is not started.")
        return value


def _http_ok(url: str, *, ca_cert: Path | None = None) -> bool:
    context = ssl.create_default_context(cafile=str(ca_cert)) if ca_cert else None
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as reply:
            return bool(reply.status == HTTPStatus.OK)
    except (urllib.error.URLError, OSError):
        return False
