"""Private rooms for static clients, with real sockets (host mode under uvicorn, a websockets
client playing the static client): the passphrase goes in a ``room`` request, the host seals what
the client sends there and precedes every sealed message of the room with an ``opened`` frame;
clients without the key get nothing opened; the edge refuses what is malformed, the deriver's
bounds hold per address."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from fletchat import relay_rooms, room_keys
from fletchat.conversation.relay_frames import RelayDone, RelayRow, encode_client_conv
from fletchat.hub import HubSession
from fletchat.protocol import MsgFrame, ProtocolError
from fletchat.relay_protocol import (
    RelayPage,
    decode_client_frame,
    decode_server_frame,
    encode_client_history,
    encode_client_send,
)
from fletchat.room_frames import (
    MAX_PASSPHRASE_CHARS,
    Opened,
    RelayOpened,
    RelayRoom,
    encode_client_room,
    encode_opened,
)
from fletchat.room_keys import BUSY, RoomKeyDeriver
from fletchat.rooms import is_sealed, room_key
from tests.test_relay import TIMEOUT, Client, Host, host, open_client  # noqa: F401  (the fixture)

PASS = "correct horse battery"
ROOM = "secret"


async def _unlock(client: Client, req: int, channel: str = ROOM, passphrase: str = PASS) -> str:
    """Send ``room`` and return the ``done``'s error ("" = unlocked)."""
    await client.ws.send(encode_client_room(req, channel, passphrase))
    while True:
        done = await client.next(RelayDone)
        if done.req == req:
            return done.error


def _tab(at: Host, name: str, passphrase: str | None = PASS) -> HubSession:
    tab = HubSession(at.node.hub, device="browser")
    tab.join(name)
    if passphrase is not None:
        tab.set_room_key(ROOM, room_key(ROOM, passphrase))
    return tab


def _before(frames: list, earlier, later) -> bool:
    """``earlier`` was received before ``later`` (both taken from ``frames``)."""
    at = {id(f): i for i, f in enumerate(frames)}
    return at[id(earlier)] < at[id(later)]


async def test_a_static_client_unlocks_a_room_sends_sealed_and_reads_opened(host: Host):  # noqa: F811
    client = await open_client(host, "Ada")
    assert "at least 8 characters" in await _unlock(client, 1, passphrase="short")
    assert await _unlock(client, 2) == ""
    await client.ws.send(encode_client_send("only for the room", ROOM))
    mine = await client.message(lambda m: m.author == "Ada" and m.channel == ROOM)
    assert is_sealed(mine.text)  # what the hub stored and the LAN gets is sealed
    stored = await host.wait_for(lambda e: getattr(e, "id", None) == mine.id, "Ada's message")
    assert is_sealed(stored.text)
    opened = [f for f in client.frames if isinstance(f, RelayOpened) and f.id == mine.id]
    assert opened == [RelayOpened(mine.id, ROOM, Opened.OPEN, "only for the room")]
    msg_frame = next(f for f in client.frames if isinstance(f, MsgFrame) and f.message.id == mine.id)
    assert _before(client.frames, opened[0], msg_frame)
    # A tab with the passphrase opens it; one without does not.
    assert _tab(host, "Bob").reveal(stored) == ("only for the room", "open")
    assert _tab(host, "Cy", None).reveal(stored)[1] == "no_key"

    # A tab's sealed message reaches the client opened; one sealed with another passphrase
    # comes as refused, never as its text.
    bob = _tab(host, "Bob2")
    theirs = bob.send("hello room", ROOM)
    got = await client.message(lambda m: m.id == theirs.id)
    assert is_sealed(got.text)
    assert RelayOpened(theirs.id, ROOM, Opened.OPEN, "hello room") in client.frames
    eve = _tab(host, "Eve", "another passphrase")
    forged = eve.send("not from this room", ROOM)
    await client.message(lambda m: m.id == forged.id)
    assert RelayOpened(forged.id, ROOM, Opened.REFUSED) in client.frames
    assert not any(isinstance(f, RelayOpened) and f.text == "not from this room"
                   for f in client.frames)


