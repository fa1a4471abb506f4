"""``/file`` in the headless peer: the file is imported (hashed and copied) in the background,
so the chat lines after it are not held up; files go out in the order given; a refusal is
printed at once; at the end of input the files asked for still go out, and a signal during an
import ends the peer cleanly (the import is cancelled). One real peer on loopback (main.py --headless)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_headless_conversation import Peer, is_msg
from tests.timing import eventually_sync, scaled

BIG = 150_000_000  # hashed and copied: a fraction of a second or more, a chat line milliseconds


def has_files(name: str):
    return lambda e: (e["event"] == "message" and bool(e.get("files"))
                      and e["files"][0]["name"] == name)


def big_file(path: Path) -> Path:
    with open(path, "wb") as f:
        f.writelines(os.urandom(1_000_000) for _ in range(BIG // 1_000_000))
    return path


@pytest.fixture
def ann(tmp_path: Path) -> Iterator[Peer]:
    """A headless peer, ready, with ``big.bin`` (``BIG`` bytes) in ``tmp_path`` to share."""
    peer = Peer(tmp_path, "ann")
    try:
        peer.wait_for(lambda e: e["event"] == "ready", "ann ready")
        big_file(tmp_path / "big.bin")
        yield peer
    finally:
        peer.close()


def index_of(peer: Peer, check) -> int:
    with peer._lock:
        return next(i for i, e in enumerate(peer.events) if check(e))


def test_lines_after_a_big_file_are_not_held_up_and_files_keep_their_order(ann, tmp_path) -> None:
    big = tmp_path / "big.bin"
    small = tmp_path / "small.txt"
    small.write_text("a small file")
    ann.say(f"/file {big} the big one")
    ann.say("written while it imports")
    ann.say(f"/file {small}")
    ann.say("/file /no/such/file.txt")
    refused = ann.wait_for(lambda e: e["event"] == "error" and "No such file" in e["error"],
                           "the missing file refused")
    ann.wait_for(has_files("small.txt"), "the small file shared", timeout=60)
    chat = index_of(ann, is_msg("written while it imports"))
    assert chat < index_of(ann, has_files("big.bin"))  # not behind the big file's import
    assert index_of(ann, has_files("big.bin")) < index_of(ann, has_files("small.txt"))
    # the refusal came in order with the lines, before the imports it did not wait for
    assert ann.events.index(refused) < index_of(ann, has_files("big.bin"))
    assert ann.wait_for(has_files("big.bin"), "big")["text"] == "the big one"


def test_at_end_of_input_a_file_asked_for_still_goes_out(ann, tmp_path) -> None:
    ann.say(f"/file {tmp_path / 'big.bin'}")
    assert ann.proc.stdin is not None
    ann.proc.stdin.close()
    ann.wait_for(has_files("big.bin"), "the file shared before exiting", timeout=60)
    assert ann.proc.wait(scaled(30)) == 0


def test_a_signal_during_an_import_ends_the_peer_cleanly(ann, tmp_path) -> None:
    ann.say(f"/file {tmp_path / 'big.bin'}")
    ann.say("importing")
    ann.wait_for(is_msg("importing"), "the line after it")
    ann.proc.terminate()
    eventually_sync(lambda: ann.proc.poll() is not None, "exited", 10)
    assert ann.proc.returncode == 0
