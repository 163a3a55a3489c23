"""The gateway against its own OpenAPI document, with schemathesis: no 5xx, answers as documented."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import CheckFunction, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from pixelmesh.gateway.app import serve
from pixelmesh.gateway.config import GatewayConfig
from pixelmesh.gateway.openapi import openapi_document
from tests.fixtures.gateway import API_KEY, SIGNING_KEY, GatewayUnderTest

EXAMPLES_PER_OPERATION = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def run_examples(
    strategy: SearchStrategy[schemathesis.Case], base_url: str, checks: list[CheckFunction]
) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_errors(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"}, checks=checks, timeout=10
        )

    no_server_errors()


def exercise(base_url: str, document: dict[str, object]) -> list[str]:
    """Run generated requests against every operation; the operations checked."""
    schema = schemathesis.openapi.from_dict(document)
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            checks = CHECKS if mode is GenerationMode.POSITIVE else [not_a_server_error]
            try:
                run_examples(operation.as_strategy(generation_mode=mode), base_url, checks)
            except Unsatisfiable:
                # An operation without parameters or body has no invalid request to make.
                assert mode is GenerationMode.NEGATIVE, operation.label
        checked.append(operation.label)
    return checked


@pytest.mark.slow
async def test_the_served_document_is_the_one_described_and_the_gateway_conforms_to_it(
    gateway: GatewayUnderTest, tmp_path
):
    config = GatewayConfig(
        port=0,
        regions={"local": (gateway.nats_url,)},
        pipelines=(tmp_path / "pipelines",),
        api_keys=(API_KEY,),
        signing_keys=(SIGNING_KEY,),
        max_wait_seconds=0.5,
        image_wait_seconds=0.5,
    )
    async with serve(config) as running, aiohttp.ClientSession() as http:
        served = await (await http.get(running.url + "/openapi.json")).json()
        assert served == openapi_document()
        checked = await asyncio.wait_for(asyncio.to_thread(exercise, running.url, served), 90)
        exposition = await (await http.get(running.url + "/metrics")).text()
    assert len(checked) == 9
    answered = re.findall(
        r'^pixelmesh_gateway_requests_total{.*status="(\d+)"} (\S+)$', exposition, re.MULTILINE
    )
    by_class = {cls: sum(float(n) for status, n in answered if status[0] == cls) for cls in "2345"}
    assert by_class["5"] == 0
    assert by_class["4"] > 100  # schemathesis really probed the refusals
    assert by_class["2"] >= 4  # at least the probes, the metrics and the document itself
