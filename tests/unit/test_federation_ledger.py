"""The federation e2e's bookkeeping: counting jobs, backup rings, RegionPools, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e.federation.ledger import (
    Completion,
    Submission,
    is_duplicate,
    is_reprocessed,
    record_streams,
    tally,
)
from e2e.federation.manifests import backup_ring, region_pool
from e2e.federation.report import ScenarioReport, render, write_reports
from e2e.federation.watch import RoutingSample, first_sample, weight_steps
from pixelmesh.api.resources import RegionPool


def accepted(*jobs: tuple[str, str]) -> dict[str, Submission]:
    return {job: Submission(job, gateway=region, region=region, accepted_at=0.0) for job, region in jobs}


def done(job: str, region: str, sha: str = "a" * 64, *, succeeded: bool = True) -> Completion:
    return Completion(job, region, succeeded, (("thumb", sha),))


def test_each_accepted_job_is_completed_lost_or_failed_in_the_region_that_accepted_it() -> None:
    jobs = accepted(("j1", "r1"), ("j2", "r1"), ("j3", "r2"), ("j4", "r2"))
    found = {"j1": [done("j1", "r1")], "j3": [done("j3", "r3")], "j4": [done("j4", "r2", succeeded=False)]}
    result = tally(jobs, found)
    assert result.regions["r1"].accepted == 2
    assert result.regions["r1"].completed == 1
    assert result.regions["r1"].lost == 1
    assert result.regions["r2"].completed == 1, "a job drained by the backup region still completed"
    assert result.regions["r2"].failed == 1
    assert result.lost_jobs == ("j2",)
    assert result.completed_by == {"r1": 1, "r2": 1, "r3": 1}
    assert result.total.accepted == 4


def test_records_of_jobs_never_accepted_are_not_counted() -> None:
    result = tally(accepted(("j1", "r1")), {"j1": [done("j1", "r1")], "other": [done("other", "r2")]})
    assert result.total.completed == 1
    assert result.completed_by == {"r1": 1}


def test_a_job_done_into_different_bytes_or_both_failed_and_succeeded_is_a_duplicate() -> None:
    assert is_duplicate([done("j", "r1"), done("j", "r2", "b" * 64)])
    assert is_duplicate([done("j", "r1"), done("j", "r2", succeeded=False)])
    assert not is_duplicate([done("j", "r1"), done("j", "r2")])
    assert not is_duplicate([done("j", "r1")])
    result = tally(accepted(("j", "r1")), {"j": [done("j", "r1"), done("j", "r2", "b" * 64)]})
    assert result.duplicate_jobs == ("j",)
    assert result.reprocessed_jobs == ()
    assert result.regions["r1"].duplicates == 1
    assert result.regions["r1"].completed == 1


def test_a_job_done_in_two_regions_into_the_same_bytes_is_reprocessed_not_duplicated() -> None:
    assert is_reprocessed([done("j", "r1"), done("j", "r2")])
    assert not is_reprocessed([done("j", "r1")])
    result = tally(accepted(("j", "r1")), {"j": [done("j", "r1"), done("j", "r2")]})
    assert result.reprocessed_jobs == ("j",)
    assert result.duplicate_jobs == ()
    assert (result.regions["r1"].reprocessed, result.regions["r1"].duplicates) == (1, 0)
    assert result.total.reprocessed == 1


def test_routing_samples_give_a_regions_weight_steps_and_the_first_change_after_a_moment() -> None:
    samples = [
        RoutingSample(1.0, 1, {"r1": 60, "r3": 40}, ()),
        RoutingSample(5.0, 2, {"r1": 100, "r3": 0}, ("r3",)),
        RoutingSample(9.0, 3, {"r1": 85, "r3": 15}, ()),
        RoutingSample(11.0, 4, {"r1": 70, "r3": 30}, ()),
    ]
    assert weight_steps(samples, "r3", 4.0) == [(1.0, 0), (5.0, 15), (7.0, 30)]
    assert weight_steps(samples, "r3", 10.0) == [(1.0, 30)]
    drained = first_sample(samples, 2.0, lambda s: "r3" in s.drains)
    assert drained is not None
    assert drained.generation == 2
    assert first_sample(samples, 6.0, lambda s: "r3" in s.drains) is None


def test_an_origins_records_are_read_from_its_own_bucket_first_then_its_replicas() -> None:
    found = record_streams("r2", ["r1", "r2", "r3"])
    assert found[0] == ("KV_pixelmesh-completions-r2", "pixelmesh-completions-r2")
    assert [stream for stream, _ in found[1:]] == [
        "REPLICA_r1_KV_pixelmesh-completions-r2",
        "REPLICA_r3_KV_pixelmesh-completions-r2",
    ]


def test_backups_form_a_ring() -> None:
    assert backup_ring(["r1", "r2", "r3"]) == {"r1": "r2", "r2": "r3", "r3": "r1"}
    with pytest.raises(ValueError, match="two regions"):
        backup_ring(["r1"])


def test_region_pools_are_valid_resources_and_members_name_their_kubeconfig_secret() -> None:
    hub = RegionPool.model_validate(
        region_pool("r1", nats_urls=["nats://127.0.0.1:4222"], backup_region="r2")
    )
    member = RegionPool.model_validate(
        region_pool(
            "r2",
            nats_urls=["nats://127.0.0.1:4223"],
            backup_region="r3",
            kubeconfig_secret=("pixelmesh-system", "region-r2-kubeconfig"),
        )
    )
    assert hub.spec.cluster is None
    assert member.spec.cluster is not None
    assert member.spec.cluster.kubeconfig_secret.name == "region-r2-kubeconfig"
    assert member.spec.failover.backup_region == "r3"


def test_the_report_shows_every_region_and_is_written_as_json(tmp_path: Path) -> None:
    result = tally(accepted(("j1", "r1"), ("j2", "r2")), {"j1": [done("j1", "r1")]})
    report = ScenarioReport(
        "loss", result, 12.5, failover_seconds={"weight_zero": 3.25}, rpo_jobs=1, rpo_seconds=0.4
    )
    text = render(report)
    assert "r1" in text
    assert "r2" in text
    assert "weight_zero 3.2 s" in text
    assert "RPO: 1 jobs lost" in text
    path = tmp_path / "report.json"
    write_reports([report], path)
    (written,) = json.loads(path.read_text())["scenarios"]
    assert written["total"]["lost"] == 1
    assert written["lostJobs"] == ["j2"]
    assert written["failoverSeconds"] == {"weight_zero": 3.25}