async def test_pages_and_edits_of_a_room_come_opened(host: Host):  # noqa: F811
    bob = _tab(host, "Bob")
    first = bob.send("before you came", ROOM)
    client = await open_client(host, "Ada")
    await client.ws.send(encode_client_history(7, ROOM))
    page = await client.next(RelayPage)
    assert [m.id for m in page.msgs] == [first.id]
    assert not any(isinstance(f, RelayOpened) for f in client.frames)  # no key yet
    assert await _unlock(client, 8) == ""
    await client.ws.send(encode_client_history(9, ROOM))  # what the view does once unlocked
    page = await client.next(RelayPage)
    opened = next(f for f in client.frames if isinstance(f, RelayOpened))
    assert opened == RelayOpened(first.id, ROOM, Opened.OPEN, "before you came")
    assert _before(client.frames, opened, page)

    await client.ws.send(encode_client_send("typo hree", ROOM))
    mine = await client.message(lambda m: m.author == "Ada" and m.channel == ROOM)
    await client.ws.send(encode_client_conv(10, "edit", mine.id, "typo here", ROOM))
    row = await client.next(RelayRow)
    while row.row.id != mine.id:
        row = await client.next(RelayRow)
    assert is_sealed(row.row.text) and row.row.edited  # the edit is sealed like its message
    edited = [f for f in client.frames if isinstance(f, RelayOpened) and f.id == mine.id]
    assert edited[-1] == RelayOpened(mine.id, ROOM, Opened.OPEN, "typo here")
    assert _before(client.frames, edited[-1], row)
    assert bob.reveal(host.node.hub.find(mine.id)[0]) == ("typo here", "open")


async def test_clients_without_the_key_get_nothing_opened(host: Host):  # noqa: F811
    keyed = await open_client(host, "Ada")
    plain = await open_client(host, "Cy")
    assert await _unlock(keyed, 1) == ""
    await keyed.ws.send(encode_client_send("sealed for Ada's room", ROOM))
    sent = await plain.message(lambda m: m.channel == ROOM)
    assert is_sealed(sent.text)
    await keyed.ws.send(encode_client_send("and a plain one", "general"))
    await plain.message(lambda m: m.text == "and a plain one")  # what came after the sealed one
    assert not any(isinstance(f, RelayOpened) for f in plain.frames)
    mine = await keyed.message(lambda m: m.id == sent.id)
    assert RelayOpened(mine.id, ROOM, Opened.OPEN, "sealed for Ada's room") in keyed.frames


async def test_room_requests_are_checked_at_the_edge_and_bounded(host: Host):  # noqa: F811
    early = await open_client(host)  # no hello yet
    await early.ws.send(encode_client_room(1, ROOM, PASS))
    code, reason = await early.closed()
    assert code == 1002 and "before hello" in reason

    long = await open_client(host, "Ada")
    await long.ws.send(encode_client_room(1, ROOM, "x" * (MAX_PASSPHRASE_CHARS + 1)))
    code, reason = await long.closed()
    assert code == 1002 and "room.passphrase" in reason

    client = await open_client(host, "Bob")
    assert "Not one of your channels" in await _unlock(client, 2, "@Cy+Dee")
    assert await _unlock(client, 3, "@Bob+Cy") == ""  # its own direct messages may be private


async def test_a_connection_unlocks_a_bounded_number_of_rooms(host: Host, monkeypatch):  # noqa: F811
    monkeypatch.setattr(relay_rooms, "MAX_ROOMS_PER_CLIENT", 2)
    monkeypatch.setattr(relay_rooms, "DERIVER", _Instant())
    client = await open_client(host, "Ada")
    assert await _unlock(client, 1, "a") == ""
    assert await _unlock(client, 2, "b") == ""
    assert await _unlock(client, 3, "b") == ""  # again: no new room
    assert "private rooms open here already" in await _unlock(client, 4, "c")


class _Instant:
    """A deriver that answers at once (the bound under test is the relay's, not scrypt's)."""

    async def derive(self, asker, channel: str, passphrase: str, address: str = "") -> bytes:
        return b"k" * 32


