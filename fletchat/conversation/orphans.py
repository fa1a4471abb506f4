"""Events whose target is not here yet (catch-up order): kept until the target arrives, bounded
per origin, per address of the connection that brought them, and in total.

Throw-away identities are free, addresses are not: one origin may leave 256 events waiting, all
origins behind one IP address 1,024, everyone together 4,096. A full budget refuses newcomers
(said to the sender) instead of evicting what waits. Pure: the hub's ``ConvState`` holds one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import Message

MAX_PENDING_PER_ORIGIN = 256
MAX_PENDING_PER_ADDRESS = 1024
MAX_PENDING_TOTAL = 4096
RESTORED = "(stored)"  # the address of events loaded from the store at start


@dataclass
class Orphans:
    per_origin: int = MAX_PENDING_PER_ORIGIN
    per_address: int = MAX_PENDING_PER_ADDRESS
    total: int = MAX_PENDING_TOTAL
    _by_target: dict[str, list[tuple[Message, str]]] = field(default_factory=dict)
    _origins: dict[str, int] = field(default_factory=dict)
    _addresses: dict[str, int] = field(default_factory=dict)
    _size: int = 0

    def __bool__(self) -> bool:
        return self._size > 0

    def __len__(self) -> int:
        return self._size

    def refusal(self, origin: str, address: str) -> str:
        """Why one more event of ``origin`` from ``address`` may not wait ("" if it may)."""
        if self._origins.get(origin, 0) >= self.per_origin:
            return "too many events waiting for messages not received yet from this peer"
        if self._addresses.get(address, 0) >= self.per_address:
            return "too many events waiting for messages not received yet from this address"
        if self._size >= self.total:
            return "too many events waiting for messages not received yet"
        return ""

    def add(self, event: Message, target: str, address: str) -> None:
        self._by_target.setdefault(target, []).append((event, address))
        self._origins[event.origin] = self._origins.get(event.origin, 0) + 1
        self._addresses[address] = self._addresses.get(address, 0) + 1
        self._size += 1

    def take(self, target: str) -> list[Message]:
        """The events that waited for ``target`` (it arrived); their budget is freed."""
        waiting = self._by_target.pop(target, [])
        for ev, address in waiting:
            _drop(self._origins, ev.origin)
            _drop(self._addresses, address)
        self._size -= len(waiting)
        return [ev for ev, _ in waiting]


def _drop(counts: dict[str, int], key: str) -> None:
    counts[key] -= 1
    if not counts[key]:
        del counts[key]
