"""The reconciler core: one pass over one ImagePipeline (or one RegionPool), for any runtime.

A pass is level-triggered and idempotent: it reads what exists, writes only what differs, and
returns the new status, the merge patch that stores it (empty when nothing changed) and the Events
worth posting. The kopf handlers and the local stack both call it; neither holds logic of its own.

For each region the pipeline is placed in, in parallel:

1. JetStream: the region's shared buckets, then the pipeline's stream, consumer and outputs store;
2. workers: `runtime.apply` (config, Deployment or processes; created with the replica policy's
   initial count), then the backlog, then `runtime.scale` if the policy wants another count;
3. a `RegionReport` of what was found.

Regions the pipeline no longer lists lose their workers (and, under `deletionPolicy: Delete`, their
streams). Regions whose pool is missing keep theirs: a pool deleted by mistake must not take its
workers with it before someone notices the condition.

What cannot be acted on is reported, not raised: an invalid spec, a missing pool, an unreachable
NATS, a refused write each become a condition with a reason and message, and a Warning Event when
that problem is new.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import (
    ClusterRef,
    DeletionPolicy,
    Durability,
    ImagePipelineSpec,
    ImagePipelineStatus,
    RegionPhase,
    RegionPoolSpec,
    RegionPoolStatus,
    TrafficStatus,
    duration_seconds,
)
from pixelmesh.api.routing import Drain, RoutingEntry
from pixelmesh.api.routing import RegionWeight as RoutingWeight
from pixelmesh.operator import metrics
from pixelmesh.operator.autoscaling.measure import WorkerTotals
from pixelmesh.operator.builders.pipeline_file import (
    pipeline_generation,
    pipeline_revision,
    pipeline_spec_hash,
)
from pixelmesh.operator.builders.streams import pipeline_stream_settings, region_bucket_settings
from pixelmesh.operator.errors import JetStreamRefusedError, RegionUnreachableError
from pixelmesh.operator.federation.guards import GuardTotals
from pixelmesh.operator.federation.traffic import GuardReading, TrafficPlan, plan_weights, shift_policy
from pixelmesh.operator.jetstream import PipelineStreamSettings, RegionBucketSettings
from pixelmesh.operator.placement import DefaultRegion, resolve_placements
from pixelmesh.operator.runtime import WorkerObservation, WorkerRuntime
from pixelmesh.operator.scaling import MinimumReplicas, ReplicaPolicy
from pixelmesh.operator.status import (
    ConditionType,
    Finding,
    PipelineFindings,
    PoolFindings,
    ProbeResult,
    Reason,
    RegionReport,
    find_condition,
    parse_pipeline_status,
    parse_pool_status,
    pipeline_status,
    pool_status,
    status_patch,
    utc_now,
)
from pixelmesh.operator.target import GeoPlacement, RegionPlacement, Topology, WorkerDefaults, WorkerTarget

logger = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]


# --- the seams ---------------------------------------------------------------------------------------


class JetStreamPort(Protocol):
    """What the core needs of a region's JetStream (`clients.nats.NatsJetStream` in production)."""

    async def ensure_region(
        self, placement: RegionPlacement, settings: RegionBucketSettings
    ) -> dict[str, str]: ...

    async def ensure_pipeline(
        self, placement: RegionPlacement, ref: PipelineRef, settings: PipelineStreamSettings
    ) -> dict[str, str]: ...

    async def ensure_job_mirror(
        self, backup: RegionPlacement, ref: PipelineRef, origin: str, settings: PipelineStreamSettings
    ) -> dict[str, str]: ...

    async def backlog(self, placement: RegionPlacement, ref: PipelineRef) -> int | None: ...

    async def delete_pipeline(self, placement: RegionPlacement, ref: PipelineRef) -> None: ...

    async def probe(self, placement: RegionPlacement, timeout: float) -> ProbeResult: ...  # noqa: ASYNC109

    async def publish_routing(self, home: RegionPlacement, entry: RoutingEntry) -> None: ...

    async def worker_totals(
        self, placement: RegionPlacement, ref: PipelineRef
    ) -> tuple[WorkerTotals, ...] | None: ...

    async def ensure_geo_sources(self, home: RegionPlacement, geo: GeoPlacement) -> dict[str, str]: ...

    async def open_drain(
        self, backup: RegionPlacement, ref: PipelineRef, origin: str, settings: PipelineStreamSettings
    ) -> bool: ...

    async def close_drain(self, backup: RegionPlacement, ref: PipelineRef, origin: str) -> bool: ...

    async def mirror_lag(self, backup: RegionPlacement, ref: PipelineRef, origin: str) -> int | None: ...


