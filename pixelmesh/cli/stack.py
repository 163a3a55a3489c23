"""`pixelmesh up` and `pixelmesh demo`: the local stack from a terminal.

The console shows what a person needs (where things are, the key, progress, the summary);
everything else (reconciler passes, worker starts) goes to `stack.log` in the data directory, and
each worker logs to its own file under `workers/`. Ctrl-C (or SIGTERM) stops the stack cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import shutil
import signal
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pixelmesh.cli.submit import progress_bar, submit_all
from pixelmesh.cli.summary import Summary, render, summarise
from pixelmesh.client.aio import Client
from pixelmesh.local.samples import write_samples
from pixelmesh.local.stack import LocalStack, StackOptions
from pixelmesh.local.state import default_data_dir

READY_SECONDS = 120.0
DEFAULT_PORT = 8080


def configure_logging(data_dir: Path) -> None:
    """Everything to `stack.log`; warnings and worse to the console too."""
    data_dir.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(data_dir / "stack.log")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_console = logging.StreamHandler()
    to_console.setLevel(logging.WARNING)
    to_console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [to_file, to_console]
    root.setLevel(logging.INFO)
    logging.getLogger("pyvips").setLevel(logging.WARNING)


def banner(stack: LocalStack) -> Table:
    assert stack.gateway is not None
    assert stack.secrets is not None
    table = Table(title="PixelMesh is running", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Gateway", f"{stack.gateway.url}  (API description: /openapi.json)")
    table.add_row("Metrics", f"{stack.gateway.url}/metrics")
    for pipeline, urls in stack.worker_metrics().items():
        table.add_row("", f"{', '.join(urls)}  (workers of {pipeline})")
    table.add_row("NATS", stack.nats_url)
    table.add_row("Data", str(stack.data_dir))
    table.add_row("API key", stack.secrets.api_key)
    pipelines = ", ".join(f"{ref} ({phase})" for ref, phase in stack.last_pass.pipelines.items())
    table.add_row("Pipelines", pipelines or "none found in the config directory")
    return table


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


def stack_options(args: argparse.Namespace, data_dir: Path, default_port: int) -> StackOptions:
    return StackOptions(
        config_dir=args.config or Path("examples"),
        data_dir=data_dir,
        gateway_port=default_port if args.port is None else args.port,
        workers=args.workers,
    )


def check_config(console: Console, config_dir: Path) -> bool:
    if not config_dir.exists():
        console.print(
            f"[red]No config directory {config_dir}: pass --config DIR with ImagePipeline YAML files.[/red]"
        )
        return False
    return True


def port_in_use(error: OSError) -> bool:
    return error.errno == errno.EADDRINUSE


async def run_up(args: argparse.Namespace, console: Console) -> int:
    options = stack_options(args, args.data or default_data_dir(), DEFAULT_PORT)
    stop = stop_on_signals()
    async with LocalStack(options) as stack:
        console.print(banner(stack))
        for problem in stack.last_pass.problems:
            console.print(f"[yellow]{problem}[/yellow]")
        console.print(
            "Try: [bold]pixelmesh submit --pipeline NS/NAME photo.jpg --out out/[/bold]"
            "   Ctrl-C stops everything."
        )
        await stop.wait()
        console.print("Stopping: gateway, workers, NATS ...")
    console.print("Stopped.")
    return 0


async def run_demo(args: argparse.Namespace, console: Console, data_dir: Path) -> int:
    samples = write_samples(data_dir / "samples", args.images)
    console.print(f"Made {len(samples)} sample photos in {data_dir / 'samples'}.")
    options = stack_options(args, data_dir, 0)
    stop = stop_on_signals()
    summaries: list[tuple[str, Summary]] = []
    async with LocalStack(options) as stack:
        with console.status("Starting the workers ..."):
            ready = await stack.wait_ready(READY_SECONDS)
        console.print(banner(stack))
        if not ready:
            console.print(
                f"[red]The workers were not ready within {READY_SECONDS:.0f}s; see {data_dir}.[/red]"
            )
            return 1
        assert stack.gateway is not None
        assert stack.secrets is not None
        async with Client(stack.gateway.url, api_key=stack.secrets.api_key) as client:
            for entry in await stack.catalog.entries():
                out_dir = args.out / f"{entry.ref.namespace}-{entry.ref.name}"
                out_dir.mkdir(parents=True, exist_ok=True)
                console.print(
                    f"Submitting {len(samples)} images to pipeline [bold]{entry.ref}[/bold] -> {out_dir}"
                )
                with progress_bar(console) as progress:
                    outcomes, seconds = await submit_all(
                        client,
                        str(entry.ref),
                        samples,
                        concurrency=4,
                        wait=120.0,
                        out_dir=out_dir,
                        variants=None,
                        progress=progress,
                    )
                summary = summarise(outcomes, seconds)
                summaries.append((str(entry.ref), summary))
                console.print(render(summary))
        console.print(f"Outputs are in [bold]{args.out}/[/bold].")
        if args.keep_running:
            console.print("The stack keeps running; Ctrl-C stops it.")
            await stop.wait()
        console.print("Stopping: gateway, workers, NATS ...")
    console.print("Stopped.")
    if not summaries:
        console.print("[red]No pipeline ran: the config directory holds no valid ImagePipeline.[/red]")
        return 1
    return 0 if all(summary.failed == 0 for _, summary in summaries) else 1


def run(args: argparse.Namespace) -> int:
    console = Console()
    config_dir: Path = args.config or Path("examples")
    if not check_config(console, config_dir):
        return 2
    if args.command == "up":
        configure_logging(args.data or default_data_dir())
        runner = run_up(args, console)
        temporary = None
    else:
        temporary = None if args.data else Path(tempfile.mkdtemp(prefix="pixelmesh-demo-"))
        data_dir = args.data or temporary
        assert data_dir is not None
        configure_logging(data_dir)
        runner = run_demo(args, console, data_dir)
    try:
        return asyncio.run(runner)
    except OSError as error:
        if port_in_use(error):
            console.print(
                f"[red]The gateway port is taken ({error}); pass --port N, or --port 0 for any.[/red]"
            )
            return 2
        raise
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(temporary)
