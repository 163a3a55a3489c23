"""`python -m bench.patched_worker`: the real worker with a prototype change patched in at start-up.

Lets the bench measure a proposed worker change end to end before anyone edits `worker/`: this
launcher replaces nats-py's `ObjectStore.get` for objects of more than one chunk with the pull-fetch
reader of `bench.prototypes` (see finding 1 in docs/benchmarks.md), then runs the worker's own
`main()` unchanged. The bench runs it as the `pixelmesh-worker-pullread` contender.
"""

from __future__ import annotations

import sys
from typing import Any

from nats.js.object_store import ObjectStore

from bench.prototypes import read_chunks_by_pull

_stock_get = ObjectStore.get


async def get_by_pull(
    self: ObjectStore, name: str, writeinto: Any = None, show_deleted: bool | None = False
) -> ObjectStore.ObjectResult:
    """`ObjectStore.get`, reading multi-chunk objects with one pull fetch instead of flow control."""
    if writeinto is not None or show_deleted:
        return await _stock_get(self, name, writeinto, show_deleted)
    info = await self.get_info(name)
    if info.chunks is None or info.chunks <= 1 or info.is_link():
        return await _stock_get(self, name)
    data = await read_chunks_by_pull(self._js, self._name, info)
    return ObjectStore.ObjectResult(info=info, data=data)


def main() -> int:
    ObjectStore.get = get_by_pull  # type: ignore[method-assign]
    from pixelmesh.worker.__main__ import main as worker_main  # noqa: PLC0415 - after the patch

    return worker_main([])


if __name__ == "__main__":
    sys.exit(main())
