"""How each way a job can end maps to ack, nak or term, and to the records written."""

from __future__ import annotations

from pixelmesh.api.messages import FailureReason
from pixelmesh.worker.errors import PermanentError, RetryableError
from pixelmesh.worker.metrics import Outcome
from pixelmesh.worker.outcome import Action, decide


def delays(delivered: int) -> float:
    return [1.0, 5.0, 30.0][min(delivered, 3) - 1]


def test_success_is_acked_without_an_error() -> None:
    fate = decide(None, delivered=1, max_deliver=5, retry_delay=delays)
    assert (fate.action, fate.outcome, fate.error, fate.dead_letter) == (
        Action.ACK,
        Outcome.SUCCEEDED,
        None,
        False,
    )


def test_bad_input_is_terminated_with_its_reason_and_dead_lettered_on_the_first_attempt() -> None:
    fate = decide(
        PermanentError(FailureReason.TOO_MANY_PIXELS, "20000x20000"),
        delivered=1,
        max_deliver=5,
        retry_delay=delays,
    )
    assert fate.action is Action.TERM
    assert fate.outcome == Outcome.FAILED
    assert fate.dead_letter
    assert fate.error is not None
    assert (fate.error.reason, fate.error.message) == (FailureReason.TOO_MANY_PIXELS, "20000x20000")


def test_a_transient_failure_is_nakked_with_the_backoff_for_its_delivery() -> None:
    first = decide(RetryableError("store busy"), delivered=1, max_deliver=5, retry_delay=delays)
    second = decide(RetryableError("store busy"), delivered=2, max_deliver=5, retry_delay=delays)
    assert (first.action, first.delay_seconds, first.outcome) == (Action.NAK, 1.0, Outcome.RETRIED)
    assert second.delay_seconds == 5.0
    assert not first.dead_letter
    assert "store busy" in first.detail


def test_a_transient_failure_may_name_its_own_delay() -> None:
    fate = decide(
        RetryableError("rate limited", delay_seconds=12.5), delivered=1, max_deliver=5, retry_delay=delays
    )
    assert fate.delay_seconds == 12.5


def test_an_unexpected_exception_is_retried_like_a_transient_failure() -> None:
    fate = decide(ZeroDivisionError("bug"), delivered=1, max_deliver=5, retry_delay=delays)
    assert fate.action is Action.NAK
    assert "ZeroDivisionError" in fate.detail


def test_the_last_allowed_delivery_failing_transiently_ends_in_a_max_deliveries_dead_letter() -> None:
    fate = decide(RetryableError("store busy"), delivered=5, max_deliver=5, retry_delay=delays)
    assert fate.action is Action.TERM
    assert fate.dead_letter
    assert fate.error is not None
    assert fate.error.reason is FailureReason.MAX_DELIVERIES
    assert "store busy" in fate.error.message


def test_unlimited_deliveries_never_give_up() -> None:
    fate = decide(RetryableError("store busy"), delivered=1000, max_deliver=-1, retry_delay=delays)
    assert fate.action is Action.NAK
