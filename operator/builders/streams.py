"""From an ImagePipeline spec and a region to the JetStream settings of `operator.jetstream`.

The JetStream builders take plain settings; this maps the API's fields (durations as strings,
optional limits) onto them. The settings validate themselves: a combination the API server let
through but JetStream would refuse raises `ValueError`, which the reconciler reports as an
invalid spec.
"""

from __future__ import annotations

from pixelmesh.api.resources import ImagePipelineSpec, duration_seconds
from pixelmesh.operator.jetstream import PipelineStreamSettings, RegionBucketSettings
from pixelmesh.operator.target import GeoPlacement, RegionPlacement, Topology


def pipeline_stream_settings(
    spec: ImagePipelineSpec, placement: RegionPlacement, geo: GeoPlacement | None = None
) -> PipelineStreamSettings:
    """The region's stream settings; with `geo` (a `durability: geo` pipeline) they live on the
    cross-region cluster instead of the region's own."""
    return PipelineStreamSettings(
        replicas=geo.replicas if geo else placement.stream_replicas,
        max_age_seconds=duration_seconds(spec.queue.max_age),
        max_bytes=spec.queue.max_bytes or -1,
        duplicate_window_seconds=duration_seconds(spec.queue.duplicate_window),
        ack_wait_seconds=duration_seconds(spec.retry.ack_wait),
        max_deliver=spec.retry.max_deliveries,
        backoff_seconds=tuple(duration_seconds(delay) for delay in spec.retry.backoff),
        max_ack_pending=spec.retry.max_ack_pending,
        outputs_max_age_seconds=duration_seconds(spec.outputs.max_age),
        outputs_max_bytes=spec.outputs.max_bytes or -1,
        placement_cluster=geo.cluster if geo else placement.placement_cluster,
        region=placement.region,
    )


def region_bucket_settings(
    placement: RegionPlacement, topology: Topology | None = None
) -> RegionBucketSettings:
    """The region's buckets, with copies of what its peers replicate into it (`topology`)."""
    topology = topology or Topology.single(placement.region)
    return RegionBucketSettings(
        replicas=placement.stream_replicas,
        placement_cluster=placement.placement_cluster,
        region=placement.region,
        peers=tuple(r for r in topology.regions if r != placement.region),
        backed_up=topology.backed_up_by(placement.region),
        routing_origin=topology.home,
    )
