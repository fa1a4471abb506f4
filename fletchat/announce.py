"""Which joins get a line in the history ("Ann has joined the chat.").

Each join and leave line a device's own people make is a stored message that every peer gets,
and every peer counts it against this device's per-origin quota: a script that connects to
``/relay``, says hello and closes, again and again (or opens and closes tabs), made the host
post a pair of lines each time, unlimited, until its peers refused its real messages too. Past
these budgets a person still joins (the roster shows them: presence comes from live sessions)
but no line is posted, and then none for their leave either."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from .protocol import TokenBucket

ANNOUNCED_JOINS_PER_ADDRESS_PER_MINUTE = 6.0  # per client address (a browser's IP)
ANNOUNCED_JOINS_ADDRESS_BURST = 6.0
ANNOUNCED_JOINS_PER_MINUTE = 60.0  # all addresses together: a classroom arriving at once
ANNOUNCED_JOINS_BURST = 60.0
MAX_TRACKED_ADDRESSES = 4096  # the least recently seen address's budget goes first


class AnnounceBudget:
    """``allow(address)``: may this join be announced? Per address first (so one address
    cannot spend everyone's budget), then the device's total."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._total = TokenBucket(ANNOUNCED_JOINS_PER_MINUTE / 60, ANNOUNCED_JOINS_BURST, clock)
        self._by_address: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, address: str) -> bool:
        bucket = self._by_address.get(address)
        if bucket is None:
            bucket = self._by_address[address] = TokenBucket(
                ANNOUNCED_JOINS_PER_ADDRESS_PER_MINUTE / 60, ANNOUNCED_JOINS_ADDRESS_BURST,
                self._clock)
            while len(self._by_address) > MAX_TRACKED_ADDRESSES:
                self._by_address.popitem(last=False)
        self._by_address.move_to_end(address)
        return bucket.allow() and self._total.allow()
