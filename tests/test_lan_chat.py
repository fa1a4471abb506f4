"""A real LAN: headless peers (``main.py --headless``) on namespaced hosts, real mDNS between them."""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from tests.conftest import need
from tests.lan import JsonProc, lan_available, virtual_lan
from tests.lan import start_headless_peer as start_peer
from tests.timing import eventually_sync, never_within_sync, scaled

WAIT = 20.0  # generous "eventually": behaviour, not timing, is asserted here


@pytest.fixture
def lan3():
    need(*lan_available())
    with virtual_lan(3) as lan:
        yield lan




def sees_online(peer: JsonProc, names: set[str]) -> bool:
    event = peer.wait_for(
        lambda e: e.get("event") == "online" and names <= set(e.get("people", [])), timeout=WAIT
    )
    return event is not None


def latest_online(peer: JsonProc) -> set[str]:
    events = peer.matching(lambda e: e.get("event") == "online")
    return set(events[-1]["people"]) if events else set()


def got_text(peer: JsonProc, author: str, text: str) -> bool:
    return (
        peer.wait_for(
            lambda e: e.get("event") == "message"
            and e.get("kind") == "chat"
            and e.get("author") == author
            and e.get("text") == text,
            timeout=WAIT,
        )
        is not None
    )


def message_ids(peer: JsonProc) -> Counter[str]:
    return Counter(e["id"] for e in peer.matching(lambda e: e.get("event") == "message"))


def has_duplicates(*peers: JsonProc) -> bool:
    return any(max(message_ids(p).values(), default=0) > 1 for p in peers)


def test_three_peers_discover_each_other_and_chat(lan3, tmp_path):
    h1, h2, h3 = lan3
    a = start_peer(h1, "Alice", tmp_path / "a")
    b = start_peer(h2, "Bob", tmp_path / "b")
    c = start_peer(h3, "Carol", tmp_path / "c")
    for peer in (a, b, c):
        assert sees_online(peer, {"Alice", "Bob", "Carol"}), latest_online(peer)

    a.send("hello from Alice")
    b.send("hi Alice, Bob here")
    for peer in (a, b, c):
        assert got_text(peer, "Alice", "hello from Alice")
        assert got_text(peer, "Bob", "hi Alice, Bob here")
    # Everyone sees the others' join lines as well.
    assert c.wait_for(lambda e: e.get("kind") == "join" and e.get("author") == "Alice", WAIT)
    never_within_sync(lambda: has_duplicates(a, b, c), "a message shown twice", 1.0)
    for peer in (a, b, c):
        assert message_ids(peer), peer.events


def test_killed_peer_disappears_and_rejoins_without_duplicates(lan3, tmp_path):
    h1, h2, h3 = lan3
    a = start_peer(h1, "Alice", tmp_path / "a")
    b = start_peer(h2, "Bob", tmp_path / "b")
    c = start_peer(h3, "Carol", tmp_path / "c")
    assert sees_online(a, {"Alice", "Bob", "Carol"})
    c.send("before the crash")
    assert got_text(a, "Carol", "before the crash")

    c.proc.send_signal(signal.SIGKILL)
    c.proc.wait(scaled(10))
    gone = a.wait_for(
        lambda e: e.get("event") == "online" and "Carol" not in e.get("people", ["Carol"]),
        timeout=WAIT,
    )
    assert gone is not None, "Carol was never dropped from Alice's list"
    assert a.wait_for(lambda e: e.get("kind") == "leave" and e.get("author") == "Carol", WAIT)

    c2 = start_peer(h3, "Carol", tmp_path / "c")  # same data dir: same peer id, a restart
    assert sees_online(c2, {"Alice", "Bob", "Carol"})
    c2.send("back again")
    assert got_text(a, "Carol", "back again")
    assert got_text(b, "Carol", "back again")
    never_within_sync(lambda: has_duplicates(a, b), "a message shown twice", 1.0)
    # Carol's rejoin is visible again after the drop: an online list with her, later than the
    # one without her.
    dropped_at = next(i for i, e in enumerate(a.events) if e is gone)
    eventually_sync(
        lambda: any(
            e.get("event") == "online" and "Carol" in e.get("people", [])
            for e in a.events[dropped_at + 1 :]
        ),
        "Alice lists Carol again after the drop",
        WAIT,
    )


def test_manual_peer_and_gossip_when_multicast_is_blocked(lan3, tmp_path):
    h1, h2, h3 = lan3
    for host in (h1, h2, h3):
        host.block_multicast()
    a = start_peer(h1, "Alice", tmp_path / "a")
    start_peer(h2, "Bob", tmp_path / "b", "--peer", f"{h1.ip}:8551")
    # Carol only knows Bob; Alice learns about Carol through gossip, and the reverse.
    c = start_peer(h3, "Carol", tmp_path / "c", "--peer", f"{h2.ip}:8551")
    assert sees_online(a, {"Alice", "Bob", "Carol"}), latest_online(a)
    assert sees_online(c, {"Alice", "Bob", "Carol"}), latest_online(c)
    c.send("found you without mDNS")
    assert got_text(a, "Carol", "found you without mDNS")


def test_no_multicast_and_no_peer_option_means_alone(lan3, tmp_path):
    """The control for the test above: with multicast filtered, discovery really finds nobody."""
    h1, h2, _ = lan3
    h1.block_multicast()
    h2.block_multicast()
    a = start_peer(h1, "Alice", tmp_path / "a")
    start_peer(h2, "Bob", tmp_path / "b")
    never_within_sync(
        lambda: a.matching(lambda e: e.get("event") == "online" and "Bob" in e.get("people", [])),
        "Alice found Bob through filtered multicast",
        4.0,
    )
