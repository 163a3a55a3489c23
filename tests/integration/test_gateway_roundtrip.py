"""The gateway in front of a real worker: upload, wait, status, download, idempotency."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import nats
import pyvips

from pixelmesh.api import streams
from tests import imagegen
from tests.fixtures.gateway import GatewayUnderTest
from tests.fixtures.nats import submit_job


def jobs_path(gateway: GatewayUnderTest) -> str:
    return f"/v1/pipelines/{gateway.pipeline.namespace}/{gateway.pipeline.name}/jobs"


def metric(text: str, name: str) -> float:
    """The sum of every sample of `name` in a Prometheus exposition."""
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


async def test_upload_wait_download_gives_outputs_of_the_right_size_and_format(
    gateway: GatewayUnderTest, gateway_worker
):
    source = imagegen.photo_jpeg(320, 240)
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        response = await http.post(jobs_path(gateway) + "?wait=20", data=source)
        body = await response.json()
        assert response.status == 200, body
        assert body["state"] == "succeeded"
        assert response.headers["Location"] == f"/v1/jobs/{body['jobId']}"
        outputs = {o["variant"]: o for o in body["outputs"]}
        assert set(outputs) == {"small", "any"}

        small = await http.get(outputs["small"]["href"])
        assert small.status == 200
        assert small.content_type == "image/webp"
        image = pyvips.Image.new_from_buffer(await small.read(), "")
        assert (image.width, image.height) == (64, 48)
        assert image.get("vips-loader").startswith("webpload")
        assert small.headers["ETag"] == f'"{outputs["small"]["sha256"]}"'
        assert "immutable" in small.headers["Cache-Control"]

        again = await http.get(outputs["small"]["href"], headers={"If-None-Match": small.headers["ETag"]})
        assert again.status == 304

        cropped = await http.get(outputs["any"]["href"])
        assert cropped.content_type == "image/jpeg"
        image = pyvips.Image.new_from_buffer(await cropped.read(), "")
        assert (image.width, image.height) == (32, 32)

        status = await http.get(f"/v1/jobs/{body['jobId']}")
        assert (await status.json())["state"] == "succeeded"


async def test_a_job_submitted_without_waiting_is_pending_and_then_long_polled_to_done(
    gateway: GatewayUnderTest, gateway_worker
):
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        response = await http.post(jobs_path(gateway) + "?variant=small", data=imagegen.photo_png(100, 50))
        accepted = await response.json()
        assert response.status == 202
        assert accepted["state"] == "pending"
        assert accepted["region"] == "local"

        status = await http.get(f"/v1/jobs/{accepted['jobId']}?wait=20")
        done = await status.json()
        assert status.status == 200
        assert done["state"] == "succeeded"
        assert [o["variant"] for o in done["outputs"]] == ["small"]
        assert (done["outputs"][0]["width"], done["outputs"][0]["height"]) == (64, 32)


async def test_an_unknown_job_is_404_with_the_not_found_problem(gateway: GatewayUnderTest):
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        for job_id in ("0123456789abcdef", "no such id!"):
            response = await http.get(f"/v1/jobs/{job_id}")
            assert response.status == 404
            assert response.content_type == "application/problem+json"
            problem = await response.json()
            assert problem["type"] == "https://pixelmesh.io/problems/not_found"
            assert problem["status"] == 404
        output = await http.get("/v1/jobs/0123456789abcdef/outputs/small")
        assert output.status == 404


async def test_the_same_idempotency_key_is_one_job_and_identical_sources_are_stored_once(
    gateway: GatewayUnderTest,
):
    source = imagegen.photo_jpeg(64, 64)
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        first = await http.post(jobs_path(gateway), data=source, headers={"Idempotency-Key": "order-42"})
        second = await http.post(jobs_path(gateway), data=source, headers={"Idempotency-Key": "order-42"})
        other = await http.post(jobs_path(gateway), data=source)
        assert first.status == second.status == other.status == 202
        assert (await first.json())["jobId"] == (await second.json())["jobId"] == "order-42"
        assert (await other.json())["jobId"] != "order-42"
        exposition = await (await http.get("/metrics")).text()
    assert metric(exposition, "pixelmesh_gateway_jobs_accepted_total") == 2

    nc = await nats.connect(gateway.nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(streams.job_stream(gateway.pipeline, "local"))
        assert info.state.messages == 2
        store = await js.object_store(streams.sources_bucket("local"))
        assert len(await store.list()) == 1
    finally:
        await nc.close()


async def test_a_job_the_worker_refuses_reports_the_worker_reason_as_its_problem_code(
    gateway: GatewayUnderTest, gateway_worker
):
    # Published straight to JetStream, past the gateway's own header check: the worker refuses it.
    nc = await nats.connect(gateway.nats_url)
    try:
        await submit_job(nc.jetstream(), gateway.pipeline, "bomb-1", imagegen.png_bomb(3000, 3000))
        # The gateway only knows pending jobs it accepted itself; this one it learns of when it fails.
    finally:
        await nc.close()
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            response = await http.get("/v1/jobs/bomb-1")
            if response.status == 200 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)
        view = await response.json()
        assert response.status == 200, view
        assert view["state"] == "failed"
        assert view["error"]["code"] == "too_many_pixels"
        assert view["error"]["type"] == "https://pixelmesh.io/problems/too_many_pixels"
        output = await http.get("/v1/jobs/bomb-1/outputs/small")
        assert output.status == 422
        assert (await output.json())["code"] == "too_many_pixels"


async def test_waiting_on_a_job_the_worker_fails_answers_with_the_failure_problem_and_job_id(
    gateway: GatewayUnderTest, gateway_worker
):
    # A truncated JPEG has a readable header, so only decoding (in the worker) finds it corrupt.
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        response = await http.post(jobs_path(gateway) + "?wait=20", data=imagegen.truncated_jpeg())
        problem = await response.json(content_type="application/problem+json")
        assert response.status == 422, problem
        assert problem["code"] == "corrupt"
        assert problem["jobId"]
        status = await http.get(f"/v1/jobs/{problem['jobId']}")
        view = await status.json()
        assert view["state"] == "failed"
        assert view["error"]["code"] == "corrupt"