def test_room_frames_are_validated(monkeypatch):
    assert decode_client_frame(encode_client_room(3, "secret", PASS)) == RelayRoom(3, "secret", PASS)
    assert PASS not in repr(RelayRoom(3, "secret", PASS))  # never in a log line
    for bad, reason in [
        ({"req": 1, "channel": "", "passphrase": PASS}, "room.channel"),
        ({"req": -1, "channel": "a", "passphrase": PASS}, "room.req"),
        ({"req": 1, "channel": "a", "passphrase": 5}, "room.passphrase"),
    ]:
        with pytest.raises(ProtocolError, match=reason):
            decode_client_frame(json.dumps({"v": 1, "type": "room", **bad}))
    good = encode_opened("m1", "secret", Opened.OPEN, "hi\nthere")
    assert decode_server_frame(good) == RelayOpened("m1", "secret", Opened.OPEN, "hi\nthere")
    refused = decode_server_frame(encode_opened("m1", "secret", Opened.REFUSED, "ignored"))
    assert refused == RelayOpened("m1", "secret", Opened.REFUSED, "")
    for bad in [
        {"id": "m1", "channel": "secret", "how": "open", "text": "bell\x07"},
        {"id": "m1", "channel": "secret", "how": "open", "text": "x" * 4001},
        {"id": "m1", "channel": "secret", "how": "open", "text": ""},
        {"id": "m1", "channel": "secret", "how": "maybe", "text": "hi"},
        {"id": "has space", "channel": "secret", "how": "open", "text": "hi"},
    ]:
        with pytest.raises(ProtocolError, match="opened"):
            decode_server_frame(json.dumps({"v": 1, "type": "opened", **bad}))


async def test_one_address_cannot_hold_every_derivation(host: Host, monkeypatch):  # noqa: F811
    """The relay passes the client's address to the deriver: two connections from one address
    may derive at once, a third is told the host is busy, and the first two still succeed."""
    release = threading.Event()
    real = room_keys.room_key

    def slow(channel: str, passphrase: str) -> bytes:
        release.wait(TIMEOUT)
        return real(channel, passphrase)

    monkeypatch.setattr(room_keys, "room_key", slow)
    monkeypatch.setattr(relay_rooms, "DERIVER", RoomKeyDeriver(threads=2, per_address=2))
    clients = [await open_client(host, f"P{i}") for i in range(3)]
    for i, c in enumerate(clients[:2]):
        await c.ws.send(encode_client_room(i, ROOM, PASS))
    await asyncio.sleep(0)  # the two are read first
    assert BUSY == await _wait_error(clients[2])
    release.set()
    assert [await _done_error(c) for c in clients[:2]] == ["", ""]


async def _wait_error(client: Client) -> str:
    """A third request, sent once the first two are surely deriving (polled, bounded)."""
    deriver = relay_rooms.DERIVER
    for _ in range(int(TIMEOUT / 0.01)):
        if len(deriver._askers) == 2:
            break
        await asyncio.sleep(0.01)
    return await _unlock(client, 9)


async def _done_error(client: Client) -> str:
    return (await client.next(RelayDone)).error


async def test_a_rooms_file_opens_only_through_the_unlocked_connections_link(host: Host):  # noqa: F811
    from fletchat.files.relay_frames import RelayFileState, encode_client_share
    from fletchat.files.views import FileState
    from tests.test_relay_files import upload

    ada = await open_client(host, "Ada")
    cy = await open_client(host, "Cy")
    assert await _unlock(ada, 1) == ""
    data = b"the plan, in a file\n" * 50
    slot = await upload(ada, "plan.txt", data, req=2)
    await ada.ws.send(encode_client_share(3, [slot], "", ROOM))
    msg = await cy.message(lambda m: m.channel == ROOM and bool(m.files))
    (ref,) = msg.files
    assert ref.sealed is not None and "plan" not in ref.name
    told_cy = [f for f in cy.frames if isinstance(f, RelayFileState) and f.sha256 == ref.sha256]
    assert told_cy and all(f.name == "" and f.opened == "" for f in told_cy)  # no key: nothing

    async def opened_state() -> RelayFileState:
        async with asyncio.timeout(TIMEOUT):
            while True:
                for f in ada.frames:
                    if isinstance(f, RelayFileState) and f.sha256 == ref.sha256 and f.opened:
                        return f
                await ada.next(RelayFileState)

    state = await opened_state()
    assert (state.state, state.name, state.mime) == (FileState.READY, "plan.txt", "text/plain")
    base = "http://" + host.url.split("/")[2]
    assert await _get(f"{base}/files/opened/{state.opened}") == (200, data)
    status, sealed = await _get(f"{base}/files/blob/{ref.sha256}")
    assert status == 200 and data not in sealed  # by hash, anyone gets only the sealed bytes
    await ada.ws.close()
    for _ in range(int(TIMEOUT / 0.05)):  # the link goes with the connection
        if (await _get(f"{base}/files/opened/{state.opened}"))[0] == 404:
            break
        await asyncio.sleep(0.05)
    assert (await _get(f"{base}/files/opened/{state.opened}"))[0] == 404


