"""File sharing on a real LAN: headless peers (``main.py --headless``) on namespaced hosts, found
by mDNS; ``/file`` in, ``file`` lines out; a receiver SIGKILLed mid-transfer resumes from its
journal. (Transfers between in-process peers: test_files_sharing.py.)"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import need
from tests.lan import MAIN, Host, JsonProc, lan_available, virtual_lan
from tests.lan import start_headless_peer as start_peer
from tests.timing import eventually_sync

WAIT = 30.0
CHUNK = 262_144


@pytest.fixture
def lan2():
    need(*lan_available())
    with virtual_lan(2) as lan:
        yield lan


def file_line(peer: JsonProc, sha: str, timeout: float = WAIT) -> dict | None:
    return peer.wait_for(lambda e: e.get("event") == "file" and e.get("sha256") == sha, timeout)


def both_online(a: JsonProc, b: JsonProc) -> None:
    for peer in (a, b):
        assert peer.wait_for(lambda e: e.get("event") == "online" and len(e.get("peers", [])) >= 1,
                             WAIT), peer.events


def test_a_file_shared_on_one_host_is_stored_and_verified_on_the_other(lan2, tmp_path):
    h1, h2 = lan2
    a = start_peer(h1, "Alice", tmp_path / "a")
    b = start_peer(h2, "Bob", tmp_path / "b")
    both_online(a, b)
    src = tmp_path / "holiday photos.zip"
    src.write_bytes(os.urandom(3_000_000))
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    a.send(f'/file "{src}" the photos')
    msg = b.wait_for(lambda e: e.get("event") == "message" and e.get("files"), WAIT)
    assert msg is not None and msg["text"] == "the photos"
    assert msg["files"][0]["name"] == "holiday photos.zip" and msg["files"][0]["sha256"] == sha
    got = file_line(b, sha)
    assert got is not None, b.events[-5:]
    assert got["message"] == msg["id"] and got["name"] == "holiday photos.zip" and got["size"] == 3_000_000
    stored = Path(got["path"])
    assert stored.is_relative_to(tmp_path / "b") and "holiday" not in str(stored)  # named by hash
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
    assert file_line(a, sha) is not None  # the sender has it too, from the start
    b.send("/file /no/such/file.txt")
    assert b.wait_for(lambda e: e.get("event") == "error" and "No such file" in e.get("error", ""), WAIT)


def journal_chunks(data_dir: Path) -> int:
    journals = list((data_dir / "files" / "partial").glob("*.idx"))
    return journals[0].stat().st_size // 36 if journals else 0


def start_logged(host: Host, name: str, data_dir: Path, log: Path) -> JsonProc:
    peer = host.spawn_json([sys.executable, MAIN, "--headless", "--name", name, "--data-dir",
                            str(data_dir), "--log-level", "INFO"], stderr=open(log, "w"))  # noqa: SIM115
    assert peer.wait_for(lambda e: e.get("event") == "ready", WAIT), log.read_text()
    return peer


def test_a_receiver_killed_mid_transfer_resumes_from_its_last_verified_chunk(lan2, tmp_path):
    h1, h2 = lan2
    # Slow the sender's link (2 MB/s) so the kill lands mid-transfer.
    h1.run(["tc", "qdisc", "add", "dev", h1.iface, "root", "tbf", "rate", "16mbit", "burst", "64kb",
            "latency", "400ms"])
    a = start_peer(h1, "Alice", tmp_path / "a")
    b = start_logged(h2, "Bob", tmp_path / "b", tmp_path / "b1.log")
    both_online(a, b)
    size = 48 * CHUNK  # 12 MiB: about 6 s at 2 MB/s
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(size))
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    a.send(f"/file {src}")
    eventually_sync(lambda: journal_chunks(tmp_path / "b") >= 12, "a quarter of the file at Bob", WAIT)
    b.proc.kill()  # SIGKILL: no goodbye, no flush
    b.proc.wait()
    on_disk_at_kill = journal_chunks(tmp_path / "b")
    assert on_disk_at_kill < 48, "the transfer finished before the kill; slow the link more"
    b2 = start_logged(h2, "Bob", tmp_path / "b", tmp_path / "b2.log")
    got = file_line(b2, sha, 60)
    assert got is not None, (tmp_path / "b2.log").read_text()[-2000:]
    assert hashlib.sha256(Path(got["path"]).read_bytes()).hexdigest() == sha
    found = re.search(rf"fetched {sha[:12]}: (\d+) chunks, (\d+) were on disk, (\d+) chunk frames received",
                      (tmp_path / "b2.log").read_text())
    assert found, (tmp_path / "b2.log").read_text()[-2000:]
    total, resumed, received = map(int, found.groups())
    assert total == 48 and resumed >= on_disk_at_kill  # every journaled chunk counted
    # Bytes sent again: at most one chunk beyond what was missing when Bob was killed.
    assert received <= total - on_disk_at_kill + 1, (total, on_disk_at_kill, resumed, received)


@pytest.fixture
def lan3():
    need(*lan_available())
    with virtual_lan(3) as lan:
        yield lan


def test_a_late_joiner_fetches_from_both_holders_and_a_quota_refuses_with_an_error(lan3, tmp_path):
    h1, h2, h3 = lan3
    # Slow both holders' links (4 MB/s each) so the late joiner's fetch runs long enough to use both.
    for h in (h1, h2):
        h.run(["tc", "qdisc", "add", "dev", h.iface, "root", "tbf", "rate", "32mbit", "burst", "64kb",
               "latency", "400ms"])
    a = start_peer(h1, "Alice", tmp_path / "a")
    b = start_peer(h2, "Bob", tmp_path / "b")
    both_online(a, b)
    src = tmp_path / "dataset.bin"
    src.write_bytes(os.urandom(40 * CHUNK))  # 10 MiB: 40 chunks
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    a.send(f"/file {src}")
    assert file_line(b, sha) is not None, b.events[-5:]
    # Carol joins late (history by catch-up, bytes on demand); Dan has room for 1 MB of files.
    c = start_logged(h3, "Carol", tmp_path / "c", tmp_path / "c.log")
    d = start_peer(h3, "Dan", tmp_path / "d", "--files-quota", "1")
    got = file_line(c, sha, 60)
    assert got is not None, (tmp_path / "c.log").read_text()[-2000:]
    assert hashlib.sha256(Path(got["path"]).read_bytes()).hexdigest() == sha
    found = re.search(rf"fetched {sha[:12]}: 40 chunks, 0 were on disk, (\d+) chunk frames received "
                      r"from (\d+) peers", (tmp_path / "c.log").read_text())
    assert found, (tmp_path / "c.log").read_text()[-2000:]
    assert int(found.group(1)) == 40 and int(found.group(2)) == 2  # each chunk once, from both
    refused = d.wait_for(lambda e: e.get("event") == "error" and e.get("sha256") == sha, WAIT)
    assert refused is not None and "Not enough room" in refused["error"], d.events[-5:]
    assert not list((tmp_path / "d" / "files" / "partial").glob("*.part"))
