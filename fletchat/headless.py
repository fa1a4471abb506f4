"""The headless peer: no UI, JSON lines out (every message), text lines in (each one is sent).

For bots, scripts and tests. A line that is refused (too long, not text) gets a JSON error line on
stdout and the peer keeps going.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import threading

from .config import Config
from .hub import HubSession, IdentityWarning, MessageRefused, RosterChanged, StoreFailed
from .model import Message, ValidationError
from .node import Node


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def event_line(event: object) -> dict | None:
    """The JSON line printed for a hub event (None for events the headless peer does not print)."""
    if isinstance(event, Message):
        return {"event": "message", **event.to_dict()}
    if isinstance(event, IdentityWarning):
        return {
            "event": "identity_warning",
            "peer_id": event.peer_id,
            "name": event.name,
            "old_fingerprint": event.old_fingerprint,
            "new_fingerprint": event.new_fingerprint,
            "at": event.at,
        }
    if isinstance(event, RosterChanged):
        return {"event": "online", "people": [p.name for p in event.online]}
    if isinstance(event, StoreFailed):
        return {"event": "error", "error": event.reason}
    if isinstance(event, MessageRefused):
        return {"event": "refused", "peer_id": event.peer_id,
                "refused": [{"id": i, "reason": r} for i, r in event.refusals]}
    return None


async def serve_headless(config: Config, node: Node) -> None:
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def on_event(event: object) -> None:
        line = event_line(event)
        if line is not None:
            emit(line)

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))
        loop.call_soon_threadsafe(lines.put_nowait, None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: no such handlers
            loop.add_signal_handler(sig, lines.put_nowait, None)
    node.hub.add_listener(on_event)
    await node.start()
    session = HubSession(node.hub, device="headless")
    session.join(config.name or node.name)
    emit({"event": "ready", "peer_id": node.peer_id, "name": session.name,
          "peer_port": node.peer_port})
    if node.hub.store_error:  # e.g. the history opened read-only (disk full, read-only folder)
        emit({"event": "error", "error": node.hub.store_error})
    threading.Thread(target=read_stdin, daemon=True, name="stdin").start()
    try:
        while (line := await lines.get()) is not None:
            try:
                await asyncio.to_thread(session.send, line)  # stored (SQLite): off the loop
            except ValidationError as err:
                emit({"event": "error", "error": str(err)})
    finally:
        session.leave()
        await node.stop()


def run_headless(config: Config, node: Node) -> None:
    try:
        asyncio.run(serve_headless(config, node))
    except KeyboardInterrupt:
        pass
