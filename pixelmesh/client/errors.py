"""What the client raises: the gateway's problem details, or a failure to reach it at all."""

from __future__ import annotations

from pixelmesh.api.http import Problem, ProblemCode


class GatewayError(Exception):
    """The gateway could not be reached, or answered something that is not the API."""


class ProblemError(GatewayError):
    """The gateway answered with a problem detail (RFC 9457)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"{problem.status} {problem.code.value}: {problem.detail or problem.title}")
        self.problem = problem

    @property
    def code(self) -> ProblemCode:
        return self.problem.code

    @property
    def status(self) -> int:
        return self.problem.status

    @property
    def job_id(self) -> str | None:
        return self.problem.job_id

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later (backlog, an unreachable region)."""
        return self.code in {ProblemCode.BACKLOG_FULL, ProblemCode.UNAVAILABLE, ProblemCode.NO_REGION}
