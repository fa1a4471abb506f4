"""Room keys off the event loop (``fletchat/room_keys.py``): scrypt on the host's loop stalled
every tab and LAN link for each passphrase a tab submitted."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fletchat import room_keys
from fletchat.hub import Hub, HubSession
from fletchat.model import ValidationError
from fletchat.room_keys import BUSY, MAX_DERIVING_PER_ADDRESS, STILL_CHECKING, RoomKeyDeriver
from fletchat.rooms import room_key
from fletchat.ui.hub_backend import HubBackend

PASS = "correct horse battery"


async def ticking_while(work) -> tuple[object, int]:
    """``work``'s result and how many turns the loop gave another task meanwhile."""
    turns = 0
    done = False

    async def ticker() -> None:
        nonlocal turns
        while not done:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        result = await work
    finally:
        done = True
        await task
    return result, turns


async def test_a_key_is_derived_on_a_worker_thread_while_the_loop_runs_on() -> None:
    threads: list[str] = []
    deriver = RoomKeyDeriver()
    real = room_keys.room_key

    def spy(channel: str, passphrase: str) -> bytes:
        threads.append(threading.current_thread().name)
        return real(channel, passphrase)

    room_keys.room_key = spy
    try:
        key, turns = await ticking_while(deriver.derive("tab", "secret", PASS))
    finally:
        room_keys.room_key = real
    assert key == room_key("secret", PASS)
    assert threads and threads[0].startswith("room-key")
    assert turns > 10, "the loop ran nothing else while scrypt ran"


async def test_one_derivation_per_asker_and_a_bound_over_all_of_them() -> None:
    deriver = RoomKeyDeriver(max_deriving=2, per_address=2)
    first = asyncio.create_task(deriver.derive("tab 1", "secret", PASS))
    await asyncio.sleep(0)
    with pytest.raises(ValidationError, match=STILL_CHECKING):
        await deriver.derive("tab 1", "secret", PASS)
    second = asyncio.create_task(deriver.derive("tab 2", "secret", PASS))
    await asyncio.sleep(0)
    with pytest.raises(ValidationError, match=BUSY):  # many throw-away tabs: refused, not queued
        await deriver.derive("tab 3", "secret", PASS)
    assert await first == await second == room_key("secret", PASS)
    assert await deriver.derive("tab 3", "secret", PASS) == room_key("secret", PASS)  # room again


async def test_a_short_passphrase_is_refused_and_frees_its_place() -> None:
    deriver = RoomKeyDeriver(max_deriving=1)
    with pytest.raises(ValidationError, match="at least"):
        await deriver.derive("tab", "secret", "short")
    assert await deriver.derive("tab", "secret", PASS) == room_key("secret", PASS)


async def test_a_tab_s_passphrase_leaves_the_host_s_loop_free_and_keys_that_tab_only() -> None:
    hub = Hub("here")
    ada, bob = HubSession(hub), HubSession(hub)
    _, turns = await ticking_while(HubBackend(ada).set_room_passphrase("secret", PASS))
    assert turns > 10, "the host's loop ran nothing else while scrypt ran"
    assert ada.room_keys == {"secret": room_key("secret", PASS)}
    assert bob.room_keys == {}


async def test_throw_away_tabs_from_one_address_leave_room_for_the_others() -> None:
    """A script's tabs from one address take at most their address's share; a browser on
    another address still gets its key derived."""
    deriver = RoomKeyDeriver()
    hostile = [asyncio.create_task(deriver.derive(f"tab {i}", "secret", PASS, "10.0.0.66"))
               for i in range(MAX_DERIVING_PER_ADDRESS)]
    await asyncio.sleep(0)
    with pytest.raises(ValidationError, match=BUSY):
        await deriver.derive("one more tab", "secret", PASS, "10.0.0.66")
    assert await deriver.derive("a real person", "secret", PASS, "10.0.0.7") == room_key(
        "secret", PASS)
    await asyncio.gather(*hostile)
