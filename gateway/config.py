"""The gateway's settings: one frozen object with defaults, `from_env()` and validation.

Each setting is read from `PIXELMESH_GATEWAY_<NAME>` (the field name upper-cased). Lists are
comma-separated; `REGIONS` is `name=url[,url...]` entries separated by `;`, e.g.
`eu-west=nats://a:4222,nats://b:4222;us-east=nats://c:4222`. `PIPELINES` is a list of YAML files or
directories separated by the OS path separator (`:`).

Secrets (API keys, signing keys) come from the environment like everything else; in a cluster they
are mounted from a Secret. With no API keys the submit endpoints are open: fine on a laptop, and
logged loudly at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "PIXELMESH_GATEWAY_"
MiB = 1024 * 1024


def parse_regions(text: str) -> dict[str, tuple[str, ...]]:
    """`eu=nats://a:4222,nats://b:4222;us=nats://c:4222` -> {"eu": (...), "us": (...)}."""
    regions: dict[str, tuple[str, ...]] = {}
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        name, sep, urls = entry.partition("=")
        servers = tuple(url.strip() for url in urls.split(",") if url.strip())
        if not sep or not name.strip() or not servers:
            raise ValueError(f"a region entry is `name=url[,url...]`, got {entry!r}")
        regions[name.strip()] = servers
    return regions


def _csv(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Everything the gateway process needs to know."""

    host: str = "127.0.0.1"
    port: int = 8080
    """0 picks a free port (tests, the local stack)."""
    regions: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"local": ("nats://127.0.0.1:4222",)}
    )
    """NATS servers of each region the gateway can publish to."""
    home_region: str = ""
    """The region this gateway serves first (default: the first of `regions`)."""
    pipelines: tuple[Path, ...] = (Path("examples"),)
    """ImagePipeline YAML files or directories (the catalog of pipelines the gateway accepts)."""
    api_keys: tuple[str, ...] = ()
    """Keys accepted on the job endpoints (`Authorization: Bearer` or `X-API-Key`). Empty: open."""
    signing_keys: tuple[str, ...] = ()
    """Keys for signed image URLs; the first signs, all verify (rotation). Empty: signed URLs off."""
    max_upload_bytes: int = 64 * MiB
    """Ceiling on any upload; a pipeline's `input.maxBytes` lowers it for that pipeline."""
    max_wait_seconds: float = 60.0
    """Longest `?wait=` a request may ask for."""
    image_wait_seconds: float = 30.0
    """How long a signed URL request waits for a job that renders a missing output."""
    backlog_limit: int = 100_000
    """Pending + unacknowledged jobs of a pipeline in a region beyond which submits get 429."""
    backlog_refresh_seconds: float = 1.5
    """How stale the cached backlog may be (it is refreshed in the background, never per request)."""
    routing_refresh_seconds: float = 2.0
    """How stale the cached routing table may be."""
    retry_after_seconds: int = 2
    """`Retry-After` on 429 and 503 answers."""
    catalog_refresh_seconds: float = 2.0
    """How often the pipeline files are checked for changes."""
    lingering_seconds: float = 1.0
    """After refusing a body, how long to drain what the client still sends before closing."""
    log_level: str = "INFO"
    log_format: str = "json"
    """`json` (one object per line) or `text`."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.regions:
            problems.append("at least one region is needed")
        if self.home_region and self.home_region not in self.regions:
            problems.append(f"home region {self.home_region!r} is not one of {sorted(self.regions)}")
        if not 0 <= self.port <= 65535:
            problems.append(f"port {self.port} is out of range")
        if self.max_upload_bytes < 1:
            problems.append("maxUploadBytes must be positive")
        if self.max_wait_seconds < 0 or self.image_wait_seconds < 0:
            problems.append("wait limits may not be negative")
        if self.backlog_limit < 1:
            problems.append("backlogLimit must be positive")
        if min(self.backlog_refresh_seconds, self.routing_refresh_seconds, self.catalog_refresh_seconds) <= 0:
            problems.append("refresh intervals must be positive")
        if any(len(key) < 16 for key in self.signing_keys):
            problems.append("signing keys must be at least 16 characters")
        if self.log_format not in ("json", "text"):
            problems.append("log_format must be json or text")
        if problems:
            raise ValueError("invalid gateway configuration: " + "; ".join(problems))

    @property
    def home(self) -> str:
        return self.home_region or next(iter(self.regions))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> GatewayConfig:
        """Defaults, then `PIXELMESH_GATEWAY_*` variables, then `overrides`."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in fields(cls):
            raw = env.get(ENV_PREFIX + setting.name.upper())
            if raw is None:
                continue
            values[setting.name] = _parse(setting.name, str(setting.type), raw)
        values.update(overrides)
        return cls(**values)


PARSERS: dict[str, Callable[[str], Any]] = {
    "regions": parse_regions,
    "pipelines": lambda text: tuple(Path(p) for p in text.split(os.pathsep) if p),
    "api_keys": _csv,
    "signing_keys": _csv,
}
"""Settings that are not a plain `str`, `int` or `float`; those are parsed by their declared type."""
SCALARS: dict[str, Callable[[str], Any]] = {"str": str, "int": int, "float": float}


def _parse(name: str, type_name: str, raw: str) -> Any:
    parser = PARSERS.get(name) or SCALARS[type_name]
    try:
        return parser(raw)
    except ValueError as error:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r}: {error}") from error
