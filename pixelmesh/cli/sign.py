"""`pixelmesh sign-url`: a signed URL that renders a variant of a stored source on request."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import time
from pathlib import Path

from rich.console import Console

from pixelmesh.cli.connection import ConnectionSettingsError, resolve
from pixelmesh.client.aio import Client, parse_pipeline
from pixelmesh.client.errors import GatewayError
from pixelmesh.gateway.signing import SOURCE_KEY, ImageAddress, signed_path


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        connection = resolve(args)
        ref = parse_pipeline(args.pipeline)
    except (ConnectionSettingsError, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        return 2
    if not connection.signing_key:
        console.print(
            "[red]No signing key: pass --key, set PIXELMESH_SIGNING_KEY, or start `pixelmesh up`.[/red]"
        )
        return 2
    source: str = args.source
    if SOURCE_KEY.fullmatch(source) is None:
        path = Path(source)
        if not path.is_file():
            console.print(f"[red]{source} is neither a sha256 nor a file.[/red]")
            return 2
        data = path.read_bytes()
        source = hashlib.sha256(data).hexdigest()
        if args.upload:

            async def upload() -> None:
                async with Client(connection.gateway_url, api_key=connection.api_key) as client:
                    await client.store_source(ref, data)

            try:
                asyncio.run(upload())
            except GatewayError as error:
                console.print(f"[red]Upload failed: {error}[/red]")
                return 1
    expires = int(time.time()) + args.expires_in if args.expires_in else None
    address = ImageAddress(ref.namespace, ref.name, args.variant, source, expires)
    sys.stdout.write(
        connection.gateway_url.rstrip("/") + signed_path(connection.signing_key.encode(), address) + "\n"
    )
    return 0
