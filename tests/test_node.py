"""The node's LAN lifecycle on loopback: start, resume (re-announce/re-browse), stop."""

from __future__ import annotations

from fletchat import node as node_module
from fletchat.android import MulticastLockResult
from fletchat.config import Config
from fletchat.node import Node


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
