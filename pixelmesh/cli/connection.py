"""Finding the gateway and the keys: flags, then environment, then the running local stack's note."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from pixelmesh.local.state import StackState, default_data_dir


class ConnectionSettingsError(RuntimeError):
    """No gateway to talk to: nothing given and no local stack running."""


@dataclass(frozen=True, slots=True)
class Connection:
    gateway_url: str
    api_key: str | None
    signing_key: str | None


def resolve(args: argparse.Namespace) -> Connection:
    data_dir: Path = args.data or default_data_dir()
    state = StackState.load(data_dir)
    url = args.gateway or os.environ.get("PIXELMESH_GATEWAY_URL") or (state.gateway_url if state else None)
    if not url:
        raise ConnectionSettingsError(
            "no gateway: pass --gateway URL, set PIXELMESH_GATEWAY_URL, "
            f"or start `pixelmesh up` (looked in {data_dir})"
        )
    api_key = args.api_key or os.environ.get("PIXELMESH_API_KEY") or (state.api_key if state else None)
    signing_key = (
        getattr(args, "key", None)
        or os.environ.get("PIXELMESH_SIGNING_KEY")
        or (state.signing_key if state else None)
    )
    return Connection(gateway_url=url, api_key=api_key, signing_key=signing_key)
