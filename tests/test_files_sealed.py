"""Sealed files for private rooms: a member gets name, type and bytes back; a peer without the
passphrase sees only that a file exists and its size class; tampering and misplacement fail."""

from __future__ import annotations

import io
import os

import pytest

from fletchat import rooms
from fletchat.files import limits as L
from fletchat.files.blobstore import BlobStore
from fletchat.files.manifest import FileManifest
from fletchat.files.sealed import (
    META_PAD,
    MIN_SEALED_BYTES,
    TAG_BYTES,
    RoomMessage,
    open_meta,
    padme,
    seal_stream,
    sealed_size,
    unseal_stream,
)

CHUNK = L.MIN_CHUNK_SIZE
KEY = rooms.room_key("secret", "correct horse battery")
OTHER = rooms.room_key("secret", "wrong horse battery!!")


def seal_into(store: BlobStore, data: bytes, name: str = "plans.pdf", mime: str = "application/pdf",
              msg_id: str = "m1", ms: int | None = None) -> FileManifest:
    blob = io.BytesIO()
    room = RoomMessage(KEY, "secret", msg_id)
    meta = seal_stream(blob, io.BytesIO(data), len(data), room, name, mime, CHUNK, ms)
    blob.seek(0)
    outer = store.import_stream(blob, "", "application/octet-stream", CHUNK)
    return FileManifest(outer.sha256, outer.size, outer.chunk_size, outer.root, sealed=meta)


def carried(files, ref: FileManifest, msg_id: str = "m1", channel: str = "secret",
            author: str = "Ann") -> None:
    """``files`` (a ``SealedFiles``) learns the message ``msg_id`` that carries ``ref``."""
    from dataclasses import replace

    from fletchat.model import Message

    files.learn(replace(Message.chat(author, "", f"peer-{author.lower()}", channel,
                                     files=(ref,)), id=msg_id))


async def open_with(files, ref: FileManifest, *keys: bytes) -> None:
    """Offer ``keys`` for ``ref`` (in that order) and wait until the downloaded blob is opened."""
    import asyncio

    for key in keys:
        files.keep_key(ref, {"secret": key})
    opened = asyncio.Event()
    files.open_later(ref, opened.set)
    await asyncio.wait_for(opened.wait(), 10)


@pytest.mark.parametrize("size", [0, 1, 1000, CHUNK - TAG_BYTES, CHUNK, 3 * CHUNK + 17])
def test_a_member_gets_everything_back(tmp_path, size):
    data = os.urandom(size)
    store = BlobStore(tmp_path / "files")
    m = seal_into(store, data, ms=4200)
    wire = FileManifest.from_wire(m.to_wire())  # what a peer receives
    assert wire == m and wire.name == "" and wire.size == sealed_size(size, CHUNK)
    meta = open_meta(KEY, "secret", "m1", wire)
    assert (meta.name, meta.mime, meta.size, meta.ms) == ("plans.pdf", "application/pdf", size, 4200)
    out = io.BytesIO()
    with open(store.path(m.sha256), "rb") as blob:
        unseal_stream(out, blob, meta, CHUNK)
    assert out.getvalue() == data


def test_without_the_passphrase_only_the_size_class_shows(tmp_path):
    store = BlobStore(tmp_path / "files")
    data = b"TOP SECRET " * 5000
    m = seal_into(store, data, name="quarterly results.xlsx")
    wire = m.to_wire()
    assert set(wire) == {"sha256", "size", "chunk", "root", "sealed"}
    blob = store.path(m.sha256).read_bytes()
    assert b"TOP SECRET" not in blob and b"quarterly" not in blob
    assert "quarterly" not in str(wire)
    with pytest.raises(rooms.RoomError):
        open_meta(OTHER, "secret", "m1", m)
    # the name's length does not show: a long and a short name seal to the same length
    short = seal_into(store, data, name="a")
    assert len(short.sealed) == len(m.sealed)
    # sizes that differ a little land in one class
    assert sealed_size(100_000, CHUNK) == sealed_size(100_300, CHUNK) != sealed_size(101_000, CHUNK)
    assert sealed_size(10, CHUNK) == sealed_size(5000, CHUNK)


