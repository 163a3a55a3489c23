"""The in-process contenders (raw-libvips, Pillow) make the same outputs through the runner protocol."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import pyvips

from bench.contenders.base import SourceImage
from bench.contenders.local import output_from_json, serve
from bench.verify import output_problems
from bench.workloads import workload


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> SourceImage:
    """A small photo-like JPEG: smooth gradients with some texture, 960x720."""
    path = tmp_path_factory.mktemp("bench") / "photo.jpg"
    xy = pyvips.Image.xyz(960, 720)
    texture = pyvips.Image.gaussnoise(960, 720, sigma=12, mean=0, seed=3)
    image = (
        (xy[0] / 4 + texture).cast("uchar").bandjoin([(xy[1] / 3).cast("uchar"), (xy[0] / 8).cast("uchar")])
    )
    image.jpegsave(str(path), Q=90)
    return SourceImage("photo.jpg", path, 960, 720)


@pytest.fixture(scope="module")
def cutout(tmp_path_factory: pytest.TempPathFactory) -> SourceImage:
    """A PNG with an alpha channel, 640x480."""
    path = tmp_path_factory.mktemp("bench") / "cutout.png"
    xy = pyvips.Image.xyz(640, 480)
    rgb = (xy[0] / 3).cast("uchar").bandjoin([(xy[1] / 2).cast("uchar"), 90])
    rgb.bandjoin((xy[0] > 320).ifthenelse(255, 0).cast("uchar")).pngsave(str(path))
    return SourceImage("cutout.png", path, 640, 480)


@pytest.mark.parametrize("engine", ["raw-libvips", "pillow"])
@pytest.mark.parametrize("name", ["thumb", "web-set"])
def test_engine_answers_one_request_with_a_latency_and_equivalent_outputs_per_image(
    engine, name, photo, cutout
):
    requests = io.StringIO(
        json.dumps({"workload": name, "images": [photo.to_json(), cutout.to_json()], "describe": True}) + "\n"
    )
    answers = io.StringIO()
    serve(engine, 2, requests, answers)
    ready, answer = (json.loads(line) for line in answers.getvalue().splitlines())
    assert ready["ready"] is True
    assert len(answer["latencies"]) == 2
    assert all(latency > 0 for latency in answer["latencies"])
    for image in (photo, cutout):
        infos = answer["outputs"][image.name]

        assert output_problems(workload(name), image.size, [output_from_json(info) for info in infos]) == []


def test_engine_reports_a_failure_as_an_error_answer(tmp_path: Path):
    broken = SourceImage("broken.jpg", tmp_path / "broken.jpg", 10, 10)
    broken.path.write_bytes(b"not an image")
    answers = io.StringIO()
    serve(
        "raw-libvips",
        1,
        io.StringIO(json.dumps({"workload": "thumb", "images": [broken.to_json()]}) + "\n"),
        answers,
    )
    error = json.loads(answers.getvalue().splitlines()[1])
    assert "error" in error
    assert "Error" in error["error"]
