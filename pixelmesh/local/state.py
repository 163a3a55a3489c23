"""Where the local stack keeps its data, and the note it leaves for other commands.

`pixelmesh up` writes `stack.json` into its data directory while it runs (gateway URL, API key,
signing key); `pixelmesh submit`, `status` and `sign-url` read it when no URL or key is given, so on a
laptop they work with no flags at all. The note is removed when the stack stops.

Secrets: the API key and the signing key are kept in `secrets.json` (mode 0600) so a restart with the
same data directory keeps URLs and scripts working. `PIXELMESH_API_KEY` and
`PIXELMESH_SIGNING_KEY` override them.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic.alias_generators import to_camel, to_snake

STATE_FILE = "stack.json"
SECRETS_FILE = "secrets.json"


def default_data_dir() -> Path:
    """`$PIXELMESH_DATA_DIR`, else `$XDG_DATA_HOME/pixelmesh`, else `~/.local/share/pixelmesh`."""
    explicit = os.environ.get("PIXELMESH_DATA_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "pixelmesh"


@dataclass(frozen=True, slots=True)
class StackState:
    """What a running local stack tells other commands."""

    gateway_url: str
    api_key: str
    signing_key: str
    nats_url: str
    data_dir: str
    pid: int

    def save(self, data_dir: Path) -> None:
        _write_private(data_dir / STATE_FILE, {to_camel(name): value for name, value in asdict(self).items()})

    @classmethod
    def load(cls, data_dir: Path) -> StackState | None:
        """The running stack's note, or None when no stack is running from `data_dir`."""
        try:
            raw = json.loads((data_dir / STATE_FILE).read_text())
            state = cls(**{to_snake(name): value for name, value in raw.items()})
        except (OSError, ValueError, TypeError, AttributeError):
            return None
        if not _alive(state.pid):
            return None
        return state

    @staticmethod
    def remove(data_dir: Path) -> None:
        (data_dir / STATE_FILE).unlink(missing_ok=True)


def _write_private(path: Path, document: Mapping[str, object]) -> None:
    """Write `document` as JSON readable by this user only: it holds keys."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as stream:
        json.dump(document, stream, indent=2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class StackSecrets:
    api_key: str
    signing_key: str

    @classmethod
    def load_or_create(cls, data_dir: Path) -> StackSecrets:
        """The environment's keys, else the ones kept in the data dir, else new ones (then kept)."""
        path = data_dir / SECRETS_FILE
        kept: dict[str, str] = {}
        try:
            kept = json.loads(path.read_text())
        except (OSError, ValueError):
            kept = {}
        stored = {
            "apiKey": kept.get("apiKey") or "pm_" + secrets.token_urlsafe(24),
            "signingKey": kept.get("signingKey") or secrets.token_urlsafe(32),
        }
        if stored != kept:
            data_dir.mkdir(parents=True, exist_ok=True)
            _write_private(path, stored)
        # The environment wins but is never written down: it is the operator's secret, not ours.
        return cls(
            api_key=os.environ.get("PIXELMESH_API_KEY") or stored["apiKey"],
            signing_key=os.environ.get("PIXELMESH_SIGNING_KEY") or stored["signingKey"],
        )
