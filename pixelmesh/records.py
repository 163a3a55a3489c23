"""Is a job done anywhere? Completion records across regions, answered inside one region.

A job may be finished in another region than the one asking: its backup drained it after a
failover, or its origin did it before failing. Every region holds a mirror of every other region's
completion records (`streams.replica_stream`), so the question is answered from the local bucket
and then the local replicas, also while the other region is down.

Replicas lag their origin by the mirror's delay (about a second on loopback): a job finished
elsewhere a moment ago may still look undone here and run again. It then produces the same bytes
under the same output keys (outputs are deterministic), so a late replica costs work, not
correctness. The replicas present are found in the stream list, refreshed every
`refresh_seconds`, so a region added later is seen without restarting anyone.

Records are read with direct gets (`pixelmesh.directget`), which a region answers on its own: cut
off from the others, it has no JetStream meta leader and refuses API calls, but can still tell
whether a job is done. For the same reason a stream list that fails keeps the last one found.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import APIError, KeyNotFoundError, NotFoundError

from pixelmesh.api import streams
from pixelmesh.directget import last_message

logger = logging.getLogger(__name__)

DELETED_OPERATIONS = ("DEL", "PURGE")


class CompletionLookup:
    """Finds a job's completion record in `region`'s bucket or in its replicas of the others'."""

    def __init__(
        self,
        region: str,
        *,
        refresh_seconds: float = 30.0,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._region = region
        self._bucket = streams.completions_bucket(region)
        self._refresh_seconds = refresh_seconds
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._replicas: tuple[tuple[str, str], ...] = ()
        # The stream list is due again `refresh_seconds` after one, `retry_seconds` after a failure.
        self._list_after = float("-inf")

    async def find(self, js: JetStreamContext, job_id: str) -> bytes | None:
        """The record's bytes, or None when no region this one can see has finished the job."""
        try:
            entry = await last_message(
                js, streams.kv_stream(self._bucket), streams.kv_subject(self._bucket, job_id)
            )
        except (NotFoundError, KeyNotFoundError):
            entry = None
        if entry is not None and _live(entry.headers):
            return entry.data or b""
        for stream, bucket in await self.replicas(js):
            try:
                found = await last_message(js, stream, streams.kv_subject(bucket, job_id))
            except NotFoundError:
                continue
            if _live(found.headers):
                return found.data or b""
        return None

    async def replicas(self, js: JetStreamContext) -> tuple[tuple[str, str], ...]:
        """(replica stream, origin bucket) of every other region's records held here."""
        if self._clock() >= self._list_after:
            prefix = streams.replica_stream(streams.kv_stream(streams.completions_bucket("")), self._region)
            try:
                infos = await js.streams_info()
            except (NatsError, APIError, TimeoutError) as error:
                # Listing needs the meta leader; the replicas found last time are still there.
                logger.warning(
                    "Listing the completion replicas of region %s failed (%s); keeping the %d known.",
                    self._region,
                    error,
                    len(self._replicas),
                )
                self._list_after = self._clock() + self._retry_seconds
                return self._replicas
            found = []
            for info in infos:
                name = info.config.name or ""
                if name.startswith(prefix):
                    origin = name.removeprefix(streams.replica_stream("", self._region))
                    found.append((name, origin.removeprefix(streams.kv_stream(""))))
            self._replicas = tuple(sorted(found))
            self._list_after = self._clock() + self._refresh_seconds
        return self._replicas


def _live(headers: dict[str, str] | None) -> bool:
    return (headers or {}).get("KV-Operation") not in DELETED_OPERATIONS
