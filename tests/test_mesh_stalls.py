"""The mesh handshake's deadline counts this host's running time: a host whose own loop stalled
(a starved CPU: load 20+ on 2 cores) does not drop a peer for its own silence, while a peer that
says nothing on a host that runs freely is closed on time as before (hole 5: slot squatting;
tests/test_mesh.py::test_a_client_that_never_says_hello_is_closed)."""

from __future__ import annotations

import asyncio
import time

import pytest
from websockets.asyncio.client import connect

from fletchat.stalls import LoopStalls
from tests.test_mesh import LOOPBACK, RAW_HELLO, nodes  # noqa: F401 - the fixture
from tests.timing import eventually, scaled


@pytest.mark.parametrize(("ticks", "total"), [
    ([0.0, 0.1, 0.2, 0.3], 0.0),  # on time
    ([0.0, 0.14, 0.28], 0.0),  # late by less than the slack: ordinary scheduling
    ([0.0, 0.1, 2.1, 2.2], 1.9),  # one tick 1.9 s late
    ([0.0, 1.1, 1.2, 3.2], 2.9),  # two stalls add up
])
def test_stalls_add_up_the_lateness_of_ticks(ticks: list[float], total: float) -> None:
    stalls = LoopStalls(period=0.1, slack=0.05)
    for t in ticks:
        stalls.tick(t)
    assert stalls.total(ticks[-1]) == pytest.approx(total)


def test_a_stall_in_progress_counts_before_its_tick() -> None:
    stalls = LoopStalls(period=0.1, slack=0.05)
    stalls.tick(0.0)
    assert stalls.total(0.12) == 0.0
    assert stalls.total(3.1) == pytest.approx(3.0)
    stalls.tick(3.1)
    assert stalls.total(3.2) == pytest.approx(3.0)


async def test_a_handshake_survives_this_hosts_own_stall(nodes):  # noqa: F811
    timeout = scaled(1.0)
    server = await nodes("server", handshake_timeout=timeout)
    async with connect(f"ws://{LOOPBACK}:{server.port}/") as raw:
        await asyncio.sleep(0.3)  # the server is waiting for the hello
        time.sleep(2 * timeout)  # noqa: ASYNC251 - the whole loop stalls, as on a starved host
        await asyncio.sleep(0.1)  # the loop runs again: the overdue deadline is looked at first
        await raw.send(RAW_HELLO)
        await eventually(lambda: server.connected() == {"raw-client"},
                         "the peer is up after the host's stall")



async def test_ticks_run_only_while_someone_watches_and_unwatched_time_is_no_stall() -> None:
    stalls = LoopStalls(period=0.01, slack=0.005)
    assert not stalls.ticking
    with stalls.watching():
        with stalls.watching():
            assert stalls.ticking
        assert stalls.ticking  # the outer watcher still needs it
        time.sleep(0.2)  # noqa: ASYNC251 - a stall while watched
        await asyncio.sleep(0.02)
    assert not stalls.ticking
    counted = stalls.total(time.monotonic())
    assert counted >= 0.15
    time.sleep(0.2)  # noqa: ASYNC251 - nobody watches: not a stall
    began = time.monotonic()
    with stalls.watching():
        now = time.monotonic()
        # nothing of the unwatched 0.2 s; only a pause of this process since watching began
        # (over the period and slack) could count
        assert counted - 1e-6 <= stalls.total(now) <= counted + max(0.0, now - began - 0.015) + 1e-6
    await stalls.close()


async def test_an_idle_mesh_does_not_tick_and_a_waiting_handshake_does(nodes):  # noqa: F811
    a, b = await nodes("a"), await nodes("b")
    a.dial(b)
    await eventually(lambda: a.connected() == {"b"} and b.connected() == {"a"}, "a and b meet")
    await eventually(lambda: not a.mesh._core.stalls.ticking and not b.mesh._core.stalls.ticking,
                     "no ticks once the handshakes are done")
    async with connect(f"ws://{LOOPBACK}:{b.port}/"):  # says nothing: a handshake waits
        await eventually(lambda: b.mesh._core.stalls.ticking, "ticks while a handshake waits")
    await eventually(lambda: not b.mesh._core.stalls.ticking, "no ticks once it is gone",
                     scaled(10))
