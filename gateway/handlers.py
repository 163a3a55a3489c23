"""The HTTP handlers: parse the request, call the job service, shape the response. No NATS here.

Every failure leaves as a `ProblemError` and becomes problem+json in the middleware (`app.py`).
"""

from __future__ import annotations

import asyncio
import math
import time

from aiohttp import web

from pixelmesh.api.base import ApiModel
from pixelmesh.api.http import JobState, JobView, ProblemCode, StoredSource
from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.pipeline import OutputType
from pixelmesh.gateway import signing
from pixelmesh.gateway.auth import ApiKeys
from pixelmesh.gateway.catalog import CatalogEntry
from pixelmesh.gateway.config import GatewayConfig
from pixelmesh.gateway.metrics import PROMETHEUS_CONTENT_TYPE, GatewayMetrics
from pixelmesh.gateway.negotiation import choose_format
from pixelmesh.gateway.openapi import openapi_document
from pixelmesh.gateway.probe import check_source
from pixelmesh.gateway.problems import ProblemError, problem_response
from pixelmesh.gateway.service import JobService, Route, StoredObject, is_job_id, new_job_id
from pixelmesh.gateway.upload import check_declared_length, read_source

SERVICE = web.AppKey("service", JobService)
CONFIG = web.AppKey("config", GatewayConfig)
API_KEYS = web.AppKey("api_keys", ApiKeys)
METRICS = web.AppKey("metrics", GatewayMetrics)

YEAR = 365 * 24 * 3600
JSON = "application/json"


def json_response(
    model: ApiModel, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=model.model_dump_json(by_alias=True, exclude_none=True).encode(),
        content_type=JSON,
        headers=headers,
    )


def pipeline_ref(request: web.Request) -> PipelineRef:
    try:
        return PipelineRef(namespace=request.match_info["namespace"], name=request.match_info["name"])
    except ValueError as error:
        raise ProblemError(ProblemCode.UNKNOWN_PIPELINE, "the pipeline name is not valid") from error


def wait_seconds(request: web.Request, limit: float) -> float:
    """`?wait=` as seconds, capped at `limit`; 0 when absent."""
    raw = request.query.get("wait")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError as error:
        raise ProblemError(
            ProblemCode.BAD_REQUEST, f"wait must be a number of seconds, got {raw!r}"
        ) from error
    if not math.isfinite(value) or value < 0:
        raise ProblemError(
            ProblemCode.BAD_REQUEST, f"wait must be a non-negative number of seconds, got {raw!r}"
        )
    return min(value, limit)


def requested_variants(request: web.Request, entry: CatalogEntry) -> list[str] | None:
    names = request.query.getall("variant", [])
    if not names:
        return None
    known = {variant.name for variant in entry.spec.variants}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ProblemError(
            ProblemCode.UNKNOWN_VARIANT, f"pipeline {entry.ref} has no variant {', '.join(unknown)}"
        )
    return list(dict.fromkeys(names))


def auto_formats(
    request: web.Request, entry: CatalogEntry, variants: list[str] | None
) -> dict[str, OutputType]:
    """Concrete formats for the job's `auto` variants: `?format=` or else JPEG (the worker's default)."""
    raw = request.query.get("format")
    if raw is None:
        return {}
    try:
        fmt = OutputType(raw)
    except ValueError as error:
        raise ProblemError(ProblemCode.BAD_REQUEST, f"format {raw!r} is not an output format") from error
    if fmt is OutputType.AUTO:
        raise ProblemError(ProblemCode.BAD_REQUEST, "format must be a concrete format, not auto")
    wanted = set(variants) if variants else None
    return {name: fmt for name in entry.auto_variants() if wanted is None or name in wanted}


def upload_limit(config: GatewayConfig, entry: CatalogEntry) -> int:
    return min(config.max_upload_bytes, entry.spec.input.max_bytes)


