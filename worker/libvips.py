"""libvips process settings for a worker.

A worker is a long-running process that decodes hostile input on many threads. `configure_libvips`
sets the global knobs once at start-up: the operation cache off (it keys on the source buffers,
so it only grows and never hits across jobs), untrusted loaders blocked (ImageMagick, PDF, FITS,
MAT, ... — whatever an allow-list check would miss), and an optional thread-pool size per image.
libvips 8.18 counts its SVG loader as untrusted too; it is unblocked again because SVG is an
explicit, per-pipeline opt-in (`input.formats`), refused by the allow-list everywhere else.
"""

from __future__ import annotations

import logging
import threading

import pyvips

log = logging.getLogger(__name__)

_configure_lock = threading.Lock()
_reported: list[int] = []
"""The threads per image last logged (empty before the first call)."""


def configure_libvips(*, concurrency: int | None = None) -> None:
    """Apply the worker's global libvips settings. Idempotent; call once at start-up.

    `concurrency` bounds libvips' own thread pool per image evaluation (libvips' default is the
    number of cores). A worker that runs several jobs at once usually wants a small value here.
    """
    with _configure_lock:
        pyvips.cache_set_max(0)
        pyvips.cache_set_max_mem(0)
        pyvips.cache_set_max_files(0)
        pyvips.block_untrusted_set(state=True)
        pyvips.operation_block_set("VipsForeignLoadSvg", state=False)
        if concurrency is not None:
            pyvips.concurrency_set(concurrency)
        threads = pyvips.concurrency_get()
        if _reported != [threads]:
            log.info(
                "Configured libvips %s: operation cache off, untrusted loaders blocked, "
                "%d threads per image.",
                ".".join(str(pyvips.version(i)) for i in range(3)),
                threads,
            )
            _reported[:] = [threads]
