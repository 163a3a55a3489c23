"""Observability as code: PixelMesh's Grafana dashboards and Prometheus alert rules.

The components' metrics modules (`pixelmesh.worker.metrics`, `pixelmesh.gateway.metrics`,
`pixelmesh.operator.metrics`) are the one source of metric names; the dashboards and alerts here
are built from their metric objects, rendered into the Helm chart by `python -m
pixelmesh.observability`, and a test fails when the committed files differ from what the code
generates. Nothing here runs in a PixelMesh process: it is build-time code shipped with the package
so a team can regenerate or extend the files.
"""
