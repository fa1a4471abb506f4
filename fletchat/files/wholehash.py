"""The whole file's SHA-256 of a download, computed while its chunks arrive, so completing it needs
no second pass over the file on disk (which the writeback advice has already evicted from the
page cache): chunks are fed in index order as they are written; one that comes early waits in a
bounded buffer; past the bound it is dropped, and ``finish`` reads the rest back from disk from
``next_index`` on. Pure: no I/O, no locks (the blob store calls it under the file's lock).
"""

from __future__ import annotations

import hashlib

from . import limits as L

MAX_EARLY_BYTES = 16 * L.MIB  # chunks that arrived ahead of the hash's position, held in memory
# ... and of every download together (the blob store lowers each hash's ``max_early`` to what the
# others leave): up to 68 downloads fetch at once (4, and 64 waiting that partial holders feed)
MAX_EARLY_TOTAL_BYTES = 32 * L.MIB


class RunningHash:
    def __init__(self, max_early: int = MAX_EARLY_BYTES) -> None:
        self.next_index = 0  # the hash covers chunks [0, next_index)
        self._sha = hashlib.sha256()
        self._early: dict[int, bytes | memoryview] = {}
        self._early_bytes = 0
        self.max_early = max_early

    def add(self, index: int, data: bytes | memoryview) -> None:
        """A verified chunk was written (each index at most once, in any order)."""
        if index < self.next_index or index in self._early:
            return
        if index > self.next_index:
            if self._early_bytes + len(data) <= self.max_early:
                self._early[index] = data
                self._early_bytes += len(data)
            return  # past the bound: read back from disk at the end
        self._sha.update(data)
        self.next_index += 1
        while (data := self._early.pop(self.next_index, None)) is not None:
            self._early_bytes -= len(data)
            self._sha.update(data)
            self.next_index += 1

    def update_from_disk(self, block: bytes) -> None:
        """``finish``: the bytes from ``next_index``'s offset on, read back in order."""
        self._early.clear()
        self._early_bytes = 0
        self._sha.update(block)

    @property
    def early_bytes(self) -> int:
        return self._early_bytes

    def hexdigest(self) -> str:
        return self._sha.hexdigest()
