"""One region's HTTP gateway, run as `python -m pixelmesh.gateway` and stopped by its PID.

Each region of the world has its own gateway: home region that region, all regions known, the
pipelines read from one catalog directory the harness writes. A separate process rather than a
task of the test's loop: thousands of uploads then run beside the test's own work instead of
sharing its interpreter, and the gateway is configured only through its documented environment.

The port is chosen before the start (the process cannot report one it picked); readiness is the
gateway's own `/readyz` naming the home region as connected.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pixelmesh.natsserver import die_with_parent, free_port


class GatewayProcessError(RuntimeError):
    """The gateway process exited or did not become ready."""


@dataclass
class GatewayProcess:
    """`pixelmesh gateway` for `home`, knowing every region in `regions`."""

    home: str
    regions: Mapping[str, Sequence[str]]
    """Region -> NATS URLs."""
    catalog: Path
    work_dir: Path
    api_key: str
    port: int = field(default_factory=free_port)
    refresh_seconds: float = 0.3
    """Routing table, backlog and catalog refresh: short, so a test sees changes quickly."""
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.work_dir / f"gateway-{self.home}.log"

    def environment(self) -> dict[str, str]:
        """The gateway's settings as `PIXELMESH_GATEWAY_*` variables."""
        regions = ";".join(f"{name}={','.join(urls)}" for name, urls in self.regions.items())
        refresh = str(self.refresh_seconds)
        return {
            "PIXELMESH_GATEWAY_HOST": "127.0.0.1",
            "PIXELMESH_GATEWAY_PORT": str(self.port),
            "PIXELMESH_GATEWAY_REGIONS": regions,
            "PIXELMESH_GATEWAY_HOME_REGION": self.home,
            "PIXELMESH_GATEWAY_PIPELINES": str(self.catalog),
            "PIXELMESH_GATEWAY_API_KEYS": self.api_key,
            "PIXELMESH_GATEWAY_ROUTING_REFRESH_SECONDS": refresh,
            "PIXELMESH_GATEWAY_BACKLOG_REFRESH_SECONDS": refresh,
            "PIXELMESH_GATEWAY_CATALOG_REFRESH_SECONDS": refresh,
            "PIXELMESH_GATEWAY_LOG_FORMAT": "text",
            "PIXELMESH_GATEWAY_LOG_LEVEL": "WARNING",
        }

    def spawn(self) -> None:
        """Start the process (quick); `wait_ready()` waits for it."""
        if self.running:
            raise GatewayProcessError(f"the gateway of {self.home} already runs as PID {self.pid}")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "pixelmesh.gateway"],
                env={**os.environ, **self.environment()},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Spawned on the harness's main thread, which outlives it (see `die_with_parent`).
                preexec_fn=die_with_parent,  # noqa: PLW1509
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until `/readyz` says the home region is connected."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise GatewayProcessError(f"the gateway of {self.home} exited:\n{self._log_tail()}")
            if self.home_connected():
                return
            time.sleep(0.05)
        raise GatewayProcessError(
            f"the gateway of {self.home} was not ready within {timeout}s:\n{self._log_tail()}"
        )

    def home_connected(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1.0) as reply:
                body = json.loads(reply.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
        except (OSError, ValueError):
            return False
        return bool(body.get("regions", {}).get(self.home))

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM this PID, SIGKILL it after `grace` seconds."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL this PID at once."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
