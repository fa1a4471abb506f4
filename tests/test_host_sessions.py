"""Host mode's Flet sessions: a closed tab's session is released, and one address holds few."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.sessions import open_flet_session
from fletchat.config import Config
from fletchat.host import build_web_app
from fletchat.node import Node
from fletchat.sessions import SessionBook, SessionLimits, flet_sessions
from tests.timing import eventually
from tests.webhost import serving

LIMITS = SessionLimits(grace=1, per_address=5, total=9)


def held_sessions() -> set[str]:
    """flet-web's own registry of sessions (connected or kept for a reconnect): their ids (an
    earlier test's may still be there, and be released while this one runs)."""
    return set(flet_sessions())


@pytest.fixture
async def port(tmp_path: Path):
    config = Config(web=True, lan=False, data_dir=tmp_path / "data", port=0)
    node = Node(config, "web-host")
    app = build_web_app(node, static_dir=tmp_path / "none", limits=LIMITS)
    async with serving(app, backlog=128) as port:
        yield port


async def try_session(port: int, source: str):
    try:
        return await open_flet_session(port, source, timeout=30)
    except (InvalidStatus, ConnectionClosed, OSError):
        return None


async def test_sessions_per_address_are_bounded_and_closed_tabs_released(port):
    before = held_sessions()
    tries = await asyncio.gather(*(try_session(port, "127.0.0.1") for _ in range(20)))
    mine = [ws for ws in tries if ws is not None]
    assert len(mine) == LIMITS.per_address
    assert len(held_sessions() - before) == LIMITS.per_address
    # Another address is not affected by the first one's bound ...
    other = await try_session(port, "127.0.0.2")
    assert other is not None
    # ... but the host's total is bounded too.
    more = [await try_session(port, "127.0.0.3") for _ in range(5)]
    assert sum(ws is not None for ws in more) == LIMITS.total - LIMITS.per_address - 1
    for ws in [*mine, other, *more]:
        if ws is not None:
            await ws.close()
    # Closed tabs: flet-web keeps their sessions for the grace, then releases them.
    await eventually(lambda: not held_sessions() - before, "closed sessions released", 40)
    # And the address may open sessions again.
    again = await try_session(port, "127.0.0.1")
    assert again is not None
    await again.close()


async def test_one_socket_registers_one_session(port):
    """flet-web makes a session for every REGISTER_CLIENT on a socket and releases only the
    last: a script re-registering with fresh session ids filled the host past every bound.
    A second registration now closes the socket (1008), whatever encoding its action uses."""
    import msgpack

    before = held_sessions()
    ws = await open_flet_session(port, "127.0.0.1", timeout=30)
    page = {"route": "/", "width": 1000.0, "height": 800.0}
    again = msgpack.packb([1.0, {"session_id": "fresh-one", "page_name": "", "page": page}])
    await ws.send(b"\x00" + again)
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(30):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert len(held_sessions() - before) <= 1
    await eventually(lambda: not held_sessions() - before, "its one session released", 40)


async def test_a_tab_closed_while_it_opens_is_freed_once_released(port, caplog):
    """This headless client never answers the browser calls the chat view's mount waits for
    (client storage): its mount is still waiting when the tab closes and resumes only when Flet
    releases the session. It used to subscribe the view to the hub's messages then, and keep it
    (and its whole page) for as long as the host ran, handing it every message."""
    before = held_sessions()
    ws = await try_session(port, "127.0.0.1")
    assert ws is not None
    await eventually(lambda: held_sessions() - before, "the tab's session", 30)
    (sid,) = held_sessions() - before
    page = weakref.ref(flet_sessions()[sid].page)
    # a second tab stays open: flet-web's eviction loop keeps its last session in a variable
    other = await try_session(port, "127.0.0.1")
    assert other is not None
    await ws.close()
    await eventually(lambda: sid not in flet_sessions(), "the closed tab released", 40)

    def freed() -> bool:
        gc.collect()
        return page() is None

    await eventually(freed, "the released tab's page freed", 10)
    await other.close()
    assert not [r for r in caplog.records if "Unhandled error" in r.getMessage()]


def test_a_registration_is_told_from_its_first_bytes_however_it_is_encoded():
    import msgpack

    from fletchat.sessions import _registers

    body = {"session_id": None, "page": {"route": "/"}}
    for action in (1, True, 1.0):
        assert _registers(b"\x00" + msgpack.packb([action, body]))
    wide = b"\xdc\x00\x02" + b"\xcf" + (1).to_bytes(8, "big") + msgpack.packb(body)  # array16, uint64
    assert _registers(b"\x00" + wide)
    for other in (b"\x00" + msgpack.packb([2, body]), b"\x01" + msgpack.packb([1, body]),
                  b"\x00\xc1", b"", None, b"\x00" + msgpack.packb({"a": 1})):
        assert not _registers(other)


def test_session_book_counts_held_sessions_until_the_grace_ends():
    book = SessionBook(SessionLimits(grace=10, per_address=2, total=3))
    assert book.admit("a", 0) and book.admit("a", 0)
    assert not book.admit("a", 0)
    book.closed("a", 1)
    assert not book.admit("a", 5)  # its session is still held for a reconnect
    assert book.admit("a", 11.5)
    assert book.admit("b", 12)
    assert not book.admit("c", 12)  # the host's total
    book.closed("b", 12)
    assert book.count("b", 21) == 1 and book.count("b", 22) == 0
    assert book.admit("c", 22)
