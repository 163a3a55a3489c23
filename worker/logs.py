"""Structured logs: one JSON object per line, carrying the job id and the worker's identity.

Log calls pass job-scoped fields with `extra={"job_id": ...}`; the formatter copies every such
field (anything not a standard `LogRecord` attribute) into the object, next to the time, level,
logger, message, worker, pipeline and region. Log shippers index `job_id`, so one job's story across
attempts and workers is one query.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """Formats records as JSON lines with the process's static fields added."""

    def __init__(self, static: dict[str, Any]) -> None:
        super().__init__()
        self._static = static

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **self._static,
        }
        entry.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_") and value is not None
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(*, level: str, fmt: str, static: dict[str, Any]) -> None:
    """Send the process's logs to stderr, as JSON lines or as text."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(static))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # nats-py logs every reconnect attempt as an error with a traceback; our callbacks say it once.
    logging.getLogger("nats").setLevel(logging.CRITICAL)
    # libvips reports every operation at INFO through pyvips.
    logging.getLogger("pyvips").setLevel(logging.WARNING)
