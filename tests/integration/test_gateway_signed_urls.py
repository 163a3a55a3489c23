"""Signed on-the-fly image URLs: verification, rotation, expiry, format negotiation, caching."""

from __future__ import annotations

import re
import time

import aiohttp
import pyvips

from pixelmesh.gateway.signing import ImageAddress, signed_path
from tests import imagegen
from tests.fixtures.gateway import GatewayUnderTest

PROBLEM = "application/problem+json"


async def store(http: aiohttp.ClientSession, gateway: GatewayUnderTest, data: bytes) -> str:
    response = await http.post(
        f"/v1/pipelines/{gateway.pipeline.namespace}/{gateway.pipeline.name}/sources", data=data
    )
    body = await response.json()
    assert response.status == 201, body
    return str(body["sourceKey"])


def address(gateway: GatewayUnderTest, variant: str, source: str, expires: int | None = None) -> ImageAddress:
    return ImageAddress(gateway.pipeline.namespace, gateway.pipeline.name, variant, source, expires)


def metric(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{re.escape(name)}{{{re.escape(labels)}}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_a_signed_url_renders_then_serves_the_stored_output_with_caching_headers(
    gateway: GatewayUnderTest, gateway_worker
):
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        source = await store(http, gateway, imagegen.photo_jpeg(300, 200))
        path = signed_path(gateway.signing_keys[0].encode(), address(gateway, "small", source))
        first = await http.get(path)
        assert first.status == 200, await first.text()
        assert first.content_type == "image/webp"
        image = pyvips.Image.new_from_buffer(await first.read(), "")
        assert (image.width, image.height) == (64, 43)
        assert "immutable" in first.headers["Cache-Control"]
        assert "Vary" not in first.headers

        second = await http.get(path)
        assert second.status == 200
        assert second.headers["ETag"] == first.headers["ETag"]
        assert await second.read() == await first.read()
        exposition = await (await http.get("/metrics")).text()
        assert metric(exposition, "pixelmesh_gateway_image_requests_total", 'outcome="rendered"') == 1
        assert metric(exposition, "pixelmesh_gateway_image_requests_total", 'outcome="stored"') == 1

        cached = await http.get(path, headers={"If-None-Match": first.headers["ETag"]})
        assert cached.status == 304


async def test_a_bad_or_tampered_signature_is_403_bad_signature(gateway: GatewayUnderTest):
    source = "a" * 64
    good = signed_path(gateway.signing_keys[0].encode(), address(gateway, "small", source))
    forged = signed_path(b"not-the-gateway-key-at-all", address(gateway, "small", source))
    tampered = good.replace("/small/", "/any/")
    async with aiohttp.ClientSession(gateway.url) as http:
        for path in (forged, tampered, good.replace(good.split("/")[3], "x" * 43)):
            response = await http.get(path)
            problem = await response.json(content_type=PROBLEM)
            assert response.status == 403
            assert problem["type"] == "https://pixelmesh.io/problems/bad_signature"


async def test_an_expired_url_is_403_and_its_expiry_cannot_be_stretched(gateway: GatewayUnderTest):
    source = "b" * 64
    past = int(time.time()) - 10
    expired = signed_path(gateway.signing_keys[0].encode(), address(gateway, "small", source, past))
    stretched = expired.replace(f"expires={past}", f"expires={past + 3600}")
    async with aiohttp.ClientSession(gateway.url) as http:
        response = await http.get(expired)
        assert response.status == 403
        assert (await response.json(content_type=PROBLEM))["code"] == "signature_expired"
        response = await http.get(stretched)
        assert response.status == 403
        assert (await response.json(content_type=PROBLEM))["code"] == "bad_signature"


async def test_a_url_signed_with_the_rotated_out_key_still_works_until_it_is_dropped(
    gateway: GatewayUnderTest, gateway_worker
):
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        source = await store(http, gateway, imagegen.photo_jpeg(120, 120))
        future = int(time.time()) + 600
        path = signed_path(gateway.signing_keys[1].encode(), address(gateway, "small", source, future))
        response = await http.get(path)
        assert response.status == 200, await response.text()
        assert response.content_type == "image/webp"
        assert int(response.headers["Cache-Control"].split("max-age=")[1].split(",")[0]) <= 600


async def test_an_auto_variant_picks_the_format_from_accept_and_varies_on_it(
    gateway: GatewayUnderTest, gateway_worker
):
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        source = await store(http, gateway, imagegen.photo_jpeg(200, 160))
        path = signed_path(gateway.signing_keys[0].encode(), address(gateway, "any", source))
        expectations = {
            "image/avif,image/webp,*/*": ("image/avif", "heifload"),
            "image/webp,*/*;q=0.8": ("image/webp", "webpload"),
            "*/*": ("image/jpeg", "jpegload"),
        }
        for accept, (content_type, loader) in expectations.items():
            response = await http.get(path, headers={"Accept": accept})
            assert response.status == 200, await response.text()
            assert response.content_type == content_type
            assert response.headers["Vary"] == "Accept"
            image = pyvips.Image.new_from_buffer(await response.read(), "")
            assert image.get("vips-loader").startswith(loader)
            assert (image.width, image.height) == (32, 32)
            if loader == "heifload":
                assert image.get("heif-compression") == "av1"


async def test_a_signed_url_for_a_source_that_is_not_stored_is_404_source_missing(gateway: GatewayUnderTest):
    path = signed_path(gateway.signing_keys[0].encode(), address(gateway, "small", "c" * 64))
    async with aiohttp.ClientSession(gateway.url) as http:
        response = await http.get(path)
        assert response.status == 404
        assert (await response.json(content_type=PROBLEM))["code"] == "source_missing"
