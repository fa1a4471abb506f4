"""Room keys derived off the event loop.

``rooms.room_key`` is scrypt: 50-100 ms of CPU and 16 MiB per passphrase. On the loop of a host it
stalled every tab and every LAN link for each passphrase any tab submitted, and a script speaking
Flet's protocol over ``/ws`` could submit them back to back. Here a derivation runs on one worker
thread (``hashlib.scrypt`` lets go of the GIL, so the loop keeps the other core), at most
``MAX_DERIVING`` are in the process at once and ``MAX_DERIVING_PER_ADDRESS`` for one client address
(more are refused with a clear error, nothing queues without bound: a script's throw-away tabs from
one address cannot hold every place), and one derivation is in flight per session.
"""

from __future__ import annotations

from .aio import Lane
from .model import ValidationError
from .rooms import check_passphrase, room_key

DERIVE_THREADS = 1  # scrypt on this many threads at most (the gate's own thread is apart)
MAX_DERIVING = 8  # derivations running or waiting for the thread, in the whole process ...
MAX_DERIVING_PER_ADDRESS = 2  # ... and for one client address (a browser's IP in host mode)
BUSY = "Too many passphrases are being checked on this device. Try again in a moment."
STILL_CHECKING = "Still checking the passphrase you entered."


class RoomKeyDeriver:
    """Derives room keys on its own thread, a bounded number at a time, one per asker."""

    def __init__(self, threads: int = DERIVE_THREADS, max_deriving: int = MAX_DERIVING,
                 per_address: int = MAX_DERIVING_PER_ADDRESS) -> None:
        self.threads = threads
        self.max_deriving = max_deriving
        self.per_address = per_address
        self._lane = Lane(threads, "room-key")
        self._askers: dict[object, str] = {}  # asker -> its address, while its key is derived

    async def derive(self, asker: object, channel: str, passphrase: str,
                     address: str = "") -> bytes:
        """The room key of ``channel`` for ``passphrase``; ``ValidationError`` when the
        passphrase is too short, ``asker`` already waits for one, or too many are waiting (in
        all, or from ``address``: "" is this device's own window, counted as one address)."""
        check_passphrase(passphrase)  # a short one is refused at once, not behind the queue
        if asker in self._askers:
            raise ValidationError(STILL_CHECKING)
        from_here = sum(1 for a in self._askers.values() if a == address)
        if len(self._askers) >= self.max_deriving or from_here >= self.per_address:
            raise ValidationError(BUSY)
        self._askers[asker] = address
        try:
            return await self._lane.run(room_key, channel, passphrase)
        finally:
            del self._askers[asker]


DERIVER = RoomKeyDeriver()  # one per process: the bound is the host's, over all its tabs
