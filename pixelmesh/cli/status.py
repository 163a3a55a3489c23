"""`pixelmesh status JOB`: a job's state, its outputs and where to download them."""

from __future__ import annotations

import argparse
import asyncio
import sys

from rich.console import Console
from rich.table import Table

from pixelmesh.api.http import JobState, JobView
from pixelmesh.cli.connection import ConnectionSettingsError, resolve
from pixelmesh.client.aio import Client
from pixelmesh.client.errors import GatewayError, ProblemError


def render(view: JobView, gateway_url: str) -> Table:
    colour = {JobState.SUCCEEDED: "green", JobState.FAILED: "red", JobState.PENDING: "yellow"}[view.state]
    table = Table(title=f"Job {view.job_id}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Pipeline", str(view.pipeline))
    table.add_row("State", f"[{colour}]{view.state.value}[/{colour}]")
    table.add_row("Region", view.region)
    table.add_row("Source", view.source_key)
    if view.error is not None:
        table.add_row("Reason", f"{view.error.code.value}: {view.error.message}")
    base = gateway_url.rstrip("/")
    for link in view.outputs:
        described = f"{link.width}x{link.height} {link.format.value}, {link.size} bytes"
        table.add_row(f"Output {link.variant}", f"{described}\n{base}{link.href}")
    return table


def run(args: argparse.Namespace) -> int:
    console = Console()
    try:
        connection = resolve(args)
    except ConnectionSettingsError as error:
        console.print(f"[red]{error}[/red]")
        return 2

    async def fetch() -> JobView:
        async with Client(connection.gateway_url, api_key=connection.api_key) as client:
            return await client.status(args.job, wait=args.wait or None)

    try:
        view = asyncio.run(fetch())
    except ProblemError as error:
        console.print(f"[red]{error.problem.title}:[/red] {error.problem.detail}")
        return 1
    except GatewayError as error:
        console.print(f"[red]{error}[/red]")
        return 2
    if args.json:
        sys.stdout.write(view.model_dump_json(by_alias=True, exclude_none=True, indent=2) + "\n")
    else:
        console.print(render(view, connection.gateway_url))
    return 1 if view.state is JobState.FAILED else 0
