"""Network partitions between regions on one machine's loopback.

Every region's processes listen on 127.0.0.1, so no firewall rule can tell one region's traffic
from another's. Instead, what crosses regions goes through relays: a region's listeners are named
to the other regions only by a relay's address (NATS gateways and routes advertise it, the hub's
kubeconfig Secrets and RegionPools name it, the gateways of other regions dial it). A relay knows
the region it leads into, and learns the region a connection comes from by the process that owns
the connecting socket (`/proc/net/tcp` and the processes' file descriptors). A process the relays
were not told about counts as outside every region and is never cut.

`cut(region)` closes every relayed connection between that region and any other, and refuses new
ones, in both directions; the region's own traffic, on the real ports, goes on. So a cut-off region
keeps working alone, which is what a partition is and a crash is not. `heal(region)` lets
connections through again; NATS and the clients reconnect by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
CHUNK = 64 * 1024


def _tcp_inode(local_port: int, remote_port: int, tables: tuple[Path, ...]) -> int | None:
    """The inode of the loopback socket `local_port` -> `remote_port`, from the kernel's TCP tables."""
    local, remote = f":{local_port:04X}", f":{remote_port:04X}"
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[1].endswith(local) and fields[2].endswith(remote):
                return int(fields[9])
    return None


def socket_owner(inode: int, pids: Mapping[int, str], proc: Path = Path("/proc")) -> str | None:
    """The region of the process (among `pids`) holding socket `inode` open, or None."""
    wanted = f"socket:[{inode}]"
    for pid, region in pids.items():
        try:
            descriptors = list((proc / str(pid) / "fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            with contextlib.suppress(OSError):
                if str(descriptor.readlink()) == wanted:
                    return region
    return None


def blocked(source: str | None, destination: str, cut: frozenset[str]) -> bool:
    """Whether a connection from `source` (None: outside every region) into `destination` is cut."""
    if source is None or source == destination:
        return False
    return source in cut or destination in cut


@dataclass(eq=False)
class _Link:
    source: str | None
    destination: str
    writers: tuple[asyncio.StreamWriter, asyncio.StreamWriter]
    ports: tuple[int, int]
    """(the dialling socket's port, the relay's port): to learn the source later, if need be."""

    def abort(self) -> None:
        for writer in self.writers:
            writer.transport.abort()


@dataclass
class Netsplit:
    """Relays into each region's listeners, and the cuts between regions; `start()`/`stop()`."""

    proc: Path = Path("/proc")
    _pids: dict[int, str] = field(default_factory=dict)
    _cut: frozenset[str] = frozenset()
    _links: set[_Link] = field(default_factory=set)
    _servers: list[asyncio.Server] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    refused: dict[tuple[str | None, str], int] = field(default_factory=dict)
    """(source region, destination region) -> connections refused by a cut."""

    def start(self) -> Netsplit:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.call_soon(ready.set)
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="netsplit", daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._call(self._close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop = None

    def place(self, pid: int, region: str) -> None:
        """Count process `pid`'s connections as `region`'s."""
        self._pids[pid] = region

    def relay(self, region: str, port: int) -> int:
        """A relay into `region`'s listener on `port`; the port the other regions should dial."""
        return self._call(self._open(region, port))

    def cut(self, region: str) -> None:
        """Cut `region` off from every other region, both ways, now."""
        self._cut = self._cut | {region}
        self._call(self._enforce())
        log.warning("Region %s is cut off from the other regions.", region)

    def heal(self, region: str) -> None:
        """Let `region`'s connections with the other regions through again."""
        self._cut = self._cut - {region}
        log.warning("Region %s is reachable from the other regions again.", region)

    @property
    def cut_off(self) -> frozenset[str]:
        return self._cut

    # --- on the relays' loop ---------------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the netsplit relays are not started")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _open(self, region: str, port: int) -> int:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._accept(region, port, reader, writer)

        server = await asyncio.start_server(accept, LOOPBACK, 0)
        self._servers.append(server)
        relay_port: int = server.sockets[0].getsockname()[1]
        return relay_port

    async def _accept(
        self, destination: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer_port = writer.get_extra_info("peername")[1]
        relay_port = writer.get_extra_info("sockname")[1]
        source = await asyncio.to_thread(self._owner, peer_port, relay_port)
        if blocked(source, destination, self._cut):
            self.refused[(source, destination)] = self.refused.get((source, destination), 0) + 1
            writer.transport.abort()
            return
        try:
            target_reader, target_writer = await asyncio.open_connection(LOOPBACK, port)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(source, destination, (writer, target_writer), (peer_port, relay_port))
        self._links.add(link)
        try:
            await asyncio.gather(_pipe(reader, target_writer), _pipe(target_reader, writer))
        finally:
            self._links.discard(link)
            link.abort()

    def _owner(self, peer_port: int, relay_port: int) -> str | None:
        tables = (self.proc / "net" / "tcp", self.proc / "net" / "tcp6")
        inode = _tcp_inode(peer_port, relay_port, tables)
        # A copy: this runs in a worker thread while the harness places the processes it starts.
        return None if inode is None else socket_owner(inode, dict(self._pids), self.proc)

    async def _enforce(self) -> None:
        # A connection opened before its process was placed is attributed now, while it is open.
        for link in [link for link in self._links if link.source is None]:
            link.source = await asyncio.to_thread(self._owner, *link.ports)
        for link in [link for link in self._links if blocked(link.source, link.destination, self._cut)]:
            self._links.discard(link)
            link.abort()

    async def _close_all(self) -> None:
        for server in self._servers:
            server.close()
        for link in list(self._links):
            link.abort()
        self._links.clear()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.close()
