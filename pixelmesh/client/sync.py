"""A blocking wrapper of `Client` for scripts and notebooks without an event loop.

It owns one event loop (an `asyncio.Runner`) for its lifetime, so the HTTP connection pool is
reused across calls. Do not use it from inside a running event loop: use `Client` there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pixelmesh.api.http import JobView, StoredSource
from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.pipeline import OutputType
from pixelmesh.client.aio import Client, Source, SubmitOutcome


class SyncClient:
    """`with SyncClient(url, api_key=...) as client: client.submit("ns/name", path, wait=30)`."""

    def __init__(self, base_url: str, **options: Any) -> None:
        self._runner = asyncio.Runner()
        self._client = Client(base_url, **options)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._runner.run(self._client.close())
        self._runner.close()

    def submit(
        self,
        pipeline: str | PipelineRef,
        source: Source,
        *,
        wait: float | None = None,
        variants: Sequence[str] | None = None,
        output_format: OutputType | str | None = None,
        idempotency_key: str | None = None,
    ) -> JobView:
        return self._runner.run(
            self._client.submit(
                pipeline,
                source,
                wait=wait,
                variants=variants,
                output_format=output_format,
                idempotency_key=idempotency_key,
            )
        )

    def status(self, job: str | JobView, *, wait: float | None = None) -> JobView:
        return self._runner.run(self._client.status(job, wait=wait))

    def wait(self, job: str | JobView, seconds: float) -> JobView:
        return self._runner.run(self._client.wait(job, seconds))

    def download(self, job: str | JobView, variant: str, dest: Path) -> Path:
        return self._runner.run(self._client.download(job, variant, dest))

    def store_source(self, pipeline: str | PipelineRef, source: Source) -> StoredSource:
        return self._runner.run(self._client.store_source(pipeline, source))

    def submit_many(
        self,
        pipeline: str | PipelineRef,
        sources: Iterable[Source],
        *,
        concurrency: int = 16,
        wait: float = 120.0,
        out_dir: Path | None = None,
        variants: Sequence[str] | None = None,
    ) -> Iterator[SubmitOutcome]:
        """Outcomes as they come; stopping the iteration early cancels what is still in flight."""
        outcomes = self._client.submit_many(
            pipeline, sources, concurrency=concurrency, wait=wait, out_dir=out_dir, variants=variants
        )
        try:
            while True:
                try:
                    yield self._runner.run(_next(outcomes))
                except StopAsyncIteration:
                    return
        finally:
            self._runner.run(outcomes.aclose())


async def _next(outcomes: AsyncGenerator[SubmitOutcome]) -> SubmitOutcome:
    return await anext(outcomes)
