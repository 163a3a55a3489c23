"""Fixtures shared by the whole suite live in `tests/fixtures/`, one module per area."""

pytest_plugins = [
    "e2e.cluster.pytest_plugin",
    "e2e.federation.fixtures",
    "tests.fixtures.images",
    "tests.fixtures.nats",
    "tests.fixtures.kube",
    "tests.fixtures.gateway",
]
