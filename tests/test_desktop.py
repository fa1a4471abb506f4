"""desktop.supervise: when the window counts as open, and when the app must fall back."""

from __future__ import annotations

import asyncio

from fletchat.desktop import client_timeout, supervise
from tests.timing import never_within


async def test_a_client_that_exits_without_registering_is_a_reason_to_fall_back():
    registered, launched = asyncio.Event(), asyncio.get_running_loop().create_future()

    async def window():
        await asyncio.sleep(0.01)  # the client process ended; run_async returns

    reason = await supervise(asyncio.ensure_future(window()), registered, launched, 30)
    assert reason == "the Flet desktop client exited without connecting"


async def test_a_registered_window_runs_until_closed():
    registered, launched = asyncio.Event(), asyncio.get_running_loop().create_future()
    closed = asyncio.Event()

    async def window():
        registered.set()
        await closed.wait()

    task = asyncio.ensure_future(window())
    supervisor = asyncio.ensure_future(supervise(task, registered, launched, 0.05))
    # Well past the client timeout: a registered client is never stopped.
    await never_within(supervisor.done, "the supervisor gave up on a registered window", 0.3)
    closed.set()
    assert await supervisor is None


def test_client_timeout_from_the_environment():
    assert client_timeout({}) == 30.0
    assert client_timeout({"FLETCHAT_DESKTOP_CLIENT_TIMEOUT": "4.5"}) == 4.5
    assert client_timeout({"FLETCHAT_DESKTOP_CLIENT_TIMEOUT": "soon"}) == 30.0
    assert client_timeout({"FLETCHAT_DESKTOP_CLIENT_TIMEOUT": "-1"}) == 30.0
