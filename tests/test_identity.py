"""The install's stable peer id and the data-dir lock, on real files."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fletchat.identity import (
    LOCK_FILE,
    PEER_ID_FILE,
    DataDirInUse,
    DataDirLock,
    load_or_create_peer_id,
)
from fletchat.model import validate_id

ROOT = Path(__file__).resolve().parent.parent
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


# ---------------------------------------------------------------- peer id


@posix_only
def test_peer_id_created_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "data"
    peer_id = load_or_create_peer_id(data)
    assert validate_id(peer_id) == peer_id
    path = data / PEER_ID_FILE
    assert path.read_text(encoding="utf-8").strip() == peer_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not (data / "peer_id.tmp").exists()


def test_peer_id_stable_across_runs(tmp_path: Path) -> None:
    first = load_or_create_peer_id(tmp_path)
    assert load_or_create_peer_id(tmp_path) == first
    # ... and across processes.
    code = (
        "import sys; from pathlib import Path; from fletchat.identity import load_or_create_peer_id;"
        " print(load_or_create_peer_id(Path(sys.argv[1])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert out.stdout.strip() == first


def test_different_dirs_different_ids(tmp_path: Path) -> None:
    a = load_or_create_peer_id(tmp_path / "a")
    b = load_or_create_peer_id(tmp_path / "b")
    assert a != b


def test_existing_valid_id_is_kept(tmp_path: Path) -> None:
    (tmp_path / PEER_ID_FILE).write_text("my-own.id:1\n", encoding="utf-8")
    assert load_or_create_peer_id(tmp_path) == "my-own.id:1"


@pytest.mark.parametrize("content", [b"not a valid id!\n", b"", b"\xff\xfe\x00garbage", b"x" * 200])
def test_corrupt_peer_id_is_moved_aside(
    tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / PEER_ID_FILE
    path.write_bytes(content)
    new = load_or_create_peer_id(tmp_path)
    assert validate_id(new) == new
    backups = [p for p in tmp_path.iterdir() if p.name != PEER_ID_FILE]
    assert len(backups) == 1 and backups[0].name.startswith("peer_id.corrupt")
    assert backups[0].read_bytes() == content  # the old bytes are kept, not lost
    assert path.read_text(encoding="utf-8").strip() == new
    assert "peer_id.corrupt" in capsys.readouterr().err
    assert load_or_create_peer_id(tmp_path) == new


# ---------------------------------------------------------------- data-dir lock

HOLD_LOCK = """
import sys, time
from pathlib import Path
from fletchat.identity import DataDirLock
lock = DataDirLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
sys.stdin.readline()
lock.release()
"""


def test_lock_held_by_another_process(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"
        lock = DataDirLock(tmp_path)
        with pytest.raises(DataDirInUse, match="already using"):
            lock.acquire()
        # The holder lets go (and exits): now it is ours.
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=10) == 0
        lock.acquire()
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_lock_released_when_holder_dies(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataDirInUse):
            DataDirLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = DataDirLock(tmp_path)
    lock.acquire()  # a crashed instance never leaves the dir locked
    lock.release()


def test_two_locks_in_one_process(tmp_path: Path) -> None:
    """flock is per open file description: two DataDirLock objects conflict even in one process."""
    first = DataDirLock(tmp_path)
    first.acquire()
    try:
        second = DataDirLock(tmp_path)
        with pytest.raises(DataDirInUse) as err:
            second.acquire()
        assert str(tmp_path) in str(err.value)
        assert "--data-dir" in str(err.value)
    finally:
        first.release()
    second.acquire()  # release allows re-acquire
    second.release()
    first.release()  # releasing twice is harmless


def test_different_dirs_do_not_collide(tmp_path: Path) -> None:
    a, b = DataDirLock(tmp_path / "a"), DataDirLock(tmp_path / "b")
    a.acquire()
    try:
        b.acquire()  # creates the missing dir too
        assert (tmp_path / "b" / LOCK_FILE).exists()
        b.release()
    finally:
        a.release()


def test_lock_does_not_disturb_peer_id(tmp_path: Path) -> None:
    peer_id = load_or_create_peer_id(tmp_path)
    lock = DataDirLock(tmp_path)
    lock.acquire()
    try:
        assert load_or_create_peer_id(tmp_path) == peer_id
    finally:
        lock.release()
    assert sorted(os.listdir(tmp_path)) == sorted([PEER_ID_FILE, LOCK_FILE])


# ---------------------------------------------------------------- Ed25519 through libsodium


def test_libsodium_signatures_are_cryptographys_both_ways(tmp_path: Path) -> None:
    """Signing and verifying moved to libsodium (PyNaCl): what an install signs is what
    cryptography (older builds) signs and accepts, and what cryptography signs still verifies."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from fletchat.identity import Identity, verify_signature

    ident = Identity.load_or_create(tmp_path / "a")
    again = Identity.load_or_create(tmp_path / "a")  # the key file read back: the same signer
    data = b"canonical signing bytes \xe2\x9c\x93"
    sig = ident.sign(data)
    assert sig == again.sign(data) == ident.private_key.sign(data)  # Ed25519 is deterministic
    Ed25519PublicKey.from_public_bytes(ident.public_key).verify(sig, data)  # raises if not
    assert verify_signature(ident.public_key, ident.private_key.sign(b"old build"), b"old build")
    assert verify_signature(ident.public_key, sig, data)


def test_verify_refuses_what_is_not_the_keys_signature(tmp_path: Path) -> None:
    from fletchat.identity import Identity, verify_signature

    a = Identity.load_or_create(tmp_path / "a")
    b = Identity.load_or_create(tmp_path / "b")
    sig = a.sign(b"hello")
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    assert not verify_signature(a.public_key, sig, b"hellO")  # other data
    assert not verify_signature(b.public_key, sig, b"hello")  # other key
    assert not verify_signature(a.public_key, flipped, b"hello")  # a bit flipped
    assert not verify_signature(a.public_key, sig[:-1], b"hello")  # short signature
    assert not verify_signature(a.public_key[:-1], sig, b"hello")  # short key
    assert not verify_signature(bytes(32), bytes(64), b"hello")  # the all-zero (small-order) key
