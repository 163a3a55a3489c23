"""The operator's Kubernetes API client: raw JSON objects in and out, every write counted.

The typed models of the `kubernetes` package convert every object twice and drop fields they do
not know (a ServiceMonitor has no model at all); reconcile works on plain dicts, so this calls the
REST API with the package's configuration (kubeconfig, in-cluster token refresh, TLS) and decodes
JSON. The blocking calls run in worker threads, so kopf's event loop keeps going.

Every write (create, patch, delete) is counted by kind and verb in the operator's metrics; the
tests read the counter to prove that a resync with nothing changed writes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import kubernetes.client
import kubernetes.config

from pixelmesh.operator import metrics, names

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]
FIELD_MANAGER = "pixelmesh-operator"
MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Kind:
    """A resource type and where its REST paths are."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        group_path = (
            f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        )
        path = group_path
        if self.namespaced and namespace is not None:
            path += f"/namespaces/{quote(namespace)}"
        path += f"/{self.plural}"
        if name is not None:
            path += f"/{quote(name)}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
SECRET = Kind("v1", "Secret", "secrets")
SERVICE = Kind("v1", "Service", "services")
EVENT = Kind("v1", "Event", "events")
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
PDB = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
SERVICE_MONITOR = Kind(f"{names.SERVICE_MONITOR_GROUP}/v1", "ServiceMonitor", "servicemonitors")
SCALED_OBJECT = Kind(
    f"{names.SCALED_OBJECT_GROUP}/{names.SCALED_OBJECT_VERSION}", "ScaledObject", "scaledobjects"
)
CRD = Kind(
    "apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", namespaced=False
)
PIPELINE = Kind(names.API_VERSION, names.PIPELINE_KIND, names.PIPELINE_PLURAL)
POOL = Kind(names.API_VERSION, names.POOL_KIND, names.POOL_PLURAL, namespaced=False)

KINDS: dict[str, Kind] = {
    k.kind: k for k in (CONFIG_MAP, SECRET, SERVICE, DEPLOYMENT, PDB, SERVICE_MONITOR, SCALED_OBJECT)
}
"""The kinds of children, by `kind`."""


class KubeError(RuntimeError):
    """The API server refused a request; `status` is the HTTP code."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.status = status
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = {}
        self.reason = str(decoded.get("reason", "")) if isinstance(decoded, dict) else ""
        self.message = str(decoded.get("message", body)) if isinstance(decoded, dict) else body
        super().__init__(f"{method} {path} failed with HTTP {status}: {self.message}")

    @property
    def not_found(self) -> bool:
        return self.status == HTTPStatus.NOT_FOUND

    @property
    def conflict(self) -> bool:
        return self.status == HTTPStatus.CONFLICT


def load_configuration(
    kubeconfig: Path | None = None, context: str | None = None
) -> kubernetes.client.Configuration:
    """The client configuration: the given kubeconfig, else in-cluster, else the default kubeconfig."""
    configuration = kubernetes.client.Configuration()
    if kubeconfig is not None:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), context=context, client_configuration=configuration
        )
        return configuration
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            context=context, client_configuration=configuration
        )
    return configuration


class KubeClient:
    """JSON in, JSON out, against one API server."""

    def __init__(self, configuration: kubernetes.client.Configuration, *, cluster: str = "local") -> None:
        self.configuration = configuration
        self.cluster = cluster
        """Names the cluster in metrics and logs (the region for member clusters)."""
        self._api = kubernetes.client.ApiClient(configuration)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    # --- the one place requests are made ------------------------------------------------------------

    def _request_sync(
        self,
        method: str,
        path: str,
        *,
        body: object | None = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JsonObject:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        serialized = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(*serialized, _request_timeout=REQUEST_TIMEOUT)
        data = response.read()  # type: ignore[no-untyped-call]
        text = data.decode() if isinstance(data, bytes) else str(data or "")
        if not 200 <= response.status < 300:
            raise KubeError(method, path, response.status, text)
        return cast("JsonObject", json.loads(text)) if text else {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: object | None = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        kind: str = "",
    ) -> JsonObject:
        if method != "GET":
            metrics.KUBE_WRITES.labels(
                cluster=self.cluster, kind=kind or "unknown", verb=method.lower()
            ).inc()
        return await asyncio.to_thread(
            self._request_sync, method, path, body=body, query=query, content_type=content_type
        )

    # --- what callers use ---------------------------------------------------------------------------

    async def get(self, kind: Kind, namespace: str | None, name: str) -> JsonObject | None:
        """The object, or None if it does not exist."""
        try:
            return await self.request("GET", kind.path(namespace, name))
        except KubeError as error:
            if error.not_found:
                return None
            raise

    async def list(self, kind: Kind, namespace: str | None, *, label_selector: str = "") -> list[JsonObject]:
        query = {"labelSelector": label_selector} if label_selector else None
        reply = await self.request("GET", kind.path(namespace), query=query)
        items = reply.get("items") or []
        for item in items:  # lists leave out each item's apiVersion and kind
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return list(items)

    async def create(self, kind: Kind, body: JsonObject) -> JsonObject:
        namespace = body.get("metadata", {}).get("namespace")
        return await self.request(
            "POST", kind.path(namespace), body=body, query={"fieldManager": FIELD_MANAGER}, kind=kind.kind
        )

    async def patch(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        patch: JsonObject,
        *,
        subresource: str | None = None,
    ) -> JsonObject:
        """A JSON merge patch."""
        return await self.request(
            "PATCH",
            kind.path(namespace, name, subresource),
            body=patch,
            query={"fieldManager": FIELD_MANAGER},
            content_type=MERGE_PATCH,
            kind=kind.kind,
        )

    async def delete(self, kind: Kind, namespace: str | None, name: str) -> bool:
        """Delete (in the background); False if it was already gone."""
        try:
            await self.request(
                "DELETE",
                kind.path(namespace, name),
                body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
                kind=kind.kind,
            )
        except KubeError as error:
            if error.not_found:
                return False
            raise
        return True

    async def crd_exists(self, name: str) -> bool:
        return await self.get(CRD, None, name) is not None

    async def post_event(self, event: JsonObject) -> None:
        namespace = event["metadata"]["namespace"]
        await self.request("POST", EVENT.path(namespace), body=event, kind=EVENT.kind)
