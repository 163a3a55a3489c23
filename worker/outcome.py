"""The one place where a job's fate becomes a JetStream action and a record.

`decide` is pure: from what happened (success, `PermanentError`, `RetryableError`, any other
exception) and the delivery count it returns a `Fate`: ack, nak with a delay, or term, with the
error to record and whether a dead-letter record is due. `OutcomeRecorder` carries a fate out:

- success: completion record (KV), result event, ack;
- permanent failure, or a transient one on the last allowed delivery: dead-letter record, a
  failed completion record (so a redelivery or a resubmission is not processed again), a failure
  result event, term;
- transient failure before the last delivery: nak with the backoff delay;
- already complete: ack; fetched but not started at shutdown: nak at once for another worker;
- a message that is not a valid job: dead-letter record with the raw text, term;
- deliveries exhausted without any answer (workers crashed or hung on it): the server's max
  deliveries advisory leads to `record_exhausted`, which writes the dead letter and removes the
  message from the work queue.

Records are written before the message is settled: if a write fails, the message is left
unsettled, is redelivered after the ack wait, and the next attempt finds whatever records landed.
Nothing is dropped without a record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from pixelmesh.api import streams
from pixelmesh.api.messages import (
    DeadLetter,
    FailureReason,
    JobError,
    JobMessage,
    JobResult,
    JobStatus,
    PipelineRevision,
)
from pixelmesh.records import CompletionLookup
from pixelmesh.worker.errors import PermanentError, RetryableError
from pixelmesh.worker.metrics import Outcome, WorkerMetrics

logger = logging.getLogger(__name__)

_KEY_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_=-]{0,127}$")
RAW_KEEP = 64 * 1024
"""How much of an unparseable message a dead-letter record keeps."""


class Action(StrEnum):
    ACK = "ack"
    NAK = "nak"
    TERM = "term"


@dataclass(frozen=True, slots=True)
class Fate:
    """What to do with a message, and what to record about it."""

    action: Action
    outcome: str
    """A `metrics.Outcome` value."""
    delay_seconds: float | None = None
    error: JobError | None = None
    dead_letter: bool = False
    detail: str = ""
    """For a retry: what went wrong this time."""


SUCCEEDED = Fate(Action.ACK, Outcome.SUCCEEDED)
DUPLICATE = Fate(Action.ACK, Outcome.DUPLICATE)
RELEASED = Fate(Action.NAK, Outcome.RELEASED)


def describe(error: BaseException) -> str:
    """A one-line description of an error for records and logs."""
    if isinstance(error, PermanentError | RetryableError):
        return error.message
    return f"{type(error).__name__}: {error}"


def decide(
    error: BaseException | None,
    *,
    delivered: int,
    max_deliver: int,
    retry_delay: Callable[[int], float],
) -> Fate:
    """The fate of a job attempt. `max_deliver` <= 0 means unlimited deliveries."""
    if error is None:
        return SUCCEEDED
    if isinstance(error, PermanentError):
        return Fate(
            Action.TERM,
            Outcome.FAILED,
            error=JobError(reason=error.reason, message=error.message),
            dead_letter=True,
        )
    # RetryableError, or a bug (anything else): another attempt may succeed, until deliveries run out.
    if 0 < max_deliver <= delivered:
        message = f"gave up after {delivered} deliveries; last error: {describe(error)}"
        return Fate(
            Action.TERM,
            Outcome.FAILED,
            error=JobError(reason=FailureReason.MAX_DELIVERIES, message=message),
            dead_letter=True,
        )
    delay = error.delay_seconds if isinstance(error, RetryableError) else None
    return Fate(
        Action.NAK,
        Outcome.RETRIED,
        delay_seconds=retry_delay(delivered) if delay is None else delay,
        detail=describe(error),
    )


def dead_letter_key(msg: Msg, job: JobMessage | None) -> str:
    """The job id, or for an unparseable message its `Nats-Msg-Id` or stream sequence."""
    if job is not None:
        return job.job_id
    header = (msg.headers or {}).get("Nats-Msg-Id", "")
    if _KEY_SAFE.match(header):
        return header
    return f"seq-{msg.metadata.sequence.stream}"


class OutcomeRecorder:
    """Writes records and settles messages for one worker's pipeline."""

    def __init__(
        self,
        *,
        nc: NatsClient,
        revision: PipelineRevision,
        completions: KeyValue,
        dead_letters: KeyValue,
        metrics: WorkerMetrics,
        region: str,
        worker: str,
        lookup: CompletionLookup,
    ) -> None:
        self._lookup = lookup
        self._nc = nc
        self._revision = revision
        self._ref = revision.ref
        self._completions = completions
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._region = region
        self._worker = worker

    def failure_result(
        self, job: JobMessage, error: JobError, *, attempts: int, duration: float
    ) -> JobResult:
        return JobResult(
            job_id=job.job_id,
            pipeline=job.pipeline,
            generation=self._revision.generation,
            status=JobStatus.FAILED,
            source_key=job.source_key,
            error=error,
            region=self._region,
            worker=self._worker,
            attempts=max(attempts, 1),
            submitted_at=job.submitted_at,
            duration_seconds=duration,
        )

    async def settle(
        self,
        msg: Msg,
        job: JobMessage | None,
        fate: Fate,
        *,
        result: JobResult | None = None,
        duration: float = 0.0,
    ) -> None:
        """Record and carry out `fate`. Raises if a record cannot be written (the message stays unsettled)."""
        delivered = msg.metadata.num_delivered
        job_id = dead_letter_key(msg, job)
        if fate.outcome == Outcome.SUCCEEDED:
            assert job is not None
            assert result is not None
            await self._complete(result)
        elif fate.dead_letter:
            assert fate.error is not None
            await self._dead_letter(msg, job, fate.error, attempts=delivered)
            if job is not None:
                await self._complete(
                    self.failure_result(job, fate.error, attempts=delivered, duration=duration)
                )
            self._metrics.rejected(fate.error.reason)
        if fate.action is Action.ACK:
            await msg.ack()
        elif fate.action is Action.TERM:
            await msg.term()
        else:
            await msg.nak(delay=fate.delay_seconds)
        self._metrics.job_done(fate.outcome, duration)
        self._log(job_id, fate, delivered, duration)

    async def _complete(self, result: JobResult) -> None:
        payload = result.model_dump_json(by_alias=True, exclude_none=True).encode()
        await self._completions.put(result.job_id, payload)
        await self._nc.publish(streams.result_subject(self._ref, result.job_id), payload)

    async def _dead_letter(self, msg: Msg, job: JobMessage | None, error: JobError, *, attempts: int) -> None:
        raw = None if job is not None else msg.data[:RAW_KEEP].decode("utf-8", errors="replace")
        record = DeadLetter(job=job, raw=raw, error=error, attempts=max(attempts, 1), worker=self._worker)
        await self._dead_letters.put(
            dead_letter_key(msg, job), record.model_dump_json(by_alias=True, exclude_none=True).encode()
        )
        self._metrics.dead_lettered(error.reason)

    async def is_complete(self, job_id: str) -> bool:
        """Whether the job has a completion record (succeeded or failed for good), in any region."""
        return await self._lookup.find(self._nc.jetstream(), job_id) is not None

    async def record_exhausted(self, job: JobMessage, deliveries: int) -> bool:
        """Record a job the server stopped delivering after `deliveries` unanswered attempts.

        Returns False (and writes nothing) if the job already has a completion record.
        """
        if await self.is_complete(job.job_id):
            return False
        error = JobError(
            reason=FailureReason.MAX_DELIVERIES,
            message=f"no worker answered in {deliveries} deliveries (crashed or hung on this job)",
        )
        record = DeadLetter(job=job, error=error, attempts=max(deliveries, 1), worker=self._worker)
        await self._dead_letters.put(
            job.job_id, record.model_dump_json(by_alias=True, exclude_none=True).encode()
        )
        await self._complete(self.failure_result(job, error, attempts=deliveries, duration=0.0))
        self._metrics.dead_lettered(error.reason)
        self._metrics.job_done(Outcome.FAILED, 0.0)
        logger.error(
            "Job %s was dead-lettered: %s.",
            job.job_id,
            error.message,
            extra={"job_id": job.job_id, "reason": error.reason.value, "attempts": deliveries},
        )
        return True

    def _log(self, job_id: str, fate: Fate, delivered: int, duration: float) -> None:
        extra: dict[str, object] = {
            "job_id": job_id,
            "outcome": fate.outcome,
            "attempt": delivered,
            "duration_seconds": round(duration, 4),
        }
        if fate.outcome == Outcome.SUCCEEDED:
            logger.info("Job %s succeeded in %.3fs.", job_id, duration, extra=extra)
        elif fate.outcome == Outcome.DUPLICATE:
            logger.info("Job %s was already complete; acknowledged without work.", job_id, extra=extra)
        elif fate.outcome == Outcome.RELEASED:
            logger.info("Job %s was released unstarted for another worker.", job_id, extra=extra)
        elif fate.outcome == Outcome.RETRIED:
            extra["retry_in_seconds"] = fate.delay_seconds
            logger.warning(
                "Job %s failed transiently on attempt %d (%s); retrying in %ss.",
                job_id,
                delivered,
                fate.detail,
                fate.delay_seconds,
                extra=extra,
            )
        else:
            assert fate.error is not None
            extra["reason"] = fate.error.reason.value
            logger.warning(
                "Job %s failed permanently (%s): %s",
                job_id,
                fate.error.reason.value,
                fate.error.message,
                extra=extra,
            )
