"""Member clusters: the Kubernetes API of a region that is not the operator's own cluster.

A RegionPool's `spec.cluster` names a Secret in the hub holding a kubeconfig for the region's
cluster. The operator writes a pipeline's children there with those credentials, follows their
rotation, and must not leave key material on disk.

The kubeconfig's current context is parsed here (pure) into a `kubernetes.client.Configuration`:
the server's CA goes in as data (`ca_cert_data`), a bearer token as the API key, so the common
case (a ServiceAccount token with embedded CA) touches no file. Each Secret key maps to one
`MemberCluster` (configuration, `KubeClient`, `KubernetesRuntime`); the Secret is re-read at most
every `refresh_seconds`, and new content builds a new member and closes the old one. A Secret
that vanished drops its member: credentials someone removed are not used from memory.

Caveats: exec plugins and auth providers are refused (they would run programs inside the
operator); client certificates need files for urllib3, so they live in a private directory that
is removed when the member closes. A request already running on a replaced client may fail; the
next pass retries it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import kubernetes.client
import yaml

from pixelmesh.api.resources import ClusterRef, SecretKeyRef
from pixelmesh.operator.clients.kube import SECRET, KubeClient, KubeError
from pixelmesh.operator.runtime.kubernetes import KubernetesRuntime

logger = logging.getLogger(__name__)

CredentialsLoader = Callable[[SecretKeyRef], Awaitable[bytes]]
SecretKey = tuple[str, str, str]
"""A Secret key as (namespace, name, key): what members are cached by."""

DEFAULT_REFRESH_SECONDS = 10.0
MAX_MESSAGE = 300
"""Longest error text kept in a probe's message (a status line, not a traceback)."""


class SecretKeyMissingError(LookupError):
    """A Secret named by a RegionPool does not exist or lacks the key."""


class MemberClusterError(RuntimeError):
    """A member cluster cannot be used; the message says why and names the Secret."""


class KubeconfigSecretMissingError(MemberClusterError):
    """The kubeconfig Secret, or its key, does not exist (or cannot be read)."""


class KubeconfigInvalidError(MemberClusterError):
    """The Secret's kubeconfig does not parse or uses something the operator does not support."""


def secret_key_reader(kube: KubeClient) -> CredentialsLoader:
    """Reads one key of a Secret through `kube`, raising `SecretKeyMissingError` when absent."""

    async def read(ref: SecretKeyRef) -> bytes:
        secret = await kube.get(SECRET, ref.namespace, ref.name)
        if secret is None:
            raise SecretKeyMissingError(f"Secret {ref.namespace}/{ref.name} does not exist")
        data = secret.get("data") or {}
        if ref.key not in data:
            raise SecretKeyMissingError(f"Secret {ref.namespace}/{ref.name} has no key {ref.key}")
        return base64.b64decode(data[ref.key])

    return read


def secret_key(ref: SecretKeyRef) -> SecretKey:
    return (ref.namespace, ref.name, ref.key)


def describe_secret(ref: SecretKeyRef) -> str:
    return f"Secret {ref.namespace}/{ref.name} (key {ref.key})"


# --- the kubeconfig (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberKubeconfig:
    """What the current context of a kubeconfig says about reaching its cluster."""

    server: str
    ca_data: str | None = None
    """The CA bundle (PEM); None: the system's trust store."""
    insecure: bool = False
    tls_server_name: str | None = None
    token: str | None = None
    client_certificate: bytes | None = None
    client_key: bytes | None = None
    username: str | None = None
    password: str | None = None


def _named(entries: object, name: str, what: str) -> Mapping[str, Any]:
    if not isinstance(entries, list):
        raise KubeconfigInvalidError(f"the kubeconfig has no {what}s list")
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(what)
            if not isinstance(body, dict):
                raise KubeconfigInvalidError(f"the kubeconfig's {what} {name!r} is empty")
            return body
    raise KubeconfigInvalidError(f"the kubeconfig names {what} {name!r} but does not define it")


def _decoded(section: Mapping[str, Any], key: str) -> bytes | None:
    value = section.get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as error:
        raise KubeconfigInvalidError(f"{key} is not valid base64") from error


