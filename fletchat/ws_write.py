"""Writing a peer connection's frames at once, when websockets would do nothing more than that.

``Connection.send`` wraps every frame in an async context manager (a state check, the frame,
``send_data``, then ``drain``) and the mesh's write task is woken to call it: per message a
sender paid a task wake-up and that machinery for each peer before the frame reached TLS, about
a fifth of the time until four peers had it (issue 11). When the connection is open, not paused
by TCP flow control, not in the middle of a fragmented send and its transport is not closing,
``send`` would only have framed the text and written it: ``write_now`` does exactly that, in
order. Otherwise it writes nothing and says so, and the caller's write task sends as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from websockets.asyncio.connection import Connection
from websockets.exceptions import WebSocketException
from websockets.protocol import State

log = logging.getLogger("fletchat.mesh")


def writable(ws: Connection) -> bool:
    """Whether a frame written now goes straight to the transport, as ``send`` would write it."""
    return (ws.protocol.state is State.OPEN and not ws.paused and ws.send_in_progress is None
            and not ws.transport.is_closing())


def write_now(ws: Connection, frames: Sequence[str]) -> None:
    """Frame ``frames`` as text messages and hand them to the transport (``writable`` first).
    A transport that fails is aborted: the connection's reader then ends it as it would any
    broken socket."""
    try:
        for frame in frames:
            ws.protocol.send_text(frame.encode())
        ws.send_data()
    except (OSError, RuntimeError, WebSocketException) as err:  # as send_context: it is done
        log.debug("writing to a peer failed: %r", err)
        ws.transport.abort()
