"""A member cluster's kubeconfig becomes a client configuration; the hub picks runtimes by cluster."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import ClusterRef, SecretKeyRef
from pixelmesh.operator.clients.kube import KubeClient
from pixelmesh.operator.clients.members import (
    KubeconfigInvalidError,
    KubeconfigSecretMissingError,
    MemberClusters,
    build_configuration,
    build_member,
    parse_kubeconfig,
)
from pixelmesh.operator.runtime import Applied, PlacedWorkers, RuntimeAction, WorkerObservation
from pixelmesh.operator.runtime.members import MemberRuntime, MemberRuntimes
from pixelmesh.operator.target import RegionPlacement, WorkerTarget

CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
SECRET = SecretKeyRef(name="eu-kubeconfig", namespace="pixelmesh-system", key="kubeconfig")


def kubeconfig(user: dict[str, Any] | None = None, **cluster: Any) -> dict[str, Any]:
    """A kubeconfig as `ControlPlane.service_account_kubeconfig` writes one, with changes."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "eu",
                "cluster": {
                    "server": "https://10.0.0.1:6443/",
                    "certificate-authority-data": base64.b64encode(CA_PEM.encode()).decode(),
                    **cluster,
                },
            }
        ],
        "users": [{"name": "operator", "user": user if user is not None else {"token": "s3cret"}}],
        "contexts": [{"name": "operator@eu", "context": {"cluster": "eu", "user": "operator"}}],
        "current-context": "operator@eu",
    }


def encoded(config: dict[str, Any]) -> bytes:
    return yaml.safe_dump(config).encode()


def test_a_token_kubeconfig_becomes_a_configuration_with_the_ca_in_memory() -> None:
    parsed = parse_kubeconfig(encoded(kubeconfig()))
    assert (parsed.server, parsed.token, parsed.ca_data) == ("https://10.0.0.1:6443", "s3cret", CA_PEM)
    configuration = build_configuration(parsed)
    assert configuration.host == "https://10.0.0.1:6443"
    assert configuration.ca_cert_data == CA_PEM
    assert configuration.ssl_ca_cert is None, "no CA file is written"
    assert configuration.verify_ssl
    assert configuration.get_api_key_with_prefix("BearerToken") == "Bearer s3cret"


def test_tls_options_and_basic_auth_are_carried_over() -> None:
    config = kubeconfig(
        {"username": "ops", "password": "pw"},
        **{"insecure-skip-tls-verify": True, "tls-server-name": "api.eu"},
    )
    configuration = build_configuration(parse_kubeconfig(encoded(config)))
    assert not configuration.verify_ssl
    assert configuration.tls_server_name == "api.eu"
    assert (
        configuration.get_api_key_with_prefix("BearerToken")
        == "Basic " + base64.b64encode(b"ops:pw").decode()
    )


def test_a_lone_context_is_used_without_current_context() -> None:
    config = kubeconfig()
    del config["current-context"]
    assert parse_kubeconfig(encoded(config)).token == "s3cret"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c["users"][0]["user"].update(exec={"command": "aws"}), "exec"),
        (lambda c: c["users"][0]["user"].update({"auth-provider": {"name": "gcp"}}), "auth-provider"),
        (
            lambda c: c["clusters"][0]["cluster"].update({"certificate-authority": "/etc/ca.crt"}),
            "names a file",
        ),
        (lambda c: c["users"][0]["user"].update(tokenFile="/var/token"), "names a file"),
        (lambda c: c.update({"current-context": "elsewhere"}), "context 'elsewhere' but does not define"),
        (lambda c: c["clusters"][0]["cluster"].update(server="10.0.0.1:6443"), r"not an http\(s\) URL"),
        (lambda c: c["users"][0].update(user={}), "no token, client certificate or password"),
        (lambda c: c["users"][0].update(user={"client-certificate-data": "Zm9v"}), "go together"),
        (lambda c: c["clusters"][0]["cluster"].update({"certificate-authority-data": "%%%"}), "base64"),
    ],
)
def test_kubeconfigs_the_operator_cannot_use_are_refused_with_the_reason(change: Any, expected: str) -> None:
    config = kubeconfig()
    change(config)
    with pytest.raises(KubeconfigInvalidError, match=expected):
        parse_kubeconfig(encoded(config))


