"""Files over the relay (static web clients): uploads in checked chunks, shares, the ``file``
frames, fetch requests and the upload quotas, with the real host-mode app under uvicorn and real
WebSocket clients (the fixtures of test_relay.py)."""

# ruff: noqa: F811 (the ``host`` fixture comes from test_relay.py)

from __future__ import annotations

import asyncio
import hashlib
import io
import urllib.request
from dataclasses import replace

import pytest
from PIL import Image

from fletchat import relay_files as RF
from fletchat.conversation.relay_frames import RelayDone
from fletchat.files.relay_frames import (
    RELAY_CHUNK_BYTES,
    RELAY_MAX_UPLOAD_BYTES,
    RelayAck,
    RelayFileState,
    RelaySlot,
    encode_client_chunk,
    encode_client_fetch,
    encode_client_share,
    encode_client_upload,
)
from fletchat.files.views import FileState
from fletchat.hub import HubSession, dm_channel
from fletchat.model import KIND_CHAT, Message
from fletchat.protocol import ProtocolError
from fletchat.relay_protocol import decode_client_frame, decode_server_frame
from tests.test_relay import TIMEOUT, Client, Host, host, open_client  # noqa: F401 (fixture)
from tests.timing import eventually, scaled


def png_bytes(side: int = 300) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 90)).save(out, "PNG")
    return out.getvalue()


async def upload(client: Client, name: str, data: bytes, req: int = 1) -> str:
    """Open a slot and send ``data`` in chunks, each acknowledged; the slot id."""
    await client.ws.send(encode_client_upload(req, name, len(data)))
    slot = await client.next(RelaySlot)
    assert slot.req == req and not slot.error, slot
    for offset in range(0, len(data), RELAY_CHUNK_BYTES):
        await client.ws.send(encode_client_chunk(slot.id, offset,
                                                 data[offset:offset + RELAY_CHUNK_BYTES]))
        ack = await client.next(RelayAck)
        assert ack.id == slot.id and not ack.error, ack
        assert ack.received == min(len(data), offset + RELAY_CHUNK_BYTES)
    return slot.id


async def file_state(client: Client, sha: str, want: FileState) -> RelayFileState:
    async with asyncio.timeout(TIMEOUT):
        while True:
            frame = await client.next(RelayFileState)
            if frame.sha256 == sha and frame.state == want:
                return frame


async def test_an_upload_is_shared_and_others_see_and_download_it(host: Host):
    ada = await open_client(host, "Ada")
    bob = await open_client(host, "Bob")
    data = png_bytes()
    sha = hashlib.sha256(data).hexdigest()
    slot = await upload(ada, "../../etc/holiday photo.png", data)
    await ada.ws.send(encode_client_share(7, [slot], "look at this", "#general"))
    done = await ada.next(RelayDone)
    assert done.req == 7 and done.error == ""

    msg = await bob.message(lambda m: m.kind == KIND_CHAT and bool(m.files))
    (ref,) = msg.files
    assert (ref.sha256, ref.size, ref.name, ref.mime) == (sha, len(data), "holiday photo.png",
                                                          "image/png")
    assert msg.author == "Ada" and msg.text == "look at this"
    # Bob was told the host has it (and its thumbnail), and the host serves it.
    state = await file_state(bob, sha, FileState.READY)
    assert state.thumb and state.size == len(data)
    url = f"http://127.0.0.1:{host.url.split(':')[2].split('/')[0]}/files/blob/{sha}"

    def get() -> bytes:
        with urllib.request.urlopen(url, timeout=scaled(5)) as resp:
            return resp.read()

    assert await asyncio.to_thread(get) == data
    # The slot's folder is gone once shared.
    await eventually(lambda: not any(host.node.config.data_dir.joinpath(
        RF.RELAY_UPLOAD_DIR).iterdir()), "the upload folder emptied", TIMEOUT)


