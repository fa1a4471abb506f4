"""How long this process's own event loop could not run: a starved CPU (load 20 on 2 cores), a
long GC, a burst of work on the loop. Deadlines that judge a peer (the mesh handshake) add it, so
a host that was not running does not blame the peer for its own silence; on a host that runs
freely nothing is added, so a peer that stalls on purpose gains nothing.
"""

from __future__ import annotations

import asyncio
import time

PERIOD_S = 0.1  # how often the loop looks at the clock
SLACK_S = 0.05  # lateness below this is ordinary scheduling, not a stall


class LoopStalls:
    """``tick(now)`` is called every ``period`` seconds by ``run`` on the loop; a tick that comes
    late by more than ``slack`` adds the lateness to the total. ``total(now)`` includes a stall
    still in progress (no tick yet since it began), so a deadline read just after a stall sees it."""

    def __init__(self, period: float = PERIOD_S, slack: float = SLACK_S) -> None:
        self.period = period
        self.slack = slack
        self._stalled = 0.0
        self._last: float | None = None

    def _late(self, now: float) -> float:
        if self._last is None:
            return 0.0
        late = now - self._last - self.period
        return late if late > self.slack else 0.0

    def tick(self, now: float) -> None:
        self._stalled += self._late(now)
        self._last = now

    def total(self, now: float) -> float:
        return self._stalled + self._late(now)

    async def run(self) -> None:
        while True:
            self.tick(time.monotonic())
            await asyncio.sleep(self.period)
