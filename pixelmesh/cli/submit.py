"""`pixelmesh submit`: many images through a pipeline, with a progress bar and a summary.

Exit codes: 0 when every image was processed, 1 when any failed, 2 when nothing could be
submitted (no files, no gateway).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pixelmesh.cli.connection import ConnectionSettingsError, resolve
from pixelmesh.cli.summary import Summary, render, summarise
from pixelmesh.client.aio import Client, SubmitOutcome

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".avif", ".heic", ".heif", ".gif", ".tif", ".tiff"}
)


def collect_files(paths: Iterable[Path]) -> list[Path]:
    """Files named directly, and the image files found under named directories (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            )
        else:
            found.append(path)
    return found


async def submit_all(
    client: Client,
    pipeline: str,
    files: Sequence[Path],
    *,
    concurrency: int,
    wait: float,
    out_dir: Path | None,
    variants: Sequence[str] | None,
    progress: Progress | None,
) -> tuple[list[SubmitOutcome], float]:
    """Every file's outcome, and the wall time it took."""
    task = progress.add_task("Processing", total=len(files), failed=0) if progress is not None else None
    outcomes: list[SubmitOutcome] = []
    failed = 0
    started = time.monotonic()
    async for outcome in client.submit_many(
        pipeline, files, concurrency=concurrency, wait=wait, out_dir=out_dir, variants=variants
    ):
        outcomes.append(outcome)
        failed += not outcome.succeeded
        if progress is not None and task is not None:
            progress.update(task, advance=1, failed=failed)
    return outcomes, time.monotonic() - started


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=args.json)
    files = collect_files(args.files)
    missing = [path for path in files if not path.is_file()]
    if missing:
        console.print(f"[red]Not a file:[/red] {', '.join(map(str, missing[:5]))}")
        return 2
    if not files:
        console.print("[red]No images to submit.[/red]")
        return 2
    try:
        connection = resolve(args)
    except ConnectionSettingsError as error:
        console.print(f"[red]{error}[/red]")
        return 2
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    summary = asyncio.run(_run(args, files, connection.gateway_url, connection.api_key, console))
    if args.json:
        sys.stdout.write(json.dumps(summary.to_json(), indent=2) + "\n")
    else:
        console.print(render(summary))
    return 0 if summary.failed == 0 else 1


async def _run(
    args: argparse.Namespace, files: Sequence[Path], url: str, api_key: str | None, console: Console
) -> Summary:
    concurrency = max(1, args.concurrency)
    progress = None if args.no_progress else progress_bar(console)
    async with Client(url, api_key=api_key, max_connections=concurrency * 2) as client:
        with progress or contextlib.nullcontext():
            outcomes, seconds = await submit_all(
                client,
                args.pipeline,
                files,
                concurrency=concurrency,
                wait=args.wait,
                out_dir=args.out,
                variants=args.variants,
                progress=progress,
            )
    return summarise(outcomes, seconds)


def progress_bar(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