async def test_a_chunk_at_the_wrong_offset_closes_the_connection(host: Host):
    ada = await open_client(host, "Ada")
    await ada.ws.send(encode_client_upload(1, "a.bin", 100))
    slot = await ada.next(RelaySlot)
    await ada.ws.send(encode_client_chunk(slot.id, 10, b"x" * 10))
    code, reason = await ada.closed()
    assert code == 1002 and "offset" in reason


async def test_a_chunk_past_the_declared_size_closes_the_connection(host: Host):
    ada = await open_client(host, "Ada")
    await ada.ws.send(encode_client_upload(1, "a.bin", 100))
    slot = await ada.next(RelaySlot)
    await ada.ws.send(encode_client_chunk(slot.id, 0, b"x" * 101))
    code, reason = await ada.closed()
    assert code == 1002 and "past" in reason


async def test_an_incomplete_upload_is_not_shared(host: Host):
    ada = await open_client(host, "Ada")
    await ada.ws.send(encode_client_upload(1, "a.bin", 100))
    slot = await ada.next(RelaySlot)
    await ada.ws.send(encode_client_chunk(slot.id, 0, b"x" * 50))
    await ada.next(RelayAck)
    await ada.ws.send(encode_client_share(2, [slot.id], "", "#general"))
    done = await ada.next(RelayDone)
    assert "not complete" in done.error
    assert not [m for m in host.messages(KIND_CHAT) if m.files]


async def test_slots_per_address_hold_against_throw_away_connections(host: Host):
    """Many connections from one address: together they get at most MAX_SLOTS_PER_ADDRESS."""
    clients = [await open_client(host, f"Throwaway {i}") for i in range(4)]
    granted, refused = 0, []
    for i in range(RF.MAX_SLOTS_PER_ADDRESS + 4):
        client = clients[i % len(clients)]
        await client.ws.send(encode_client_upload(i, f"f{i}.bin", 1000))
        slot = await client.next(RelaySlot)
        if slot.error:
            refused.append(slot.error)
        else:
            granted += 1
    assert granted == RF.MAX_SLOTS_PER_ADDRESS
    assert len(refused) == 4 and all("too much" in r for r in refused)


async def test_bytes_per_address_are_capped(host: Host):
    clients = [await open_client(host, f"Big {i}") for i in range(3)]
    answers = []
    for i, client in enumerate(clients):
        await client.ws.send(encode_client_upload(i, "big.bin", RELAY_MAX_UPLOAD_BYTES))
        answers.append(await client.next(RelaySlot))
    assert [bool(a.error) for a in answers] == [False, False, True]


async def test_closing_the_connection_deletes_its_slots(host: Host):
    ada = await open_client(host, "Ada")
    await ada.ws.send(encode_client_upload(1, "a.bin", 100))
    await ada.next(RelaySlot)
    root = host.node.config.data_dir / RF.RELAY_UPLOAD_DIR
    assert len(list(root.iterdir())) == 1
    await ada.ws.close()
    await eventually(lambda: not list(root.iterdir()), "the slot deleted", TIMEOUT)


async def test_fetch_only_files_of_messages_the_client_was_sent(host: Host):
    ada = await open_client(host, "Ada")
    await ada.ws.send(encode_client_fetch(3, "ab" * 32))
    done = await ada.next(RelayDone)
    assert done.req == 3 and "No message" in done.error


async def test_a_direct_message_file_is_not_announced_to_others(host: Host):
    ada = await open_client(host, "Ada")
    eve = await open_client(host, "Eve")
    bob = HubSession(host.node.hub, device="browser")
    bob.join("Bob")
    data = b"secret plans" * 10
    slot = await upload(ada, "plans.txt", data)
    dm = dm_channel("Ada", "Bob")
    await ada.ws.send(encode_client_share(2, [slot], "", dm))
    assert not (await ada.next(RelayDone)).error
    sha = hashlib.sha256(data).hexdigest()
    await ada.ws.send(encode_client_upload(9, "x.bin", 1))  # a marker frame after the share
    await ada.next(RelaySlot)

    async def eve_saw() -> list[object]:
        try:
            async with asyncio.timeout(scaled(1.0)):
                while True:
                    await eve.next(RelayFileState)
        except TimeoutError:
            pass
        return [f for f in eve.frames if isinstance(f, RelayFileState) and f.sha256 == sha]

    assert await eve_saw() == []
    assert [m for m in host.messages(KIND_CHAT) if isinstance(m, Message) and m.files]


