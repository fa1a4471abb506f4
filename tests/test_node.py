"""The node's LAN lifecycle on loopback: start, resume (re-announce/re-browse), stop."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import replace

from fletchat import node as node_module
from fletchat.android import MulticastLockResult
from fletchat.config import Config
from fletchat.node import HISTORY_FILE, Node
from fletchat.session import HubSession
from tests.timing import eventually


def config(tmp_path) -> Config:
    return Config(data_dir=tmp_path, peer_port=0, host="127.0.0.1", interfaces=("127.0.0.1",))


async def test_resume_re_announces_with_a_fresh_discovery(tmp_path):
    node = Node(config(tmp_path), "android")
    await node.start()
    try:
        first = node.discovery
        assert first is not None and node.mesh is not None and node.peer_port
        await node.resume()
        assert node.discovery is not None and node.discovery is not first
        assert node.hub.lan_warning == ""  # not Android here: the lock is "not needed"
    finally:
        await node.stop()
    assert node.discovery is None and node.mesh is None


async def test_a_refused_multicast_lock_is_shown_not_hidden(tmp_path, monkeypatch):
    """On Android without the lock, discovery finds nobody: the app must say so. (Real Android is
    not available here; the lock's own Java calls are tested with a fake jnius elsewhere.)"""
    monkeypatch.setattr(
        node_module,
        "acquire_multicast_lock",
        lambda: MulticastLockResult(False, "could not acquire the Wi-Fi multicast lock: denied"),
    )
    node = Node(config(tmp_path), "android")
    await node.start()
    try:
        assert "multicast lock" in node.hub.lan_warning
        assert "may not find this one" in node.hub.lan_warning
    finally:
        await node.stop()


async def test_android_17_without_local_network_access_says_so_until_allowed(tmp_path, monkeypatch):
    """The permission dialog pauses the app; once allowed, the resume clears the warning."""
    from fletchat.android import LocalNetworkPermission

    allowed = {"now": False}
    asks: list[bool] = []

    def permission(ask: bool = True) -> LocalNetworkPermission:
        asks.append(ask)
        if allowed["now"]:
            return LocalNetworkPermission(True, False, "local network access allowed")
        return LocalNetworkPermission(
            False, ask, "Flet Chat asked for access to your local network"
        )

    monkeypatch.setattr(node_module, "request_local_network_permission", permission)
    node = Node(config(tmp_path), "android")
    await node.start()
    try:
        assert node.hub.lan_warning == "Flet Chat asked for access to your local network"
        await node.resume()  # still refused: the warning stays and nobody is asked again
        assert node.hub.lan_warning and asks == [True, False]
        allowed["now"] = True
        await node.resume()
        assert node.hub.lan_warning == ""
    finally:
        await node.stop()


async def test_goodbyes_begun_early_reach_the_peer_while_the_store_is_open(tmp_path):
    """Host mode starts the goodbyes the moment SIGTERM arrives, while the web server is still
    closing its tabs: the peer sees this node leave before ``stop`` is even called, what is
    received meanwhile is still stored, and ``stop`` then waits for those same goodbyes."""
    a = Node(config(tmp_path / "a"), "web-host")
    await a.start()
    b = Node(replace(config(tmp_path / "b"), peers=(("127.0.0.1", a.peer_port),)), "desktop")
    try:
        await b.start()
        await eventually(lambda: a.peer_id in {p.id for p in b.mesh.peers()}, "b connects to a")
        goodbyes = a.begin_goodbyes()
        assert a.begin_goodbyes() is goodbyes  # started once
        await eventually(lambda: a.peer_id not in {p.id for p in b.mesh.peers()},
                         "b sees a leave before a's stop() is called")
        me = HubSession(a.hub, device="browser")
        me.join("ann")
        assert me.send("still stored after the goodbye") is not None
        await a.stop(1.5, 5.0)
        assert goodbyes.done() and a.discovery is None and a.mesh is None
        with contextlib.closing(sqlite3.connect(tmp_path / "a" / HISTORY_FILE)) as con:
            stored = con.execute("SELECT count(*) FROM messages WHERE text = ?",
                                 ("still stored after the goodbye",)).fetchone()[0]
        assert stored == 1
    finally:
        await a.stop()
        await b.stop()
