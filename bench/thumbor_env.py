"""thumbor for the bench: its own virtualenv, its config, and its server processes.

Problem: thumbor pins its own dependencies (tornado, Pillow, ...) and must not share the project's
environment. Approach: a venv under the bench cache (`thumbor-venv`), created on first use with
`pip install thumbor==7.8.0 Pillow==12.3.0` from PyPI (about 15 s) and reused while its marker names
the same pins. Servers listen on 127.0.0.1 on free ports, read images with the file loader from the
bench image directory, store nothing (no source storage, no result storage: every request does the
whole work), and write baseline JPEGs with optimised Huffman tables like the other contenders.

Caveat: a free port is probed, then handed to thumbor; another process could take it in between.
Startup retries once on a fresh port if the server dies before answering.
"""

from __future__ import annotations

import http.client
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pixelmesh.natsserver import free_port

logger = logging.getLogger(__name__)

THUMBOR_VERSION = "7.8.0"
THUMBOR_PILLOW_VERSION = "12.3.0"
REQUIREMENTS = (f"thumbor=={THUMBOR_VERSION}", f"Pillow=={THUMBOR_PILLOW_VERSION}")
LOOPBACK = "127.0.0.1"


def render_config(image_root: Path, *, quality: int = 80, avif_speed: int = 5) -> str:
    """thumbor's configuration file (Python assignments) for the bench."""
    settings: dict[str, object] = {
        "LOADER": "thumbor.loaders.file_loader",
        "FILE_LOADER_ROOT_PATH": str(image_root),
        "STORAGE": "thumbor.storages.no_storage",
        "RESULT_STORAGE": None,
        "QUALITY": quality,
        "PROGRESSIVE_JPEG": False,
        "AVIF_SPEED": avif_speed,
        "AUTO_WEBP": False,
        "AUTO_AVIF": False,
        "RESPECT_ORIENTATION": False,
        "PRESERVE_EXIF_INFO": False,
        "ALLOW_UNSAFE_URL": True,
        "MAX_PIXELS": 75e6,
    }
    return "".join(f"{name} = {value!r}\n" for name, value in settings.items())


def venv_marker_text() -> str:
    return " ".join(REQUIREMENTS) + "\n"


def ensure_thumbor_venv(cache: Path) -> Path:
    """thumbor's venv under `cache`, created or rebuilt when its pins changed; its `bin/thumbor`."""
    venv = cache / "thumbor-venv"
    marker = venv / ".pixelmesh-bench"
    thumbor = venv / "bin" / "thumbor"
    if marker.exists() and marker.read_text() == venv_marker_text() and thumbor.exists():
        return thumbor
    if venv.exists():
        shutil.rmtree(venv)
    logger.warning("Creating thumbor's venv at %s (pip install %s).", venv, " ".join(REQUIREMENTS))
    # Run from the cache, not the repository: its `operator/` folder would shadow the standard
    # library's `operator` for a `python -m` started there.
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, cwd=cache)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *REQUIREMENTS], check=True, cwd=cache)
    marker.write_text(venv_marker_text())
    return thumbor


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=1.0)
    try:
        connection.request("GET", "/healthcheck")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@dataclass
class ThumborServer:
    """One thumbor process on a free loopback port."""

    thumbor: Path
    config: Path
    startup_timeout: float = 30.0
    port: int = 0
    _process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self._process is not None, "thumbor is not running"
        return self._process.pid

    def start(self) -> None:
        for attempt in range(2):
            self.port = free_port()
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - kept for the error message
            self._process = subprocess.Popen(
                [
                    str(self.thumbor),
                    f"--ip={LOOPBACK}",
                    f"--port={self.port}",
                    f"--conf={self.config}",
                    "-l",
                    "error",
                ],
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.config.parent,
            )
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline and self._process.poll() is None:
                if _healthy(self.port):
                    return
                time.sleep(0.05)
            log = self._log_text()
            self.stop()
            if attempt == 1:
                raise RuntimeError(f"thumbor did not start on port {self.port}:\n{log}")
            logger.warning("thumbor did not start on port %d; retrying on another port.", self.port)

    def _log_text(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def write_config(directory: Path, image_root: Path, *, avif_speed: int) -> Path:
    """Write the bench's thumbor.conf into `directory`; its path."""
    path = directory / "thumbor.conf"
    path.write_text(render_config(image_root, avif_speed=avif_speed))
    return path
