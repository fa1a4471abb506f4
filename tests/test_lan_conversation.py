"""Conversation features between real peers: hubs with SQLite files and device keys, meshes on
real TLS sockets (loopback), signed messages checked at the edge. A reply whose parent is not
there yet, a late joiner catching up a delete, forged edits and deletes refused, a reaction flood
from many throw-away identities behind one address, typing and read receipts."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
import sys
from contextlib import suppress
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from fletchat.clock import HLC
from fletchat.conversation.emoji import PICKER
from fletchat.conversation.fields import ConvFields
from fletchat.conversation.kinds import NOT_AUTHOR
from fletchat.conversation.views import ReadChanged, TypingChanged
from fletchat.hub import Hub, HubSession
from fletchat.identity import Identity, cert_public_key
from fletchat.mesh import Mesh, MeshSettings
from fletchat.model import KIND_DELETE, KIND_EDIT, KIND_REACTION, Message, Peer, new_id
from fletchat.node import mesh_for_hub
from fletchat.peer.connection import Local, PeerConnection, State, TlsFacts
from fletchat.protocol import decode_frame, encode_b64, encode_msg, message_signing_bytes
from fletchat.store import Store
from fletchat.trust import Trust
from tests.timing import eventually, never_within, scaled

LOOPBACK = "127.0.0.1"
ATTACKER = "127.0.0.2"
FAST = {"heartbeat_interval": 0.2, "heartbeat_timeout": 5.0, "handshake_timeout": 5.0,
        "reconnect_min": 0.05, "reconnect_max": 0.4}
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="127.0.0.2 is routed on Linux")


class Node:
    """One install: identity, history file, hub, mesh, and one person on it."""

    def __init__(self, tmp_path: Path, peer_id: str, name: str, **options) -> None:
        self.id = peer_id
        self.dir = tmp_path / peer_id
        self.trust = Trust.open(self.dir, peer_id)
        self.hub = Hub(peer_id, store=Store.open(self.dir / "history.db"), trust=self.trust)
        self.mesh: Mesh = mesh_for_hub(self.hub, Peer(peer_id, name), trust=self.trust,
                                       settings=MeshSettings(host=LOOPBACK, **{**FAST, **options}))
        self.events: list = []
        self.hub.add_listener(self.events.append)
        self.me = HubSession(self.hub, device="headless")
        self.me.join(name)

    def connected(self) -> set[str]:
        return {p.id for p in self.mesh.peers()}

    def has(self, msg_id: str) -> bool:
        return self.hub.find(msg_id) is not None

    def db_has_text(self, needle: str) -> bool:
        self.hub.flush()
        con = sqlite3.connect(self.hub.store.path)
        try:
            plain = con.execute("SELECT count(*) FROM messages WHERE text LIKE ?",
                                (f"%{needle}%",)).fetchone()[0]
            fts = con.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?",
                              (f'"{needle}"',)).fetchone()[0]
        finally:
            con.close()
        return bool(plain or fts)

    async def stop(self) -> None:
        await self.mesh.stop()
        self.hub.close()
        self.trust.close()


@pytest.fixture
async def lan(tmp_path):
    made: list[Node] = []

    async def make(peer_id: str, name: str, **options) -> Node:
        node = Node(tmp_path, peer_id, name, **options)
        await node.mesh.start()
        made.append(node)
        return node

    yield make
    for n in made:
        with suppress(Exception):
            await n.stop()


async def link(a: Node, b: Node) -> None:
    a.mesh.add_peer_address(LOOPBACK, b.mesh.port)
    await eventually(lambda: b.id in a.connected() and a.id in b.connected(),
                     f"{a.id} and {b.id} connected")


async def test_a_reply_whose_parent_is_not_there_yet_shows_its_quote(lan):
    amy, zed = await lan("amy", "Amy"), await lan("zed", "Zed")
    await link(amy, zed)
    parent = zed.me.send("who brings the cake?")
    await eventually(lambda: amy.has(parent.id), "the parent reached amy")
    answer = await asyncio.to_thread(amy.me.reply, parent, "I do", "general")
    await eventually(lambda: zed.has(answer.id), "the reply reached zed")
    await zed.stop()
    # A newcomer catches up from amy alone: amy's own messages come first, so the reply
    # arrives before the message it answers.
    cat = await lan("cat", "Cat")
    await link(cat, amy)
    await eventually(lambda: cat.has(answer.id) and cat.has(parent.id), "cat caught up")
    shown = [e.id for e in cat.events if isinstance(e, Message)]
    assert shown.index(answer.id) < shown.index(parent.id)
    row = cat.hub.conv.row_state(cat.hub.find(answer.id)[0])
    assert row.reply is not None and row.reply.parent_id == parent.id
    assert (row.reply.parent_author, row.reply.snippet) == ("Zed", "who brings the cake?")


async def test_edit_reaction_and_delete_reach_a_late_joiner_without_the_text(lan):
    ann, bob = await lan("ann", "Ann"), await lan("bob", "Bob")
    await link(ann, bob)
    m = ann.me.send("the vault code is 4711")
    await eventually(lambda: bob.has(m.id), "message at bob")
    edit = await asyncio.to_thread(ann.me.edit, m, "the vault code is 4712")
    react = await asyncio.to_thread(bob.me.react, m, PICKER[0])
    await eventually(lambda: bob.hub.conv.row_state(m).edited and ann.has(react.id),
                     "edit at bob, reaction at ann")
    assert bob.hub.search("4712") and not bob.hub.search("4711")
    await asyncio.to_thread(ann.me.delete, m)
    for node in (ann, bob):
        await eventually(lambda node=node: node.hub.conv.row_state(m).deleted
                         and not node.db_has_text("vault"), f"text erased at {node.id}")
    await ann.stop()  # the author is gone; the newcomer only meets bob
    cy = await lan("cy", "Cy")
    await link(cy, bob)
    await eventually(lambda: cy.has(m.id) and cy.has(edit.id), "cy holds the slots")
    await eventually(lambda: cy.hub.conv.row_state(cy.hub.find(m.id)[0]).deleted,
                     "cy shows the delete")
    assert not cy.db_has_text("vault") and cy.hub.search("vault") == []
    cy.hub.flush()
    await eventually(lambda: cy.hub.summary().get("ann") == bob.hub.summary().get("ann"),
                     "cy has every slot of ann's (no gap where the text was)")


async def test_forged_edits_and_deletes_are_refused_and_nothing_is_lost(lan):
    ann, mal = await lan("ann", "Ann"), await lan("mal", "Mallory")
    await link(ann, mal)
    m = ann.me.send("I owe Mallory nothing")
    await eventually(lambda: mal.has(m.id), "message at mallory")
    mal_clock = mal.hub.clock
    # 1. Mallory's own key, Ann's name: signed fine, refused by the author rule.
    forged = [
        Message(new_id(), KIND_DELETE, "Ann", "mal", "", m.ts, m.channel,
                hlc=mal_clock.now().encode(), seq=1000,
                conv=ConvFields(target=m.id, target_seq=m.seq)),
        Message(new_id(), KIND_EDIT, "Ann", "mal", "I owe Mallory 1000 euros", m.ts, m.channel,
                hlc=mal_clock.now().encode(), seq=1001, conv=ConvFields(target=m.id)),
    ]
    told: list[tuple[str, str]] = []  # what ann's refused frames said to mallory's device
    mal.hub.refused = lambda peer_id, refusals: told.extend(refusals)  # type: ignore[method-assign]
    for f in forged:
        mal.mesh.broadcast(f)

    def refusals() -> list[tuple[str, str]]:
        return list(told)

    await eventually(lambda: {i for i, _ in refusals()} >= {f.id for f in forged},
                     "ann refused both and said so")
    assert {reason for i, reason in refusals() if i != m.id} == {NOT_AUTHOR}
    # 2. Ann's origin, signed with Mallory's key: a forged signature, dropped at the edge.
    as_ann = Message(new_id(), KIND_DELETE, "Ann", "ann", "", m.ts, m.channel,
                     hlc=mal_clock.now().encode(), seq=m.seq + 50,
                     conv=ConvFields(target=m.id, target_seq=m.seq))
    sig = encode_b64(mal.trust.identity.sign(message_signing_bytes(as_ann)))
    frame = encode_msg(as_ann, sig)
    for lk in mal.mesh._core.registry.handles():
        mal.mesh._core.send(lk, frame)
    await eventually(lambda: as_ann.id in {i for i, _ in refusals()}, "forged signature refused")
    await never_within(lambda: ann.hub.conv.row_state(m).deleted
                       or ann.hub.conv.row_state(m).edited, "ann's message changed", 0.5)
    assert ann.db_has_text("nothing") and not any(ann.has(f.id) for f in (*forged, as_ann))


class Throwaway:
    """A stranger with a fresh key, connected from ``ATTACKER`` (driven sans-I/O)."""

    def __init__(self, ws, conn: PeerConnection, trust: Trust) -> None:
        self.ws, self.conn, self.trust = ws, conn, trust


async def throwaway(target: Node, data_dir: Path, peer_id: str) -> Throwaway | None:
    ws = await connect(f"wss://{LOOPBACK}:{target.mesh.port}/", ssl=Identity.client_context(),
                       local_addr=(ATTACKER, 0), open_timeout=10)
    der = ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
    trust = Trust.open(data_dir / peer_id, peer_id)
    conn = PeerConnection(
        Local(Peer(peer_id, "Throwaway"), 0, secrets.token_hex(8), 1), True, LOOPBACK, trust,
        secrets.token_hex(16), 0.0, TlsFacts(hashlib.sha256(der).hexdigest(), cert_public_key(der)))
    try:
        while conn.state not in (State.OPEN, State.CLOSED):
            for frame in conn.data_to_send():
                await ws.send(frame)
            conn.receive_text(await ws.recv(), 1.0)
        for frame in conn.data_to_send():
            await ws.send(frame)
    except ConnectionClosed:  # refused (too many first contacts from this address)
        conn.state = State.CLOSED
    if conn.state is not State.OPEN:
        await ws.close()
        trust.close()
        return None
    return Throwaway(ws, conn, trust)


@linux_only
async def test_a_reaction_flood_from_throwaway_identities_on_one_address_is_capped(lan, tmp_path):
    # The strangers never answer heartbeats: a long timeout keeps them connected meanwhile.
    ann = await lan("ann", "Ann", heartbeat_interval=60.0, heartbeat_timeout=scaled(120.0))
    m = ann.me.send("react if you agree")
    stored = ann.hub.store
    clients: list[Throwaway] = []
    try:
        for i in range(24):  # more than one address may introduce (trust.FIRST_CONTACTS_...)
            c = await throwaway(ann, tmp_path / "strangers", f"sock{i:02d}")
            if c is not None:
                clients.append(c)
        # Only strangers the host registered count (a refused first contact may look open here).
        await eventually(lambda: len({c.conn.local.me.id for c in clients} & ann.connected()) >= 6,
                         "at least six strangers connected")
        for c in [c for c in clients if c.conn.local.me.id not in ann.connected()]:
            clients.remove(c)
            await c.ws.close()
            c.trust.close()
        sent = 0
        for n, c in enumerate(list(clients)):
            origin = c.conn.local.me.id
            try:
                for k in range(12):
                    r = Message(new_id(), KIND_REACTION, f"Sock {n}", origin, "", m.ts,
                                m.channel, hlc=HLC(origin).now().encode(), seq=k + 1,
                                conv=ConvFields(target=m.id, emoji=PICKER[k]))
                    await c.ws.send(encode_msg(r, c.trust.sig_for(r)))
                    sent += 1
            except ConnectionClosed:  # its first contact was refused after all (1013)
                clients.remove(c)
                c.trust.close()
        assert len(clients) >= 6
        total = lambda: sum(s.count for s in ann.hub.conv.row_state(m).reactions)
        await eventually(lambda: total() >= 60, "reactions up to the per-address cap arrived")
        await never_within(lambda: total() > 60, "more than the per-address cap counted", 0.5)
        assert sent > 60
        refused = []
        for c in clients:  # each stranger was told why (a refused frame)
            while True:
                try:
                    raw = await asyncio.wait_for(c.ws.recv(), 0.2)
                except (TimeoutError, ConnectionClosed):
                    break
                if '"refused"' in raw:
                    refused += [r for _, r in decode_frame(raw).refusals]
        assert refused and set(refused) == {"too many reactions; slow down"}
        assert stored.get(m.id).msg.text == "react if you agree"
    finally:
        for c in clients:
            await c.ws.close()
            c.trust.close()


async def test_typing_and_read_receipts_cross_the_lan_and_are_never_stored(lan):
    ann, bob = await lan("ann", "Ann"), await lan("bob", "Bob")
    await link(ann, bob)
    m = ann.me.send("anyone there?")
    await eventually(lambda: bob.has(m.id), "message at bob")
    bob.me.typing("general")
    await eventually(lambda: ann.me.typing_names("general") == ["Bob"], "ann sees bob typing")
    assert any(isinstance(e, TypingChanged) and e.names == ("Bob",) for e in ann.events)
    bob.me.typing("general")  # throttled: the second keystroke sends nothing new
    bob.me.mark_read("general", bob.hub.find(m.id)[0])
    await eventually(lambda: ann.hub.conv.seen_by(m) == ["Bob"], "ann sees 'seen by Bob'")
    assert any(isinstance(e, ReadChanged) and e.channel == "general" for e in ann.events)
    reply = bob.me.send("yes")
    await eventually(lambda: ann.has(reply.id), "bob's message at ann")
    assert ann.me.typing_names("general") == []  # the message ended the typing
    bob.me.typing("general")  # typing again straight after sending is a new run, not throttled
    await eventually(lambda: ann.me.typing_names("general") == ["Bob"], "bob typing again")
    kinds = {m.kind for node in (ann, bob) for m in node.hub.history("general", 100)}
    assert kinds == {"join", "chat"}  # typing and read marks were never stored
    await eventually(lambda: ann.hub.store.count() == bob.hub.store.count() == 4,
                     "two joins and two messages, nothing else, on both")
    # reach counts the receipts, which a receiver may gather for a moment (ACK_GATHER_S)
    await eventually(lambda: ann.hub.reach(m) == (2, 2), "ann's message on both devices")
