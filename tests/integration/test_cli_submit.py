"""`pixelmesh submit`, `status` and `sign-url` as a user runs them: subprocesses against a real gateway."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import pyvips

from tests import imagegen
from tests.fixtures.gateway import GatewayUnderTest


async def pixelmesh(*args: str, seconds: float = 120) -> tuple[int, str, str]:
    """Run the `pixelmesh` command; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pixelmesh.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def connection(gateway: GatewayUnderTest) -> list[str]:
    return ["--gateway", gateway.url, "--api-key", gateway.api_key]


def tiny_images(directory: Path, count: int) -> list[Path]:
    """`count` distinct 8x8 JPEGs (distinct bytes: every one is a new source)."""
    directory.mkdir(parents=True)
    paths = []
    for index in range(count):
        colour = [index % 256, (index // 256) * 40 % 256, 128]
        image = (pyvips.Image.black(8, 8, bands=3) + colour).cast("uchar")
        path = directory / f"img{index:04d}.jpg"
        path.write_bytes(image.jpegsave_buffer(Q=80))
        paths.append(path)
    return paths


@pytest.mark.slow
async def test_a_thousand_submissions_through_the_cli_all_complete_and_are_counted(
    gateway: GatewayUnderTest, gateway_worker, tmp_path: Path
):
    tiny_images(tmp_path / "many", 1000)
    pipeline = f"{gateway.pipeline.namespace}/{gateway.pipeline.name}"
    code, out, err = await pixelmesh(
        "submit",
        "--pipeline",
        pipeline,
        str(tmp_path / "many"),
        "--variant",
        "small",
        "--concurrency",
        "48",
        "--json",
        *connection(gateway),
        seconds=240,
    )
    assert code == 0, err[-2000:]
    summary = json.loads(out)
    assert summary["submitted"] == 1000
    assert summary["done"] == 1000
    assert summary["failed"] == 0
    assert summary["imagesPerSecond"] > 0


async def test_submit_downloads_outputs_prints_the_summary_and_exits_1_when_any_image_failed(
    gateway: GatewayUnderTest, gateway_worker, tmp_path: Path
):
    sources = tmp_path / "mixed"
    sources.mkdir()
    for index in range(3):
        (sources / f"photo{index}.jpg").write_bytes(imagegen.photo_jpeg(160 + index, 120))
    (sources / "bomb.png").write_bytes(imagegen.png_bomb(4000, 4000))
    (sources / "drawing.png").write_bytes(imagegen.svg_image())
    out_dir = tmp_path / "out"
    pipeline = f"{gateway.pipeline.namespace}/{gateway.pipeline.name}"
    code, out, _ = await pixelmesh(
        "submit", "--pipeline", pipeline, str(sources), "--out", str(out_dir), *connection(gateway)
    )
    assert code == 1
    assert "Summary" in out
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in out.splitlines()
        if line.count("│") >= 3
    }
    assert rows["Submitted"] == "5"
    assert rows["Done"] == "3"
    assert rows["Failed"] == "2"
    assert rows["Outputs written"] == "6"
    assert "too_many_pixels" in out
    assert "unsupported_format" in out
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == sorted(f"photo{i}.{v}" for i in range(3) for v in ("any.jpg", "small.webp"))
    small = pyvips.Image.new_from_file(str(out_dir / "photo0.small.webp"))
    assert small.width == 64


async def test_status_shows_a_finished_job_and_sign_url_prints_a_url_that_serves_the_variant(
    gateway: GatewayUnderTest, gateway_worker, tmp_path: Path
):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(imagegen.photo_jpeg(200, 100))
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        response = await http.post(
            f"/v1/pipelines/{gateway.pipeline.namespace}/{gateway.pipeline.name}/jobs?wait=20",
            data=photo.read_bytes(),
        )
        job_id = (await response.json())["jobId"]

    code, out, _ = await pixelmesh("status", job_id, "--json", *connection(gateway))
    assert code == 0
    view = json.loads(out)
    assert view["state"] == "succeeded"
    assert {o["variant"] for o in view["outputs"]} == {"small", "any"}
    code, out, _ = await pixelmesh("status", job_id, *connection(gateway))
    assert code == 0
    assert "succeeded" in out

    code, out, _ = await pixelmesh("status", "0000unknown", *connection(gateway))
    assert code == 1
    assert "no job 0000unknown" in out

    pipeline = f"{gateway.pipeline.namespace}/{gateway.pipeline.name}"
    code, out, err = await pixelmesh(
        "sign-url",
        "--pipeline",
        pipeline,
        "--variant",
        "small",
        str(photo),
        "--upload",
        "--expires-in",
        "600",
        "--key",
        gateway.signing_keys[0],
        *connection(gateway),
    )
    assert code == 0, err
    url = out.strip()
    assert url.startswith(gateway.url + "/v1/img/")
    async with aiohttp.ClientSession() as http:
        image = await http.get(url)
        assert image.status == 200
        assert pyvips.Image.new_from_buffer(await image.read(), "").width == 64


def test_help_answers_without_loading_libvips_nats_or_aiohttp():
    probe = (
        "import sys, contextlib\n"
        "from pixelmesh.cli import main\n"
        "with contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "with contextlib.suppress(SystemExit):\n"
        "    main(['submit', '--help'])\n"
        "print(sorted(m for m in ('pyvips', 'nats', 'aiohttp', 'rich') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "usage: pixelmesh" in result.stdout
    assert "--pipeline NS/NAME" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("component", ["worker", "gateway", "operator"])
def test_component_commands_hand_their_arguments_to_the_component(component: str):
    result = subprocess.run(
        [sys.executable, "-m", "pixelmesh.cli", component, "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    assert "COMMAND" not in result.stdout  # the component's own help, not the pixelmesh overview
