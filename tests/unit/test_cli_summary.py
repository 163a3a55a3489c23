"""The bulk submission summary counts every outcome and groups failures by reason."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from pixelmesh.api.http import JobState, JobView, Problem, ProblemCode
from pixelmesh.api.messages import PipelineRef
from pixelmesh.cli.summary import render, summarise
from pixelmesh.client.aio import SubmitOutcome

REF = PipelineRef(namespace="shop", name="thumbs")


def view(state: JobState) -> JobView:
    return JobView(job_id="j", pipeline=REF, state=state, source_key="0" * 64)


def problem(code: ProblemCode) -> Problem:
    return Problem(type=code.type_uri, title="t", status=422, detail=f"{code.value} detail", code=code)


def outcomes() -> list[SubmitOutcome]:
    done = [
        SubmitOutcome(f"ok{i}.jpg", job=view(JobState.SUCCEEDED), files=(Path("a"), Path("b")))
        for i in range(5)
    ]
    return [
        *done,
        SubmitOutcome("bomb.png", problem=problem(ProblemCode.TOO_MANY_PIXELS)),
        SubmitOutcome("bomb2.png", problem=problem(ProblemCode.TOO_MANY_PIXELS)),
        SubmitOutcome("slow.jpg", job=view(JobState.PENDING)),
        SubmitOutcome("net.jpg", error="connection refused"),
    ]


def test_every_outcome_is_counted_and_failures_are_grouped_by_reason():
    summary = summarise(outcomes(), seconds=2.0)
    assert (summary.submitted, summary.done, summary.failed, summary.outputs) == (9, 5, 4, 10)
    assert summary.reasons == {"too_many_pixels": 2, "still_pending": 1, "unreachable": 1}
    assert summary.images_per_second == 2.5
    assert summary.to_json()["failures"][0] == {
        "source": "bomb.png",
        "reason": "too_many_pixels",
        "message": "too_many_pixels detail",
    }


def test_the_rendered_summary_names_counts_and_reasons():
    console = Console(width=120, record=True)
    console.print(render(summarise(outcomes(), seconds=2.0)))
    text = console.export_text()
    assert "Done" in text
    assert "too_many_pixels" in text
    assert "bomb.png: too_many_pixels detail" in text
    assert "2.5" in text


def test_an_empty_run_divides_by_nothing():
    summary = summarise([], seconds=0.0)
    assert summary.images_per_second == 0.0
    assert summary.submitted == 0
