"""Free loopback ports for control-plane processes.

Neither etcd nor kube-apiserver can be told "pick a port and tell me which", so the
launcher asks the kernel for an ephemeral port, releases it and passes the number
on. Another process can grab the port in between; the launcher retries start-up
with fresh ports when that happens. Within one Python process, ports handed out
are remembered so that two control planes started side by side never get the same
number from this module.
"""

from __future__ import annotations

import socket
import threading

_lock = threading.Lock()
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listened on a moment ago."""
    with _lock:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
