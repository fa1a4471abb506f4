"""The static client's private-room methods without a browser (``webclient/rooms.py``): the
passphrase goes to the host as a ``room`` request, sealed messages show what the host opened for
this client (only for rooms unlocked here, only under their own channel), and a reconnect
unlocks the rooms again; a room's files are described only when the host did so."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from fletchat.conversation.relay_frames import RelayDone
from fletchat.events import RoomsUnlocked
from fletchat.files.relay_frames import RelayFileState
from fletchat.files.views import FileState
from fletchat.model import FileRef, Message, ValidationError
from fletchat.room_frames import Opened, RelayOpened
from fletchat.rooms import SEALED_NO_KEY, SEALED_REFUSED
from tests.test_webclient_conversation import FakeClient

SEALED = "sealed:v1:" + "A" * 40


@pytest.fixture
def backend():
    from webclient.main import RelayBackend

    b = RelayBackend(FakeClient())
    b.join("Ada")
    return b


def room_frames(b) -> list[dict]:
    return [f for f in b.client.sent if f["type"] == "room"]


async def unlock(b, channel: str, error: str = "") -> None:
    async def answer() -> None:
        while not room_frames(b):
            await asyncio.sleep(0.01)
        req = room_frames(b)[-1]["req"]
        b.answered(req, RelayDone(req, error))

    await asyncio.gather(b.set_room_passphrase(channel, "correct horse battery"), answer())


async def test_unlocking_is_a_request_and_a_refusal_is_the_hosts_sentence(backend) -> None:
    assert backend.capabilities.rooms
    with pytest.raises(ValidationError, match="at least 8"):  # said here, nothing sent
        await backend.set_room_passphrase("secret", "short")
    assert room_frames(backend) == []
    with pytest.raises(ValidationError, match="Too many passphrases"):
        await unlock(backend, "secret", "Too many passphrases are being checked")
    assert not backend.has_room_key("secret")
    await unlock(backend, "secret")
    assert backend.has_room_key("secret")
    frame = room_frames(backend)[-1]
    assert (frame["channel"], frame["passphrase"]) == ("secret", "correct horse battery")
    backend.client.is_open = False
    with pytest.raises(ValidationError, match="Not connected"):
        await backend.set_room_passphrase("other", "correct horse battery")


async def test_sealed_rows_show_only_what_the_host_opened_for_this_room(backend) -> None:
    msg = replace(Message.chat("Bob", "x", "host-1", "secret"), text=SEALED)
    plain = Message.chat("Bob", "in the clear", "host-1", "secret")
    assert backend.reveal(plain) == ("in the clear", "plain")
    backend.on_opened(RelayOpened(msg.id, "secret", Opened.OPEN, "the plan"))
    assert backend.reveal(msg) == (SEALED_NO_KEY, "no_key")  # not unlocked here
    await unlock(backend, "secret")
    assert backend.reveal(msg) == ("the plan", "open")
    moved = replace(msg, channel="other")  # an opened text is never shown in another channel
    await unlock(backend, "other")
    assert backend.reveal(moved) == (SEALED_NO_KEY, "no_key")
    backend.on_opened(RelayOpened(msg.id, "secret", Opened.OPEN, "the plan (edited)"))
    assert backend.reveal(msg) == ("the plan (edited)", "open")
    forged = replace(msg, id="forged-1")
    backend.on_opened(RelayOpened(forged.id, "secret", Opened.REFUSED))
    assert backend.reveal(forged) == (SEALED_REFUSED, "refused")


async def answer_next(b, count: int, error: str) -> dict:
    """Answer the ``count``-th room request (1-based) once it is sent."""
    while len(room_frames(b)) < count:
        await asyncio.sleep(0.01)
    frame = room_frames(b)[count - 1]
    b.answered(frame["req"], RelayDone(frame["req"], error))
    return frame


async def test_a_reconnect_unlocks_the_rooms_again_and_nothing_goes_out_unsealed(
        backend, monkeypatch) -> None:
    """A new connection is a new session on the host, with no keys: until the host confirms a
    room again, nothing is sent there (it would be posted in the clear); a busy host is asked
    again; a room it refuses stays held (never a plain channel), is said, and is written to
    only once unlocked anew; what is sent there is marked ``sealed`` for the host to check."""
    from webclient import rooms

    monkeypatch.setattr(rooms, "UNLOCK_RETRY_S", 0.01)
    got: list = []

    async def handler(event) -> None:
        got.append(event)

    backend.subscribe(handler)
    backend.host_peer = "host-1"
    await unlock(backend, "secret")
    await unlock(backend, "plans")
    await backend.send("sealed by the host", "secret")
    assert backend.client.sent[-1]["sealed"] is True
    await backend.send("in the clear", "general")
    assert "sealed" not in backend.client.sent[-1]

    backend.client.sent.clear()
    backend.connection_lost()  # the socket closed: from now on, nothing goes into the rooms
    with pytest.raises(ValidationError, match="being unlocked again"):
        await backend.send("too early", "secret")
    backend.unlock_again()  # what the client does on every (re)connect
    with pytest.raises(ValidationError, match="being unlocked again"):
        await backend.share_picked([("a.txt", b"x")], "", "secret", lambda _: None)
    first = await answer_next(backend, 1, "")
    assert first["channel"] == "secret" and first["req"] > 0  # a real request, answered
    busy = "Too many passphrases are being checked on this device. Try again in a moment."
    assert (await answer_next(backend, 2, busy))["channel"] == "plans"
    assert (await answer_next(backend, 3, "Not one of your channels."))["channel"] == "plans"
    await asyncio.wait_for(backend._unlocking, 5)
    assert got[-1] == RoomsUnlocked(("secret",), (("plans", "Not one of your channels."),))
    assert backend.has_room_key("plans")  # still held: never a plain channel
    with pytest.raises(ValidationError, match="could not unlock this private room again"):
        await backend.send("not in the clear", "plans")
    assert not [f for f in backend.client.sent if f["type"] in ("send", "upload")]
    await backend.send("after it", "secret")
    assert backend.client.sent[-1]["sealed"] is True
    await unlock(backend, "plans")  # the person unlocks it anew
    await backend.send("now sealed", "plans")
    assert backend.client.sent[-1]["sealed"] is True


async def test_an_unlocking_for_a_lost_connection_stops(backend) -> None:
    await unlock(backend, "secret")
    backend.client.sent.clear()
    backend.unlock_again()
    await asyncio.sleep(0.02)
    old = backend._unlocking
    backend.connection_lost()  # before its answer came
    await asyncio.sleep(0.02)
    assert old.cancelled()
    backend.unlock_again()
    await answer_next(backend, 2, "")
    await asyncio.wait_for(backend._unlocking, 5)
    assert backend.check_sealed("secret")


async def test_a_rooms_file_is_described_only_as_the_host_said(backend) -> None:
    from fletchat.files.views import sealed_digest

    ref = FileRef("a" * 64, 100, "a file", "application/octet-stream", sealed="b" * 64)
    other = replace(ref, sealed="c" * 64)  # another message's description of the same blob
    of = sealed_digest(ref)
    assert backend.file_view(ref).state == FileState.SEALED_NO_KEY
    await backend.on_file_frame(RelayFileState(ref.sha256, FileState.AVAILABLE_REMOTE, 0, 100,
                                               of=of))
    assert backend.file_view(ref).state == FileState.SEALED_NO_KEY  # no name: not unlocked
    await backend.on_file_frame(RelayFileState(ref.sha256, FileState.READY, 100, 100, False, "",
                                               "plan.pdf", "application/pdf", "t" * 43, of))
    view = backend.file_view(ref)
    assert (view.state, view.name, view.mime, str(view.path)) == (
        FileState.READY, "plan.pdf", "application/pdf", "t" * 43)
    await backend.on_file_frame(RelayFileState(ref.sha256, FileState.READY, 100, 100,
                                               of=sealed_digest(other)))
    assert backend.file_view(other).state == FileState.SEALED_NO_KEY
    assert backend.file_view(ref).name == "plan.pdf"  # untouched by the other description