def parse_kubeconfig(data: bytes) -> MemberKubeconfig:
    """The current context's server and credentials; `KubeconfigInvalidError` says what is wrong."""
    try:
        config = yaml.safe_load(data)
    except yaml.YAMLError as error:
        raise KubeconfigInvalidError(f"the kubeconfig is not YAML: {error}") from error
    if not isinstance(config, dict):
        raise KubeconfigInvalidError("the kubeconfig is not a YAML mapping")
    contexts = config.get("contexts")
    current = config.get("current-context")
    if not current and isinstance(contexts, list) and len(contexts) == 1 and isinstance(contexts[0], dict):
        current = contexts[0].get("name")
    if not current:
        raise KubeconfigInvalidError("the kubeconfig has no current-context")
    context = _named(contexts, str(current), "context")
    cluster = _named(config.get("clusters"), str(context.get("cluster", "")), "cluster")
    user_name = context.get("user")
    user: Mapping[str, Any] = _named(config.get("users"), str(user_name), "user") if user_name else {}

    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise KubeconfigInvalidError(f"the cluster's server {server!r} is not an http(s) URL")
    for key, instead in (
        ("certificate-authority", "certificate-authority-data"),
        ("client-certificate", "client-certificate-data"),
        ("client-key", "client-key-data"),
        ("tokenFile", "token"),
    ):
        if key in cluster or key in user:
            raise KubeconfigInvalidError(
                f"{key} names a file, which the operator cannot read; embed it as {instead}"
            )
    for key in ("exec", "auth-provider"):
        if key in user:
            raise KubeconfigInvalidError(
                f"the user authenticates through {key}, which the operator does not run; "
                "use a ServiceAccount token or a client certificate"
            )
    ca = _decoded(cluster, "certificate-authority-data")
    certificate, key_data = _decoded(user, "client-certificate-data"), _decoded(user, "client-key-data")
    if (certificate is None) != (key_data is None):
        raise KubeconfigInvalidError("client-certificate-data and client-key-data go together")
    token = user.get("token")
    username, password = user.get("username"), user.get("password")
    if token is None and certificate is None and username is None:
        raise KubeconfigInvalidError("the user has no token, client certificate or password")
    return MemberKubeconfig(
        server=server,
        ca_data=ca.decode() if ca is not None else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None,
        token=str(token) if token is not None else None,
        client_certificate=certificate,
        client_key=key_data,
        username=str(username) if username is not None else None,
        password=str(password) if password is not None else None,
    )


def build_configuration(
    kubeconfig: MemberKubeconfig, certificate_files: tuple[Path, Path] | None = None
) -> kubernetes.client.Configuration:
    """The client configuration; `certificate_files` (certificate, key) must hold the client certificate."""
    configuration = kubernetes.client.Configuration()
    configuration.host = kubeconfig.server
    configuration.verify_ssl = not kubeconfig.insecure
    configuration.ca_cert_data = kubeconfig.ca_data
    configuration.tls_server_name = kubeconfig.tls_server_name
    if kubeconfig.token is not None:
        # The same shape `kubernetes.config` gives a token: the scheme is part of the value.
        configuration.api_key = {"BearerToken": f"Bearer {kubeconfig.token}"}
    elif kubeconfig.username is not None:
        configuration.username = kubeconfig.username
        configuration.password = kubeconfig.password or ""
        configuration.api_key = {"BearerToken": configuration.get_basic_auth_token() or ""}
    if certificate_files is not None:
        configuration.cert_file, configuration.key_file = (str(path) for path in certificate_files)
    return configuration


def _write_certificate_files(kubeconfig: MemberKubeconfig) -> tuple[Path, tuple[Path, Path]]:
    directory = Path(tempfile.mkdtemp(prefix="pixelmesh-member-"))  # created 0700
    paths = (directory / "client.crt", directory / "client.key")
    for path, content in zip(paths, (kubeconfig.client_certificate, kubeconfig.client_key), strict=True):
        path.touch(mode=0o600)
        path.write_bytes(content or b"")
    return directory, paths


# --- the members -------------------------------------------------------------------------------------


@dataclass
class MemberCluster:
    """One member cluster as its kubeconfig Secret currently describes it."""

    secret: SecretKeyRef
    digest: str
    """sha256 of the kubeconfig this member was built from."""
    configuration: kubernetes.client.Configuration
    kube: KubeClient
    runtime: KubernetesRuntime
    checked_at: float
    files: Path | None = None
    """The private directory holding a client certificate, if the kubeconfig has one."""
    closed: bool = field(default=False, init=False)
    _probe: kubernetes.client.ApiClient | None = field(default=None, init=False, repr=False)

    def probe_client(self) -> kubernetes.client.ApiClient:
        if self._probe is None:
            self._probe = probe_client(self.configuration)
        return self._probe

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.kube.close()
        if self._probe is not None:
            self._probe.close()  # type: ignore[no-untyped-call]
        if self.files is not None:
            shutil.rmtree(self.files, ignore_errors=True)


def build_member(
    ref: SecretKeyRef, data: bytes, credentials: CredentialsLoader, *, checked_at: float
) -> MemberCluster:
    """A member from kubeconfig bytes; raises `KubeconfigInvalidError`."""
    try:
        kubeconfig = parse_kubeconfig(data)
    except KubeconfigInvalidError as error:
        raise KubeconfigInvalidError(f"{describe_secret(ref)}: {error}") from None
    files: Path | None = None
    certificate_files = None
    if kubeconfig.client_certificate is not None:
        files, certificate_files = _write_certificate_files(kubeconfig)
    configuration = build_configuration(kubeconfig, certificate_files)
    kube = KubeClient(configuration, cluster=f"{ref.namespace}/{ref.name}")
    return MemberCluster(
        secret=ref,
        digest=hashlib.sha256(data).hexdigest(),
        configuration=configuration,
        kube=kube,
        runtime=KubernetesRuntime(kube, credentials=credentials, create_namespaces=True),
        checked_at=checked_at,
        files=files,
    )


