"""The hub: dedupe, relay, bounded history, roster, sessions and fan-out, with no network."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fletchat.clock import HLC
from fletchat.events import Outcome, Presence
from fletchat.hub import PUBSUB_TOPIC, Hub, HubSession, NullTransport, RosterChanged
from fletchat.model import (
    KIND_CHAT,
    KIND_JOIN,
    KIND_LEAVE,
    MAX_MESSAGE_CHARS,
    Message,
    Peer,
    ValidationError,
)


class RecordingTransport(NullTransport):
    """The hub's calls on the LAN side, recorded."""

    def __init__(self) -> None:
        super().__init__(None)
        self.calls: list[tuple[Message, str | None]] = []
        self.presence_changes = 0

    def presence_changed(self) -> None:
        self.presence_changes += 1

    def broadcast(self, msg: Message, exclude: str | None = None) -> None:
        self.calls.append((msg, exclude))


class RecordingPublisher:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def send_all_on_topic(self, topic: str, message: object) -> None:
        self.calls.append((topic, message))


def make_hub(**kw) -> tuple[Hub, RecordingTransport, list]:
    transport = RecordingTransport()
    hub = Hub("me-peer", transport=transport, **kw)
    events: list = []
    hub.add_listener(events.append)
    return hub, transport, events


def messages(events: list) -> list[Message]:
    return [e for e in events if isinstance(e, Message)]


def chat(text: str, author: str = "Ada", origin: str = "me-peer") -> Message:
    return Message.chat(author, text, origin)


_seqs: dict[str, int] = {}


def remote(text: str, origin: str = "peer-a", author: str = "Ann") -> Message:
    """A message as a peer sends it: stamped by its origin's clock, with the origin's next seq."""
    _seqs[origin] = _seqs.get(origin, 0) + 1
    return replace(Message.chat(author, text, origin), hlc=HLC(origin).now().encode(),
                   seq=_seqs[origin])


# ---------------------------------------------------------------- post / receive


def test_post_dedupes_by_id() -> None:
    hub, transport, events = make_hub()
    m = chat("hello")
    stamped = hub.post(m)
    assert stamped is not None and stamped.id == m.id and stamped.text == m.text
    assert stamped.hlc and stamped.seq == 1  # stamped with the clock and the origin's counter
    assert hub.post(m) is None
    assert hub.history() == [stamped]
    assert messages(events) == [stamped]
    assert transport.calls == [(stamped, None)]


def test_receive_relays_excluding_sender_and_dedupes() -> None:
    hub, transport, events = make_hub()
    m = remote("from afar", origin="peer-a")
    assert hub.receive(m, from_peer="peer-a", verified=True).outcome is Outcome.ACCEPTED
    [(relayed, exclude)] = transport.calls
    assert relayed.id == m.id and exclude == "peer-a"
    # The same message arriving over another path is neither shown nor relayed again.
    again = hub.receive(m, from_peer="peer-b", verified=False)
    assert again.outcome is Outcome.DUPLICATE and again.stored
    assert hub.post(m) is None
    assert len(transport.calls) == 1
    assert [e.id for e in messages(events)] == [m.id]
    assert [h.id for h in hub.history()] == [m.id]


def test_post_without_transport_still_publishes() -> None:
    hub = Hub("me-peer")
    seen: list = []
    hub.add_listener(seen.append)
    m = chat("solo")
    stamped = hub.post(m)
    assert stamped is not None
    assert seen == [stamped]


def test_history_bounded_and_ordered() -> None:
    hub, _, _ = make_hub(history_limit=5)
    sent = [chat(f"message {i}") for i in range(12)]
    for m in sent:
        hub.post(m)
    assert [h.id for h in hub.history()] == [m.id for m in sent[-5:]]
    # A dropped-from-history message is still remembered as seen.
    assert hub.post(sent[0]) is None


def test_history_is_a_copy() -> None:
    hub, _, _ = make_hub()
    hub.post(chat("one"))
    h = hub.history()
    h.clear()
    assert len(hub.history()) == 1


def test_listener_unsubscribe() -> None:
    hub, _, events = make_hub()
    other: list = []
    remove = hub.add_listener(other.append)
    hub.post(chat("a"))
    remove()
    remove()  # idempotent
    hub.post(chat("b"))
    assert [m.text for m in messages(other)] == ["a"]
    assert [m.text for m in messages(events)] == ["a", "b"]


