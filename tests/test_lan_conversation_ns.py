"""Conversation over a real namespaced LAN (real mDNS, three hosts, headless peers driven by
stdin): a reply, a reaction, an edit and a delete; a late joiner on a third host catches up the
delete without the text ever reaching its history file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import need
from tests.lan import JsonProc, lan_available, virtual_lan
from tests.lan import start_headless_peer as start_peer

WAIT = 40.0
SECRET = "quokka-4711"


@pytest.fixture
def lan3():
    need(*lan_available())
    with virtual_lan(3) as lan:
        yield lan


def wait(peer: JsonProc, check, what: str) -> dict:
    found = peer.wait_for(check, timeout=WAIT)
    assert found is not None, what
    return found


def text_on_disk(data_dir: Path, needle: str) -> int:
    con = sqlite3.connect(data_dir / "history.db")
    try:
        return con.execute("SELECT count(*) FROM messages WHERE text LIKE ?",
                           (f"%{needle}%",)).fetchone()[0]
    finally:
        con.close()


def stop(peer: JsonProc) -> None:
    assert peer.proc.stdin is not None
    peer.proc.stdin.close()
    peer.proc.wait(60)


def test_late_joiner_on_another_host_catches_up_a_delete(lan3, tmp_path):
    h1, h2, h3 = lan3
    a = start_peer(h1, "Ann", tmp_path / "a")
    b = start_peer(h2, "Bob", tmp_path / "b")
    wait(b, lambda e: e.get("event") == "online" and "Ann" in e.get("people", []), "found")
    a.send(f"the code is {SECRET}")
    m = wait(b, lambda e: e.get("event") == "message" and SECRET in e.get("text", ""), "msg")
    b.send(f"/reply {m['id']} noted")
    r = wait(a, lambda e: e.get("event") == "message" and e.get("text") == "noted", "reply")
    assert r["reply"]["parent"] == m["id"] and SECRET in r["reply"]["quote"]
    b.send(f"/react {m['id']} :eyes:")
    wait(a, lambda e: e.get("event") == "reaction" and e.get("target") == m["id"], "reaction")
    a.send(f"/edit {m['id']} the code is {SECRET}-2")
    wait(b, lambda e: e.get("event") == "edit" and e.get("target") == m["id"], "edit")
    b.send(f"/delete {m['id']}")  # not Bob's
    wait(b, lambda e: e.get("event") == "error" and "Only the author" in e["error"], "refused")
    a.send(f"/delete {m['id']}")
    wait(b, lambda e: e.get("event") == "delete" and e.get("target") == m["id"], "delete")
    stop(a)  # the author leaves; the newcomer only meets Bob
    c = start_peer(h3, "Cy", tmp_path / "c")
    wait(c, lambda e: e.get("event") == "message" and e.get("text") == "noted", "caught up")
    wait(c, lambda e: e.get("event") == "delete" and e.get("target") == m["id"], "delete caught up")
    stop(b)
    stop(c)
    assert text_on_disk(tmp_path / "a", SECRET) == 0
    assert text_on_disk(tmp_path / "b", SECRET) == 0
    assert text_on_disk(tmp_path / "c", SECRET) == 0
    # the reply's quote is Bob's signed words: it stays (hidden once the delete is known)
    assert not any(SECRET in (e.get("text") or "") for e in c.matching(
        lambda e: e.get("event") == "message"))
