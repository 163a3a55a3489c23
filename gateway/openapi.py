"""The OpenAPI 3.1 description of the gateway, served at `/openapi.json`.

Paths are written here by hand, next to the handlers they describe; the body schemas are generated
from the same pydantic models the handlers serialise (`pixelmesh.api.http`), so a field cannot be
added to a response without appearing here. The contract test runs schemathesis against this
document and the real gateway.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic.json_schema import models_json_schema

from pixelmesh.api.http import PROBLEM_CONTENT_TYPE, JobView, Problem, StoredSource
from pixelmesh.api.pipeline import OutputType

REF = "#/components/schemas/{model}"
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/avif", "image/gif", "image/tiff")
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": REF.format(model="Problem")}}},
    }


def _json(description: str, schema: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=schema)}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _image(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "ETag": {"description": "The output's sha256, quoted.", "schema": {"type": "string"}},
            "Cache-Control": {"schema": {"type": "string"}},
        },
        "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in IMAGE_TYPES},
    }


def _path_param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string"},
    }


PIPELINE_PARAMS = [
    _path_param("namespace", "The ImagePipeline's namespace.", {"type": "string", "pattern": NAME_PATTERN}),
    _path_param("name", "The ImagePipeline's name.", {"type": "string", "pattern": NAME_PATTERN}),
]
WAIT_PARAM = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": "Seconds to wait for the job to finish (capped by the gateway's maximum).",
    "schema": {"type": "number", "minimum": 0},
}
JOB_ID_PARAM = _path_param("job_id", "The job id.")
IF_NONE_MATCH_PARAM = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
LOCATION = {"Location": {"description": "The job's status URL.", "schema": {"type": "string"}}}
UPLOAD_BODY = {
    "required": True,
    "description": "The image: the raw body, or the first file part of a multipart form.",
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        **{media: {"schema": {"type": "string", "format": "binary"}} for media in IMAGE_TYPES},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
    },
}
UPLOAD_PROBLEMS = {
    "400": _problem("Malformed request (`bad_request`)."),
    "401": _problem("Missing or wrong API key (`unauthorized`)."),
    "404": _problem("No such pipeline or variant (`unknown_pipeline`, `unknown_variant`)."),
    "413": _problem("The body is larger than the pipeline accepts (`payload_too_large`, `too_large`)."),
    "415": _problem("The source format is not accepted (`unsupported_format`)."),
    "422": _problem(
        "The image is refused (`too_many_pixels`, `too_many_frames`, `corrupt`, `processing_failed`)."
    ),
    "429": _problem("The region's backlog is full (`backlog_full`); see `Retry-After`."),
    "503": _problem("No region can take the job right now (`no_region`, `unavailable`, `max_deliveries`)."),
}


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(JobView, "serialization"), (Problem, "serialization"), (StoredSource, "serialization")],
        ref_template=REF,
    )
    schemas: dict[str, Any] = top.get("$defs", {})
    return schemas


@functools.cache
def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PixelMesh gateway",
            "version": "v1",
            "description": (
                "Submit images to ImagePipelines, follow their jobs, download outputs, and serve signed "
                "on-the-fly image URLs. Errors are RFC 9457 problem details with a stable `code`."
            ),
        },
        "paths": {
            "/v1/pipelines/{namespace}/{name}/jobs": {
                "post": {
                    "operationId": "submitJob",
                    "summary": "Submit an image to a pipeline",
                    "description": (
                        "Stores the source under its sha256 and publishes a job. `202` once JetStream has "
                        "acknowledged it (accepted = durable); with `wait`, `200` if it finishes in time."
                    ),
                    "security": SECURITY,
                    "parameters": [
                        *PIPELINE_PARAMS,
                        WAIT_PARAM,
                        {
                            "name": "variant",
                            "in": "query",
                            "required": False,
                            "description": "Only these variants (default: all).",
                            "schema": {"type": "array", "items": {"type": "string"}},
                            "style": "form",
                            "explode": True,
                        },
                        {
                            "name": "format",
                            "in": "query",
                            "required": False,
                            "description": "The format of the pipeline's `auto` variants (default: jpeg).",
                            "schema": {
                                "type": "string",
                                "enum": [t.value for t in OutputType if t is not OutputType.AUTO],
                            },
                        },
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "Becomes the job id: a retry with the same key is the same job.",
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_=-]{0,127}$"},
                        },
                        {
                            "name": "X-PixelMesh-Home-Region",
                            "in": "header",
                            "required": False,
                            "description": "The caller's region: jobs go there unless its weight is 0. "
                            "Empty: route by the pipeline's weights alone. Omitted: this gateway's region.",
                            "schema": {"type": "string", "maxLength": 63},
                        },
                    ],
                    "requestBody": UPLOAD_BODY,
                    "responses": {
                        "200": _json("The job finished within `wait`.", "JobView", LOCATION),
                        "202": _json("The job is accepted (durable) and pending.", "JobView", LOCATION),
                        **UPLOAD_PROBLEMS,
                        "504": _problem("The job passed its deadline (`timeout`)."),
                    },
                }
            },
            "/v1/pipelines/{namespace}/{name}/sources": {
                "post": {
                    "operationId": "storeSource",
                    "summary": "Store a source for signed image URLs",
                    "description": "Stores the image under its sha256 in the region the pipeline routes to.",
                    "security": SECURITY,
                    "parameters": PIPELINE_PARAMS,
                    "requestBody": UPLOAD_BODY,
                    "responses": {
                        "201": _json("The source is stored.", "StoredSource"),
                        **UPLOAD_PROBLEMS,
                    },
                }
            },
            "/v1/jobs/{job_id}": {
                "get": {
                    "operationId": "getJob",
                    "summary": "A job's state and outputs",
                    "security": SECURITY,
                    "parameters": [JOB_ID_PARAM, WAIT_PARAM],
                    "responses": {
                        "200": _json("The job: pending, succeeded or failed.", "JobView"),
                        "400": _problem("Malformed request (`bad_request`)."),
                        "401": _problem("Missing or wrong API key (`unauthorized`)."),
                        "404": _problem("No such job (`not_found`)."),
                        "503": _problem("No region is reachable (`unavailable`)."),
                    },
                }
            },
            "/v1/jobs/{job_id}/outputs/{variant}": {
                "get": {
                    "operationId": "getJobOutput",
                    "summary": "Download one output of a finished job",
                    "security": SECURITY,
                    "parameters": [
                        JOB_ID_PARAM,
                        _path_param("variant", "The variant's name."),
                        IF_NONE_MATCH_PARAM,
                    ],
                    "responses": {
                        "200": _image("The output's bytes."),
                        "304": {"description": "The client's copy (If-None-Match) is current."},
                        "401": _problem("Missing or wrong API key (`unauthorized`)."),
                        "404": _problem(
                            "No such job or output, or not finished (`not_found`, `unknown_variant`)."
                        ),
                        "413": _problem("The job failed (`too_large`)."),
                        "415": _problem("The job failed (`unsupported_format`)."),
                        "422": _problem("The job failed (its failure code)."),
                        "503": _problem(
                            "The store is unreachable (`unavailable`) or the job failed (`max_deliveries`)."
                        ),
                        "504": _problem("The job failed (`timeout`)."),
                    },
                }
            },
            "/v1/img/{signature}/{namespace}/{pipeline}/{variant}/{source}": {
                "get": {
                    "operationId": "getSignedImage",
                    "summary": "A variant of a stored source, by signed URL",
                    "description": (
                        "Serves the stored output when it exists, else renders it and waits. "
                        "The signature is "
                        "HMAC-SHA256 (unpadded base64url) over `/{namespace}/{pipeline}/{variant}/{source}` "
                        "plus `?expires=T` when present. An `auto` variant picks AVIF, WebP or JPEG from "
                        "`Accept` and answers with `Vary: Accept`."
                    ),
                    "parameters": [
                        _path_param("signature", "The URL's signature."),
                        _path_param("namespace", "The ImagePipeline's namespace."),
                        _path_param("pipeline", "The ImagePipeline's name."),
                        _path_param("variant", "The variant's name."),
                        _path_param("source", "The stored source's sha256."),
                        {
                            "name": "expires",
                            "in": "query",
                            "required": False,
                            "description": "Unix time after which the URL is refused (signed).",
                            "schema": {"type": "integer"},
                        },
                        {"name": "Accept", "in": "header", "required": False, "schema": {"type": "string"}},
                        IF_NONE_MATCH_PARAM,
                    ],
                    "responses": {
                        "200": _image("The rendered variant."),
                        "304": {"description": "The client's copy (If-None-Match) is current."},
                        "403": _problem("Bad or expired signature (`bad_signature`, `signature_expired`)."),
                        "404": _problem(
                            "No such pipeline, variant or source "
                            "(`unknown_pipeline`, `unknown_variant`, `source_missing`)."
                        ),
                        "413": _problem("The source was refused (`too_large`)."),
                        "415": _problem("The source was refused (`unsupported_format`)."),
                        "422": _problem("The source was refused (`too_many_pixels`, `corrupt`, ...)."),
                        "429": _problem("The region's backlog is full (`backlog_full`)."),
                        "503": _problem("Still rendering or unavailable (`unavailable`); see `Retry-After`."),
                        "504": _problem("The render passed its deadline (`timeout`)."),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness: the process answers",
                    "responses": {
                        "200": {
                            "description": "Alive.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: at least one region is connected",
                    "responses": {
                        "200": {
                            "description": "Ready.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "503": {
                            "description": "No region is connected.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Metrics in the text exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key as a bearer token.",
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
