"""Pure builders: typed targets in, desired Kubernetes objects (dicts) and JetStream settings out.

Deterministic, no I/O, no kopf, no Kubernetes client: each builder can be unit-tested by looking
at the dict it returns. Every object carries a `pixelmesh.io/spec-hash` annotation of its own
content, so reconcile can tell a child written from an older spec at a glance.
"""
