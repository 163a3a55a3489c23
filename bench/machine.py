"""Facts about the machine and the libvips build that every recorded run carries.

The libvips build is read from pyvips: the library version, the wheel that ships it, the file
suffixes it loads and saves, whether the AVIF/WebP/JPEG savers exist, the SIMD targets its
vector paths (Highway) found on this CPU, and its default thread count.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any


def cpu_model(cpuinfo: str) -> str:
    """The `model name` of /proc/cpuinfo's first processor ('unknown' when absent)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return "unknown"


def mem_total_bytes(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _libvips_path() -> str | None:
    """The shared library pyvips loaded, from this process's memory map."""
    for line in _read("/proc/self/maps").splitlines():
        path = line.split()[-1] if line.split() else ""
        if "libvips" in Path(path).name and ".so" in path:
            return path
    return None


def _simd_targets(library: str | None) -> list[str]:
    """The SIMD targets libvips' vector paths use on this CPU (empty when not reported)."""
    if library is None:
        return []
    try:
        vips = ctypes.CDLL(library)
        vips.vips_vector_get_supported_targets.restype = ctypes.c_int64
        vips.vips_vector_target_name.restype = ctypes.c_char_p
        vips.vips_vector_target_name.argtypes = [ctypes.c_int64]
        vips.vips_vector_isenabled.restype = ctypes.c_int
        if not vips.vips_vector_isenabled():
            return ["disabled"]
        supported = int(vips.vips_vector_get_supported_targets())
    except (OSError, AttributeError):
        return []
    names = []
    for bit in range(63):
        if supported & (1 << bit):
            name = vips.vips_vector_target_name(1 << bit)
            names.append(name.decode() if name else f"bit{bit}")
    return names


def libvips_build() -> dict[str, Any]:
    """The libvips pyvips uses: version, source package, formats, SIMD, threads."""
    import pyvips  # noqa: PLC0415 - the pure helpers above do not need libvips

    library = _libvips_path()
    savers = {
        name: bool(pyvips.type_find("VipsOperation", name))
        for name in ("jpegsave_buffer", "webpsave_buffer", "heifsave_buffer", "jxlsave_buffer", "magicksave")
    }
    return {
        "version": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
        "pyvips": _package_version("pyvips"),
        "pyvips_binary": _package_version("pyvips-binary"),
        "pyvips_api_mode": bool(pyvips.API_mode),
        "library": library,
        "suffixes": sorted(pyvips.get_suffixes()),
        "savers": savers,
        "simd_targets": _simd_targets(library),
        "default_concurrency": pyvips.concurrency_get(),
    }


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, kernel, Python and libvips facts, plus the load average right now."""
    load1, load5, load15 = os.getloadavg()
    return {
        "cpu": cpu_model(_read("/proc/cpuinfo")),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_bytes": mem_total_bytes(_read("/proc/meminfo")),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "libvips": libvips_build(),
        "load_average_at_start": [round(load1, 2), round(load5, 2), round(load15, 2)],
    }
