"""From a Pod spec to a process launch: argv, environment, files and ports, as pure data.

The process kubelet runs each Pod's first container as a local process instead of a container.
What a container gets from the kubelet has to be recreated on the host:

- mounted volumes (ConfigMaps, Secrets, emptyDirs) become directories under the Pod's own
  directory, and every mount path mentioned in the environment or the arguments is rewritten to
  the host directory (there is no mount namespace);
- container ports become free host ports, rewritten the same way wherever the port number is
  passed as a whole value (`PIXELMESH_METRICS_PORT=9090` becomes the host port), because all Pods
  share 127.0.0.1;
- the environment is resolved as the kubelet does: literal values, field references, ConfigMap
  and Secret keys, `envFrom`.

Everything here is a pure function of the Pod and the objects it references; the kubelet loop
fetches those objects and starts the process.
"""

from __future__ import annotations

import base64
import shutil
import sys
import sysconfig
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JsonObject = dict[str, Any]

ObjectLookup = Callable[[str, str], JsonObject | None]
"""(kind, name) -> the ConfigMap or Secret in the Pod's namespace, or None."""


@dataclass(frozen=True)
class Launch:
    """Everything needed to start one Pod's container as a process."""

    argv: list[str]
    env: dict[str, str]
    files: dict[Path, bytes]
    """Files to write before starting (relative to the Pod directory)."""
    directories: list[Path]
    ports: dict[int, int]
    """Container port -> host port."""
    readiness: tuple[str, int] | None
    """(path, host port) of an HTTP readiness probe, if the container has one."""
    grace_seconds: float = 30.0
    mounts: dict[str, Path] = field(default_factory=dict)
    """Container mount path -> Pod-relative host directory."""


def pixelmesh_executable() -> str:
    """The `pixelmesh` console script of the running environment (the image's entry point)."""
    scripts = Path(sysconfig.get_path("scripts"))
    candidate = scripts / "pixelmesh"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("pixelmesh")
    return found or sys.executable


def default_argv(container: JsonObject) -> list[str]:
    """The container's command, with the image's `pixelmesh` entry point mapped to this venv's."""
    command = list(container.get("command") or ["pixelmesh"])
    args = list(container.get("args") or [])
    if Path(command[0]).name == "pixelmesh":
        command[0] = pixelmesh_executable()
    return [*command, *args]


def _field_ref(pod: JsonObject, path: str) -> str:
    meta = pod.get("metadata", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": pod.get("spec", {}).get("nodeName", ""),
        "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName", ""),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path])
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str(meta.get(source, {}).get(path[len(prefix) + 2 : -2], ""))
    raise ValueError(f"unsupported fieldRef {path!r}")


def _key_of(obj: JsonObject | None, key: str, *, secret: bool) -> str | None:
    if obj is None:
        return None
    if secret:
        raw = obj.get("data", {}).get(key)
        return base64.b64decode(raw).decode() if raw is not None else None
    value = obj.get("data", {}).get(key)
    return str(value) if value is not None else None


