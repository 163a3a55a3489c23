"""The pipelines the gateway accepts jobs for, and their specs (input limits, variants, formats).

The gateway needs a pipeline's spec before it publishes anything: to refuse an unknown pipeline,
bound the upload by `input.maxBytes`, refuse a bomb from its header, and know which variants exist
and which of them are `auto`. `PipelineCatalog` is that lookup. `DirectoryCatalog` reads the same
ImagePipeline YAML files the local stack (and `kubectl apply`) takes, and the `PipelineRevision`
files the operator renders for workers (in a cluster the chart mounts those). A catalog backed by
a KV bucket the operator writes can replace it without touching the handlers.

Files are re-read when their modification time changes, checked at most every `refresh_seconds`.
A file that stops parsing keeps its last good pipelines and logs why, so a half-saved edit cannot
take a pipeline offline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from pixelmesh.api.messages import PipelineRef, PipelineRevision
from pixelmesh.api.pipeline import OutputType, PipelineSpec
from pixelmesh.api.resources import ImagePipeline

logger = logging.getLogger(__name__)

KIND = "ImagePipeline"
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One pipeline the gateway knows."""

    ref: PipelineRef
    spec: PipelineSpec
    generation: int
    """The generation its workers run (part of every output key)."""

    def auto_variants(self) -> frozenset[str]:
        return frozenset(v.name for v in self.spec.variants if v.format.type is OutputType.AUTO)


class PipelineCatalog(Protocol):
    """Where the gateway looks pipelines up."""

    async def get(self, ref: PipelineRef) -> CatalogEntry | None:
        """The pipeline, or None when there is no such pipeline."""
        ...

    async def entries(self) -> Sequence[CatalogEntry]:
        """Every known pipeline."""
        ...


def entry_of_document(document: Any) -> CatalogEntry | None:
    """The pipeline a parsed YAML document describes, or None for a document of another kind.

    Two shapes are pipelines: an ImagePipeline (what `kubectl apply` and the local stack take) and
    a rendered `PipelineRevision` (what the operator hands its workers).
    """
    if not isinstance(document, dict):
        return None
    if document.get("kind") == KIND:
        pipeline = ImagePipeline.model_validate(document)
        return CatalogEntry(
            ref=PipelineRef(namespace=pipeline.metadata.namespace, name=pipeline.metadata.name),
            spec=pipeline.spec.pipeline(),
            generation=pipeline.metadata.generation,
        )
    if "kind" not in document and {"namespace", "name", "generation", "spec"} <= document.keys():
        revision = PipelineRevision.model_validate(document)
        return CatalogEntry(ref=revision.ref, spec=revision.spec, generation=revision.generation)
    return None


def entries_from_documents(documents: Iterable[Any]) -> list[CatalogEntry]:
    """The pipelines among parsed YAML documents; other kinds are skipped."""
    return [entry for document in documents if (entry := entry_of_document(document)) is not None]


def pipeline_files(paths: Iterable[Path]) -> list[Path]:
    """YAML files named directly or found directly inside the named directories, sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file()))
        elif path.is_file():
            files.append(path)
    return files


class DirectoryCatalog:
    """ImagePipelines read from YAML files and directories, reloaded when the files change."""

    def __init__(self, paths: Sequence[Path], *, refresh_seconds: float = 2.0) -> None:
        self._paths = tuple(paths)
        self._refresh_seconds = refresh_seconds
        self._checked_at = float("-inf")
        self._seen: dict[Path, float] = {}
        self._by_file: dict[Path, list[CatalogEntry]] = {}
        self._entries: dict[PipelineRef, CatalogEntry] = {}

    async def get(self, ref: PipelineRef) -> CatalogEntry | None:
        self._refresh()
        return self._entries.get(ref)

    async def entries(self) -> Sequence[CatalogEntry]:
        self._refresh()
        return list(self._entries.values())

    def reload(self) -> None:
        """Re-read every file now."""
        self._seen.clear()
        self._checked_at = float("-inf")
        self._refresh()

    def _refresh(self) -> None:
        # A handful of stat() calls every couple of seconds: cheap enough to do inline.
        now = time.monotonic()
        if now - self._checked_at < self._refresh_seconds:
            return
        self._checked_at = now
        files = pipeline_files(self._paths)
        changed = False
        for path in files:
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if self._seen.get(path) == mtime:
                continue
            self._seen[path] = mtime
            changed = True
            try:
                with path.open() as stream:
                    self._by_file[path] = entries_from_documents(yaml.safe_load_all(stream))
            except (OSError, yaml.YAMLError, ValueError, ValidationError) as error:
                logger.warning(
                    "Pipeline file %s could not be read, keeping what it held before: %s", path, error
                )
        for gone in set(self._by_file) - set(files):
            del self._by_file[gone]
            self._seen.pop(gone, None)
            changed = True
        if changed:
            self._entries = {entry.ref: entry for entries in self._by_file.values() for entry in entries}
            logger.info("The pipeline catalog holds %d pipelines.", len(self._entries))


class MemoryCatalog:
    """Pipelines held in memory and replaced as a whole (the local stack after each pass, embedding)."""

    def __init__(self, entries: Iterable[CatalogEntry] = ()) -> None:
        self.replace(entries)

    def replace(self, entries: Iterable[CatalogEntry]) -> None:
        self._entries = {entry.ref: entry for entry in entries}

    async def get(self, ref: PipelineRef) -> CatalogEntry | None:
        return self._entries.get(ref)

    async def entries(self) -> Sequence[CatalogEntry]:
        return list(self._entries.values())