def test_the_description_only_opens_in_its_own_channel_and_message(tmp_path):
    m = seal_into(BlobStore(tmp_path / "files"), b"x" * 10)
    for channel, msg_id in (("other", "m1"), ("secret", "m2")):
        with pytest.raises(rooms.RoomError):
            open_meta(KEY, channel, msg_id, m)


def test_altered_or_reordered_chunks_fail(tmp_path):
    store = BlobStore(tmp_path / "files")
    data = os.urandom(3 * CHUNK)
    m = seal_into(store, data)
    meta = open_meta(KEY, "secret", "m1", m)
    blob = bytearray(store.path(m.sha256).read_bytes())
    flipped = bytes(blob[:5]) + bytes([blob[5] ^ 1]) + bytes(blob[6:])
    swapped = bytes(blob[CHUNK:2 * CHUNK] + blob[:CHUNK] + blob[2 * CHUNK:])
    for bad in (flipped, swapped, bytes(blob[:-CHUNK])):
        with pytest.raises(rooms.RoomError):
            unseal_stream(io.BytesIO(), io.BytesIO(bad), meta, CHUNK)


def test_a_description_that_lies_about_the_size_is_refused(tmp_path):
    m = seal_into(BlobStore(tmp_path / "files"), b"x" * 10)
    lie = FileManifest(m.sha256, m.size + CHUNK, m.chunk_size, m.root, sealed=m.sealed)
    with pytest.raises(rooms.RoomError, match="malformed"):
        open_meta(KEY, "secret", "m1", lie)


def test_padme_and_meta_padding():
    assert [padme(n) for n in (0, 1, 2, 9, 100, 1000)] == [0, 1, 2, 10, 104, 1024]
    for n in range(2, 5000, 37):
        assert n <= padme(n) <= n * 1.13
    assert sealed_size(0, CHUNK) >= MIN_SEALED_BYTES
    assert META_PAD >= 255 * 4 + 127 + 200  # the longest name and type fit


def test_bad_names_are_refused_before_sealing():
    from fletchat.model import ValidationError

    with pytest.raises(ValidationError):
        seal_stream(io.BytesIO(), io.BytesIO(b"x"), 1, RoomMessage(KEY, "secret", "m1"), "a\u202eb",
                    "text/plain", CHUNK)


async def test_another_rooms_offer_naming_the_same_blob_never_gets_the_opened_copy(tmp_path):
    """The blob's hash is public and a description is not tied to its blob: an attacker's offer
    in a room of their own can name a member's sealed blob with a description sealed under their
    own key. The opened copy is shown only for a description with the file key that opened it
    (else a tab in the attacker's room would load another room's plaintext from its host)."""
    import asyncio

    from fletchat.files.sealed_files import SealedFiles
    from fletchat.files.views import FileState

    store = BlobStore(tmp_path / "files")
    data = os.urandom(3 * CHUNK)
    real = seal_into(store, data, msg_id="m1")
    files = SealedFiles(store)
    carried(files, real)
    await open_with(files, real, KEY)
    mine = files.view(real, {"secret": KEY}, None)
    assert mine.state is FileState.READY and mine.path.read_bytes() == data

    mallory = rooms.room_key("mine", "mallory's own passphrase")
    own = seal_stream(io.BytesIO(), io.BytesIO(bytes(len(data))), len(data),
                      RoomMessage(mallory, "mine", "m9"), "bait.png", "image/png", CHUNK)
    forged = FileManifest(real.sha256, real.size, real.chunk_size, real.root, sealed=own)
    carried(files, forged, "m9", "mine", "Mal")
    assert open_meta(mallory, "mine", "m9", forged).name == "bait.png"  # a valid description
    theirs = files.view(forged, {"mine": mallory}, None)
    assert theirs.path is None and theirs.state is not FileState.READY
    files.open_later(forged, lambda: None)  # their key does not open the blob: nothing changes
    await asyncio.sleep(0.2)
    assert files.view(forged, {"mine": mallory}, None).path is None
    assert files.view(real, {"secret": KEY}, None).path.read_bytes() == data


