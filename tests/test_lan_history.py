"""Nothing lost: a peer killed with SIGKILL mid-burst keeps every message it acknowledged, and
all peers' histories converge to the same set in the same order (real SQLite, real namespaced LAN).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from fletchat.store import Store
from tests.conftest import need
from tests.lan import JsonProc, lan_available, virtual_lan
from tests.lan import start_headless_peer as start_peer
from tests.timing import scaled

WAIT = 30.0


@pytest.fixture
def lan3():
    need(*lan_available())
    with virtual_lan(3) as lan:
        yield lan




def own_chat_ids(peer: JsonProc, author: str) -> list[str]:
    return [
        e["id"]
        for e in peer.matching(
            lambda e: e.get("event") == "message" and e.get("kind") == "chat"
            and e.get("author") == author
        )
    ]


def stored(data_dir: Path) -> list[tuple[str, str]]:
    """(hlc, id) of every stored message, in the order the app shows them."""
    with Store.open(data_dir / "history.db") as store:
        records = []
        for channel in store.channels():
            records += store.recent(channel, limit=1000)
    return sorted((r.hlc.encode(), r.msg.id) for r in records)


def stop(peer: JsonProc) -> None:
    assert peer.proc.stdin is not None
    peer.proc.stdin.close()  # EOF: the headless peer says goodbye and exits
    peer.proc.wait(scaled(20))


def test_sigkill_mid_burst_loses_nothing_acknowledged_and_histories_converge(lan3, tmp_path):
    h1, h2, h3 = lan3
    dirs = {n: tmp_path / n for n in ("a", "b", "c")}
    a = start_peer(h1, "Alice", dirs["a"])
    b = start_peer(h2, "Bob", dirs["b"])
    c = start_peer(h3, "Carol", dirs["c"])
    assert a.wait_for(
        lambda e: e.get("event") == "online" and {"Bob", "Carol"} <= set(e.get("people", [])),
        timeout=WAIT,
    )
    burst = 400
    for i in range(burst):
        c.send(f"burst {i}")
    # Kill Carol once she has acknowledged (stored and shown) part of the burst.
    deadline = time.monotonic() + scaled(WAIT)
    while len(own_chat_ids(c, "Carol")) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    c.proc.send_signal(signal.SIGKILL)
    c.proc.wait(scaled(10))
    acknowledged = own_chat_ids(c, "Carol")
    assert 60 <= len(acknowledged) < burst, "the kill should land mid-burst"

    # Meanwhile the others keep talking; then Carol comes back on the same data dir.
    a.send("while Carol was down")
    c2 = start_peer(h3, "Carol", dirs["c"])
    assert c2.wait_for(lambda e: e.get("text") == "while Carol was down", timeout=WAIT)

    # Let catch-up settle (reading the live databases is safe: WAL), then stop everyone.
    deadline = time.monotonic() + scaled(WAIT)
    while time.monotonic() < deadline:
        sets = [{mid for _, mid in stored(d)} for d in dirs.values()]
        if sets[0] == sets[1] == sets[2] and set(acknowledged) <= sets[0]:
            break
        time.sleep(0.5)
    for peer in (a, b, c2):
        stop(peer)
    views = {n: stored(d) for n, d in dirs.items()}
    carol_ids = {mid for _, mid in views["c"]}
    missing = [m for m in acknowledged if m not in carol_ids]
    assert not missing, f"{len(missing)} acknowledged messages lost by the killed peer"
    for name in ("a", "b"):
        ids = {mid for _, mid in views[name]}
        assert set(acknowledged) <= ids, f"{name} lacks some of Carol's acknowledged messages"
    # Same order for the shared messages (local-only notices aside, every message is shared).
    common = set.intersection(*({mid for _, mid in v} for v in views.values()))
    orders = [[mid for _, mid in v if mid in common] for v in views.values()]
    assert orders[0] == orders[1] == orders[2]
    assert len(common) >= len(acknowledged)
