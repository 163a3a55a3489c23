"""Problem details: every failure has a stable type and status; worker reasons map one-to-one."""

from __future__ import annotations

import base64
import hashlib
import json

from pixelmesh.api.http import PROBLEM_BASE, PROBLEM_KINDS, Problem, ProblemCode
from pixelmesh.api.messages import (
    DeadLetter,
    FailureReason,
    JobError,
    JobMessage,
    JobResult,
    JobStatus,
    PipelineRef,
)
from pixelmesh.gateway.problems import ProblemError, code_of, problem_response
from pixelmesh.gateway.views import sha256_hex_of_digest, view_of_dead_letter, view_of_result

REF = PipelineRef(namespace="shop", name="thumbs")
SHA = "0" * 64


def test_every_worker_failure_reason_is_a_problem_code_of_the_same_name():
    for reason in FailureReason:
        code = code_of(reason)
        assert code.value == reason.value
        assert code.type_uri == PROBLEM_BASE + reason.value
        assert code in PROBLEM_KINDS


def test_every_code_has_a_status_and_a_title_and_round_trips_through_its_type():
    for code in ProblemCode:
        assert 400 <= PROBLEM_KINDS[code].status <= 599
        assert PROBLEM_KINDS[code].title
        assert ProblemCode.from_type_uri(code.type_uri) is code
    assert ProblemCode.from_type_uri("about:blank") is None
    assert ProblemCode.from_type_uri(PROBLEM_BASE + "new_in_a_later_version") is None


def test_a_problem_response_is_problem_json_with_retry_after_when_given():
    response = problem_response(
        ProblemError(ProblemCode.BACKLOG_FULL, "queue is long", retry_after=3), instance="/v1/x"
    )
    assert response.status == 429
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"] == "3"
    assert response.body is not None
    body = json.loads(bytes(response.body))  # type: ignore[arg-type]
    problem = Problem.model_validate(body)
    assert problem.code is ProblemCode.BACKLOG_FULL
    assert body["retryAfterSeconds"] == 3
    assert body["instance"] == "/v1/x"


def test_a_failed_result_and_a_dead_letter_both_read_as_failed_jobs_with_their_code():
    error = JobError(reason=FailureReason.TOO_MANY_PIXELS, message="too big")
    result = JobResult(
        job_id="j1", pipeline=REF, generation=1, status=JobStatus.FAILED, source_key=SHA, error=error
    )
    view = view_of_result(result, "eu")
    assert view.state.value == "failed"
    assert view.error is not None
    assert view.error.code is ProblemCode.TOO_MANY_PIXELS
    assert view.region == "eu"
    job = JobMessage(job_id="j2", pipeline=REF, generation=1, source_key=SHA, source_size=3, region="us")
    letter = view_of_dead_letter(DeadLetter(job=job, error=error, attempts=5), "eu")
    assert letter is not None
    assert letter.region == "us"
    assert letter.attempts == 5
    assert view_of_dead_letter(DeadLetter(raw="garbage", error=error, attempts=1), "eu") is None


def test_object_store_digests_read_as_hex_sha256():
    digest = hashlib.sha256(b"pixels").digest()
    encoded = "SHA-256=" + base64.urlsafe_b64encode(digest).decode()
    assert sha256_hex_of_digest(encoded) == hashlib.sha256(b"pixels").hexdigest()
    assert sha256_hex_of_digest(encoded.rstrip("=")) == hashlib.sha256(b"pixels").hexdigest()
    assert sha256_hex_of_digest(None) is None
    assert sha256_hex_of_digest("SHA-256=abc") is None