def resolve_env(pod: JsonObject, container: JsonObject, lookup: ObjectLookup) -> dict[str, str]:
    """The container's environment as the kubelet would build it (envFrom first, then env)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            obj = lookup("ConfigMap", source["configMapRef"]["name"])
            env.update({prefix + k: str(v) for k, v in ((obj or {}).get("data") or {}).items()})
        if "secretRef" in source:
            obj = lookup("Secret", source["secretRef"]["name"])
            data = (obj or {}).get("data") or {}
            env.update({prefix + k: base64.b64decode(v).decode() for k, v in data.items()})
    for var in container.get("env", []):
        name = var["name"]
        if "value" in var:
            env[name] = str(var["value"])
            continue
        source = var.get("valueFrom", {})
        if "fieldRef" in source:
            env[name] = _field_ref(pod, source["fieldRef"]["fieldPath"])
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            value = _key_of(lookup("ConfigMap", ref["name"]), ref["key"], secret=False)
            if value is None and not ref.get("optional", False):
                raise ValueError(f"ConfigMap {ref['name']} has no key {ref['key']}")
            env[name] = value or ""
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            value = _key_of(lookup("Secret", ref["name"]), ref["key"], secret=True)
            if value is None and not ref.get("optional", False):
                raise ValueError(f"Secret {ref['name']} has no key {ref['key']}")
            env[name] = value or ""
        elif "resourceFieldRef" in source:
            resource = source["resourceFieldRef"]["resource"]
            env[name] = str(_resource(container, resource))
    return env


def _resource(container: JsonObject, resource: str) -> str:
    section, _, name = resource.partition(".")
    value = container.get("resources", {}).get(section, {}).get(name)
    return str(value) if value is not None else "0"


def _volume_files(volume: JsonObject, lookup: ObjectLookup) -> dict[str, bytes] | None:
    """The files a volume holds, by relative path; None for a volume that is a plain directory."""
    if "configMap" in volume:
        obj = lookup("ConfigMap", volume["configMap"]["name"]) or {}
        data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        data |= {k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}
        return _select_items(data, volume["configMap"].get("items"))
    if "secret" in volume:
        obj = lookup("Secret", volume["secret"]["secretName"]) or {}
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        return _select_items(data, volume["secret"].get("items"))
    return None


def _select_items(data: dict[str, bytes], items: list[JsonObject] | None) -> dict[str, bytes]:
    if not items:
        return data
    return {item["path"]: data[item["key"]] for item in items if item["key"] in data}


def _rewrite(value: str, mounts: Mapping[str, Path], ports: Mapping[int, int], root: Path) -> str:
    if value.isdigit() and int(value) in ports:
        return str(ports[int(value)])
    for mount_path in sorted(mounts, key=len, reverse=True):
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(root / mounts[mount_path]) + value[len(mount_path.rstrip("/")) :]
    return value


def plan_launch(
    pod: JsonObject,
    lookup: ObjectLookup,
    pod_dir: Path,
    allocate_port: Callable[[], int],
    argv_for: Callable[[JsonObject], list[str]] = default_argv,
) -> Launch:
    """How to run `pod`'s first container under `pod_dir` (only its argv and env are absolute)."""
    spec = pod["spec"]
    container = spec["containers"][0]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}

    files: dict[Path, bytes] = {}
    directories: list[Path] = []
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"])
        if volume is None or "projected" in volume:
            continue  # ServiceAccount tokens: the process talks to no API server as the Pod
        host = Path("volumes") / mount["name"]
        directories.append(host)
        content = _volume_files(volume, lookup)
        sub = mount.get("subPath")
        if content is not None:
            for rel, data in content.items():
                files[host / rel] = data
        mounts[mount["mountPath"]] = host / sub if sub else host

    ports = {p["containerPort"]: allocate_port() for p in container.get("ports", [])}
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    env = {k: _rewrite(v, mounts, ports, pod_dir) for k, v in resolve_env(pod, container, lookup).items()}
    env.setdefault("TMPDIR", str(pod_dir / "tmp"))
    directories.append(Path("tmp"))
    # The executable is a host path chosen by `argv_for`; only the container's arguments hold
    # container paths (a host path under a mount point, e.g. /tmp, must stay as it is).
    executable, *arguments = argv_for(container)
    argv = [executable, *(_rewrite(a, mounts, ports, pod_dir) for a in arguments)]

    readiness = None
    probe = container.get("readinessProbe", {}).get("httpGet")
    if probe is not None:
        port = probe["port"]
        container_port = named[port] if isinstance(port, str) else int(port)
        readiness = (str(probe.get("path", "/")), ports.get(container_port, container_port))

    return Launch(
        argv=argv,
        env=env,
        files=files,
        directories=directories,
        ports=ports,
        readiness=readiness,
        grace_seconds=float(spec.get("terminationGracePeriodSeconds", 30)),
        mounts=mounts,
    )
