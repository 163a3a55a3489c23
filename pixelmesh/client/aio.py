"""The asynchronous client of the gateway's HTTP API.

Submissions are safe to retry: each carries an idempotency key (the caller's, or one the client
makes), which becomes the job id, so a retry after a timeout or a `429`/`503` is the same job, not a
second one. Waiting is a long poll: the gateway holds `POST ...?wait=` (and `GET /v1/jobs/{id}?wait=`)
until the job finishes or its own cap passes, and the client asks again until the caller's
deadline.

`submit_many` keeps `concurrency` submissions in flight and yields each outcome as soon as it is
known, failures included: a bulk run reports every file, it does not stop at the first bad one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

from pixelmesh.api.http import (
    PROBLEM_CONTENT_TYPE,
    PROBLEM_KINDS,
    JobState,
    JobView,
    Problem,
    ProblemCode,
    StoredSource,
)
from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.pipeline import CONCRETE_EXTENSIONS, OutputType
from pixelmesh.client.errors import GatewayError, ProblemError

Source = Path | bytes
POLL_SLICE = 20.0
"""Longest single long-poll; the gateway caps it further."""


def parse_pipeline(pipeline: str | PipelineRef) -> PipelineRef:
    """`namespace/name` (or a PipelineRef) as a PipelineRef."""
    if isinstance(pipeline, PipelineRef):
        return pipeline
    namespace, sep, name = pipeline.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise ValueError(f"a pipeline is named `namespace/name`, got {pipeline!r}")
    return PipelineRef(namespace=namespace, name=name)


def source_label(source: Source) -> str:
    return str(source) if isinstance(source, Path) else f"<{len(source)} bytes>"


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """What happened to one source of a bulk submission."""

    source: str
    job: JobView | None = None
    problem: Problem | None = None
    error: str | None = None
    """A transport failure (the gateway could not be reached)."""
    seconds: float = 0.0
    files: tuple[Path, ...] = ()
    """Outputs written to disk."""

    @property
    def succeeded(self) -> bool:
        return self.job is not None and self.job.state is JobState.SUCCEEDED

    @property
    def reason(self) -> str:
        """Why it did not succeed, in one short word or phrase."""
        if self.problem is not None:
            return self.problem.code.value
        if self.error is not None:
            return "unreachable"
        if self.job is not None and self.job.error is not None:
            return self.job.error.code.value
        if self.job is not None and self.job.state is JobState.PENDING:
            return "still_pending"
        return ""

    @property
    def message(self) -> str:
        if self.problem is not None:
            return self.problem.detail or self.problem.title
        if self.error is not None:
            return self.error
        if self.job is not None and self.job.error is not None:
            return self.job.error.message
        if self.job is not None and self.job.state is JobState.PENDING:
            return f"job {self.job.job_id} did not finish in time"
        return ""


@dataclass
class Client:
    """The gateway's API: `async with Client(url, api_key=key) as c: await c.submit("ns/name", path)`."""

    base_url: str
    api_key: str | None = None
    request_timeout: float = 120.0
    retries: int = 4
    """Attempts after the first for retryable answers (429, 503) and connection failures."""
    max_connections: int = 64
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"User-Agent": "pixelmesh-client"}
            if self.api_key:
                headers["Authorization"] = f"Bearer {self.api_key}"
            self._session = aiohttp.ClientSession(
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
                connector=aiohttp.TCPConnector(limit=self.max_connections),
            )
        return self._session

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    async def _request(self, method: str, path: str, **kwargs: Any) -> tuple[int, bytes, str]:
        """(status, body, content type), retrying retryable answers and connection failures."""
        attempt = 0
        while True:
            try:
                async with self._http().request(method, self.url(path), **kwargs) as response:
                    body = await response.read()
                    status, content_type = response.status, response.content_type
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientConnectionError, TimeoutError) as error:
                if attempt >= self.retries:
                    raise GatewayError(
                        f"{method} {path}: the gateway could not be reached: {error}"
                    ) from error
                await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
                attempt += 1
                continue
            if status < 400:
                return status, body, content_type
            refusal = ProblemError(_problem_of(status, body, content_type, path))
            if not refusal.retryable or attempt >= self.retries:
                raise refusal
            await asyncio.sleep(_retry_delay(retry_after, attempt))
            attempt += 1

    async def submit(
        self,
        pipeline: str | PipelineRef,
        source: Source,
        *,
        wait: float | None = None,
        variants: Sequence[str] | None = None,
        output_format: OutputType | str | None = None,
        idempotency_key: str | None = None,
    ) -> JobView:
        """Submit `source` (a file or bytes); the job once accepted, or once finished if `wait` allows.

        A job that fails while waited on raises ProblemError with its failure code and job id.
        """
        data = await _read(source)
        params: list[tuple[str, str]] = [("variant", name) for name in variants or ()]
        if output_format is not None:
            params.append(("format", OutputType(output_format).value))
        deadline = time.monotonic() + (wait or 0.0)
        if wait:
            params.append(("wait", f"{min(wait, POLL_SLICE):g}"))
        headers = {
            "Idempotency-Key": idempotency_key or uuid.uuid4().hex,
            "Content-Type": "application/octet-stream",
        }
        _, body, _ = await self._request(
            "POST",
            _pipeline_path(pipeline, "jobs"),
            data=data,
            params=params,
            headers=headers,
        )
        view = JobView.model_validate_json(body)
        if view.done or not wait:
            return view
        return await self.wait(view.job_id, max(0.0, deadline - time.monotonic()))

    async def status(self, job: str | JobView, *, wait: float | None = None) -> JobView:
        """The job's current view; with `wait`, the gateway holds the answer until it finishes (capped)."""
        job_id = job.job_id if isinstance(job, JobView) else job
        params = {"wait": f"{wait:g}"} if wait else None
        _, body, _ = await self._request("GET", f"/v1/jobs/{job_id}", params=params)
        return JobView.model_validate_json(body)

    async def wait(self, job: str | JobView, seconds: float) -> JobView:
        """Long-poll until the job finishes or `seconds` pass; the last view either way.

        A failed job raises ProblemError with its failure code, as `submit(wait=...)` does.
        """
        job_id = job.job_id if isinstance(job, JobView) else job
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            view = await self.status(job_id, wait=min(max(remaining, 0.0), POLL_SLICE) or None)
            if view.state is JobState.FAILED and view.error is not None:
                raise ProblemError(_failure_problem(view))
            if view.done or remaining <= 0:
                return view

    async def download(self, job: str | JobView, variant: str, dest: Path) -> Path:
        """Write one output to `dest` (a file, or a directory that gets `<job>.<variant>.<ext>`)."""
        view = job if isinstance(job, JobView) else await self.status(job)
        link = view.output(variant)
        _, body, _ = await self._request("GET", link.href)
        name = f"{view.job_id}.{variant}.{CONCRETE_EXTENSIONS[link.format]}"
        return await asyncio.to_thread(_write, dest, name, body)

    async def fetch(self, path: str, *, headers: dict[str, str] | None = None) -> bytes:
        """GET any gateway path (a signed image URL's path, an output href) and return the body."""
        _, body, _ = await self._request("GET", path, headers=headers)
        return body

    async def store_source(self, pipeline: str | PipelineRef, source: Source) -> StoredSource:
        """Keep a source in the region the pipeline routes to, for signed image URLs."""
        _, body, _ = await self._request(
            "POST",
            _pipeline_path(pipeline, "sources"),
            data=await _read(source),
            headers={"Content-Type": "application/octet-stream"},
        )
        return StoredSource.model_validate_json(body)

    async def submit_many(
        self,
        pipeline: str | PipelineRef,
        sources: Iterable[Source],
        *,
        concurrency: int = 16,
        wait: float = 120.0,
        out_dir: Path | None = None,
        variants: Sequence[str] | None = None,
    ) -> AsyncGenerator[SubmitOutcome]:
        """Submit every source, `concurrency` at a time; yield each outcome as it is known.

        With `out_dir`, each finished job's outputs are written there as `<stem>.<variant>.<ext>`.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        ref = parse_pipeline(pipeline)
        pending = iter(sources)
        outcomes: asyncio.Queue[SubmitOutcome | None] = asyncio.Queue()

        async def run_one(source: Source) -> SubmitOutcome:
            started = time.monotonic()
            label = source_label(source)
            try:
                view = await self.submit(ref, source, wait=wait, variants=variants)
                files: tuple[Path, ...] = ()
                if out_dir is not None and view.state is JobState.SUCCEEDED:
                    files = await self._save_outputs(view, source, out_dir)
            except ProblemError as error:
                return SubmitOutcome(label, problem=error.problem, seconds=time.monotonic() - started)
            except GatewayError as error:
                return SubmitOutcome(label, error=str(error), seconds=time.monotonic() - started)
            return SubmitOutcome(label, job=view, seconds=time.monotonic() - started, files=files)

        async def lane() -> None:
            for source in pending:  # lanes share one iterator: each source is taken once
                await outcomes.put(await run_one(source))
            await outcomes.put(None)

        lanes = [asyncio.create_task(lane()) for _ in range(concurrency)]
        try:
            finished_lanes = 0
            while finished_lanes < len(lanes):
                outcome = await outcomes.get()
                if outcome is None:
                    finished_lanes += 1
                    continue
                yield outcome
        finally:
            for task in lanes:
                task.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)

    async def _save_outputs(self, view: JobView, source: Source, out_dir: Path) -> tuple[Path, ...]:
        stem = source.stem if isinstance(source, Path) else view.job_id
        written = []
        for link in view.outputs:
            dest = out_dir / f"{stem}.{link.variant}.{CONCRETE_EXTENSIONS[link.format]}"
            written.append(await self.download(view, link.variant, dest))
        return tuple(written)


def _pipeline_path(pipeline: str | PipelineRef, collection: str) -> str:
    ref = parse_pipeline(pipeline)
    return f"/v1/pipelines/{ref.namespace}/{ref.name}/{collection}"


async def _read(source: Source) -> bytes:
    return source if isinstance(source, bytes) else await asyncio.to_thread(source.read_bytes)


def _write(dest: Path, name: str, body: bytes) -> Path:
    """Write `body` to `dest`, or to `dest/name` when `dest` is a directory; the path written."""
    if dest.is_dir():
        dest = dest / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(body)
    return dest


def _retry_delay(retry_after: str | None, attempt: int) -> float:
    try:
        delay = float(retry_after) if retry_after is not None else 0.5 * 2**attempt
    except ValueError:
        delay = 0.5 * 2**attempt
    return min(max(delay, 0.05), 30.0)


def _problem_of(status: int, body: bytes, content_type: str, path: str) -> Problem:
    if content_type == PROBLEM_CONTENT_TYPE:
        try:
            return Problem.model_validate_json(body)
        except ValueError:
            pass
    text = body[:200].decode("utf-8", "replace")
    raise GatewayError(f"{path}: the gateway answered {status} with {content_type or 'no type'}: {text}")


def _failure_problem(view: JobView) -> Problem:
    assert view.error is not None
    kind = PROBLEM_KINDS[view.error.code]
    return Problem(
        type=view.error.type,
        title=kind.title,
        status=kind.status,
        detail=view.error.message,
        code=view.error.code,
        job_id=view.job_id,
    )


__all__ = ["Client", "ProblemCode", "Source", "SubmitOutcome", "parse_pipeline"]
