"""The content-addressed blob store on a real directory: import, quota and usage, download with a
resume journal that survives a restart (a new BlobStore on the same dir), corrupted partial data,
whole-file mismatch, and names that never become paths."""

from __future__ import annotations

import io
import os
import struct
import threading
from pathlib import Path

import pytest

from fletchat.files import limits as L
from fletchat.files.blobstore import BlobError, BlobStore, QuotaError
from fletchat.files.manifest import FileManifest
from fletchat.files.merkle import leaf_hash

CHUNK = L.MIN_CHUNK_SIZE


def payload(n_chunks: int, tail: int = 123, seed: int = 1) -> bytes:
    n = CHUNK * n_chunks + tail
    block = bytes(range(seed % 251, 251)) + bytes(range(seed % 251))
    return (block * (n // 251 + 1))[:n]


def offer(tmp_path: Path, data: bytes, name: str = "a.bin") -> tuple[BlobStore, FileManifest]:
    sender = BlobStore(tmp_path / "sender" / "files")
    return sender, sender.import_stream(io.BytesIO(data), name, "application/octet-stream", CHUNK)


def all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_import_is_content_addressed_and_names_never_become_paths(tmp_path):
    store = BlobStore(tmp_path / "data" / "files")
    data = b"x" * 1000
    for name in ("../../../evil.txt", "/etc/passwd", "..\\..\\a", "con"):
        m = store.import_stream(io.BytesIO(data), name, "text/plain", CHUNK)
        assert m.name == name  # display only
    assert store.path(m.sha256).read_bytes() == data
    assert not (tmp_path / "evil.txt").exists()
    root = (tmp_path / "data" / "files").resolve()
    assert all(root in p.resolve().parents for p in all_files(tmp_path))
    assert store.usage().used == 1000  # one blob, however many times it was offered
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")


def test_import_computes_the_manifest(tmp_path):
    import hashlib

    data = payload(3)
    _, m = offer(tmp_path, data)
    assert m.sha256 == hashlib.sha256(data).hexdigest()
    assert (m.size, m.chunk_count, m.chunk_size) == (len(data), 4, CHUNK)
    empty = BlobStore(tmp_path / "e").import_stream(io.BytesIO(b""), "empty", "text/plain", CHUNK)
    assert (empty.size, empty.chunk_count) == (0, 1)


def test_quota_and_usage(tmp_path):
    store = BlobStore(tmp_path / "files", quota=CHUNK * 3)
    store.import_stream(io.BytesIO(payload(1)), "a", "text/plain", CHUNK)
    with pytest.raises(QuotaError, match="Not enough room"):
        store.import_stream(io.BytesIO(payload(2)), "b", "text/plain", CHUNK)
    u = store.usage()
    assert u.used == CHUNK + 123 and u.quota == CHUNK * 3
    assert u.free == min(CHUNK * 3 - u.used, u.disk_free)
    # a download reserves its whole size up front
    _, big = offer(tmp_path, payload(2, seed=9))
    with pytest.raises(QuotaError):
        store.begin(big)
    _, small = offer(tmp_path, b"z" * 100)
    store.begin(small)
    assert store.usage().used == CHUNK + 123 + 100
    store.abort(small.sha256)
    assert store.usage().used == CHUNK + 123
    # the count survives a restart
    assert BlobStore(tmp_path / "files", quota=CHUNK * 3).usage().used == CHUNK + 123


def _copy(sender: BlobStore, receiver: BlobStore, m: FileManifest, indexes) -> None:
    for i in indexes:
        data, _ = sender.read_chunk(m.sha256, i, m.chunk_size)
        receiver.write_chunk(m, i, data, leaf_hash(data))


def test_download_resumes_after_a_restart_and_completes_atomically(tmp_path):
    data = payload(5)
    sender, m = offer(tmp_path, data)
    root = tmp_path / "recv" / "files"
    receiver = BlobStore(root)
    assert receiver.begin(m) == set()
    _copy(sender, receiver, m, [0, 2, 3])
    assert receiver.path(m.sha256) is None
    with pytest.raises(BlobError, match="missing"):
        receiver.finish(m)
    del receiver
    again = BlobStore(root)  # a restart
    assert [p.sha256 for p in again.partials()] == [m.sha256]
    assert again.usage().used == m.size
    assert again.begin(m) == {0, 2, 3}
    _copy(sender, again, m, [1, 4, 5])
    path = again.finish(m)
    assert path.read_bytes() == data and again.has(m.sha256)
    assert again.partials() == [] and again.usage().used == m.size
    assert not list((root / "partial").iterdir())
    # and it now serves what it fetched, with proofs that check out
    chunk, proof = again.read_chunk(m.sha256, 4, CHUNK)
    from fletchat.files.merkle import verify

    assert verify(bytes.fromhex(m.root), 4, m.chunk_count, leaf_hash(chunk), proof)


def test_a_torn_journal_and_corrupted_chunks_count_as_missing(tmp_path):
    sender, m = offer(tmp_path, payload(3))
    root = tmp_path / "recv" / "files"
    receiver = BlobStore(root)
    receiver.begin(m)
    _copy(sender, receiver, m, [0, 1, 2])
    idx = root / "partial" / f"{m.sha256}.idx"
    with open(idx, "ab") as f:
        f.write(struct.pack(">I", 3)[:3])  # a record cut short by a crash
    part = root / "partial" / f"{m.sha256}.part"
    with open(part, "r+b") as f:  # chunk 1 did not really reach the disk
        f.seek(CHUNK + 10)
        f.write(b"\xff\xfe")
    assert BlobStore(root).begin(m) == {0, 2}


def test_whole_file_mismatch_is_discarded(tmp_path):
    data = payload(2)
    sender, m = offer(tmp_path, data)
    lie = FileManifest("00" * 32, m.size, m.chunk_size, m.root, "lie", "text/plain")
    receiver = BlobStore(tmp_path / "recv")
    receiver.begin(lie)
    for i in range(m.chunk_count):
        chunk, _ = sender.read_chunk(m.sha256, i, CHUNK)
        receiver.write_chunk(lie, i, chunk, leaf_hash(chunk))
    with pytest.raises(BlobError, match="does not match"):
        receiver.finish(lie)
    assert receiver.usage().used == 0 and receiver.partials() == []
    assert not receiver.has(lie.sha256)


def test_wrong_length_chunk_and_unbegun_download_are_refused(tmp_path):
    _sender, m = offer(tmp_path, payload(1))
    receiver = BlobStore(tmp_path / "recv")
    with pytest.raises(BlobError, match="not begun"):
        receiver.write_chunk(m, 0, b"x" * CHUNK, leaf_hash(b"x" * CHUNK))
    receiver.begin(m)
    with pytest.raises(BlobError, match="length"):
        receiver.write_chunk(m, 0, b"x" * 5, leaf_hash(b"x" * 5))
    # a batch with one bad chunk writes none of it
    good = b"x" * CHUNK
    with pytest.raises(BlobError, match="length"):
        receiver.write_chunks(m, [(0, good, leaf_hash(good)), (1, b"x" * 5, leaf_hash(b"x" * 5))])
    assert BlobStore(tmp_path / "recv").begin(m) == set()  # nothing journaled


def test_read_chunk_of_what_we_lack(tmp_path):
    sender, m = offer(tmp_path, payload(1))
    with pytest.raises(KeyError):
        sender.read_chunk("00" * 32, 0, CHUNK)
    with pytest.raises(KeyError):
        sender.read_chunk(m.sha256, 2, CHUNK)


def test_remove_frees_quota(tmp_path):
    sender, m = offer(tmp_path, payload(1))
    sender.remove(m.sha256)
    assert sender.usage().used == 0 and not sender.has(m.sha256)


async def test_async_methods_run_off_the_loop(tmp_path):
    import threading

    src = tmp_path / "src.bin"
    src.write_bytes(payload(2))
    store = BlobStore(tmp_path / "files")
    seen: list[int] = []
    original = store.import_stream

    def spy(*args, **kwargs):
        seen.append(threading.get_ident())
        return original(*args, **kwargs)

    store.import_stream = spy  # type: ignore[method-assign]
    m = await store.aimport_file(src, "src.bin", "application/octet-stream", CHUNK)
    assert seen and seen[0] != threading.get_ident()
    data, proof = store.read_chunk(m.sha256, 0, CHUNK)
    assert data == payload(2)[:CHUNK] and proof
    assert (await store.ausage()).used == m.size
    assert os.path.getsize(store.path(m.sha256)) == m.size


def test_the_whole_file_hash_follows_the_chunks_in_any_order_and_still_catches_a_lie(tmp_path):
    data = payload(7)
    sender, m = offer(tmp_path, data)
    receiver = BlobStore(tmp_path / "recv")
    receiver.begin(m)
    _copy(sender, receiver, m, [3, 1, 0, 7, 2, 5, 6, 4])  # early chunks wait for their turn
    assert receiver.finish(m).read_bytes() == data
    lie = FileManifest("00" * 32, m.size, m.chunk_size, m.root, "lie", "text/plain")
    other = BlobStore(tmp_path / "recv2")
    other.begin(lie)
    for i in (7, 6, 5, 4, 3, 2, 1, 0):
        chunk, _ = sender.read_chunk(m.sha256, i, CHUNK)
        other.write_chunk(lie, i, chunk, leaf_hash(chunk))
    with pytest.raises(BlobError, match="does not match"):
        other.finish(lie)


def test_the_running_hash_reads_back_only_what_it_could_not_hold():
    import hashlib

    from fletchat.files.wholehash import RunningHash

    data = payload(7)
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    h = RunningHash(max_early=2 * CHUNK)
    for i in (0, 3, 4, 5, 3, 1, 2):  # 5 is past the bound (dropped); 3 twice counts once
        h.add(i, chunks[i])
    assert h.next_index == 5
    h.update_from_disk(data[5 * CHUNK:])  # what finish reads back: from chunk 5 on
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_filling_disk_never_leaves_a_chunk_half_written_or_the_journal_shifted(tmp_path, monkeypatch):
    """Short writes (a disk filling up) are written on, not journaled as a whole chunk with
    zeros in it; a journal append that fails part way is cut off again, so later records are
    read in their place and the chunks it named are fetched again after a restart."""
    sender, m = offer(tmp_path, payload(4))
    receiver = BlobStore(tmp_path / "recv")
    receiver.begin(m)
    chunks = [sender.read_chunk(m.sha256, i, CHUNK)[0] for i in range(m.chunk_count)]
    real_pwrite = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, off: real_pwrite(fd, bytes(data)[:1000], off))
    receiver.write_chunks(m, [(0, chunks[0], leaf_hash(chunks[0]))])  # 1,000 bytes at a time
    monkeypatch.setattr(os, "pwrite", real_pwrite)

    def full_disk(fd, data, off):  # the chunk gets in; of its journal record half, then full
        if len(data) > 64:
            return real_pwrite(fd, data, off)
        real_pwrite(fd, bytes(data)[:len(data) // 2], off)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full_disk)
    with pytest.raises(OSError, match="No space"):
        receiver.write_chunks(m, [(1, chunks[1], leaf_hash(chunks[1]))])
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    for i in range(2, m.chunk_count):
        receiver.write_chunks(m, [(i, chunks[i], leaf_hash(chunks[i]))])
    # a restart reads the journal: every chunk but the refused one, each whole
    again = BlobStore(tmp_path / "recv")
    assert again.begin(m) == set(range(m.chunk_count)) - {1}
    again.write_chunk(m, 1, chunks[1], leaf_hash(chunks[1]))
    assert again.finish(m).read_bytes() == payload(4)


def test_verified_chunks_of_a_download_are_served_even_while_it_finishes(tmp_path):
    """``read_partial`` serves only verified chunks, and does not wait for the file's lock:
    ``finish`` holds that lock for its read-back and sync, and fellow fetchers' reads waiting
    for it used to fill the files threads every other download needed."""
    sender, m = offer(tmp_path, payload(3))
    receiver = BlobStore(tmp_path / "recv")
    receiver.begin(m)
    c0 = sender.read_chunk(m.sha256, 0, CHUNK)[0]
    receiver.write_chunk(m, 0, c0, leaf_hash(c0))
    offset, length = m.chunk_span(0)
    with pytest.raises(KeyError):
        receiver.read_partial(m.sha256, 1, *m.chunk_span(1))  # not verified here
    got: list[bytes] = []
    with receiver._file_lock(m.sha256):  # as finish holds it
        reader = threading.Thread(target=lambda: got.append(
            receiver.read_partial(m.sha256, 0, offset, length)))
        reader.start()
        reader.join(10)
        assert not reader.is_alive() and got == [c0]
    for i in range(1, m.chunk_count):
        c = sender.read_chunk(m.sha256, i, CHUNK)[0]
        receiver.write_chunk(m, i, c, leaf_hash(c))
    receiver.finish(m)
    with pytest.raises((KeyError, FileNotFoundError)):  # the partial file is gone: served whole
        receiver.read_partial(m.sha256, 0, offset, length)


def test_chunks_held_early_for_the_whole_file_hash_are_bounded_across_downloads(tmp_path, monkeypatch):
    """A chunk that arrives ahead of the running whole-file hash waits in memory, up to
    ``MAX_EARLY_BYTES`` a download and ``MAX_EARLY_TOTAL_BYTES`` for all of them together (up
    to 68 downloads run at once); past that it is read back from disk at the end, and every
    file still checks out."""
    from fletchat.files import blobstore

    monkeypatch.setattr(blobstore, "MAX_EARLY_BYTES", 2 * CHUNK)
    monkeypatch.setattr(blobstore, "MAX_EARLY_TOTAL_BYTES", 3 * CHUNK)
    receiver = BlobStore(tmp_path / "recv")
    offers = [offer(tmp_path / str(n), payload(4, seed=n)) for n in (1, 2)]
    for _sender, m in offers:
        receiver.begin(m)
    chunks = {m.sha256: [s.read_chunk(m.sha256, i, CHUNK)[0] for i in range(m.chunk_count)]
              for s, m in offers}
    for _sender, m in offers:  # chunks 1, 2, 3 before 0: all early
        for i in (1, 2, 3):
            c = chunks[m.sha256][i]
            receiver.write_chunk(m, i, c, leaf_hash(c))
    held = [receiver._hashes[m.sha256].early_bytes for _s, m in offers]
    assert held == [2 * CHUNK, CHUNK]  # 2 a download, 3 in all
    for _sender, m in offers:
        c = chunks[m.sha256][0]
        receiver.write_chunk(m, 0, c, leaf_hash(c))
        receiver.write_chunk(m, 4, chunks[m.sha256][4], leaf_hash(chunks[m.sha256][4]))
    for n, (_sender, m) in zip((1, 2), offers, strict=True):
        assert receiver.finish(m).read_bytes() == payload(4, seed=n)


def test_a_crash_after_the_install_does_not_count_the_file_twice(tmp_path):
    """``finish`` installs the file, then removes the download's metadata: a crash between the
    two left the metadata, and every restart counted the file's size twice against the quota."""
    sender, m = offer(tmp_path, payload(2))
    receiver = BlobStore(tmp_path / "recv")
    receiver.begin(m)
    meta = next((tmp_path / "recv").rglob("*.json"))
    saved = meta.read_bytes()
    for i in range(m.chunk_count):
        c = sender.read_chunk(m.sha256, i, CHUNK)[0]
        receiver.write_chunk(m, i, c, leaf_hash(c))
    receiver.finish(m)
    used = receiver.usage().used
    meta.write_bytes(saved)  # as if the process died right after the install
    again = BlobStore(tmp_path / "recv")
    assert again.usage().used == used == m.size
    assert not meta.exists() and again.has(m.sha256)


def test_an_import_never_takes_the_disk_under_the_free_space_floor(tmp_path, monkeypatch):
    """A browser's upload is copied into the store when it is shared: that second copy was
    made before any look at the disk, so a file sized to the free space filled it and the
    history went read-only. Now the whole size is checked first, and each chunk as it goes."""
    import collections

    from fletchat.files import blobstore

    data = payload(3)
    src = tmp_path / "upload.bin"
    src.write_bytes(data)
    store = BlobStore(tmp_path / "store")
    before = all_files(tmp_path / "store")
    free = {"bytes": L.UPLOAD_MIN_FREE_BYTES + len(data) - 1}
    disk = collections.namedtuple("disk", "total used free")
    monkeypatch.setattr(blobstore.shutil, "disk_usage",
                        lambda path: disk(0, 0, free["bytes"]))
    with pytest.raises(BlobError, match="Not enough free disk space"):
        store.import_file(src, "upload.bin", "application/octet-stream", CHUNK)
    assert all_files(tmp_path / "store") == before and store.usage().used == 0

    # a stream of unknown size: stopped at the chunk that would cross the floor
    calls = {"n": 0}

    def shrinking(path):
        calls["n"] += 1
        return disk(0, 0, L.UPLOAD_MIN_FREE_BYTES + 2 * CHUNK - (calls["n"] - 1) * CHUNK)

    monkeypatch.setattr(blobstore.shutil, "disk_usage", shrinking)
    with pytest.raises(BlobError, match="Not enough free disk space"):
        store.import_stream(io.BytesIO(data), "s.bin", "application/octet-stream", CHUNK)
    assert all_files(tmp_path / "store") == before and store.usage().used == 0

    free["bytes"] = L.UPLOAD_MIN_FREE_BYTES + 2 * len(data)
    monkeypatch.setattr(blobstore.shutil, "disk_usage",
                        lambda path: disk(0, 0, free["bytes"]))
    assert store.import_file(src, "upload.bin", "application/octet-stream", CHUNK).size == len(data)