@pytest.mark.parametrize("frame, reason", [
    ('{"v":1,"type":"chunk","id":"' + "a" * 32 + '","offset":0,"data":"' + "A" * 43696 + '"}',
     "base64 of"),
    ('{"v":1,"type":"chunk","id":"' + "a" * 32 + '","offset":0,"data":"@@@@"}', "not base64"),
    ('{"v":1,"type":"chunk","id":"../x","offset":0,"data":"AAAA"}', "slot id"),
    ('{"v":1,"type":"chunk","id":"' + "a" * 32 + '","offset":-1,"data":"AAAA"}', "offset"),
    ('{"v":1,"type":"upload","req":1,"name":"a","size":0}', "size"),
    ('{"v":1,"type":"upload","req":1,"name":"a","size":' + str(RELAY_MAX_UPLOAD_BYTES + 1) + "}",
     "size"),
    ('{"v":1,"type":"upload","req":1,"name":"a\\u202e.png","size":5}', "control"),
    ('{"v":1,"type":"share","req":1,"ids":[],"caption":""}', "ids"),
    ('{"v":1,"type":"fetch","req":1,"sha256":"../../etc"}', "sha256"),
])
def test_file_frames_are_validated_at_the_edge(frame: str, reason: str):
    with pytest.raises(ProtocolError) as info:
        decode_client_frame(frame)
    assert reason in info.value.reason


def test_server_file_frames_validate():
    from fletchat.files.relay_frames import encode_ack, encode_file_state, encode_slot

    assert decode_server_frame(encode_slot(1, "a" * 32)) == RelaySlot(1, "a" * 32)
    assert decode_server_frame(encode_ack("b" * 32, 5)) == RelayAck("b" * 32, 5)
    plain = RelayFileState("c" * 64, FileState.READY, 3, 3, True)
    assert decode_server_frame(encode_file_state(plain)) == plain
    room = RelayFileState("c" * 64, FileState.READY, 3, 3, False, "", "plan.pdf",
                          "application/pdf", "t" * 43)
    assert decode_server_frame(encode_file_state(room)) == room
    assert decode_server_frame(encode_file_state(replace(room, of="0" * 32))).of == "0" * 32
    for bad in [replace(room, name="x\u202egpj.exe"), replace(room, mime="PDF"),
                replace(room, opened="../../etc/passwd"), replace(room, of="XYZ")]:
        with pytest.raises(ProtocolError):
            decode_server_frame(encode_file_state(bad))
    with pytest.raises(ProtocolError):
        decode_server_frame('{"v":1,"type":"file","sha256":"' + "c" * 64 + '","state":"evil",'
                            '"done":0,"size":0}')


