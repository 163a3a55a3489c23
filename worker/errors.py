"""Errors that carry their fate.

Every failure inside the worker is one of these, and one place (the outcome mapper) turns the fate
into a JetStream action: `RetryableError` -> nak with a delay, `PermanentError` -> term + failure result +
dead-letter record. Anything else that escapes is a bug; it is treated as retryable so a redelivery
(possibly to a fixed worker) still gets the job done, and max deliveries bounds the damage.
"""

from __future__ import annotations

from pixelmesh.api.messages import FailureReason


class JobProcessingError(Exception):
    """Base of the worker's job errors."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PermanentError(JobProcessingError):
    """The job can never succeed as submitted (bad input, a limit, an unknown variant)."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"


class RetryableError(JobProcessingError):
    """The job may succeed later (a store or NATS hiccup, an overloaded worker)."""

    def __init__(self, message: str, delay_seconds: float | None = None) -> None:
        super().__init__(message)
        self.delay_seconds = delay_seconds