async def test_another_message_naming_a_rooms_blob_never_changes_that_files_state(host: Host):  # noqa: F811
    """A blob's hash is public: a message anywhere may name a room's blob with a description of
    its own. Each description's state is told (and fetched) as its own (``of``), so the forged
    one never turns the room's file into "locked" (nor the other way round)."""
    import io
    from dataclasses import replace

    from fletchat.files.manifest import FileManifest
    from fletchat.files.relay_frames import RelayFileState, encode_client_share
    from fletchat.files.sealed import RoomMessage, seal_stream
    from fletchat.files.views import sealed_digest
    from fletchat.model import Message
    from tests.test_relay_files import upload

    ada = await open_client(host, "Ada")
    assert await _unlock(ada, 1) == ""
    data = b"the plan, in a file\n" * 50
    slot = await upload(ada, "plan.txt", data, req=2)
    await ada.ws.send(encode_client_share(3, [slot], "", ROOM, sealed=True))
    real = (await ada.message(lambda m: m.channel == ROOM and bool(m.files))).files[0]

    async def state_of(ref) -> RelayFileState:
        async with asyncio.timeout(TIMEOUT):
            while True:
                for f in reversed(ada.frames):
                    if isinstance(f, RelayFileState) and f.sha256 == ref.sha256 and (
                            f.of == sealed_digest(ref)):
                        return f
                await ada.next(RelayFileState)

    assert (await state_of(real)).name == "plan.txt"
    mallory = room_key("general", "mallory's own passphrase")
    own = seal_stream(io.BytesIO(), io.BytesIO(bytes(len(data))), len(data),
                      RoomMessage(mallory, "general", "m9"), "bait.txt", "text/plain",
                      real.chunk_size)
    forged = FileManifest(real.sha256, real.size, real.chunk_size, real.root, sealed=own)
    host.node.hub.post(replace(Message.chat("Mal", "", host.node.hub.peer_id, "general",
                                            files=(forged,)), id="m9"))
    await ada.message(lambda m: m.id == "m9")
    told = await state_of(forged)
    assert told.of != (await state_of(real)).of and told.name == ""  # no key of Ada's opens it
    assert (await state_of(real)).name == "plan.txt"  # the room's file is still described


async def _get(url: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    def get() -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, b""

    return await asyncio.to_thread(get)


async def test_what_the_client_holds_sealed_is_never_posted_in_the_clear(host: Host):  # noqa: F811
    """A client that holds a room but whose connection has no key for it (its ``room`` failed
    after a reconnect) marks what it sends ``sealed``: the host refuses it rather than post it
    in the clear."""
    from fletchat.files.relay_frames import encode_client_share
    from fletchat.relay_rooms import NOT_UNLOCKED
    from tests.test_relay_files import upload

    client = await open_client(host, "Ada")
    theirs = _tab(host, "Bob").send("a sealed question", ROOM)
    await client.ws.send(encode_client_conv(1, "reply", theirs.id, "a clear answer", ROOM,
                                            sealed=True))
    done = await client.next(RelayDone)
    assert (done.req, done.error) == (1, NOT_UNLOCKED)
    slot = await upload(client, "plan.txt", b"the plan\n" * 10, req=2)
    await client.ws.send(encode_client_share(3, [slot], "", ROOM, sealed=True))
    done = await client.next(RelayDone)
    assert (done.req, done.error) == (3, NOT_UNLOCKED)
    await client.ws.send(encode_client_send("a clear secret", ROOM, sealed=True))
    code, reason = await client.closed()
    assert code == 1002 and "send.sealed" in reason
    posted = [m for m in host.messages() if m.author == "Ada" and m.channel == ROOM]
    assert posted == []
    # With the key, the same frames go through, sealed.
    keyed = await open_client(host, "Ada")
    assert await _unlock(keyed, 4) == ""
    await keyed.ws.send(encode_client_send("now sealed", ROOM, sealed=True))
    mine = await keyed.message(lambda m: m.author == "Ada" and m.channel == ROOM)
    assert is_sealed(mine.text)


def test_the_sealed_mark_is_validated():
    for frame in [
        {"type": "send", "text": "x", "channel": "a", "sealed": "yes"},
        {"type": "conv", "req": 1, "op": "typing", "channel": "a", "sealed": 1},
        {"type": "share", "req": 1, "ids": ["a" * 32], "caption": "", "sealed": None},
    ]:
        with pytest.raises(ProtocolError, match="sealed must be true or false"):
            decode_client_frame(json.dumps({"v": 1, **frame}))
    assert decode_client_frame(encode_client_send("x", "a", sealed=True)).sealed
    assert not decode_client_frame(encode_client_send("x", "a")).sealed
