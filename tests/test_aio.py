"""fletchat.aio.wait_event: a loop that waits on an event stops when cancelled, even when the
cancel and the event arrive together (Python 3.11's wait_for swallowed that cancel, and a peer's
shutdown then waited for its files lane forever)."""

from __future__ import annotations

import asyncio

import pytest

from fletchat.aio import wait_event


async def _loop_on(event: asyncio.Event, rounds: list[int]) -> None:
    while True:
        await wait_event(event, 10.0)
        event.clear()
        rounds.append(1)


async def test_a_cancel_that_races_the_event_stops_the_loop():
    for _ in range(20):
        event, rounds = asyncio.Event(), []
        task = asyncio.create_task(_loop_on(event, rounds))
        await asyncio.sleep(0)  # the loop is waiting
        event.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2.0)
        assert task.cancelled()


async def test_wait_event_says_whether_the_event_came():
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5.0) is True
    assert await wait_event(event, 0.0) is True  # already set: no wait
    assert len(asyncio.all_tasks()) == 1  # no waiter left behind


async def test_within_returns_times_out_and_keeps_a_racing_cancel():
    from fletchat.aio import within

    loop = asyncio.get_running_loop()
    assert await within(asyncio.sleep(0.01, "done"), 5.0) == "done"
    never = loop.create_future()
    with pytest.raises(TimeoutError):
        await within(never, 0.01)
    await asyncio.sleep(0)
    assert never.cancelled()  # what timed out is cancelled, not left running

    async def reads(fut: asyncio.Future, got: list) -> None:
        while True:
            got.append(await within(fut, 10.0))
            fut = loop.create_future()

    for _ in range(20):
        fut, got = loop.create_future(), []
        task = asyncio.create_task(reads(fut, got))
        await asyncio.sleep(0)
        fut.set_result("frame")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2.0)


async def test_within_keeps_nothing_of_its_caller_once_answered():
    """A browser tab's context holds its page: ``wait_for``'s deadline timer, made in that
    context and only cancelled once answered, kept the page alive until it was due (30 s for
    the remembered name)."""
    import contextvars
    import gc
    import weakref

    from fletchat.aio import within

    class Page:
        pass

    page_var: contextvars.ContextVar[Page] = contextvars.ContextVar("page")

    async def tab(page: Page) -> str:
        page_var.set(page)
        return await within(asyncio.sleep(0, "answer"), 60.0)

    # a timer due sooner, as a running app always has: the loop drops a cancelled timer only
    # once it reaches the head of its queue
    sooner = asyncio.get_running_loop().call_later(30.0, lambda: None)
    try:
        page = Page()
        alive = weakref.ref(page)
        assert await asyncio.create_task(tab(page), context=contextvars.Context()) == "answer"
        del page
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0)
        assert alive() is None, "the tab's page outlived the answer (held by the deadline's timer)"
    finally:
        sooner.cancel()
