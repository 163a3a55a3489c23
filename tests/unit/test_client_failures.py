"""A job failure read from a job's view is the same problem the gateway answers a waiting submit with."""

from __future__ import annotations

from pixelmesh.api.http import JobFailure, JobState, JobView
from pixelmesh.api.messages import FailureReason, PipelineRef
from pixelmesh.client.aio import _failure_problem
from pixelmesh.gateway.problems import code_of, problem_body

REF = PipelineRef(namespace="shop", name="thumbs")


def test_a_failed_view_becomes_the_problem_the_gateway_sends_for_its_code():
    for reason in FailureReason:
        code = code_of(reason)
        view = JobView(
            job_id="j1",
            pipeline=REF,
            state=JobState.FAILED,
            source_key="0" * 64,
            error=JobFailure(code=code, type=code.type_uri, message="it failed"),
        )
        expected = problem_body(code, "it failed", instance=None, job_id="j1")
        assert _failure_problem(view) == expected, reason
