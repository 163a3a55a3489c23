"""The worker's configuration from `PIXELMESH_*` variables: parsing, defaults and validation."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from pixelmesh.api.messages import PipelineRevision
from pixelmesh.api.pipeline import PipelineSpec
from pixelmesh.worker.config import ConfigError, WorkerConfig, available_cpus, load_pipeline_file


def test_every_setting_is_read_from_the_variable_named_after_it() -> None:
    env = {
        "PIXELMESH_PIPELINE_FILE": "/etc/pixelmesh/pipeline.yaml",
        "PIXELMESH_NATS_URLS": "nats://a:4222, nats://b:4222",
        "PIXELMESH_REGION": "eu-west",
        "PIXELMESH_WORKER_NAME": "thumbs-7f9c",
        "PIXELMESH_THREADS": "3",
        "PIXELMESH_CONCURRENCY": "8",
        "PIXELMESH_FETCH_BATCH": "4",
        "PIXELMESH_JOB_TIMEOUT_SECONDS": "12.5",
        "PIXELMESH_RETRY_DELAYS_SECONDS": "1,2,4",
        "PIXELMESH_METRICS_PORT": "9191",
        "PIXELMESH_LOG_FORMAT": "text",
    }
    config = WorkerConfig.from_env(env)
    assert config.pipeline_file == Path("/etc/pixelmesh/pipeline.yaml")
    assert config.nats_urls == ("nats://a:4222", "nats://b:4222")
    assert (config.region, config.worker_name) == ("eu-west", "thumbs-7f9c")
    assert (config.threads, config.concurrency, config.fetch_batch) == (3, 8, 4)
    assert config.job_timeout_seconds == 12.5
    assert config.retry_delays_seconds == (1.0, 2.0, 4.0)
    assert config.metrics_port == 9191
    assert config.log_format == "text"


def test_overrides_win_over_the_environment() -> None:
    config = WorkerConfig.from_env(
        {"PIXELMESH_PIPELINE_FILE": "/a.yaml", "PIXELMESH_REGION": "x"}, region="y"
    )
    assert config.region == "y"


def test_every_setting_is_documented_with_its_variable() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "worker.md").read_text()
    missing = [f.name for f in fields(WorkerConfig) if f"`PIXELMESH_{f.name.upper()}`" not in doc]
    assert missing == []


def test_all_problems_are_reported_together() -> None:
    env = {"PIXELMESH_THREADS": "many", "PIXELMESH_METRICS_PORT": "70000"}
    with pytest.raises(ConfigError) as caught:
        WorkerConfig.from_env(env)
    message = str(caught.value)
    assert "PIXELMESH_THREADS='many'" in message
    assert "PIXELMESH_PIPELINE_FILE is required" in message
    assert "metrics_port must be 0-65535" in message


def test_validation_names_each_bad_value() -> None:
    with pytest.raises(ConfigError) as caught:
        WorkerConfig(pipeline_file=Path("p"), metrics_port=70000, fetch_timeout_seconds=0, log_format="xml")
    message = str(caught.value)
    assert "metrics_port" in message
    assert "fetch_timeout_seconds" in message
    assert "log_format" in message


def test_automatic_sizes_follow_the_available_cpus() -> None:
    config = WorkerConfig(pipeline_file=Path("p"))
    assert config.effective_threads == available_cpus() + 1 >= 2
    assert config.effective_concurrency == 2 * config.effective_threads
    assert config.effective_fetch_batch == config.effective_concurrency
    assert WorkerConfig(pipeline_file=Path("p"), threads=4, concurrency=2).effective_concurrency == 4


def test_libvips_gets_one_thread_per_image_when_the_worker_threads_cover_the_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VIPS_CONCURRENCY", raising=False)
    cpus = available_cpus()
    assert WorkerConfig(pipeline_file=Path("p")).effective_vips_concurrency == 1
    assert WorkerConfig(pipeline_file=Path("p"), threads=cpus).effective_vips_concurrency == 1
    if cpus > 1:
        assert WorkerConfig(pipeline_file=Path("p"), threads=cpus - 1).effective_vips_concurrency is None
    assert WorkerConfig(pipeline_file=Path("p"), vips_concurrency=3).effective_vips_concurrency == 3


def test_an_explicit_vips_concurrency_variable_is_left_to_libvips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIPS_CONCURRENCY", "4")
    assert WorkerConfig(pipeline_file=Path("p")).effective_vips_concurrency is None


def test_retry_delay_follows_the_delivery_count_and_repeats_the_last() -> None:
    config = WorkerConfig(pipeline_file=Path("p"), retry_delays_seconds=(1.0, 5.0))
    assert [config.retry_delay(n) for n in (1, 2, 3, 9)] == [1.0, 5.0, 5.0, 5.0]


def test_the_pipeline_file_is_read_as_yaml(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        "namespace: media\nname: thumbs\ngeneration: 4\nspec:\n  variants:\n"
        "    - name: small\n      steps: [{thumbnail: {width: 200}}]\n      format: {type: webp}\n"
    )
    revision = load_pipeline_file(path)
    assert isinstance(revision, PipelineRevision)
    assert (str(revision.ref), revision.generation) == ("media/thumbs", 4)
    assert isinstance(revision.spec, PipelineSpec)
    assert revision.spec.variant("small").format.type.value == "webp"


def test_a_broken_pipeline_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text("namespace: media\nname: thumbs\ngeneration: 1\nspec: {variants: []}\n")
    with pytest.raises(ConfigError, match=r"pipeline\.yaml"):
        load_pipeline_file(path)