@pytest.mark.parametrize("data", [b"users: [unclosed", b"- just\n- a list\n", b""])
def test_text_that_is_no_kubeconfig_is_refused(data: bytes) -> None:
    with pytest.raises(KubeconfigInvalidError):
        parse_kubeconfig(data)


async def no_credentials(ref: SecretKeyRef) -> bytes:
    raise LookupError(f"Secret {ref.namespace}/{ref.name} does not exist")


def test_client_certificates_live_in_a_private_directory_removed_on_close() -> None:
    user = {
        "client-certificate-data": base64.b64encode(b"CERT").decode(),
        "client-key-data": base64.b64encode(b"KEY").decode(),
    }
    member = build_member(SECRET, encoded(kubeconfig(user)), no_credentials, checked_at=0.0)
    assert member.files is not None
    certificate, key = Path(str(member.configuration.cert_file)), Path(str(member.configuration.key_file))
    assert (certificate.read_bytes(), key.read_bytes()) == (b"CERT", b"KEY")
    assert certificate.parent == member.files
    assert member.files.stat().st_mode & 0o077 == 0
    assert key.stat().st_mode & 0o077 == 0
    member.close()
    assert member.closed
    assert not member.files.exists()


def test_an_invalid_kubeconfig_names_its_secret() -> None:
    with pytest.raises(KubeconfigInvalidError, match="Secret pixelmesh-system/eu-kubeconfig"):
        build_member(SECRET, b"kind: Config\n", no_credentials, checked_at=0.0)


# --- choosing runtimes -------------------------------------------------------------------------------


class OwnRuntime:
    """The own cluster's runtime: never called in these tests."""

    async def apply(self, target: WorkerTarget, replicas: int) -> Applied:
        raise AssertionError

    async def scale(self, target: WorkerTarget, replicas: int) -> RuntimeAction | None:
        raise AssertionError

    async def observe(self, target: WorkerTarget) -> WorkerObservation:
        raise AssertionError

    async def placed(self, ref: PipelineRef) -> list[PlacedWorkers]:
        raise AssertionError

    async def remove(self, ref: PipelineRef, region: str) -> list[RuntimeAction]:
        raise AssertionError


@pytest.fixture
def provider() -> Iterator[MemberRuntimes]:
    own = KubeClient(build_configuration(parse_kubeconfig(encoded(kubeconfig()))))
    members = MemberClusters(own, no_credentials)
    yield MemberRuntimes(OwnRuntime(), members)
    members.close()
    own.close()


def placement(cluster: ClusterRef | None, region: str = "eu") -> RegionPlacement:
    return RegionPlacement(
        region=region, pool=region, weight=100, nats_urls=("nats://n:4222",), cluster=cluster
    )


def test_the_own_cluster_is_served_by_the_own_runtime(provider: MemberRuntimes) -> None:
    assert provider.for_region(placement(None)) is provider.own
    assert list(provider.all()) == [provider.own]


def test_regions_of_one_secret_share_one_member_runtime_and_unreached_members_are_not_searched(
    provider: MemberRuntimes,
) -> None:
    cluster = ClusterRef(kubeconfig_secret=SECRET)
    other = ClusterRef(kubeconfig_secret=SECRET.model_copy(update={"name": "us-kubeconfig"}))
    eu = provider.for_region(placement(cluster, "eu"))
    assert isinstance(eu, MemberRuntime)
    assert provider.for_region(placement(cluster, "eu-2")) is eu
    assert provider.for_region(placement(other, "us")) is not eu
    assert list(provider.all()) == [provider.own], "no member was reached yet"


async def test_a_missing_secret_fails_the_region_and_names_the_secret(provider: MemberRuntimes) -> None:
    runtime = provider.for_region(placement(ClusterRef(kubeconfig_secret=SECRET)))
    with pytest.raises(KubeconfigSecretMissingError) as error:
        await runtime.placed(PipelineRef(namespace="media", name="thumbnails"))
    assert "pixelmesh-system/eu-kubeconfig does not exist" in str(error.value)
