"""Who wrote what on a host (``fletchat/authors.py``, ``owner.py``): a tab or static client that
joins under someone's name cannot edit or delete what they wrote; the same browser (its owner
secret) can, after a reload, a reconnect or a restart of the host. Real SQLite files, real
sessions, the relay over real sockets."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest

from fletchat.authors import AUTHORS_FILE, Authorship
from fletchat.conversation.kinds import NOT_AUTHOR
from fletchat.conversation.relay_frames import RelayDone, RelayRow, encode_client_conv
from fletchat.hub import Hub, HubSession
from fletchat.model import KIND_CHAT, KIND_JOIN, KIND_LEAVE, Message, ValidationError
from fletchat.owner import (
    DEVICE_OWNER,
    NameHolds,
    new_owner_secret,
    owner_digest,
    validate_owner_secret,
)
from fletchat.relay_protocol import decode_client_frame, encode_client_hello
from fletchat.ui.remember import OWNER_KEY
from tests.fileshost import files_peer
from tests.test_files_sharing import make_file
from tests.test_relay import Host, host, open_client  # noqa: F401  (the fixture)
from tests.timing import eventually

ALICE, MALLORY = new_owner_secret(), new_owner_secret()


def tab(hub: Hub, name: str, owner: str = "", address: str = "10.0.0.5") -> HubSession:
    session = HubSession(hub, device="browser", address=address)
    session.join(name, owner)
    return session


def unheld(hub: Hub) -> Hub:
    """``hub`` with names free the moment their browser leaves (the hold has its own test)."""
    hub.name_holds = NameHolds(seconds=0)
    return hub


def visit(hub: Hub, name: str, owner: str, act) -> None:
    """Join under ``name`` (nobody online has it), try ``act(session)``, leave again."""
    session = tab(hub, name, owner, address="10.0.0.66")
    try:
        act(session)
    finally:
        session.leave()


def test_secrets_are_fresh_and_well_formed_and_only_a_digest_is_kept() -> None:
    assert ALICE != MALLORY and validate_owner_secret(ALICE) == ALICE
    assert owner_digest(ALICE) == owner_digest(ALICE) != owner_digest(MALLORY)
    assert ALICE.encode() not in owner_digest(ALICE)
    for bad in ("", "short", "x" * 65, "spaces are not allowed here!!", 42, None):
        with pytest.raises(ValidationError):
            validate_owner_secret(bad)


def test_a_tab_under_someones_name_cannot_edit_or_delete_what_they_wrote() -> None:
    hub = unheld(Hub("host-peer"))
    alice = tab(hub, "Alice", ALICE)
    first = alice.send("meet at noon")
    assert first is not None
    alice.leave()  # offline: her name is not reserved, what she wrote is hers
    for act in (lambda m: m.edit(first, "meet at midnight"), lambda m: m.delete(first)):
        with pytest.raises(ValidationError, match=NOT_AUTHOR):
            visit(hub, "Alice", MALLORY, act)  # the same name, another browser
    with pytest.raises(ValidationError, match=NOT_AUTHOR):
        visit(hub, "Alice", "", lambda m: m.delete(first))  # no secret given: one of its own
    window = HubSession(hub, device="desktop")  # the device's own people without a browser
    window.join("Alice")
    with pytest.raises(ValidationError, match=NOT_AUTHOR):
        window.edit(first, "nope")
    window.leave()
    assert hub.conv.row_state(first).shown_text == "meet at noon"
    # Alice's browser again (a reload: a new session, the same secret) still may
    again = tab(hub, "Alice", ALICE, address="10.0.0.9")
    again.edit(first, "meet at one")
    assert hub.conv.row_state(first).shown_text == "meet at one"
    # and what a nameless tab writes is its own: Alice cannot touch it either
    nameless = tab(hub, "Nemo", address="10.0.0.67")
    its_own = nameless.send("mine")
    nameless.leave()
    with pytest.raises(ValidationError, match="only from the browser or app it was written in"):
        visit(hub, "Nemo", ALICE, lambda a: a.delete(its_own))
    nameless.rejoin()  # the same session (its own secret) back
    nameless.delete(its_own)
    assert hub.conv.row_state(its_own).deleted


def test_replies_are_recorded_and_only_messages_from_before_the_record_keep_the_name_rule(
        tmp_path) -> None:
    hub = unheld(Hub("host-peer", authors=Authorship.open(tmp_path)))
    alice = tab(hub, "Alice", ALICE)
    parent = alice.send("who is in?")
    reply = alice.reply(parent, "a reply is a message too", "general")
    assert reply is not None and hub.authors.owner_of(reply.id) == owner_digest(ALICE)
    alice.leave()
    with pytest.raises(ValidationError, match=NOT_AUTHOR):
        visit(hub, "Alice", MALLORY, lambda m: m.edit(reply, "forged"))
    headless = HubSession(hub, device="headless")  # the device's own, without a browser
    headless.join("Bot")
    said = headless.send("beep")
    assert hub.authors.owner_of(said.id) == DEVICE_OWNER
    headless.edit(said, "boop")
    headless.leave()
    with pytest.raises(ValidationError, match=NOT_AUTHOR):
        visit(hub, "Bot", MALLORY, lambda m: m.delete(said))
    # Written here before the record began: the name rule, as before (security.md).
    old = Message.chat("Ann", "from an older version", hub.peer_id)
    old = replace(old, ts=hub.authors.since - 60)
    hub.post(old)
    visit(hub, "Ann", MALLORY, lambda m: m.edit(old, "the name rule"))
    assert hub.conv.row_state(old).shown_text == "the name rule"
    # Written since, with no record (pruned, or its write failed): nobody's to change.
    lost = Message.chat("Ann", "its record is gone", hub.peer_id)
    hub.post(lost)
    with pytest.raises(ValidationError, match="no longer be edited"):
        visit(hub, "Ann", ALICE, lambda m: m.delete(lost))
    hub.authors.close()


async def test_the_same_name_from_another_browser_does_not_take_over_a_reload_quietly() -> None:
    hub = unheld(Hub("host-peer"))
    alice = tab(hub, "Alice", ALICE)
    alice.leave(grace=0.3)  # a reload: her tab is waiting out its grace, still hers
    with pytest.raises(ValidationError, match="already someone's name here"):
        tab(hub, "Alice", MALLORY, address="10.0.0.66")
    await eventually(lambda: any(m.kind == KIND_LEAVE for m in hub.history(limit=50)),
                     "Alice's own leave, once the grace is over", 5)
    tab(hub, "Alice", MALLORY, address="10.0.0.66")  # now nobody online has it: announced
    assert sum(m.kind == KIND_JOIN and m.author == "Alice" for m in hub.history(limit=50)) == 2
    bob = tab(hub, "Bob", ALICE)  # her browser under another name: a reload of its own is quiet
    bob.leave(grace=5)
    tab(hub, "Bob", ALICE, address="10.0.0.9")
    assert sum(m.kind == KIND_JOIN and m.author == "Bob" for m in hub.history(limit=50)) == 1


def test_the_record_outlives_a_restart_and_is_bounded(tmp_path) -> None:
    hub = unheld(Hub("host-peer", authors=Authorship.open(tmp_path)))
    visit(hub, "Alice", ALICE, lambda a: a.send("kept"))
    first = next(m for m in hub.history(limit=10) if m.text == "kept")
    hub.authors.close()
    hub.authors = Authorship.open(tmp_path)  # the host started again
    with pytest.raises(ValidationError, match=NOT_AUTHOR):
        visit(hub, "Alice", MALLORY, lambda m: m.delete(first))
    visit(hub, "Alice", ALICE, lambda a: a.delete(first))
    assert hub.conv.row_state(first).deleted
    hub.authors.close()
    (tmp_path / "small").mkdir()
    small = Authorship.open(tmp_path / "small", limit=50)
    for i in range(120):
        small.wrote(f"m{i}", owner_digest(ALICE))
    rows = sqlite3.connect(tmp_path / "small" / AUTHORS_FILE).execute(
        "SELECT count(*) FROM authored").fetchone()[0]
    assert rows <= 50 and small.owner_of("m119") == owner_digest(ALICE)
    assert small.owner_of("m0") is None  # the oldest went first: nobody's to change now
    with pytest.raises(ValidationError, match="no longer be edited"):
        small.check("m0", time.time(), owner_digest(ALICE))
    memory = Authorship(limit=3)
    for i in range(5):
        memory.wrote(f"m{i}", b"o")
    assert [memory.owner_of(f"m{i}") for i in range(5)] == [None, None, b"o", b"o", b"o"]


def test_an_unreadable_record_refuses_rather_than_waving_through(tmp_path) -> None:
    (tmp_path / AUTHORS_FILE).mkdir()  # not a database: the record lives in memory, logged
    hub = unheld(Hub("host-peer", authors=Authorship.open(tmp_path)))
    visit(hub, "Alice", ALICE, lambda a: a.send("still protected this run"))
    first = next(m for m in hub.history(limit=10) if m.text == "still protected this run")
    with pytest.raises(ValidationError, match=NOT_AUTHOR):
        visit(hub, "Alice", MALLORY, lambda m: m.edit(first, "no"))
    earlier = replace(Message.chat("Ann", "from an earlier run", hub.peer_id), ts=1.0)
    hub.post(earlier)  # its record, if any, is in the file this run cannot open: nobody's
    with pytest.raises(ValidationError, match="no longer be edited"):
        visit(hub, "Ann", MALLORY, lambda m: m.delete(earlier))
    (tmp_path / "ok").mkdir()
    broken = Authorship.open(tmp_path / "ok")
    broken.wrote("m1", b"o")
    broken._db.execute("DROP TABLE authored")  # the file went bad under a running host
    with pytest.raises(ValidationError, match="Could not check"):
        broken.owner_of("m1")


async def test_a_shared_file_is_its_owners(tmp_path) -> None:
    peer = await files_peer(tmp_path, "Ann")
    try:
        unheld(peer.hub)
        browser = tab(peer.hub, "Alice", ALICE)
        msg = await peer.share.share(browser, [make_file(tmp_path / "a.bin", 100)], "", "general")
        assert peer.hub.authors.owner_of(msg.id) == owner_digest(ALICE)
        browser.leave()
        with pytest.raises(ValidationError, match=NOT_AUTHOR):
            visit(peer.hub, "Alice", MALLORY, lambda m: m.delete(msg))
    finally:
        await peer.close()


def test_hello_carries_a_well_formed_owner_or_is_refused() -> None:
    assert decode_client_frame(encode_client_hello("Ada", ALICE)).owner == ALICE
    assert decode_client_frame(encode_client_hello("Ada")).owner == ""
    for bad in ("short", 7, None, "é" * 30):
        frame = '{"v":1,"type":"hello","name":"Ada","owner":%s}' % (
            f'"{bad}"' if isinstance(bad, str) else "null" if bad is None else bad)
        with pytest.raises(Exception, match="hello.owner"):
            decode_client_frame(frame)


async def _frame(client, kind, check):
    """The first frame of ``kind`` passing ``check``, received already or next (a row may
    come before its request's ``done``)."""
    while True:
        for frame in client.frames:
            if isinstance(frame, kind) and check(frame):
                return frame
        await client.next(kind)


async def gone(host: Host, name: str) -> None:  # noqa: F811
    await eventually(lambda: not any(o.name == name for o in host.node.hub.online()),
                     f"{name} gone from the roster", 10)


async def _done(client, req: int) -> RelayDone:
    return await _frame(client, RelayDone, lambda f: f.req == req)


async def test_static_clients_same_name_other_browser_refused_same_browser_allowed(host: Host):  # noqa: F811
    unheld(host.node.hub)
    alice = await open_client(host, "Alice", ALICE)
    await alice.ws.send('{"v":1,"type":"send","text":"from the static client","channel":"general"}')
    mine = await alice.message(lambda m: m.kind == KIND_CHAT and m.author == "Alice")
    await alice.ws.close()
    await gone(host, "Alice")  # offline: the name is free, what she wrote is not
    mallory = await open_client(host, "Alice", MALLORY)
    await mallory.ws.send(encode_client_conv(1, "delete", mine.id))
    assert NOT_AUTHOR in (await _done(mallory, 1)).error
    await mallory.ws.send(encode_client_conv(2, "edit", mine.id, "forged"))
    assert NOT_AUTHOR in (await _done(mallory, 2)).error
    assert not host.node.hub.conv.row_state(mine).deleted
    await mallory.ws.close()
    await gone(host, "Alice")
    again = await open_client(host, "Alice", ALICE)  # a reconnect of Alice's browser
    await again.ws.send(encode_client_conv(3, "edit", mine.id, "edited by its author"))
    assert (await _done(again, 3)).error == ""
    row = await _frame(again, RelayRow, lambda f: f.row.id == mine.id and f.row.edited)
    assert row.row.text == "edited by its author"
    bad = await open_client(host)
    await bad.ws.send('{"v":1,"type":"hello","name":"Eve","owner":"not a secret"}')
    code, reason = await bad.closed()
    assert code == 1002 and reason.startswith("hello.owner")


def test_the_static_client_gives_its_owner_at_join_and_again_on_every_reconnect() -> None:
    from tests.test_webclient_conversation import FakeClient
    from webclient.main import RelayBackend, RelayClient

    backend = RelayBackend(FakeClient())
    backend.join("Ada", ALICE)
    assert backend.client.sent[-1] == {"v": 1, "type": "hello", "name": "Ada", "owner": ALICE}
    client = RelayClient.__new__(RelayClient)  # no browser here: the parts on_open uses
    sent: list[str] = []
    client.ws, client.backend, client.pending, client.url = SimpleNamespace(send=sent.append), \
        backend, [], "ws://host/relay"
    client.show_status = lambda text: None
    client.on_open()  # a reconnect: hello again, with the same owner
    assert decode_client_frame(sent[0]) == decode_client_frame(encode_client_hello("Ada", ALICE))
    fresh = RelayBackend(FakeClient())
    fresh.join("Bo")  # no client storage answered: a secret of its own, well formed
    assert validate_owner_secret(fresh.client.sent[-1]["owner"]) == fresh.owner


class SlowStorage:
    """Client storage (``SharedPreferences``) that answers after ``delay`` seconds."""

    def __init__(self, kept: object = None, delay: float = 0.0) -> None:
        self.values: dict[str, object] = {} if kept is None else {OWNER_KEY: kept}
        self.delay = delay

    async def get(self, key: str) -> object:
        await asyncio.sleep(self.delay)
        return self.values.get(key)

    async def set(self, key: str, value: object) -> bool:
        await asyncio.sleep(self.delay)
        self.values[key] = value
        return True


async def test_the_browser_keeps_one_secret_and_a_slow_one_still_keeps_the_one_joined_with(
        monkeypatch) -> None:
    from fletchat.ui import login as login_module
    from fletchat.ui.login import Login
    from fletchat.ui.remember import NameMemory

    memory = NameMemory()
    memory.prefs = SlowStorage()  # type: ignore[assignment]  # a first visit: none kept yet
    made = await memory.owner_secret(ALICE)
    assert made == ALICE and memory.prefs.values[OWNER_KEY] == ALICE
    assert await memory.owner_secret(MALLORY) == ALICE  # the next session: the one kept
    memory.prefs.values[OWNER_KEY] = "tampered with"  # not a secret: a new one, kept
    assert await memory.owner_secret(MALLORY) == MALLORY == memory.prefs.values[OWNER_KEY]

    # A loaded phone: storage answers after the join gave up waiting. The session joined with
    # the candidate, and the storage keeps that same candidate, so a reload can still edit.
    monkeypatch.setattr(login_module, "OWNER_WAIT_SECONDS", 0.05)
    login = Login.__new__(Login)  # the parts owner_secret uses (no page here)
    login.memory, login._owner = NameMemory(), None
    login._candidate = new_owner_secret()
    login.memory.prefs = SlowStorage(delay=0.2)  # type: ignore[assignment]
    joined_with = await login.owner_secret()
    assert joined_with == login._candidate
    await eventually(lambda: login.memory.prefs.values.get(OWNER_KEY), "the secret kept", 5)
    assert login.memory.prefs.values[OWNER_KEY] == joined_with


def test_a_name_online_here_is_not_taken_by_another_browser() -> None:
    hub = unheld(Hub("host-peer"))
    alice = tab(hub, "Alice", ALICE)
    taken = HubSession(hub, device="browser", address="10.0.0.66")
    with pytest.raises(ValidationError, match="already someone's name here"):
        taken.join("alice", MALLORY)  # compared as names are, case aside
    assert not taken.joined
    second = tab(hub, "Alice", ALICE, address="10.0.0.7")  # her second tab, her browser: yes
    bots = [HubSession(hub, device="headless") for _ in range(2)]
    for bot in bots:
        bot.join("Bot")  # the device's own people share one owner
    with pytest.raises(ValidationError, match="already someone's name here"):
        tab(hub, "Bot", MALLORY)
    alice.leave()
    second.leave()
    mallory = tab(hub, "Alice", MALLORY)  # a name nobody here has now: not reserved
    with pytest.raises(ValidationError, match="already someone's name here"):
        alice.rejoin()  # her tab came back after its leave: the name is someone else's now
    mallory.leave()
    assert alice.rejoin() is not None and alice.name == "Alice"


async def test_the_relay_refuses_a_name_online_here_and_the_static_client_asks_again(
        host: Host, monkeypatch):  # noqa: F811
    from fletchat.events import NameRefused
    from fletchat.relay_protocol import NAME_REFUSED
    from tests.test_webclient_conversation import FakeClient
    from webclient import main as webclient_main
    from webclient.main import RelayBackend, RelayClient

    alice = await open_client(host, "Alice", ALICE)
    mallory = await open_client(host)
    await mallory.ws.send(encode_client_hello("Alice", MALLORY))
    code, reason = await mallory.closed()
    assert code == 1008 and reason == NAME_REFUSED + "Alice is already someone's name here: pick another."
    again = await open_client(host, "Alice", ALICE)  # her second tab: welcomed (open_client checks)
    await again.ws.close()
    await alice.ws.close()

    backend = RelayBackend(FakeClient())
    got: list[object] = []

    async def handler(event: object) -> None:
        got.append(event)

    backend._handler = handler
    backend.join("Alice", MALLORY)
    client = RelayClient.__new__(RelayClient)  # no browser here: the parts on_close uses
    client.backend, client.closing, client.connect = backend, False, lambda: None
    client.show_status = lambda text: None
    monkeypatch.setattr(webclient_main, "RECONNECT_SECONDS", 0)
    assert await client.on_close(code, reason) is False  # it reconnects, to join again
    assert backend.name is None and got == [NameRefused(reason[len(NAME_REFUSED):])]


def test_the_login_asks_again_with_the_hosts_reason() -> None:
    from fletchat.events import NameRefused
    from fletchat.ui.hub_backend import HubBackend
    from fletchat.ui.login import Login
    from tests.test_ui_controls import FakePage

    page = FakePage()
    login = Login(page, HubBackend(HubSession(Hub("host-peer"))), "", joined=None)  # type: ignore[arg-type]
    assert login.on_event(NameRefused("Alice is already someone's name here: pick another."))
    assert page.dialogs == [login.dialog] and login.dialog.open
    assert login.name.error == "Alice is already someone's name here: pick another."
    assert not login.on_event(object())


def test_names_that_look_the_same_are_one_name() -> None:
    from fletchat.model import name_key

    same = ["Alice", "ALICE", " alice ", "Alice\u3164", "Alice\u2800", "Alice\ufe0f",
            "Ali\u200dce", "\uff21lice"]  # fillers, a variation selector, a joiner, a fullwidth A
    assert {name_key(n) for n in same} == {"alice"}
    assert name_key("Jose\u0301") == name_key("Jos\u00e9")  # decomposed or not
    hub = unheld(Hub("host-peer"))
    tab(hub, "Alice", ALICE)
    for look_alike in same[1:]:
        with pytest.raises(ValidationError, match="already someone's name here"):
            tab(hub, look_alike, MALLORY, address="10.0.0.66")
    with pytest.raises(ValidationError, match="blank"):
        tab(hub, "\u3164\u2800", MALLORY)  # nothing that shows


def test_a_name_left_is_held_for_its_browser_a_while() -> None:
    clock = [0.0]
    hub = Hub("host-peer")
    hub.name_holds = NameHolds(seconds=600, limit=3, clock=lambda: clock[0])
    alice = tab(hub, "Alice", ALICE)
    alice.leave()  # a dropped connection, past any reload grace
    with pytest.raises(ValidationError, match="already someone's name here"):
        tab(hub, "alice", MALLORY, address="10.0.0.66")
    refused = HubSession(hub, device="browser", address="10.0.0.66")
    with pytest.raises(ValidationError):
        refused.join("Alice", MALLORY)
    assert refused.owner is None and not refused.joined  # a refused join changes nothing
    back = tab(hub, "Alice", ALICE, address="10.0.0.9")  # her browser: hers again
    back.rename("Ally")
    back.leave()
    with pytest.raises(ValidationError, match="already someone's name here"):
        tab(hub, "Ally", MALLORY)  # held, under the name she left with
    clock[0] += 601
    tab(hub, "Ally", MALLORY)  # the hold ran out: a name nobody has
    # a flood of names left cannot push out a live hold; past the limit, new ones are not held
    for i in range(5):
        tab(hub, f"Throwaway{i}", MALLORY).leave()
    assert hub.name_holds.held_for_other("throwaway0", ALICE)
    assert not hub.name_holds.held_for_other("throwaway4", ALICE)


def test_a_name_of_someone_on_a_connected_device_is_not_taken_at_join() -> None:
    from fletchat.events import Presence
    from fletchat.model import Peer

    hub = unheld(Hub("host-peer"))
    hub.peer_up(Peer("lan-peer", "Laptop"))
    hub.peer_presence("lan-peer", (Presence("Bob", "desktop", 1.0),))
    with pytest.raises(ValidationError, match="already someone's name here"):
        tab(hub, "Bob", MALLORY)
