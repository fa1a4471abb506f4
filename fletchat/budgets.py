"""What a device's own people may post, per client address and for the device as a whole.

Every message a host's tabs and static clients post is stored and sent to every peer, and every
peer counts it against this device's per-origin quota (1,200 a minute, 50,000 a day: docs/
protocol.md "Acceptance"); past it they refuse this device's messages, everyone's. A person's
own send rate (``session.SESSION_RATE_PER_SECOND``) is per session, and a script gets a fresh
session per connection: connect, hello, post twenty, close, again. So posts are also counted
per client address (a browser's IP) and for the whole device, below the peers' quota; and so
are join lines ("Ann has joined the chat."), which connect, hello, close, again made a host post
in pairs, unlimited. Past the join budget a person still joins (the roster comes from live
sessions) but no line is posted, and then none for their leave either."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from .protocol import TokenBucket

MINUTE, DAY = 60.0, 86_400.0
MAX_TRACKED_ADDRESSES = 4096  # the least recently seen address's budget goes first


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: float


# Join lines: 6 a minute per address, 60 a minute in all (a classroom arriving at once).
JOIN_LINES_PER_ADDRESS = (Rate(6 / MINUTE, 6),)
JOIN_LINES_PER_DEVICE = (Rate(60 / MINUTE, 60),)
# Posts (sends, replies, reactions, new channels, renames): per address a few people's worth, and a day's
# share of the quota; per device under the peers' quota of 1,200 a minute and 50,000 a day.
POSTS_PER_ADDRESS = (Rate(10, 40), Rate(5_000 / DAY, 5_000))
POSTS_PER_DEVICE = (Rate(1_000 / MINUTE, 100), Rate(45_000 / DAY, 45_000))


class Refusal(StrEnum):
    NONE = ""
    ADDRESS = "address"  # this client address has spent its budget
    DEVICE = "device"  # all addresses together have spent the device's


class AddressBudget:
    """``spend(address)``: one post (or line) from ``address``, if every bucket of that address
    and then of the device allows it. The address's buckets come first, so one address cannot
    spend everyone's budget."""

    def __init__(self, per_address: tuple[Rate, ...], per_device: tuple[Rate, ...],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rates = per_address
        self._device = [TokenBucket(r.per_second, r.burst, clock) for r in per_device]
        self._by_address: OrderedDict[str, list[TokenBucket]] = OrderedDict()
        self._lock = threading.Lock()

    def spend(self, address: str) -> Refusal:
        """Spend one from every bucket of ``address`` and of the device, or (any refusing)
        none: a refused post costs nothing. Sessions post from worker threads: one at a time."""
        with self._lock:
            buckets = self._by_address.get(address)
            if buckets is None:
                buckets = self._by_address[address] = [
                    TokenBucket(r.per_second, r.burst, self._clock) for r in self._rates]
                while len(self._by_address) > MAX_TRACKED_ADDRESSES:
                    self._by_address.popitem(last=False)
            self._by_address.move_to_end(address)
            if not all(b.ready() for b in buckets):
                return Refusal.ADDRESS
            if not all(b.ready() for b in self._device):
                return Refusal.DEVICE
            for bucket in (*buckets, *self._device):
                bucket.allow()
            return Refusal.NONE

    def allow(self, address: str) -> bool:
        return self.spend(address) is Refusal.NONE


def join_lines_budget(clock: Callable[[], float] = time.monotonic) -> AddressBudget:
    return AddressBudget(JOIN_LINES_PER_ADDRESS, JOIN_LINES_PER_DEVICE, clock)


def posts_budget(clock: Callable[[], float] = time.monotonic) -> AddressBudget:
    return AddressBudget(POSTS_PER_ADDRESS, POSTS_PER_DEVICE, clock)
