"""Cancellation that nats-py swallowed, raised again.

nats-py catches `asyncio.CancelledError` while it hands a publish to its flusher
(`Client._flush_pending`, nats-py 2.x), so a task cancelled in the middle of a publish, request or
KV put goes on as if nothing happened. A loop that is stopped by `cancel()` then runs forever, and
whoever awaits it after cancelling (a worker draining, the operator stopping) waits forever too.
Python 3.11 still counts the request on the task (`Task.cancelling()`), so such a loop calls
`resume_cancellation()` after each round of NATS calls.
"""

from __future__ import annotations

import asyncio


def resume_cancellation() -> None:
    """Raise `CancelledError` if the current task was asked to stop and is still running."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
