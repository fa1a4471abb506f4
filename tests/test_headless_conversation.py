"""The headless peer's conversation commands and JSON events, between two real processes on
loopback: /reply, /react (toggle), /edit, /delete, /typing, /read, and clear errors for bad ones
(another's message, an unknown id, a 10 kB emoji) with nothing sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fletchat.conversation.commands import parse_command
from fletchat.conversation.views import ReadChanged, RowChanged, TypingChanged
from fletchat.headless import event_line
from fletchat.model import Message, ValidationError
from tests.timing import eventually_sync, scaled

ROOT = Path(__file__).resolve().parent.parent
THUMBS = "\U0001f44d"


class Peer:
    def __init__(self, tmp: Path, name: str, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLETCHAT_")}
        env.update(FLETCHAT_DATA_DIR=str(tmp / name), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "--headless", "--name", name,
             "--peer-port", "0", "--interface", "127.0.0.1", *extra],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        self.events: list[dict] = []
        self._lock = threading.RLock()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.events.append(event)

    def wait_for(self, check, what: str, timeout: float = 30.0) -> dict:
        def found():
            with self._lock:
                return next((e for e in self.events if check(e)), None)
        return eventually_sync(found, what, timeout)

    def count(self, check) -> int:
        with self._lock:
            return sum(1 for e in self.events if check(e))

    def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=scaled(15))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def two(tmp_path: Path):
    bob = Peer(tmp_path, "bob")
    ann = None
    try:
        port = bob.wait_for(lambda e: e["event"] == "ready", "bob ready")["peer_port"]
        ann = Peer(tmp_path, "ann", "--peer", f"127.0.0.1:{port}")
        bob.wait_for(lambda e: e["event"] == "online" and "ann" in e["people"], "ann online")
        yield ann, bob
    finally:
        for p in (ann, bob):
            if p is not None:
                p.close()


def is_msg(text: str):
    return lambda e: e["event"] == "message" and e.get("text") == text


def test_reply_react_edit_delete_typing_and_read_from_stdin(two) -> None:
    ann, bob = two
    ann.say("lunch?")
    m = bob.wait_for(is_msg("lunch?"), "bob got ann's message")
    bob.say(f"/reply {m['id']} yes, at noon")
    r = ann.wait_for(is_msg("yes, at noon"), "ann got bob's reply")
    assert r["reply"] == {"parent": m["id"], "parent_author": "ann", "quote": "lunch?"}
    bob.say(f"/react {m['id']} :+1:")
    got = ann.wait_for(lambda e: e["event"] == "reaction", "ann got the reaction")
    assert (got["target"], got["emoji"], got["on"], got["author"]) == (m["id"], THUMBS, True,
                                                                      "bob")
    bob.say(f"/react {m['id']} {THUMBS}")  # the second tap takes it back
    ann.wait_for(lambda e: e["event"] == "reaction" and e["on"] is False, "reaction toggled off")
    ann.say(f"/edit {m['id']} lunch at one?")
    e = bob.wait_for(lambda e: e["event"] == "edit", "bob got the edit")
    assert (e["target"], e["text"]) == (m["id"], "lunch at one?")
    ann.say("/typing")
    t = bob.wait_for(lambda e: e["event"] == "typing" and e["names"], "bob sees ann typing")
    assert t == {"event": "typing", "channel": "general", "names": ["ann"]}
    bob.say("/read")
    read = ann.wait_for(lambda e: e["event"] == "read" and e["name"] == "bob", "ann sees bob read")
    assert read["channel"] == "general" and read["upto"]
    ann.say(f"/delete {m['id']}")
    d = bob.wait_for(lambda e: e["event"] == "delete", "bob got the delete")
    assert d["target"] == m["id"] and d["target_seq"] == m["seq"]


def test_refused_commands_print_a_clear_error_and_send_nothing(two) -> None:
    ann, bob = two
    ann.say("mine")
    m = bob.wait_for(is_msg("mine"), "bob got it")
    bob.say(f"/edit {m['id']} not yours")
    bob.wait_for(lambda e: e["event"] == "error" and "Only the author" in e["error"],
                 "editing another's message is refused")
    bob.say(f"/delete {m['id']}")
    eventually_sync(lambda: bob.count(lambda e: e["event"] == "error"
                                      and "Only the author" in e["error"]) == 2,
                    "deleting another's message is refused too")
    bob.say(f"/react {m['id']} {THUMBS * 5000}")  # 10 kB of emoji
    bob.wait_for(lambda e: e["event"] == "error" and "too long" in e["error"], "too long")
    bob.say("/react nosuchid " + THUMBS)
    bob.wait_for(lambda e: e["event"] == "error" and "No message with id nosuchid" in e["error"],
                 "unknown id")
    bob.say("/edit")
    bob.wait_for(lambda e: e["event"] == "error" and "Usage: /edit ID text" in e["error"], "usage")
    bob.say("still here")
    ann.wait_for(is_msg("still here"), "bob keeps going")
    assert ann.count(lambda e: e["event"] in ("edit", "delete", "reaction")) == 0
    assert ann.count(lambda e: e["event"] == "message" and e.get("text", "").startswith("/")) == 0


def test_parse_and_print() -> None:
    assert parse_command("/shrug") is None and parse_command("//not a command") is None
    with pytest.raises(ValidationError, match="Usage: /delete ID"):
        parse_command("/delete a b")
    m = Message.chat("Ann", "hi", "peer-a")
    assert event_line(RowChanged(m.id, "general", None, cause=None)) is None
    assert event_line(TypingChanged("general", ("Ann",))) == {
        "event": "typing", "channel": "general", "names": ["Ann"]}
    assert event_line(ReadChanged("general", "Ann", "s")) == {
        "event": "read", "channel": "general", "name": "Ann", "upto": "s"}