def test_raising_listener_does_not_stop_others() -> None:
    hub = Hub("me-peer")
    before: list = []
    after: list = []

    def broken(event: object) -> None:
        raise RuntimeError("boom")

    hub.add_listener(before.append)
    hub.add_listener(broken)
    hub.add_listener(after.append)
    m = chat("still delivered")
    stamped = hub.post(m)
    assert stamped is not None
    assert before == [stamped] and after == [stamped]


# ---------------------------------------------------------------- sessions


def test_join_validates_name() -> None:
    hub, transport, events = make_hub()
    s = HubSession(hub, device="browser")
    with pytest.raises(ValidationError, match="blank"):
        s.join("   ")
    assert s.name is None and not s.joined
    assert hub.online() == [] and hub.history() == [] and events == []
    assert transport.calls == []
    with pytest.raises(ValidationError):
        s.join("x" * 33)
    assert s.name is None


def test_join_announces_and_adds_to_online() -> None:
    hub, transport, events = make_hub()
    s = HubSession(hub, key="tab-1", device="browser")
    msg = s.join("  Ada  ")
    assert s.joined and s.name == "Ada"
    assert msg.kind == KIND_JOIN and msg.author == "Ada" and msg.origin == "me-peer"
    assert msg.display_text == "Ada has joined the chat."
    assert hub.history() == [msg]
    assert transport.calls == [(msg, None)]
    online = hub.online()
    assert [(o.key, o.name, o.device, o.local) for o in online] == [
        ("tab-1", "Ada", "browser", True)
    ]
    rosters = [e for e in events if isinstance(e, RosterChanged)]
    assert rosters and rosters[-1].online == tuple(online)


def test_send() -> None:
    hub, transport, events = make_hub()
    s = HubSession(hub)
    with pytest.raises(ValidationError, match="Join"):
        s.send("too early")
    s.join("Ada")
    assert s.send("") is None
    assert s.send("  \n\t ") is None
    n = len(hub.history())
    with pytest.raises(ValidationError, match=str(MAX_MESSAGE_CHARS)):
        s.send("x" * (MAX_MESSAGE_CHARS + 1))
    assert len(hub.history()) == n
    m = s.send("  hello  ")
    assert m is not None and m.kind == KIND_CHAT and m.text == "hello" and m.author == "Ada"
    assert hub.history()[-1] == m
    assert transport.calls[-1] == (m, None)
    assert messages(events)[-1] == m


def test_leave_once_and_leaves_roster() -> None:
    hub, transport, events = make_hub()
    a = HubSession(hub, key="a")
    b = HubSession(hub, key="b")
    a.join("Ada")
    b.join("Bob")
    assert [o.name for o in hub.online()] == ["Ada", "Bob"]
    a.leave()
    assert not a.joined
    leaves = [m for m in hub.history() if m.kind == KIND_LEAVE]
    assert len(leaves) == 1 and leaves[0].author == "Ada"
    assert leaves[0].display_text == "Ada has left the chat."
    assert [o.name for o in hub.online()] == ["Bob"]
    n_hist, n_events, n_calls = len(hub.history()), len(events), len(transport.calls)
    a.leave()  # second leave: nothing happens
    assert (len(hub.history()), len(events), len(transport.calls)) == (n_hist, n_events, n_calls)
    with pytest.raises(ValidationError):
        a.send("after leaving")


def test_leave_before_join_is_noop() -> None:
    hub, transport, events = make_hub()
    HubSession(hub).leave()
    assert hub.history() == [] and events == [] and transport.calls == []


# ---------------------------------------------------------------- peers


def test_peer_up_and_down() -> None:
    hub, transport, events = make_hub()
    HubSession(hub, key="local").join("Zed")
    carol = Peer("peer-carol", "Carol's phone", device="android")
    hub.peer_up(carol)
    # The device is listed at once; its people arrive with its presence list.
    assert [d.name for d in hub.lan_peers()] == ["Carol's phone"]
    assert [o.name for o in hub.online()] == ["Zed"]
    hub.peer_presence("peer-carol", (Presence("Carol", "android", 1.0),))
    online = hub.online()
    assert [(o.name, o.local, o.device) for o in online] == [
        ("Carol", False, "android"),
        ("Zed", True, "browser"),
    ]
    roster = [e for e in events if isinstance(e, RosterChanged)][-1]
    assert roster.online == tuple(online) and roster.devices == tuple(hub.lan_peers())

    n_calls = len(transport.calls)
    n_history = len(hub.history())
    hub.peer_down(carol, reason="heartbeat timeout")
    assert [o.name for o in hub.online()] == ["Zed"] and hub.lan_peers() == []
    notice = messages(events)[-1]
    assert notice.kind == KIND_LEAVE and notice.author == "Carol"
    assert notice.display_text == "Carol has left the chat."
    assert any(isinstance(e, RosterChanged) and e.online == tuple(hub.online()) for e in events)
    # The notice is local only: not relayed, and not in the history that is synced to peers.
    assert len(transport.calls) == n_calls
    assert len(hub.history()) == n_history

    n_events = len(events)
    hub.peer_down(carol)  # already gone: nothing more
    assert len(events) == n_events