class ClusterProbe(Protocol):
    """Whether a region's Kubernetes API server answers (`clients.members.MemberClusters`)."""

    async def api_reachable(self, cluster: ClusterRef | None, timeout: float) -> tuple[bool, str]: ...  # noqa: ASYNC109 - mirrors MemberClusters


class UnsupportedPlacementError(RuntimeError):
    """No runtime serves this region's cluster."""


class RuntimeProvider(Protocol):
    """The runtime that serves a region, and every runtime (to find workers of removed regions)."""

    def for_region(self, placement: RegionPlacement) -> WorkerRuntime: ...

    def all(self) -> Sequence[WorkerRuntime]: ...


@dataclass(frozen=True, slots=True)
class SingleRuntime:
    """One runtime for every region of the operator's own cluster (or the local machine)."""

    runtime: WorkerRuntime
    serves_remote_clusters: bool = False

    def for_region(self, placement: RegionPlacement) -> WorkerRuntime:
        if placement.cluster is not None and not self.serves_remote_clusters:
            raise UnsupportedPlacementError(
                f"RegionPool {placement.pool} names another cluster; this operator runs workers "
                "only in its own cluster"
            )
        return self.runtime

    def all(self) -> Sequence[WorkerRuntime]:
        return (self.runtime,)


# --- inputs and outputs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PipelineObject:
    """An ImagePipeline as stored: the raw spec and status, parsed inside the pass."""

    namespace: str
    name: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any] = field(default_factory=dict)
    uid: str = ""

    @property
    def ref(self) -> PipelineRef:
        return PipelineRef(namespace=self.namespace, name=self.name)


@dataclass(frozen=True, slots=True)
class EventNote:
    """An Event to post about the object."""

    type: EventType
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class PipelineOutcome:
    status: ImagePipelineStatus
    patch: dict[str, Any]
    """Merge patch for the stored status; empty when nothing changed."""
    events: tuple[EventNote, ...] = ()
    reports: tuple[RegionReport, ...] = ()

    @property
    def ready(self) -> bool:
        condition = find_condition(self.status.conditions, ConditionType.READY)
        return condition is not None and condition.status == "True"


@dataclass(frozen=True, slots=True)
class PoolOutcome:
    status: RegionPoolStatus
    patch: dict[str, Any]
    events: tuple[EventNote, ...] = ()


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, with the camelCase field path a spec author sees."""
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "spec"
        problems.append(f"spec.{location}: {item['msg']}")
    return "The spec is invalid: " + "; ".join(problems)


def backup_placement(
    region: str, topology: Topology, pools: Mapping[str, RegionPoolSpec]
) -> RegionPlacement | None:
    """Where `region`'s jobs are mirrored: its backup's pool, if the backup names one that exists."""
    backup = topology.backup_of(region)
    for name, pool in sorted(pools.items()):
        if backup is not None and pool.region == backup:
            return RegionPlacement.from_pool(name, pool, 0)
    return None


async def _failed_region_report(placement: RegionPlacement) -> tuple[RegionReport, list[EventNote]]:
    """What a pass reports of a region it leaves alone because its probes say it is Failed."""
    finding = Finding(
        Reason.REGION_FAILED,
        f"Region {placement.region} is Failed: its workers and streams are left alone until it is back.",
    )
    report = RegionReport(
        region=placement.region, pool=placement.pool, weight=placement.weight, stream_problem=finding
    )
    return report, []


@dataclass(frozen=True, slots=True)
class RoutingInputs:
    """What a pipeline's last pass knew for routing: enough to decide again between passes."""

    spec: ImagePipelineSpec
    topology: Topology
    pools: Mapping[str, RegionPoolSpec]
    regions: tuple[RegionPlacement, ...]
    pipeline_generation: int


# --- the core ----------------------------------------------------------------------------------------


