"""Reading the last message on a subject without JetStream's API when the stream allows it.

A direct get (`$JS.API.DIRECT.GET.<stream>.<subject>`) is answered by the servers holding the
stream, while the API's get (`$JS.API.STREAM.MSG.GET`) also needs the JetStream meta leader: a
region cut off from the others loses that leader (the meta group spans every region) and refuses
API gets, though its own streams are still there. Buckets and replicas are made with
`allow_direct` for this; a stream without it has nobody to answer a direct get, and the API's get
is the fallback. A direct get of a replicated stream may be answered by a follower a moment behind
its leader: callers use it where a miss is retried or checked again (a job's idempotency key is
also its message id, so JetStream still drops a duplicate).
"""

from __future__ import annotations

from nats.errors import NoRespondersError
from nats.js import JetStreamContext, api


async def last_message(js: JetStreamContext, stream: str, subject: str) -> api.RawStreamMsg:
    """The last message on `subject` in `stream`; `nats.js.errors.NotFoundError` when there is none."""
    try:
        return await js.get_last_msg(stream, subject, direct=True)
    except NoRespondersError:
        return await js.get_last_msg(stream, subject)
