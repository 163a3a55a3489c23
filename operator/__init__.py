"""The PixelMesh operator: reconciles ImagePipeline and RegionPool resources into workers and streams.

Layers point one way: handlers -> reconcile -> (builders | status | observe) -> (api | meta). Pure
modules (builders such as `jetstream`, the autoscaler maths, the federation policy) never import
kopf, the Kubernetes client or nats; only `clients/` talks to the Kubernetes API or NATS.
"""
