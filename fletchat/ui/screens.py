"""What the hub sends to the tabs of this process (Flet's pubsub), with read marks coalesced.

Every focused tab sends a read mark a second after a message arrives, and the hub hands each
mark to every tab: with 100 tabs, one message was followed by 100 marks to 100 tabs, 10,000
handler calls and about a second of the host's CPU, ten times the message itself (issue 12). A
tab does the same for any mark of a channel (it redraws its own rows from the hub's marks), so
the marks of a channel that arrive within ``READ_WINDOW`` go to the tabs as one: the last.
Everything else goes through at once; the hub's other listeners (relay, headless) still get
every mark, and the marks themselves are all kept by the hub.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from ..conversation.views import ReadChanged

READ_WINDOW = 0.2  # seconds: the marks of one message's readers arrive within a few tens of ms


class ScreensPublisher:
    """``Hub.use_pubsub``'s publisher for Flet tabs: ``pubsub`` with read marks coalesced."""

    def __init__(self, pubsub: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.pubsub = pubsub
        self.loop = loop
        self._lock = threading.Lock()
        self._reads: dict[tuple[str, str], ReadChanged] = {}  # (topic, channel) -> the last

    def send_all_on_topic(self, topic: str, message: Any) -> None:
        if not isinstance(message, ReadChanged):
            self.pubsub.send_all_on_topic(topic, message)
            return
        with self._lock:
            first = not self._reads
            self._reads[(topic, message.channel)] = message
        if first:
            try:
                self.loop.call_soon_threadsafe(self.loop.call_later, READ_WINDOW, self._flush)
            except RuntimeError:  # the loop is closed: the process is stopping, no tab to tell
                with self._lock:
                    self._reads.clear()

    def _flush(self) -> None:
        with self._lock:
            reads, self._reads = self._reads, {}
        for (topic, _channel), event in reads.items():
            self.pubsub.send_all_on_topic(topic, event)
