"""Small asyncio helpers the I/O edges share."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``event``; True if it is set.

    Not ``asyncio.wait_for(event.wait(), timeout)``: on Python 3.11 a cancel that arrives as the
    event is set is swallowed (wait_for returns the result instead), so a loop that waits this
    way and is cancelled on shutdown goes round again and the shutdown waits for it forever.
    """
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait([waiter], timeout=max(0.0, timeout))
    finally:
        waiter.cancel()
    return bool(done)


async def within(awaitable: Awaitable[T], timeout: float) -> T:
    """``await awaitable`` for at most ``timeout`` seconds (TimeoutError after that), and a
    cancel is never lost: ``asyncio.wait_for`` on Python 3.11 returns the result instead when
    the cancel and the result arrive together (see ``wait_event``). The deadline is a timer in
    no context (``later``): ``wait_for``'s, made in the caller's, kept a closed browser tab (its
    whole page) alive until it was due, answered or not."""
    task = asyncio.ensure_future(awaitable)
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = later(max(0.0, timeout), expire)
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if expired and (current is None or not current.cancelling()):
            raise TimeoutError from None
        task.cancel()
        raise
    finally:
        if timer is not None:
            timer.cancel()


async def after(task: asyncio.Future | None) -> None:
    """Wait until ``task`` (the previous link of a chain of tasks) has ended, however it ended:
    tasks that work in parallel but must finish in the order they were started wait for the one
    before them (its outcome, a failure or a cancel included, is its own)."""
    if task is not None and not task.done():
        await asyncio.wait([task])


def later(delay: float, callback: Callable[[], object]) -> asyncio.TimerHandle | None:
    """``loop.call_later`` outside the caller's context (None when no loop runs). A timer keeps
    the context it was made in until its deadline, even once cancelled, and a browser tab's
    context holds Flet's page variable: a closed tab's timers kept the whole tab, and every
    control on it, alive past Flet's release (the pacer's full collection missed it)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.call_later(delay, callback, context=contextvars.Context())


class Lane:
    """Blocking work of one kind on threads of its own, ``threads`` at a time (made on first
    use). What queues here never takes the loop's shared pool, where the mesh's signature checks
    and every tab's sends run: a flood of slow work of one kind (searches, key derivations,
    image decodes) waits behind itself, not in front of them."""

    def __init__(self, threads: int, name: str) -> None:
        self.threads = threads
        self.name = name
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix=self.name)
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
