"""Errors the operator's clients raise and the reconciler turns into conditions.

They live apart from `clients/` so the core can catch them without importing anything that talks
to a server.
"""

from __future__ import annotations


class RegionUnreachableError(RuntimeError):
    """A region's NATS (or its JetStream) did not answer."""


class JetStreamRefusedError(RuntimeError):
    """JetStream answered and refused: an invalid configuration, a limit, or a change it cannot make
    in place (recreating a stream would drop its jobs, so that is left to a person)."""
