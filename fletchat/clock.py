"""Hybrid Logical Clock (HLC): one total order for messages written on many machines.

A ``Stamp`` is (physical milliseconds, logical counter, node id). It stays close to wall-clock
time, never goes backwards on one install (even if the wall clock does), and is always greater than
any stamp this install has observed, so a reply sorts after the message it answers even when the
replier's clock is behind. The node id breaks ties, so two installs never produce equal stamps.

Pure: no I/O. The wall clock is injected (milliseconds since the epoch), so tests drive time.
Reference: Kulkarni et al., "Logical Physical Clocks and Consistent Snapshots" (2014).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .model import ValidationError, validate_id

# Clock bounds (docs/protocol.md, "Acceptance"). A message's ``ts`` (its author's wall clock, which
# no other peer can move) may be at most MAX_FUTURE_MS ahead of ours. Its HLC stamp may in addition
# carry what its author adopted from others, at most MAX_ADOPT_MS: so MAX_DRIFT_MS bounds the stamp.
# Our clock follows a remote stamp only up to MAX_ADOPT_MS ahead of our wall clock: one peer can
# never pull everyone's clock further than that, and a skewed victim's own messages (its ``ts`` is
# its real wall clock) are never refused because of what someone else did to its HLC.
MAX_FUTURE_MS = 5 * 60 * 1000
MAX_ADOPT_MS = 60 * 1000
MAX_DRIFT_MS = MAX_FUTURE_MS + MAX_ADOPT_MS
MIN_STAMP_MS = 1_577_836_800_000  # 2020-01-01: older stamps come from a clock that was never set
MAX_LIVE_AGE_MS = 60 * 60 * 1000  # a live (relayed) message older than this is refused

WALL_DIGITS = 12  # hex digits of physical ms: 48 bits, good until the year 10889
COUNTER_DIGITS = 4  # hex digits of the logical counter
MAX_WALL_MS = 16**WALL_DIGITS - 1
MAX_COUNTER = 16**COUNTER_DIGITS - 1
_PREFIX = WALL_DIGITS + 1 + COUNTER_DIGITS + 1  # "wwwwwwwwwwww.cccc." then the node id
_HEX = frozenset("0123456789abcdef")


class ClockDriftError(ValidationError):
    """A remote stamp is too far ahead of our wall clock; ``str(err)`` says by how much."""


def wall_ms() -> int:
    """The default wall clock: unix time in whole milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, order=True)
class Stamp:
    """One HLC timestamp, ordered by (wall_ms, counter, node); ``encode()`` keeps that order."""

    wall_ms: int
    counter: int
    node: str

    def __post_init__(self) -> None:
        if isinstance(self.wall_ms, bool) or not isinstance(self.wall_ms, int):
            raise ValidationError("Invalid clock stamp.")
        if isinstance(self.counter, bool) or not isinstance(self.counter, int):
            raise ValidationError("Invalid clock stamp.")
        if not 0 <= self.wall_ms <= MAX_WALL_MS or not 0 <= self.counter <= MAX_COUNTER:
            raise ValidationError("Invalid clock stamp.")
        validate_id(self.node, "clock node")

    def encode(self) -> str:
        """Fixed-width time part, then the node: ``0190f3a2b4c1.0000.<node>``.

        Plain string (byte) comparison of two encodings gives the same answer as comparing the
        stamps, so SQLite can index and sort the text column directly.
        """
        return f"{self.wall_ms:0{WALL_DIGITS}x}.{self.counter:0{COUNTER_DIGITS}x}.{self.node}"

    @classmethod
    def decode(cls, raw: object) -> Stamp:
        """Parse an untrusted encoding; ``ValidationError`` if it is not one of ours. Stamps
        are immutable, so the last few thousand parsed are reused (each message's stamp is
        read by several acceptance rules and the store)."""
        if isinstance(raw, str) and cls is Stamp:
            return _decode_cached(raw)
        return cls._decode(raw)

    @classmethod
    def _decode(cls, raw: object) -> Stamp:
        if not isinstance(raw, str) or len(raw) <= _PREFIX or len(raw) > _PREFIX + 64:
            raise ValidationError("Invalid clock stamp.")
        wall, counter = raw[:WALL_DIGITS], raw[WALL_DIGITS + 1 : _PREFIX - 1]
        if (
            raw[WALL_DIGITS] != "."
            or raw[_PREFIX - 1] != "."
            or not set(wall) <= _HEX
            or not set(counter) <= _HEX
        ):
            raise ValidationError("Invalid clock stamp.")
        return cls(int(wall, 16), int(counter, 16), raw[_PREFIX:])

    def __str__(self) -> str:
        return self.encode()


