"""The bench's fixed choices: the image plan, thumbor's config, worker settings, machine facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.contenders.pixelmesh_stack import WorkerLayout, worker_environments
from bench.corpus import IMAGE_PLAN, ImageRole, select_images
from bench.machine import cpu_model, mem_total_bytes
from bench.run import build_parser, rotated
from bench.thumbor_env import render_config
from pixelmesh.api.pipeline import InputLimits


def by_role(role: ImageRole):
    return [image for image in IMAGE_PLAN if image.role is role]


def test_phone_images_are_12_megapixel_4_by_3_jpegs_at_quality_90():
    phones = by_role(ImageRole.PHONE)
    assert len(phones) == 3
    for image in phones:
        assert (image.width, image.height, image.quality) == (4000, 3000, 90)
        assert image.name.endswith(".jpg")


def test_web_images_are_2_megapixel_jpegs():
    for image in by_role(ImageRole.WEB):
        assert 1.9 <= image.megapixels <= 2.2
        assert image.name.endswith(".jpg")


def test_there_is_one_png_with_alpha_and_one_huge_image_the_worker_still_accepts():
    (cutout,) = by_role(ImageRole.CUTOUT)
    assert cutout.has_alpha
    assert cutout.name.endswith(".png")
    assert cutout.quality is None
    (huge,) = by_role(ImageRole.HUGE)
    assert 45 <= huge.megapixels <= 50
    assert huge.width * huge.height <= InputLimits().max_pixels


def test_image_names_are_unique_and_the_quick_set_is_one_of_each_everyday_kind():
    assert len({image.name for image in IMAGE_PLAN}) == len(IMAGE_PLAN)
    quick = select_images(quick=True)
    assert {image.role for image in quick} == {ImageRole.PHONE, ImageRole.WEB, ImageRole.CUTOUT}
    assert set(quick) <= set(IMAGE_PLAN)
    assert select_images(quick=False) == IMAGE_PLAN


def test_thumbor_config_reads_files_stores_nothing_and_matches_the_other_encoders(tmp_path: Path):
    settings: dict[str, object] = {}
    exec(compile(render_config(tmp_path, avif_speed=5), "thumbor.conf", "exec"), {}, settings)
    assert settings["LOADER"] == "thumbor.loaders.file_loader"
    assert settings["FILE_LOADER_ROOT_PATH"] == str(tmp_path)
    assert settings["STORAGE"] == "thumbor.storages.no_storage"
    assert settings["RESULT_STORAGE"] is None
    assert settings["PROGRESSIVE_JPEG"] is False
    assert settings["QUALITY"] == 80
    assert settings["AVIF_SPEED"] == 5


@pytest.mark.parametrize("parallelism", [1, 2])
def test_threads_layout_is_one_worker_with_a_thread_and_a_job_slot_per_lane(parallelism):
    (env,) = worker_environments(
        WorkerLayout.THREADS, parallelism, pipeline_file=Path("/p.yaml"), nats_url="nats://x:1", extra={}
    )
    assert env["PIXELMESH_THREADS"] == env["PIXELMESH_CONCURRENCY"] == str(parallelism)
    assert env["PIXELMESH_METRICS_PORT"] == "0"
    assert env["PIXELMESH_PIPELINE_FILE"] == "/p.yaml"


def test_jobs_in_flight_multiply_the_job_slots_of_each_worker():
    (threads,) = worker_environments(
        WorkerLayout.THREADS, 2, pipeline_file=Path("/p"), nats_url="nats://x:1", extra={}, in_flight=3
    )
    assert (threads["PIXELMESH_THREADS"], threads["PIXELMESH_CONCURRENCY"]) == ("2", "6")
    processes = worker_environments(
        WorkerLayout.PROCESSES, 2, pipeline_file=Path("/p"), nats_url="nats://x:1", extra={}, in_flight=2
    )
    assert [(e["PIXELMESH_THREADS"], e["PIXELMESH_CONCURRENCY"]) for e in processes] == [
        ("1", "2"),
        ("1", "2"),
    ]


def test_processes_layout_is_one_single_threaded_worker_per_lane_and_extra_settings_win():
    envs = worker_environments(
        WorkerLayout.PROCESSES,
        2,
        pipeline_file=Path("/p.yaml"),
        nats_url="nats://x:1",
        extra={"PIXELMESH_VIPS_CONCURRENCY": "1", "PIXELMESH_THREADS": "3"},
    )
    assert len(envs) == 2
    assert {env["PIXELMESH_WORKER_NAME"] for env in envs} == {"bench-worker-0", "bench-worker-1"}
    assert all(env["PIXELMESH_VIPS_CONCURRENCY"] == "1" and env["PIXELMESH_THREADS"] == "3" for env in envs)


def test_each_round_starts_with_the_next_contender():
    order = ["raw-libvips", "pillow", "thumbor"]
    assert [rotated(order, n) for n in range(4)] == [  # type: ignore[arg-type]
        ["raw-libvips", "pillow", "thumbor"],
        ["pillow", "thumbor", "raw-libvips"],
        ["thumbor", "raw-libvips", "pillow"],
        ["raw-libvips", "pillow", "thumbor"],
    ]
    assert rotated([], 3) == []


def test_command_line_defaults_run_everything_at_parallelism_1_and_2():
    args = build_parser().parse_args([])
    assert args.contenders == ["raw-libvips", "pixelmesh-worker", "pixelmesh-gateway", "pillow", "thumbor"]
    assert args.workloads == ["thumb", "web-set", "avif"]
    assert args.parallelism == [1, 2]
    quick = build_parser().parse_args(["--quick", "--contenders", "pillow,thumbor", "--parallelism", "2"])
    assert quick.quick
    assert quick.contenders == ["pillow", "thumbor"]
    assert quick.parallelism == [2]


def test_machine_facts_are_parsed_from_proc_text():
    assert cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: x\n") == "AMD EPYC 7B13"
    assert cpu_model("processor\t: 0\n") == "unknown"
    assert mem_total_bytes("MemTotal:       24683112 kB\nMemFree: 1 kB\n") == 24683112 * 1024