@dataclass
class Reconciler:
    """Reconciles pipelines and probes pools through the given runtimes and JetStream."""

    runtimes: RuntimeProvider
    jetstream: JetStreamPort
    default_region: DefaultRegion = field(default_factory=DefaultRegion)
    worker_defaults: WorkerDefaults = field(default_factory=WorkerDefaults)
    replicas: ReplicaPolicy = field(default_factory=MinimumReplicas)
    geo: GeoPlacement = field(default_factory=GeoPlacement)
    clusters: ClusterProbe | None = None
    """Probes the API servers of regions in other clusters; None: only NATS is probed."""
    _ready_workers: dict[str, dict[PipelineRef, int]] = field(default_factory=dict, init=False)
    _region_phases: dict[str, str] = field(default_factory=dict, init=False)
    """The phase of each region as its last probe left it (in memory: one operator per hub)."""
    _plans: dict[PipelineRef, TrafficPlan] = field(default_factory=dict, init=False)
    _published: dict[PipelineRef, tuple[object, ...]] = field(default_factory=dict, init=False)
    """What was last written to the routing table (weights' generation, pipeline generation,
    sources bucket, drains)."""
    _draining: set[tuple[PipelineRef, str]] = field(default_factory=set, init=False)
    _routing_inputs: dict[PipelineRef, RoutingInputs] = field(default_factory=dict, init=False)
    _routing_locks: dict[PipelineRef, asyncio.Lock] = field(default_factory=dict, init=False)
    _guard_totals: dict[tuple[PipelineRef, str], GuardTotals] = field(default_factory=dict, init=False)
    _drains_checked: set[PipelineRef] = field(default_factory=set, init=False)
    # Pipelines whose drain could not be opened or closed at the last decision: the next probe of
    # any region decides again, rather than the next pass (which waits on a dead region's timeouts).
    _drains_unsettled: set[PipelineRef] = field(default_factory=set, init=False)

    def active_workers(self, region: str) -> int:
        """Ready workers of every pipeline in `region`, as last reconciled."""
        return sum(self._ready_workers.get(region, {}).values())

    # --- pipelines ----------------------------------------------------------------------------------

    async def reconcile_pipeline(
        self, obj: PipelineObject, pools: Mapping[str, RegionPoolSpec]
    ) -> PipelineOutcome:
        """One pass over an ImagePipeline; `pools` are the RegionPools that exist, by name."""
        started = time.monotonic()
        ref = obj.ref
        previous = parse_pipeline_status(obj.status)
        events: list[EventNote] = []
        try:
            spec = ImagePipelineSpec.model_validate(obj.spec)
            findings = await self._reconcile_valid(obj, spec, pools, previous, events)
        except ValidationError as error:
            findings = PipelineFindings(
                generation=obj.generation,
                spec_problem=Finding(Reason.INVALID_SPEC, describe_validation_error(error)),
            )
        except ValueError as error:  # settings JetStream would refuse
            findings = PipelineFindings(
                generation=obj.generation,
                spec_problem=Finding(Reason.INVALID_SPEC, f"The spec is invalid: {error}"),
            )
        status = pipeline_status(previous, findings)
        events += self._problem_events(previous, status)
        self._record(ref, findings)
        metrics.RECONCILE_DURATION.labels(kind="ImagePipeline").observe(time.monotonic() - started)
        return PipelineOutcome(
            status=status,
            patch=status_patch(obj.status, status.to_wire()),
            events=tuple(events),
            reports=findings.regions,
        )

    async def _reconcile_valid(
        self,
        obj: PipelineObject,
        spec: ImagePipelineSpec,
        pools: Mapping[str, RegionPoolSpec],
        previous: ImagePipelineStatus,
        events: list[EventNote],
    ) -> PipelineFindings:
        ref = obj.ref
        placements = resolve_placements(spec, pools, self.default_region)
        topology = Topology.from_pools(self.default_region.region, pools)
        # Settings are validated for every region before anything is touched.
        settings = {p.region: self._stream_settings(spec, p) for p in placements.regions}
        pipeline = spec.pipeline()
        generation = pipeline_generation(
            pipeline,
            obj.generation,
            last_hash=previous.pipeline_hash or None,
            last_generation=previous.pipeline_generation or None,
        )
        revision = pipeline_revision(ref, pipeline, generation)
        if spec.durability is Durability.GEO:
            try:
                created = await self.jetstream.ensure_geo_sources(self.default_region.placement(), self.geo)
                events += [
                    EventNote(
                        "Normal", "Created", f"{change.title()}d the cross-region sources store {name}."
                    )
                    for name, change in created.items()
                ]
            except (RegionUnreachableError, JetStreamRefusedError) as error:
                logger.warning("The cross-region sources of ImagePipeline %s: %s", ref, error)
        problems = [
            Finding(Reason.POOL_NOT_FOUND, f"RegionPool {name} does not exist; its region is not served.")
            for name in placements.missing_pools
        ] + [
            Finding(
                Reason.INVALID_SPEC, f"Region {region} is named by more than one pool; the first one is used."
            )
            for region in placements.duplicate_regions
        ]
        # A Failed region is not touched: every call would wait for its timeout, and the pass must
        # stay quick to move its traffic and open its drain.
        down = self._failed_regions()
        results = await asyncio.gather(
            *(
                self._reconcile_region(
                    WorkerTarget(ref, obj.uid, spec, revision, placement, self.worker_defaults),
                    settings[placement.region],
                    topology,
                    backup_placement(placement.region, topology, pools),
                )
                if placement.region not in down
                else _failed_region_report(placement)
                for placement in placements.regions
            )
        )
        for _, region_events in results:
            events.extend(region_events)
        guards = await self._guard_readings(ref, placements.regions, down)
        routing = RoutingInputs(spec, topology, pools, placements.regions, generation)
        self._routing_inputs[ref] = routing
        reports = await self._decide_routing(ref, routing, [report for report, _ in results], guards, events)
        kept_regions = {p.region for p in placements.regions}
        events += await self._remove_other_regions(
            ref, spec, pools, kept_regions, set(placements.missing_pools)
        )
        plan = self._plans.get(ref)
        return PipelineFindings(
            generation=obj.generation,
            regions=tuple(reports),
            placement_problems=tuple(problems),
            pipeline_hash=pipeline_spec_hash(pipeline),
            pipeline_generation=generation,
            traffic=(
                TrafficStatus(
                    state=plan.status, reason=plan.reason, message=plan.message, generation=plan.generation
                )
                if plan is not None
                else None
            ),
            now=utc_now(),
        )

    async def _reconcile_region(
        self,
        target: WorkerTarget,
        settings: PipelineStreamSettings,
        topology: Topology,
        backup: RegionPlacement | None,
    ) -> tuple[RegionReport, list[EventNote]]:
        placement, ref, events = target.placement, target.ref, []
        stream_problem: Finding | None = None
        try:
            changes = await self.jetstream.ensure_region(
                placement, region_bucket_settings(placement, topology)
            )
            changes |= await self.jetstream.ensure_pipeline(placement, ref, settings)
            if backup is not None and target.spec.durability is Durability.REGIONAL:
                backup_settings = self._stream_settings(target.spec, backup)
                changes |= await self.jetstream.ensure_job_mirror(
                    backup, ref, placement.region, backup_settings
                )
            for resource, change in changes.items():
                metrics.JETSTREAM_CHANGES.labels(region=placement.region, change=change).inc()
                verb = "Created" if change == "create" else "Updated"
                events.append(
                    EventNote(
                        "Normal", verb, f"{verb} JetStream resource {resource} in region {placement.region}."
                    )
                )
        except RegionUnreachableError as error:
            stream_problem = Finding(Reason.NATS_UNREACHABLE, f"Region {placement.region}: {error}")
        except JetStreamRefusedError as error:
            stream_problem = Finding(Reason.STREAM_CONFLICT, f"Region {placement.region}: {error}")
        except Exception as error:  # reported like the others, and retried on the next pass
            logger.exception(
                "Provisioning JetStream for ImagePipeline %s in region %s failed.", ref, placement.region
            )
            stream_problem = Finding(
                Reason.JETSTREAM_ERROR, f"Region {placement.region}: JetStream failed: {error!r}"
            )

        workers_problem: Finding | None = None
        observation = WorkerObservation()
        backlog: int | None = None
        scaling_reason = ""
        try:
            runtime = self.runtimes.for_region(placement)
            applied = await runtime.apply(target, self.replicas.initial(target))
            observation = applied.observation
            events += [EventNote("Normal", action.verb, action.describe()) for action in applied.actions]
            if stream_problem is None:
                backlog = await self.jetstream.backlog(placement, ref)
            decision = self.replicas.desired(target, observation, backlog)
            if decision is not None:
                scaling_reason = decision.reason
                action = await runtime.scale(target, decision.replicas)
                if action is not None:
                    events.append(EventNote("Normal", Reason.SCALED, action.describe()))
                    observation = await runtime.observe(target)
        except Exception as error:  # a runtime failure is reported, and retried on the next pass
            logger.exception(
                "Applying the workers of ImagePipeline %s in region %s failed.", ref, placement.region
            )
            workers_problem = Finding(
                Reason.RUNTIME_FAILED, f"Region {placement.region}: the workers could not be applied: {error}"
            )
        desired = observation.replicas if observation.replicas is not None else 0
        return (
            RegionReport(
                region=placement.region,
                pool=placement.pool,
                weight=placement.weight,
                stream_problem=stream_problem,
                workers_problem=workers_problem,
                desired_replicas=desired,
                ready_replicas=observation.ready,
                available_replicas=observation.available,
                rolled_out=observation.rolled_out,
                backlog=backlog,
                scaling_reason=scaling_reason,
            ),
            events,
        )

    async def _route(
        self,
        ref: PipelineRef,
        *,
        spec: ImagePipelineSpec,
        pipeline_generation: int,
        reports: list[RegionReport],
        guards: Mapping[str, GuardReading],
        drains: list[Drain],
        failed: Set[str],
        events: list[EventNote],
    ) -> list[RegionReport]:
        """Plan the effective weights, write them and the drains to the routing table, and report
        the weights per region.

        A region is routable unless its last probe left it `Failed` (in `failed`, read once per pass);
        a region not probed yet is given the benefit of the doubt (the operator just started, or the
        pool is new).
        """
        routable = {r.region: r.region not in failed for r in reports}
        plan = plan_weights(
            {r.region: r.weight for r in reports},
            routable,
            guards=guards,
            policy=shift_policy(spec),
            previous=self._plans.get(ref),
            now=time.monotonic(),
        )
        self._plans[ref] = plan
        events += [EventNote("Normal", plan.reason, message) for message in plan.events]
        source_bucket = streams.sources_bucket(streams.GEO) if spec.durability is Durability.GEO else ""
        version = (plan.generation, pipeline_generation, source_bucket, tuple(drains))
        if self._published.get(ref) != version:
            entry = RoutingEntry(
                pipeline=ref,
                generation=plan.generation,
                pipeline_generation=pipeline_generation,
                regions=[RoutingWeight(region=r, weight=w) for r, w in sorted(plan.weights.items())],
                source_bucket=source_bucket,
                drains=drains,
            )
            try:
                await self.jetstream.publish_routing(self.default_region.placement(), entry)
                self._published[ref] = version
                metrics.record_weights(ref.namespace, ref.name, plan.weights)
            except Exception as error:  # retried on the next pass; gateways keep the last table
                logger.warning("Writing the routing table of ImagePipeline %s failed: %r", ref, error)
        return [replace(r, weight=plan.weights.get(r.region, 0)) for r in reports]

    async def _decide_routing(
        self,
        ref: PipelineRef,
        routing: RoutingInputs,
        reports: list[RegionReport],
        guards: Mapping[str, GuardReading],
        events: list[EventNote],
    ) -> list[RegionReport]:
        """Drains and weights from one reading of the regions' phases, one decision at a time.

        A pass and a reroute after a probe both decide here, under the pipeline's lock, and read
        the phases inside it: a phase that flipped between the drains and the weights would publish
        one without the other (weight 0 with no drain yet, or weight back while the drain runs),
        and a pass that read the phases before a flip must not overwrite the reroute that followed.
        """
        async with self._routing_locks.setdefault(ref, asyncio.Lock()):
            failed = self._failed_regions()
            drains = await self._fail_over(
                ref,
                spec=routing.spec,
                topology=routing.topology,
                pools=routing.pools,
                regions=routing.regions,
                failed=failed,
                events=events,
            )
            return await self._route(
                ref,
                spec=routing.spec,
                pipeline_generation=routing.pipeline_generation,
                reports=reports,
                guards=guards,
                drains=drains,
                failed=failed,
                events=events,
            )

    async def reroute(self, only: Set[PipelineRef] | None = None) -> None:
        """Decide drains and weights again for every pipeline (or those in `only`), from its last
        pass's inputs.

        Called when a region's phase turns to or from Failed, so traffic leaves a dead region at
        the next probe rather than after a whole pass (which waits on that region's timeouts), and
        after a drain could not be opened or closed. Weights do not wait for the drain: a region
        at weight 0 takes no new jobs, and its drain follows at the next probe.
        """
        for ref, routing in list(self._routing_inputs.items()):
            if only is not None and ref not in only:
                continue
            reports = [RegionReport(region=p.region, pool=p.pool, weight=p.weight) for p in routing.regions]
            events: list[EventNote] = []
            try:
                await self._decide_routing(ref, routing, reports, {}, events)
            except Exception:  # the next pass decides again
                logger.exception("Rerouting ImagePipeline %s failed.", ref)
            for note in events:
                logger.info("ImagePipeline %s: %s", ref, note.message)

    def _failed_regions(self) -> set[str]:
        return {region for region, phase in self._region_phases.items() if phase == RegionPhase.FAILED}

    def _stream_settings(self, spec: ImagePipelineSpec, placement: RegionPlacement) -> PipelineStreamSettings:
        return pipeline_stream_settings(
            spec, placement, self.geo if spec.durability is Durability.GEO else None
        )

    async def _guard_readings(
        self, ref: PipelineRef, placements: Sequence[RegionPlacement], down: Set[str]
    ) -> dict[str, GuardReading]:
        """Each region's error rate and p99 latency since the last pass, from its workers' running
        totals.

        Only two passes in a row that both read the region, with no failed probe of it in
        between, make a reading: a region would otherwise be judged, at its first step back, by
        what it did while it was away (one cut off from the JetStream meta leader may fail jobs
        until it heals).
        """
        readings: dict[str, GuardReading] = {}
        for placement in placements:
            key = (ref, placement.region)
            totals = None if placement.region in down else await self.jetstream.worker_totals(placement, ref)
            if totals is None:
                self._guard_totals.pop(key, None)
                continue
            now = GuardTotals.of(totals)
            before = self._guard_totals.get(key)
            self._guard_totals[key] = now
            if before is not None and (reading := now.reading_since(before)) is not None:
                readings[placement.region] = reading
        return readings

    async def _fail_over(
        self,
        ref: PipelineRef,
        *,
        spec: ImagePipelineSpec,
        topology: Topology,
        pools: Mapping[str, RegionPoolSpec],
        regions: Sequence[RegionPlacement],
        failed: Set[str],
        events: list[EventNote],
    ) -> list[Drain]:
        """The drains to run: one in the backup of every failed region, until the region is back.

        `regional`: the backup drains the failed region's jobs from its mirror with a drain
        consumer, opened here and deleted once the region is no longer Failed; the region's own
        workers then take the jobs left in its stream, skipping those the backup finished (their
        completion records are replicated back). `geo`: the failed region's stream outlives it on
        the cross-region cluster, so the backup's workers share the region's own consumer.
        Workers learn their drains from the routing table.
        """
        drains: list[Drain] = []
        unsettled = False
        for placement in regions:
            origin = placement.region
            backup = backup_placement(origin, topology, pools)
            if backup is None:
                continue
            if spec.durability is Durability.GEO:
                if origin in failed:
                    stream, consumer = streams.job_stream(ref, origin), streams.worker_consumer(ref)
                    drains.append(
                        Drain(origin=origin, backup=backup.region, stream=stream, consumer=consumer)
                    )
                continue
            lag = await self.jetstream.mirror_lag(backup, ref, origin)
            if lag is not None:
                metrics.MIRROR_LAG.labels(ref.namespace, ref.name, origin, backup.region).set(lag)
            key = (ref, origin)
            try:
                if origin in failed:
                    if await self.jetstream.open_drain(
                        backup, ref, origin, self._stream_settings(spec, backup)
                    ):
                        message = f"Region {origin} failed: region {backup.region} drains its jobs."
                        events.append(EventNote("Warning", Reason.DRAINING, message))
                        logger.warning("ImagePipeline %s: %s", ref, message)
                    self._draining.add(key)
                    drains.append(
                        Drain(
                            origin=origin,
                            backup=backup.region,
                            stream=streams.job_mirror_stream(ref, origin, backup.region),
                            consumer=streams.drain_consumer(ref, origin),
                        )
                    )
                elif key in self._draining or ref not in self._drains_checked:
                    if await self.jetstream.close_drain(backup, ref, origin):
                        message = f"Region {origin} is back: the drain in region {backup.region} stopped."
                        events.append(EventNote("Normal", Reason.DRAIN_STOPPED, message))
                        logger.info("ImagePipeline %s: %s", ref, message)
                    self._draining.discard(key)
            except (RegionUnreachableError, JetStreamRefusedError) as error:
                unsettled = True
                logger.warning("The drain of region %s for ImagePipeline %s: %s", origin, ref, error)
        self._drains_checked.add(ref)
        if unsettled:
            self._drains_unsettled.add(ref)
        else:
            self._drains_unsettled.discard(ref)
        return drains

    async def _remove_other_regions(
        self,
        ref: PipelineRef,
        spec: ImagePipelineSpec,
        pools: Mapping[str, RegionPoolSpec],
        kept_regions: set[str],
        missing_pools: set[str],
    ) -> list[EventNote]:
        events: list[EventNote] = []
        for runtime in self.runtimes.all():
            try:
                found = await runtime.placed(ref)
            except Exception as error:  # a member cluster that is down: its leftovers wait for it
                logger.warning("Listing the workers of ImagePipeline %s in a cluster failed: %r", ref, error)
                continue
            for placed in found:
                if placed.region in kept_regions or placed.pool in missing_pools:
                    continue
                removed = await runtime.remove(ref, placed.region)
                self.replicas.forget(ref, placed.region)
                events += [EventNote("Normal", Reason.DELETED, action.describe()) for action in removed]
                pool = pools.get(placed.pool)
                if spec.deletion_policy is DeletionPolicy.DELETE and pool is not None:
                    await self.jetstream.delete_pipeline(RegionPlacement.from_pool(placed.pool, pool, 0), ref)
                    events.append(
                        EventNote(
                            "Normal", Reason.DELETED, f"Deleted the job stream in region {placed.region}."
                        )
                    )
        return events

    def _problem_events(self, previous: ImagePipelineStatus, status: ImagePipelineStatus) -> list[EventNote]:
        """A Warning when the reason the pipeline is not Ready is new; a Normal one when it recovers."""
        before = find_condition(previous.conditions, ConditionType.READY)
        after = find_condition(status.conditions, ConditionType.READY)
        if after is None:
            return []
        if before is not None and (before.status, before.reason, before.message) == (
            after.status,
            after.reason,
            after.message,
        ):
            return []
        if after.status == "True":
            # Ready for the first time, or again: a reworded Ready is not news.
            recovered = before is None or before.status != "True"
            return [EventNote("Normal", after.reason, after.message)] if recovered else []
        if after.reason in (Reason.WORKERS_UNAVAILABLE, Reason.ROLLOUT_IN_PROGRESS, Reason.NOT_RECONCILED):
            return []  # waiting for workers is progress, not a problem
        return [EventNote("Warning", after.reason, after.message)]

    def _record(self, ref: PipelineRef, findings: PipelineFindings) -> None:
        problems = [
            findings.spec_problem,
            *findings.placement_problems,
            *(r.failure for r in findings.regions),
        ]
        for problem in problems:
            if problem is not None:
                metrics.RECONCILE_ERRORS.labels(kind="ImagePipeline", reason=problem.reason).inc()
        result = "error" if any(p is not None for p in problems) else "success"
        metrics.RECONCILES.labels(kind="ImagePipeline", result=result).inc()
        if findings.spec_problem is not None:
            return
        self._forget_ready_workers(ref)
        for report in findings.regions:
            self._ready_workers.setdefault(report.region, {})[ref] = report.ready_replicas
            metrics.record_workers(
                ref.namespace,
                ref.name,
                report.region,
                desired=report.desired_replicas,
                ready=report.ready_replicas,
                backlog=report.backlog,
            )

    def _forget_ready_workers(self, ref: PipelineRef) -> None:
        for by_ref in self._ready_workers.values():
            by_ref.pop(ref, None)

    async def delete_pipeline(
        self, obj: PipelineObject, pools: Mapping[str, RegionPoolSpec]
    ) -> list[EventNote]:
        """Remove what owner references cannot: workers elsewhere, streams under the Delete policy.

        Raises when a region that must be cleaned cannot be reached, so the caller retries and the
        finalizer keeps the pipeline until it is done.
        """
        ref = obj.ref
        events: list[EventNote] = []
        regions: list[str] = []
        for runtime in self.runtimes.all():
            for placed in await runtime.placed(ref):
                regions.append(placed.region)
                removed = await runtime.remove(ref, placed.region)
                events += [EventNote("Normal", Reason.DELETED, action.describe()) for action in removed]
        try:
            spec = ImagePipelineSpec.model_validate(obj.spec)
        except ValidationError:
            logger.warning("ImagePipeline %s has an invalid spec; its streams are retained.", ref)
            spec = None
        if spec is not None and spec.deletion_policy is DeletionPolicy.DELETE:
            for placement in resolve_placements(spec, pools, self.default_region).regions:
                await self.jetstream.delete_pipeline(placement, ref)
                regions.append(placement.region)
                logger.info(
                    "Deleted the JetStream resources of ImagePipeline %s in region %s.", ref, placement.region
                )
        self._forget_ready_workers(ref)
        self.replicas.forget(ref)
        self._routing_inputs.pop(ref, None)
        self._drains_unsettled.discard(ref)
        self._plans.pop(ref, None)
        self._published.pop(ref, None)
        metrics.forget_pipeline(ref.namespace, ref.name, sorted(set(regions)))
        return events

    # --- pools --------------------------------------------------------------------------------------

    async def probe_pool(
        self,
        name: str,
        generation: int,
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        pools: Mapping[str, RegionPoolSpec] | None = None,
    ) -> PoolOutcome:
        """Probe a RegionPool's NATS; make sure its shared buckets exist while it answers.

        `pools` (every RegionPool, by name) tell which replicas of other regions it should hold.
        """
        previous = parse_pool_status(status)
        pool = RegionPoolSpec.model_validate(spec)
        topology = Topology.from_pools(self.default_region.region, {**(pools or {}), name: pool})
        placement = RegionPlacement.from_pool(name, pool, pool.weight)
        probe = await self.jetstream.probe(placement, duration_seconds(pool.failover.probe_timeout))
        if probe.ok and self.clusters is not None and pool.cluster is not None:
            timeout = duration_seconds(pool.failover.probe_timeout)
            reachable, message = await self.clusters.api_reachable(pool.cluster, timeout)
            if not reachable:
                probe = replace(probe, api_reachable=False, message=message)
        events: list[EventNote] = []
        if probe.ok:
            try:
                await self.jetstream.ensure_region(placement, region_bucket_settings(placement, topology))
            except (RegionUnreachableError, JetStreamRefusedError) as error:
                probe = ProbeResult(
                    nats_reachable=True,
                    jetstream_available=False,
                    round_trip_seconds=probe.round_trip_seconds,
                    message=str(error),
                )
        findings = PoolFindings(
            generation=generation,
            probe=probe,
            active_workers=self.active_workers(pool.region),
            failure_threshold=pool.failover.failure_threshold,
            recovery_threshold=pool.failover.recovery_threshold,
        )
        new = pool_status(previous, findings)
        if new.phase != previous.phase:
            kind: EventType = "Normal" if new.phase == "Healthy" else "Warning"
            ready = find_condition(new.conditions, ConditionType.READY)
            message = f"Region {pool.region} is {new.phase}" + (
                f": {ready.message}" if ready and ready.message else "."
            )
            events.append(EventNote(kind, f"Region{new.phase}", message))
        metrics.record_region_phase(pool.region, new.phase)
        if not probe.ok:
            # A guard reading spans two passes that read the region: none may span an outage.
            for key in [key for key in self._guard_totals if key[1] == pool.region]:
                del self._guard_totals[key]
        was_failed = self._region_phases.get(pool.region) == RegionPhase.FAILED
        self._region_phases[pool.region] = new.phase
        if was_failed != (new.phase == RegionPhase.FAILED):
            await self.reroute()
        elif self._drains_unsettled:
            await self.reroute(only=set(self._drains_unsettled))
        if probe.round_trip_seconds is not None:
            metrics.REGION_ROUND_TRIP.labels(region=pool.region).set(probe.round_trip_seconds)
        metrics.RECONCILES.labels(kind="RegionPool", result="success" if probe.ok else "error").inc()
        return PoolOutcome(new, status_patch(status, new.to_wire()), tuple(events))