class MemberClusters:
    """The member clusters the operator has reached, by kubeconfig Secret, and its own cluster."""

    def __init__(
        self,
        own: KubeClient,
        credentials: CredentialsLoader,
        *,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._own = own
        self._credentials = credentials
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._members: dict[SecretKey, MemberCluster] = {}
        self._locks: dict[SecretKey, asyncio.Lock] = {}
        self._own_probe: kubernetes.client.ApiClient | None = None

    def built(self) -> list[MemberCluster]:
        """Every member built so far (and not dropped since)."""
        return list(self._members.values())

    async def connect(self, cluster: ClusterRef) -> MemberCluster:
        """The member for `cluster`, rebuilt if its kubeconfig changed since it was last read."""
        ref = cluster.kubeconfig_secret
        key = secret_key(ref)
        async with self._locks.setdefault(key, asyncio.Lock()):
            member = self._members.get(key)
            now = self._clock()
            if member is not None and now - member.checked_at < self._refresh_seconds:
                return member
            try:
                data = await self._credentials(ref)
            except LookupError as error:
                self._drop(key, "its kubeconfig Secret is gone")
                raise KubeconfigSecretMissingError(
                    f"the member cluster's kubeconfig cannot be read: {error}"
                ) from None
            except KubeError as error:
                where = describe_secret(ref)
                raise KubeconfigSecretMissingError(
                    f"the member cluster's kubeconfig in {where} cannot be read: {error.message}"
                ) from None
            if member is not None and member.digest == hashlib.sha256(data).hexdigest():
                member.checked_at = now
                return member
            try:
                fresh = build_member(ref, data, self._credentials, checked_at=now)
            except KubeconfigInvalidError:
                self._drop(key, "its kubeconfig no longer parses")
                raise
            self._drop(key, "its kubeconfig changed")
            self._members[key] = fresh
            logger.info(
                "Built the client of the member cluster at %s from %s.",
                fresh.configuration.host,
                describe_secret(ref),
            )
            return fresh

    def _drop(self, key: SecretKey, why: str) -> None:
        member = self._members.pop(key, None)
        if member is None:
            return
        member.close()
        logger.info(
            "Closed the client of the member cluster at %s (%s) because %s.",
            member.configuration.host,
            describe_secret(member.secret),
            why,
        )

    async def api_reachable(
        self,
        cluster: ClusterRef | None,
        timeout: float,  # noqa: ASYNC109 - it bounds the HTTP request in its thread, not an await
    ) -> tuple[bool, str]:
        """Whether the cluster's API server answers `/readyz` within `timeout` (None: the own cluster)."""
        if cluster is None:
            if self._own_probe is None:
                self._own_probe = probe_client(self._own.configuration)
            client = self._own_probe
        else:
            try:
                client = (await self.connect(cluster)).probe_client()
            except MemberClusterError as error:
                return False, str(error)
        host = client.configuration.host
        started = time.monotonic()
        try:
            status, body = await asyncio.wait_for(
                asyncio.to_thread(_get_readyz, client, timeout), timeout + 1.0
            )
        except Exception as error:  # any failure to get an answer is the finding
            return False, f"the API server at {host} did not answer: {_short(error)}"
        if status != HTTPStatus.OK:
            return False, f"the API server at {host} is not ready (HTTP {status}): {body[:200]}"
        elapsed = (time.monotonic() - started) * 1000
        return True, f"the API server at {host} is ready ({elapsed:.0f} ms)"

    def close(self) -> None:
        for key in list(self._members):
            self._drop(key, "the operator is stopping")
        if self._own_probe is not None:
            self._own_probe.close()  # type: ignore[no-untyped-call]
            self._own_probe = None


def probe_client(configuration: kubernetes.client.Configuration) -> kubernetes.client.ApiClient:
    """A client for health probes: one attempt per request (no urllib3 retries), and a connection
    pool of its own, so a probe never waits behind the reconciler's requests or holds them up."""
    probing = copy.deepcopy(configuration)
    probing.retries = 0
    return kubernetes.client.ApiClient(probing)


def _get_readyz(client: kubernetes.client.ApiClient, timeout: float) -> tuple[int, str]:
    serialized = client.param_serialize(
        method="GET",
        resource_path="/readyz",
        header_params={"Accept": "text/plain"},
        auth_settings=["BearerToken"],
    )
    response = client.call_api(*serialized, _request_timeout=timeout)
    data = response.read()  # type: ignore[no-untyped-call]
    return int(response.status), data.decode(errors="replace") if isinstance(data, bytes) else str(data or "")


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."
