"""The operator, run in this process against the hub cluster as it runs in production.

kopf runs in a thread with its own event loop (`pixelmesh.operator.main.run`), authenticated as a
ServiceAccount of the hub holding exactly the operator's RBAC rules; it reaches the members through
the kubeconfig Secrets their RegionPools name. The harness talks to the API servers synchronously
meanwhile. A failure inside the operator is kept and raised by `stop()`, so a test ends with it.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from pixelmesh.operator.settings import OperatorSettings


class HubOperatorError(RuntimeError):
    """The operator did not start, did not stop, or failed while running."""


def _run(
    settings: OperatorSettings, stop: threading.Event, ready: threading.Event, errors: list[BaseException]
) -> None:
    # Imported in the operator's thread: kopf's registries are built where the loop runs.
    from pixelmesh.operator.main import run  # noqa: PLC0415

    try:
        asyncio.run(run(settings, stop_flag=stop, ready_flag=ready))  # type: ignore[arg-type]
    except BaseException as error:  # kept for `stop()`
        errors.append(error)


@dataclass
class HubOperator:
    """One operator in a background thread: `start()`, `stop()`."""

    settings: OperatorSettings
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 30.0) -> None:
        self._thread = threading.Thread(
            target=_run,
            args=(self.settings, self._stop, self._ready, self.errors),
            name="operator",
            daemon=True,
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise HubOperatorError(f"the operator did not become ready within {timeout}s")

    def stop(self, timeout: float = 30.0) -> None:
        """Ask kopf to stop and wait for it; raise what the operator failed with, if anything."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise HubOperatorError(f"the operator did not stop within {timeout}s")
        if self.errors:
            raise HubOperatorError("the operator failed") from self.errors[0]
