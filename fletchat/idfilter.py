"""Which message ids a store certainly does not hold, without asking SQLite (pure, no I/O).

A Bloom filter: ``may_contain(id)`` is False only for ids never added, so the acceptance pipeline
can skip the store lookup for a new live message (the common case) and still ask SQLite whenever
the answer could be yes. About 10 bits per id give about 1 % false positives (which only cost
that lookup); past its capacity the rate rises, never the error.
"""

from __future__ import annotations

import math

HASHES = 7
BITS_PER_ID = 10


class IdFilter:
    """A fixed-size Bloom filter over id strings (thread-safe enough: adds only set bits)."""

    def __init__(self, capacity: int) -> None:
        self.bits = max(1 << 16, math.ceil(capacity * BITS_PER_ID))
        self._data = bytearray((self.bits + 7) // 8)
        self.added = 0

    def _positions(self, item: str) -> list[int]:
        h1, h2 = _hashes(item)
        return [(h1 + i * h2) % self.bits for i in range(HASHES)]

    def add(self, item: str) -> None:
        for p in self._positions(item):
            self._data[p >> 3] |= 1 << (p & 7)
        self.added += 1

    def may_contain(self, item: str) -> bool:
        """Stops at the first clear bit (a new id's first probe, nearly always)."""
        h1, h2 = _hashes(item)
        data, bits = self._data, self.bits
        for i in range(HASHES):
            p = (h1 + i * h2) % bits
            if not data[p >> 3] & (1 << (p & 7)):
                return False
        return True


def _hashes(item: str) -> tuple[int, int]:
    """Python's own string hash (SipHash, cached on the string; seeded per process, which is
    fine: the filter lives in memory and is rebuilt at every start), split into the two 32-bit
    hashes of double hashing. blake2b cost 4x as much per lookup."""
    h = hash(item)
    return h & 0xFFFF_FFFF, ((h >> 32) & 0xFFFF_FFFF) | 1


class KnownIds:
    """What a store certainly does not hold: ids outside the filter, and (origin, seq) slots
    above the highest seq seen for that origin. Until ``ready`` (the stored ids are loaded on a
    thread at open) every question answers "may hold". Writers call ``add`` for every row they
    write, before it is committed, so the answer never lags the store."""

    def __init__(self, capacity: int) -> None:
        self._filter = IdFilter(capacity)
        self._tops: dict[str, int] = {}
        self.ready = False

    def add(self, msg_id: str, origin: str, seq: int | None) -> None:
        self._filter.add(msg_id)
        if seq is not None and seq > self._tops.get(origin, 0):
            self._tops[origin] = seq

    def loaded(self, ids: list[str], tops: dict[str, int]) -> None:
        """What was stored at open (added meanwhile rows are in already)."""
        for msg_id in ids:
            self._filter.add(msg_id)
        for origin, seq in tops.items():
            if seq > self._tops.get(origin, 0):
                self._tops[origin] = seq
        self.ready = True

    def may_hold(self, msg_id: str, origin: str, seq: int) -> bool:
        """False only if neither ``msg_id`` nor the slot (``origin``, ``seq`` > 0) is taken."""
        if not self.ready or seq <= 0 or seq <= self._tops.get(origin, 0):
            return True
        return self._filter.may_contain(msg_id)