def test_presence_list_replaces_the_previous_one() -> None:
    hub, _, _ = make_hub()
    hub.peer_up(Peer("p1", "host"))
    hub.peer_presence("p1", (Presence("Ann", "browser", 1.0), Presence("Ben", "browser", 2.0)))
    assert [o.name for o in hub.online()] == ["Ann", "Ben"]
    hub.peer_presence("p1", (Presence("Ben", "browser", 2.0),))
    assert [o.name for o in hub.online()] == ["Ben"]


def test_peer_down_unknown_peer_is_noop() -> None:
    hub, _, events = make_hub()
    hub.peer_down(Peer("ghost", "Ghost"))
    assert events == [] and hub.history() == []


def test_local_presence_lists_sessions_and_tells_the_transport() -> None:
    hub, transport, _ = make_hub()
    a = HubSession(hub, key="s1")
    a.join("Old Timer")
    gone = HubSession(hub, key="s2")
    gone.join("Gone")
    gone.leave()
    assert [p.name for p in hub.local_presence()] == ["Old Timer"]
    assert transport.presence_changes == 3  # two joins and a leave
    assert hub.sync_batch() == []  # presence travels in presence frames, not old join lines


def test_online_sorted_case_insensitively() -> None:
    hub, _, _ = make_hub()
    for key, name in [("1", "bob"), ("2", "Alice"), ("3", "carol")]:
        HubSession(hub, key=key).join(name)
    hub.peer_up(Peer("p", "P"))
    hub.peer_presence("p", (Presence("Bea", "browser", 1.0),))
    assert [o.name for o in hub.online()] == ["Alice", "Bea", "bob", "carol"]


# ---------------------------------------------------------------- pubsub


def test_use_pubsub_publishes_messages_and_roster() -> None:
    hub, _, events = make_hub()
    pub = RecordingPublisher()
    hub.use_pubsub(pub)
    hub.use_pubsub(RecordingPublisher())  # the first one stays
    s = HubSession(hub, key="k")
    join = s.join("Ada")
    m = s.send("hi")
    assert all(topic == PUBSUB_TOPIC for topic, _ in pub.calls)
    published = [e for _, e in pub.calls]
    assert join in published and m in published
    rosters = [e for e in published if isinstance(e, RosterChanged)]
    assert rosters and [o.name for o in rosters[-1].online] == ["Ada"]
    # Listeners and the publisher see the same events in the same order.
    assert published == events


def test_the_online_list_is_kept_sorted_and_follows_every_change() -> None:
    """``Roster.online`` is kept between changes (every tab asks with every message); each
    change shows at once, and a caller's list is its own."""
    from fletchat.model import Peer
    from fletchat.presence import Roster

    r = Roster()
    r.session_joined("k2", "bob", "browser")
    r.session_joined("k1", "Ada", "browser")
    first = r.online()
    assert [o.name for o in first] == ["Ada", "bob"]
    first.clear()  # the caller's copy
    assert [o.name for o in r.online()] == ["Ada", "bob"]
    assert r.session_left("k1")
    assert [o.name for o in r.online()] == ["bob"]
    r.peer_up(Peer("p1", "Host"))
    r.peer_presence("p1", (Presence("Carol", "android", 1.0),))
    assert [o.name for o in r.online()] == ["bob", "Carol"]
    r.peer_presence("p1", (Presence("Al", "android", 1.0),))
    assert [o.name for o in r.online()] == ["Al", "bob"]
    r.peer_down("p1")
    r.session_joined("k3", "Cy", "browser")
    assert [o.name for o in r.online()] == ["bob", "Cy"]