async def _expect_refusal(request: web.Request) -> None:
    """Raise the problem that should answer `Expect: 100-continue` instead of `100 Continue`."""
    app = request.app
    if request.headers.get("Expect", "").lower() != "100-continue":
        raise ProblemError(ProblemCode.BAD_REQUEST, "only `Expect: 100-continue` is understood")
    app[API_KEYS].require(request.headers)
    entry = await app[SERVICE].pipeline(pipeline_ref(request))
    check_declared_length(request, upload_limit(app[CONFIG], entry))


async def submit_expect(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue`: refuse before the client sends the body, or tell it to go on."""
    try:
        await _expect_refusal(request)
    except ProblemError as error:
        request.app[METRICS].problems.labels(error.code.value).inc()
        response = problem_response(error, instance=request.path)
        response.force_close()
        return response
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0
    return None


HOME_REGION_HEADER = "X-PixelMesh-Home-Region"
"""The caller's region (set by an edge that knows it); empty: route by weight alone."""


def caller_region(request: web.Request) -> str | None:
    """The caller's home region from the request, or None to assume this gateway's own."""
    value = request.headers.get(HOME_REGION_HEADER)
    return value.strip() if value is not None else None


async def receive_source(request: web.Request, entry: CatalogEntry, route: Route) -> tuple[str, int]:
    """Read the upload, refuse a bad one, store it in the route's region: (source key, size)."""
    app = request.app
    data = await read_source(request, upload_limit(app[CONFIG], entry))
    app[METRICS].upload_bytes.labels(str(entry.ref)).inc(len(data))
    # Header parsing is quick, but it is C code on untrusted bytes: keep it off the event loop.
    refusal = await asyncio.to_thread(check_source, data, entry.spec.input)
    if refusal is not None:
        raise ProblemError(refusal.code, refusal.detail)
    return await app[SERVICE].store_source(route, data), len(data)


async def submit_job(request: web.Request) -> web.Response:
    app = request.app
    config, service = app[CONFIG], app[SERVICE]
    app[API_KEYS].require(request.headers)
    entry = await service.pipeline(pipeline_ref(request))
    wait = wait_seconds(request, config.max_wait_seconds)
    variants = requested_variants(request, entry)
    formats = auto_formats(request, entry, variants)
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is not None:
        if not is_job_id(idempotency_key):
            raise ProblemError(
                ProblemCode.BAD_REQUEST,
                "Idempotency-Key must be 1-128 characters of letters, digits, `_`, `=` and `-`",
            )
        earlier = await service.find(idempotency_key)
        if earlier is not None:
            return job_response(await service.wait_on(earlier, wait))
    route = await service.route(entry, caller_region(request))
    service.check_backlog(entry, route.region)
    source_key, source_size = await receive_source(request, entry, route)
    view = await service.submit(
        entry=entry,
        route=route,
        source_key=source_key,
        source_size=source_size,
        job_id=idempotency_key or new_job_id(),
        variants=variants,
        formats=formats,
        wait=wait,
    )
    return job_response(view)


def job_response(view: JobView) -> web.Response:
    status = 202 if view.state is JobState.PENDING else 200
    return json_response(view, status=status, headers={"Location": f"/v1/jobs/{view.job_id}"})


async def store_source(request: web.Request) -> web.Response:
    app = request.app
    service = app[SERVICE]
    app[API_KEYS].require(request.headers)
    entry = await service.pipeline(pipeline_ref(request))
    route = await service.route(entry, caller_region(request))
    key, size = await receive_source(request, entry, route)
    return json_response(StoredSource(source_key=key, size=size, region=route.region.name), status=201)


async def job_status(request: web.Request) -> web.Response:
    app = request.app
    app[API_KEYS].require(request.headers)
    wait = wait_seconds(request, app[CONFIG].max_wait_seconds)
    view = await app[SERVICE].status(request.match_info["job_id"], wait)
    return json_response(view)


def etag_of(sha256: str) -> str:
    return f'"{sha256}"'


def not_modified(request: web.Request, etag: str) -> bool:
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in candidates or etag in candidates


async def object_response(
    request: web.Request, stored: StoredObject, *, cache_control: str, vary: str | None = None
) -> web.Response:
    etag = etag_of(stored.sha256)
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if vary:
        headers["Vary"] = vary
    if not_modified(request, etag):
        return web.Response(status=304, headers=headers)
    data = b"" if request.method == "HEAD" else await request.app[SERVICE].read(stored)
    response = web.Response(body=data, content_type=stored.content_type, headers=headers)
    if request.method == "HEAD":
        response.content_length = stored.size
    return response


async def job_output(request: web.Request) -> web.Response:
    app = request.app
    app[API_KEYS].require(request.headers)
    stored = await app[SERVICE].output(request.match_info["job_id"], request.match_info["variant"])
    return await object_response(request, stored, cache_control=f"private, max-age={YEAR}, immutable")


def image_address(request: web.Request) -> signing.ImageAddress:
    raw = request.query.get("expires")
    expires: int | None = None
    if raw is not None:
        try:
            expires = int(raw)
        except ValueError as error:
            raise ProblemError(ProblemCode.BAD_SIGNATURE, "expires must be a Unix time") from error
    info = request.match_info
    return signing.ImageAddress(
        namespace=info["namespace"],
        pipeline=info["pipeline"],
        variant=info["variant"],
        source=info["source"],
        expires=expires,
    )


async def signed_image(request: web.Request) -> web.Response:
    app = request.app
    config, service = app[CONFIG], app[SERVICE]
    address = image_address(request)
    keys = [key.encode() for key in config.signing_keys]
    verdict = signing.verify(keys, request.match_info["signature"], address, time.time())
    if verdict is signing.Verdict.BAD_SIGNATURE:
        detail = "the signature does not match" if keys else "signed URLs are not enabled on this gateway"
        raise ProblemError(ProblemCode.BAD_SIGNATURE, detail)
    if verdict is signing.Verdict.EXPIRED:
        raise ProblemError(ProblemCode.SIGNATURE_EXPIRED, f"the URL expired at {address.expires}")
    entry = await service.pipeline(PipelineRef(namespace=address.namespace, name=address.pipeline))
    try:
        variant = entry.spec.variant(address.variant)
    except KeyError as error:
        raise ProblemError(
            ProblemCode.UNKNOWN_VARIANT, f"pipeline {entry.ref} has no variant {address.variant}"
        ) from error
    if signing.SOURCE_KEY.fullmatch(address.source) is None:
        raise ProblemError(ProblemCode.SOURCE_MISSING, "the source must be a stored source's sha256")
    is_auto = variant.format.type is OutputType.AUTO
    fmt = choose_format(request.headers.get("Accept")) if is_auto else variant.format.type
    stored = await service.render(entry, address.source, variant.name, fmt)
    lifetime = YEAR if address.expires is None else max(0, min(YEAR, address.expires - int(time.time())))
    return await object_response(
        request,
        stored,
        cache_control=f"public, max-age={lifetime}, immutable",
        vary="Accept" if is_auto else None,
    )


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    regions = request.app[SERVICE].regions
    states = {name: link.connected for name, link in regions.links.items()}
    ready = any(states.values())
    return web.json_response({"ready": ready, "regions": states}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = PROMETHEUS_CONTENT_TYPE
    return response


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def add_routes(app: web.Application) -> None:
    pipeline = "/v1/pipelines/{namespace}/{name}"
    app.router.add_post(pipeline + "/jobs", submit_job, expect_handler=submit_expect)
    app.router.add_post(pipeline + "/sources", store_source, expect_handler=submit_expect)
    app.router.add_get("/v1/jobs/{job_id}", job_status)
    app.router.add_get("/v1/jobs/{job_id}/outputs/{variant}", job_output)
    app.router.add_get("/v1/img/{signature}/{namespace}/{pipeline}/{variant}/{source}", signed_image)
    app.router.add_get("/healthz", healthz, allow_head=False)
    app.router.add_get("/readyz", readyz, allow_head=False)
    app.router.add_get("/metrics", metrics, allow_head=False)
    app.router.add_get("/openapi.json", openapi, allow_head=False)
