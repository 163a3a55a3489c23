"""The e2e's partition relays: which connections a cut stops, and whose socket is whose."""

from __future__ import annotations

import os
import socket

import pytest

from e2e.netsplit import Netsplit, blocked


@pytest.mark.parametrize(
    ("source", "destination", "cut", "expected"),
    [
        ("r1", "r3", {"r3"}, True),
        ("r3", "r1", {"r3"}, True),
        ("r1", "r2", {"r3"}, False),
        ("r3", "r3", {"r3"}, False),
        (None, "r3", {"r3"}, False),
        ("r1", "r3", set(), False),
    ],
)
def test_a_cut_stops_traffic_between_the_region_and_any_other_both_ways(
    source: str | None, destination: str, cut: set[str], expected: bool
) -> None:
    assert blocked(source, destination, frozenset(cut)) is expected


def test_a_relay_carries_bytes_until_the_region_behind_it_is_cut_off() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        netsplit = Netsplit().start()
        try:
            # This process dials from "r1" into a listener of "r3".
            netsplit.place(os.getpid(), "r1")
            relay = netsplit.relay("r3", listener.getsockname()[1])
            with socket.create_connection(("127.0.0.1", relay), timeout=5) as client:
                server, _ = listener.accept()
                with server:
                    client.sendall(b"ping")
                    assert server.recv(4) == b"ping"
                    netsplit.cut("r3")
                    server.settimeout(5)
                    assert server.recv(4) == b"", "the relayed connection was closed by the cut"
            with socket.create_connection(("127.0.0.1", relay), timeout=5) as refused:
                refused.settimeout(5)
                assert refused.recv(4) == b"", "a new connection across the cut is closed at once"
            assert netsplit.refused[("r1", "r3")] == 1
            netsplit.heal("r3")
            with socket.create_connection(("127.0.0.1", relay), timeout=5) as again:
                server, _ = listener.accept()
                with server:
                    again.sendall(b"pong")
                    assert server.recv(4) == b"pong"
        finally:
            netsplit.stop()
