"""The Python client of the PixelMesh gateway: `Client` (async) and `SyncClient` (blocking)."""

from pixelmesh.client.aio import Client, Source, SubmitOutcome, parse_pipeline
from pixelmesh.client.errors import GatewayError, ProblemError
from pixelmesh.client.sync import SyncClient

__all__ = [
    "Client",
    "GatewayError",
    "ProblemError",
    "Source",
    "SubmitOutcome",
    "SyncClient",
    "parse_pipeline",
]
