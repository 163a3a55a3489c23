"""One child process of a control plane: started, watched and stopped by its own handle.

A control plane stops exactly what it started: each process is stopped through the
`Popen` handle that started it (SIGTERM, then SIGKILL after a grace period), never
looked up by name, so other control planes, other test sessions and a developer's
own cluster on the same machine are left alone.

Each child runs in a session of its own, so a Ctrl-C in the terminal reaches only
the launcher, which then stops the children in order (controllers, API server,
etcd) instead of all at once. As a safety net for a launcher that is killed
outright, each child asks the kernel (`PR_SET_PDEATHSIG`) to SIGKILL it when the
thread that started it exits: start control planes from a thread that outlives
them (pytest's main thread does). SIGKILL, not SIGTERM, because an API server whose
etcd vanished at the same moment can hang in its graceful shutdown; the data of a
throwaway cluster is not worth that wait.

Output goes to a log file per process; `tail()` shows its end in error messages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class ProcessExitedError(RuntimeError):
    """A control-plane process ended while it was expected to run."""


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: keep it to one system call.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ManagedProcess:
    """A named child process with a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._env = dict(env) if env is not None else None
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl call, see above
            )

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def check_running(self) -> None:
        """Raise `ProcessExitedError` with the log's end if the process has exited."""
        if self._popen is None:
            raise ProcessExitedError(f"{self.name} was never started.")
        code = self._popen.poll()
        if code is not None:
            raise ProcessExitedError(
                f"{self.name} (pid {self._popen.pid}) exited with {code}. "
                f"End of {self.log_path}:\n{self.tail()}"
            )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to `timeout` seconds, then SIGKILL. Safe to call twice."""
        if self._popen is None:
            return
        if self._popen.poll() is None:
            self._popen.terminate()
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()

    def kill(self) -> None:
        """SIGKILL at once and reap (a crash, not a shutdown). Safe to call twice."""
        if self._popen is not None and self._popen.poll() is None:
            self._popen.kill()
            self._popen.wait()

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