async def test_a_wrong_key_neither_replaces_the_right_one_nor_grows_the_cache(tmp_path, monkeypatch):
    """A throw-away relay connection can derive any number of keys for a room and be shown its
    files: a key that does not open a file is not kept for opening it (it would replace the one
    that works, and the download would never open), and descriptions are cached only when they
    open, at most ``MAX_METAS`` of them."""

    from fletchat.files import sealed_files
    from fletchat.files.sealed_files import SealedFiles
    from fletchat.files.views import FileState

    store = BlobStore(tmp_path / "files")
    data = os.urandom(2 * CHUNK)
    real = seal_into(store, data, msg_id="m1")
    files = SealedFiles(store)
    carried(files, real)
    # with the right key, kept (the wrong one after it is not)
    await open_with(files, real, KEY, rooms.room_key("secret", "a wrong passphrase"))
    assert files.view(real, {"secret": KEY}, None).state is FileState.READY

    monkeypatch.setattr(sealed_files, "MAX_METAS", 3)
    for i in range(20):  # wrong keys: nothing cached
        wrong = bytes([i]) * 32
        assert files.view(real, {"secret": wrong}, None).state is FileState.SEALED_NO_KEY
    assert len(files._metas) <= 1
    others = [seal_into(store, os.urandom(CHUNK), msg_id=f"n{i}") for i in range(6)]
    for i, ref in enumerate(others):
        carried(files, ref, f"n{i}")
        assert files.meta(ref, KEY) is not None
    assert len(files._metas) == 3


def test_a_copy_of_a_description_in_another_message_never_hides_the_original(tmp_path):
    """The sealed field is public: another message (any channel) may carry a copy. A
    description opens only under its own message, which is still tried: the room's file stays
    described for its members (it showed as locked once the copy was learned)."""

    from fletchat.files.sealed_files import SealedFiles
    from fletchat.files.views import FileState

    store = BlobStore(tmp_path / "files")
    real = seal_into(store, os.urandom(CHUNK), msg_id="m1")
    files = SealedFiles(store)
    carried(files, real)
    for i in range(6):  # copies, in the open and in the room itself
        carried(files, real, f"x{i}", "general" if i % 2 else "secret", "Mal")
    view = files.view(real, {"secret": KEY}, None)
    assert view.state is not FileState.SEALED_NO_KEY and view.name == "plans.pdf"
    assert files.view(real, {"general": rooms.room_key("general", "anything at all")},
                      None).state is FileState.SEALED_NO_KEY


async def test_a_download_opens_the_room_file_though_a_copy_was_wanted_after_it(tmp_path):
    """A download is of the blob; every message naming it (each description) is told when it
    ends. A plain copy naming a room's blob, wanted after the room's file, left the room's
    file downloaded but never opened."""
    import asyncio

    from fletchat.files.service import FileEvent
    from fletchat.files.share import FileShare
    from fletchat.files.views import FileChanged, FileState

    store = BlobStore(tmp_path / "files")
    data = os.urandom(2 * CHUNK)
    real = seal_into(store, data, msg_id="m1")
    published: list = []
    share = FileShare(store, published.append)
    carried(share.sealed, real)
    share.sealed.keep_key(real, {"secret": KEY})
    plain = FileManifest(real.sha256, real.size, real.chunk_size, real.root, name="x.bin",
                         mime="application/octet-stream")
    share._remember(real)
    share._remember(plain)  # wanted after it
    share._on_event(FileEvent("done", real.sha256, real.size, real.size))
    for _ in range(200):
        if share.view(real, {"secret": KEY}).state is FileState.READY:
            break
        await asyncio.sleep(0.02)
    assert share.view(real, {"secret": KEY}).path.read_bytes() == data
    assert any(isinstance(e, FileChanged) and e.of for e in published)
