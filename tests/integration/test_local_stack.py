"""The local stack: `pixelmesh up` and `pixelmesh demo` as a user runs them, and restarts keeping jobs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pyvips

from pixelmesh.api.http import JobState
from pixelmesh.client import Client
from pixelmesh.local.stack import LocalStack, StackOptions
from tests import imagegen
from tests.fixtures.gateway import PIPELINE_YAML

REPO = Path(__file__).resolve().parents[2]
PIPELINE = "tests/thumbs"


def config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "thumbs.yaml").write_text(PIPELINE_YAML)
    return directory


def children_of(pid: int) -> set[int]:
    """PIDs whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:"))
        if ppid == pid:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = next(
            line.split()[1]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("State:")
        )
    except (OSError, StopIteration):
        return False
    return state != "Z"


def read_json_if_present(path: Path) -> dict[str, object] | None:
    return dict(json.loads(path.read_text())) if path.is_file() else None


async def wait_for_file(path: Path, process: asyncio.subprocess.Process, seconds: float) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.returncode is None, "pixelmesh up exited early"
        found = await asyncio.to_thread(read_json_if_present, path)
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} did not appear within {seconds}s")


@pytest.mark.slow
async def test_up_serves_jobs_prints_where_things_are_and_ctrl_c_stops_every_child(tmp_path: Path):
    data = tmp_path / "data"
    env = {**os.environ, "PIXELMESH_API_KEY": "key-from-env", "COLUMNS": "250"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pixelmesh.cli",
        "up",
        "--config",
        str(config_dir(tmp_path)),
        "--data",
        str(data),
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    try:
        state = await wait_for_file(data / "stack.json", process, 60)
        assert state["apiKey"] == "key-from-env"
        async with Client(str(state["gatewayUrl"]), api_key="key-from-env") as client:
            view = await client.submit(PIPELINE, imagegen.photo_jpeg(120, 90), wait=30)
        assert view.state is JobState.SUCCEEDED
        assert {o.variant for o in view.outputs} == {"small", "any"}
        children = children_of(process.pid)
        assert len(children) >= 2  # nats-server and at least one worker
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    text = output.decode()
    assert process.returncode == 0, text
    assert "PixelMesh is running" in text
    assert str(state["gatewayUrl"]) in text
    assert "key-from-env" in text
    assert str(data) in text
    assert "/metrics" in text
    assert "Stopped." in text
    assert not [pid for pid in children if alive(pid)]
    assert not (data / "stack.json").exists()
    # The environment's key is used, never written down; a generated one is kept for next time.
    assert "key-from-env" not in (data / "secrets.json").read_text()


@pytest.mark.slow
async def test_restarting_with_the_same_data_dir_keeps_accepted_jobs_and_finishes_them(tmp_path: Path):
    config = config_dir(tmp_path)
    data = tmp_path / "data"
    sources = [imagegen.photo_jpeg(100 + i, 80) for i in range(3)]
    without_workers = StackOptions(config_dir=config, data_dir=data, gateway_port=0, workers=0)
    async with LocalStack(without_workers) as stack:
        assert stack.gateway is not None
        assert stack.secrets is not None
        async with Client(stack.gateway.url, api_key=stack.secrets.api_key) as client:
            accepted = [await client.submit(PIPELINE, source) for source in sources]
        api_key = stack.secrets.api_key
    assert all(view.state is JobState.PENDING for view in accepted)

    async with LocalStack(StackOptions(config_dir=config, data_dir=data, gateway_port=0)) as stack:
        assert stack.gateway is not None
        assert stack.secrets is not None
        assert stack.secrets.api_key == api_key
        async with Client(stack.gateway.url, api_key=api_key) as client:
            finished = [await client.wait(view.job_id, 30) for view in accepted]
    assert [view.state for view in finished] == [JobState.SUCCEEDED] * 3
    assert [view.output("small").width for view in finished] == [64] * 3


@pytest.mark.slow
def test_demo_runs_the_examples_end_to_end_and_leaves_outputs(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "pixelmesh.cli", "demo", "--config", str(REPO / "examples"), "--images", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("Summary") >= 2
    assert "Stopped." in result.stdout
    outputs = sorted((tmp_path / "demo-output").rglob("*.*"))
    assert outputs
    for path in outputs:
        image = pyvips.Image.new_from_file(str(path))
        assert max(image.width, image.height) <= 2048
        assert path.suffix in {".jpg", ".webp", ".avif"}