def test_a_trickled_slot_is_dropped_once_overdue(tmp_path):
    """A byte every two minutes kept a slot (and its share of every cap) for good; a slot now
    has until ``SLOT_GRACE_S`` plus its size at ``SLOT_MIN_BYTES_PER_S``, however it trickles."""
    now = {"t": 1000.0}
    uploads = RF.RelayUploads(tmp_path / "relay-uploads", clock=lambda: now["t"],
                              disk_free=lambda path: 1 << 40)
    size = 1 << 20
    slot = uploads.open(1, "10.0.0.66", "slow.bin", size)
    allowed = RF.SLOT_GRACE_S + size / RF.SLOT_MIN_BYTES_PER_S
    for _ in range(int(allowed // 100)):
        now["t"] += 100
        slot.touched = now["t"]  # a chunk now and then: never idle
        uploads.sweep()
        assert uploads.get(slot.id, 1) is slot
    now["t"] = slot.opened + allowed + 1
    slot.touched = now["t"]
    uploads.sweep()
    assert uploads.get(slot.id, 1) is None and not slot.path.parent.exists()


async def test_one_address_cannot_take_every_relay_connection(host: Host):
    from fletchat.relay_protocol import MAX_RELAY_CLIENTS_PER_ADDRESS

    clients = [await open_client(host) for _ in range(MAX_RELAY_CLIENTS_PER_ADDRESS)]
    extra = await open_client(host)
    code, reason = await extra.closed()
    assert code == 1013 and "too many relay clients" in reason
    for c in clients:
        await c.ws.close()


async def test_a_share_sent_just_before_the_connection_closed_is_still_posted(host: Host,
                                                                              monkeypatch):
    """The person pressed send and closed the tab: the share was cancelled mid-import, the
    file stored and charged to the quota with no message pointing at it. Now the share
    finishes, the message goes out as theirs, and they leave after it."""
    files = host.node.hub.files
    real_share = files.share
    closed = asyncio.Event()

    async def after_the_close(*args, **kwargs):
        await closed.wait()
        return await real_share(*args, **kwargs)

    monkeypatch.setattr(files, "share", after_the_close)
    ada = await open_client(host, "Ada")
    slot = await upload(ada, "late.bin", b"x" * 3000)
    await ada.ws.send(encode_client_share(3, [slot], "sent as I left", "#general"))
    await asyncio.sleep(0.2)
    await ada.ws.close()  # returns once the host answered the close
    await asyncio.sleep(0.5)  # its endpoint's clean-up has run (the share then was cancelled)
    closed.set()

    def posted() -> list[Message]:
        return [m for m in host.messages(KIND_CHAT) if m.text == "sent as I left"]

    await eventually(posted, "the message posted", TIMEOUT)
    (msg,) = posted()
    assert msg.author == "Ada" and [f.name for f in msg.files] == ["late.bin"]
    # her leave follows once the share is done (posted after it, so it may still be on its way)
    kinds = await eventually(lambda: "leave" in (k := [m.kind for m in host.messages()
                                                        if m.author == "Ada"]) and k,
                             "Ada's leave", TIMEOUT)
    assert kinds.index("leave") > kinds.index(KIND_CHAT), kinds  # she left after it


def test_a_client_keeps_a_few_descriptions_of_one_blob_and_every_thumbnails_file():
    """Messages may name one blob many ways (each a room file's description): each change of
    the blob is a frame per description, so a client keeps at most a few of them; a hash that is
    both a file and another file's thumbnail tells both."""
    from fletchat.files.manifest import FileManifest

    state = RF.ClientFiles()
    blob = "a" * 64
    refs = [FileManifest(blob, 10, 65536, "b" * 64, sealed=f"sealed:{i}") for i in range(6)]
    for ref in refs:
        state.learn(ref)
    assert state.refs_of(blob) == refs[-RF.MAX_DESCRIPTIONS_PER_BLOB:]
    thumb = FileManifest("c" * 64, 5, 65536, "d" * 64, name="t.png", mime="image/png")
    photo = FileManifest("e" * 64, 50, 65536, "f" * 64, name="p.png", mime="image/png",
                         thumb=thumb)
    state.learn(thumb)  # a file of its own too
    state.learn(photo)
    assert state.refs_of(thumb.sha256) == [thumb, photo]


def test_asking_again_for_a_stored_file_tells_nobody_again(tmp_path):
    """A relay client's fetch of a file the host has is answered; it does not announce the
    file to every screen again (any connection could send such fetches back to back)."""
    from fletchat.files.blobstore import BlobStore
    from fletchat.files.share import FileShare
    from fletchat.files.views import FileChanged

    published: list = []
    share = FileShare(BlobStore(tmp_path / "files"), published.append)
    ref = share.store.import_stream(io.BytesIO(b"x" * 1000), "a.txt", "text/plain")
    for _ in range(5):
        share._want(ref, front=True)
    assert [type(e) for e in published] == [FileChanged]
    share.free_space()  # (too small to be freed: kept)
    share._want(ref)
    assert len([e for e in published if isinstance(e, FileChanged)]) == 1
