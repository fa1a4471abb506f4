"""Host mode's garbage collector: no multi-second pauses with a big heap.

A host with 100 tabs x 1000 rows shown holds about 5.5 million objects that CPython's cyclic
collector tracks. CPython runs a full collection whenever the objects that reached its oldest
generation grew by a quarter since the last one: on a busy host every few hundred messages, and
each one stops every tab for as long as it takes to look at all of them (4-5 s at 100 x 1000,
figure 5's "all day" rows). Rows, tabs and people stay for hours; the collector looks at them
again and again for nothing.

So host mode keeps what has lived a while out of the collector's sight: every ``PERIOD_S`` it
collects the young generations (short-lived cycles go there, a millisecond or two) and moves
what survived to the permanent generation (``gc.freeze``, no walk). CPython's own collections
then look only at what is newer than that, tens of milliseconds at most.

What froze and later became cyclic garbage (a closed tab's controls, a replaced row) is found by
a full collection (``gc.unfreeze``, ``gc.collect``, freeze again) that ``GcPolicy`` runs only
when the host is idle (no chat event for ``IDLE_S``) and something is due: the frozen heap grew
by ``DUE_GROWTH`` since the last full collection, or Flet sessions were released. A host that is
never idle still runs one once the frozen heap doubled (``FORCED_GROWTH``), so garbage never
outgrows the live heap.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

log = logging.getLogger(__name__)

PERIOD_S = 1.0  # how often survivors are frozen
IDLE_S = 2.0  # no chat event for this long: a full collection may run now
DUE_GROWTH = 0.25  # a full collection is due once the frozen heap grew by this (CPython's own rule)
FORCED_GROWTH = 1.0  # ... and runs even on a busy host once it grew by this
MIN_GROWTH = 50_000  # objects: growth below this never makes a full collection due
NOTICED_S = 1.0  # a full collection this long is logged at INFO (shorter ones at DEBUG)


class GcStep(StrEnum):
    FREEZE = "freeze"  # collect the young generations, freeze the survivors
    FULL = "full"  # unfreeze, collect everything, freeze again


@dataclass
class GcPolicy:
    """When to freeze and when to look at everything (sans-I/O: time and counts are passed in)."""

    idle_s: float = IDLE_S
    due_growth: float = DUE_GROWTH
    forced_growth: float = FORCED_GROWTH
    min_growth: int = MIN_GROWTH
    _base: int = 0  # frozen objects just after the last full collection
    _last_event: float = -math.inf
    _sessions_peak: int = 0  # the most sessions held since the last full collection
    _released: bool = field(default=False)

    def event(self, now: float) -> None:
        """A chat event (a message, a join, a read mark): the host is not idle."""
        self._last_event = now

    def sessions(self, held: int) -> None:
        """Flet sessions held now; fewer than before means some were released (garbage)."""
        if held < self._sessions_peak:
            self._released = True
        self._sessions_peak = max(self._sessions_peak, held)

    def _grown_by(self, frozen: int, ratio: float) -> bool:
        return frozen - self._base >= max(self.min_growth, ratio * self._base)

    def step(self, now: float, frozen: int) -> GcStep:
        if self._grown_by(frozen, self.forced_growth):
            return GcStep.FULL
        idle = now - self._last_event >= self.idle_s
        if idle and (self._released or self._grown_by(frozen, self.due_growth)):
            return GcStep.FULL
        return GcStep.FREEZE

    def collected(self, frozen: int, held: int) -> None:
        """A full collection ended with ``frozen`` objects frozen and ``held`` sessions."""
        self._base = frozen
        self._released = False
        self._sessions_peak = held


class GcPacer:
    """Runs ``GcPolicy`` on the event loop (``start``/``stop``); ``stop`` unfreezes, so the
    collector sees every object again (tests that run the pacer in-process leave no trace)."""

    def __init__(self, policy: GcPolicy | None = None, period: float = PERIOD_S,
                 sessions: Callable[[], int] = lambda: 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or GcPolicy()
        self.period = period
        self._sessions = sessions
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.full_collections: list[float] = []  # seconds each full collection took
        # Objects frozen, counted as they are frozen (``gc.get_freeze_count`` walks all of them:
        # about a second for 5.5 million). Frozen objects freed since by their reference count
        # are not taken off, so this overcounts a little: a full collection comes a little early.
        self.frozen = 0

    def event(self, _event: object = None) -> None:
        """A hub listener (any thread): note that the host is busy."""
        self.policy.event(self._clock())

    def tick(self) -> GcStep:
        self.policy.sessions(self._sessions())
        step = self.policy.step(self._clock(), self.frozen)
        self._freeze()
        if step is GcStep.FULL:
            began = time.perf_counter()
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
            took = time.perf_counter() - began
            self.full_collections.append(took)
            self.frozen = max(0, self.frozen - found)
            self.policy.collected(self.frozen, self._sessions())
            # worth a line when every tab noticed it
            log.log(logging.INFO if took >= NOTICED_S else logging.DEBUG,
                    "full collection: %.2f s, %d unreachable", took, found)
        return step

    def _freeze(self) -> None:
        gc.collect(1)  # the young generations' survivors are now in the oldest one ...
        self.frozen += len(gc.get_objects(2))  # ... which holds only what came since
        gc.freeze()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            self.tick()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        gc.unfreeze()