@functools.lru_cache(maxsize=4096)
def _decode_cached(raw: str) -> Stamp:
    return Stamp._decode(raw)


class HLC:
    """The clock of one install. Thread-safe: sessions and the mesh may stamp concurrently.

    ``last`` seeds the clock after a restart (the store's ``last_hlc()``), so stamps stay monotonic
    even if the wall clock was set back while the app was closed.
    """

    def __init__(
        self,
        node: str,
        wall: Callable[[], int] = wall_ms,
        max_drift_ms: int = MAX_DRIFT_MS,
        last: Stamp | None = None,
        max_adopt_ms: int = MAX_ADOPT_MS,
    ) -> None:
        self.node = validate_id(node, "clock node")
        self._wall = wall
        self.max_drift_ms = max_drift_ms
        self.max_adopt_ms = max_adopt_ms
        self._lock = threading.Lock()
        self._l = last.wall_ms if last is not None else 0
        self._c = last.counter if last is not None else 0

    @property
    def last(self) -> Stamp:
        """The latest stamp issued or observed (with this node's id)."""
        with self._lock:
            return Stamp(self._l, self._c, self.node)

    def now(self) -> Stamp:
        """A stamp for a local event (sending a message): greater than every stamp seen so far."""
        with self._lock:
            pt = self._wall()
            if pt > self._l:
                self._l, self._c = pt, 0
            else:
                self._c += 1
            return self._issue()

    def observe(self, remote: Stamp) -> Stamp:
        """The receive rule: advance past ``remote`` and return a stamp for the receive event.

        Raises ``ClockDriftError`` (and leaves the clock unchanged) if ``remote`` is more than
        ``max_drift_ms`` ahead of our wall clock: the caller should refuse that message and tell the
        sender its clock is wrong, rather than let one bad clock drag everyone's order ahead.
        A stamp within that bound but more than ``max_adopt_ms`` ahead is followed only up to
        ``max_adopt_ms`` ahead of our wall clock (a reply may then sort before it).
        """
        with self._lock:
            self._advance(remote)
            return self._issue()

    def advance(self, remote: Stamp) -> None:
        """``observe`` without the receive event's stamp (the hub's acceptance needs none)."""
        with self._lock:
            self._advance(remote)

    def advance_many(self, remotes: list[Stamp]) -> None:
        """``advance`` past each of ``remotes`` in order, under one lock round and one reading of
        the wall clock (a catch-up run's accepted stamps, already checked for drift: one that is
        too far ahead now is skipped, not raised)."""
        if not remotes:
            return
        with self._lock:
            pt = self._wall()
            for remote in remotes:
                if remote.wall_ms - pt <= self.max_drift_ms:
                    self._advance(remote, pt)

    def _advance(self, remote: Stamp, pt: int | None = None) -> None:
        pt = self._wall() if pt is None else pt
        ahead = remote.wall_ms - pt
        if ahead > self.max_drift_ms:
            raise ClockDriftError(
                f"Clock of {remote.node} is {ahead / 1000:.0f} s ahead of ours "
                f"(at most {self.max_drift_ms / 1000:.0f} s accepted); check its date and time."
            )
        if ahead > self.max_adopt_ms:
            remote = Stamp(pt + self.max_adopt_ms, 0, remote.node)
        top = max(self._l, remote.wall_ms, pt)
        if top == self._l and top == remote.wall_ms:
            self._c = max(self._c, remote.counter) + 1
        elif top == self._l:
            self._c += 1
        elif top == remote.wall_ms:
            self._l, self._c = top, remote.counter + 1
        else:
            self._l, self._c = top, 0
        if self._c > MAX_COUNTER:  # as _issue: borrow the next millisecond
            self._l, self._c = self._l + 1, 0

    def _issue(self) -> Stamp:
        # The counter is bounded by its fixed width; on overflow borrow the next millisecond,
        # which keeps the order strict at the cost of running 1 ms ahead (cannot happen in practice:
        # 65536 events within one millisecond).
        if self._c > MAX_COUNTER:
            self._l, self._c = self._l + 1, 0
        return Stamp(self._l, self._c, self.node)
