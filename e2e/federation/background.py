"""Load and watchers on their own event loop in a thread, while the test's thread acts on the world.

A region's processes are started with `PR_SET_PDEATHSIG`, which fires when the *thread* that
spawned them exits: recovering a region from a short-lived worker thread (`asyncio.to_thread`)
would kill it again as soon as that thread ended. So scenarios keep their own thread for the world
(lose, recover, kubectl) and run what must go on meanwhile (submitting jobs, sampling the routing
table) here: `Beside(job, ...)` runs each `job(stop)` until `stop()` sets their event.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType

Job = Callable[[asyncio.Event], Awaitable[object]]


class BesideError(RuntimeError):
    """A background job failed, or did not end when asked."""


class Beside:
    """Runs `jobs` concurrently in one event loop on a thread: `start()`, then `stop()`."""

    def __init__(self, *jobs: Job, name: str = "beside") -> None:
        self._jobs = jobs
        self._name = name
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._running = threading.Event()
        self.errors: list[BaseException] = []

    def __enter__(self) -> Beside:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(check=exc is None)

    def start(self) -> Beside:
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()
        if not self._running.wait(10.0):
            raise BesideError(f"the {self._name} loop did not start")
        return self

    def stop(self, timeout: float = 120.0, *, check: bool = True) -> None:
        """Ask every job to end and wait for them; raise the first failure (if `check`)."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise BesideError(f"the {self._name} jobs did not end within {timeout}s")
        if check and self.errors:
            raise BesideError(f"a {self._name} job failed") from self.errors[0]

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._running.set()
        results = await asyncio.gather(*(job(self._stop) for job in self._jobs), return_exceptions=True)
        self.errors = [r for r in results if isinstance(r, BaseException)]
