"""How long this process's own event loop could not run: a starved CPU (load 20 on 2 cores), a
long GC, a burst of work on the loop. Deadlines that judge a peer (the mesh handshake) add it, so
a host that was not running does not blame the peer for its own silence; on a host that runs
freely nothing is added, so a peer that stalls on purpose gains nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

PERIOD_S = 0.1  # how often the loop looks at the clock
SLACK_S = 0.05  # lateness below this is ordinary scheduling, not a stall


class LoopStalls:
    """``tick(now)`` is called every ``period`` seconds by ``run`` on the loop; a tick that comes
    late by more than ``slack`` adds the lateness to the total. ``total(now)`` includes a stall
    still in progress (no tick yet since it began), so a deadline read just after a stall sees it.

    The ticks run only while someone is ``watching`` (a handshake waits): an idle host, a phone
    in a pocket, is not woken ten times a second for nothing."""

    def __init__(self, period: float = PERIOD_S, slack: float = SLACK_S) -> None:
        self.period = period
        self.slack = slack
        self._stalled = 0.0
        self._last: float | None = None
        self._watchers = 0
        self._ticker: asyncio.Task[None] | None = None

    @property
    def ticking(self) -> bool:
        return self._ticker is not None

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Count stalls for as long as the block runs (nested and concurrent blocks share one
        ticker); time nobody watched is never a stall."""
        self._watchers += 1
        if self._ticker is None:
            self._last = time.monotonic()
            self._ticker = asyncio.get_running_loop().create_task(self.run())
        try:
            yield
        finally:
            self._watchers -= 1
            if self._watchers == 0:
                self._stop_ticker()

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self._last = None

    async def close(self) -> None:
        """Stop ticking and wait for the ticker to end (a stopping mesh leaves no task behind)."""
        ticker = self._ticker
        self._watchers = 0
        self._stop_ticker()
        if ticker is not None:
            await asyncio.gather(ticker, return_exceptions=True)

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
