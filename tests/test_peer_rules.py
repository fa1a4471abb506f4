"""The pure rules around connections: slots, the registry, the dialer, catch-up pacing, and the
trust store's bounds. No sockets; time is passed in."""

from __future__ import annotations

import os
import secrets

from fletchat.model import Peer
from fletchat.peer.catchup import LIVE_RESERVE, PACE_SHARE, Pacer
from fletchat.peer.dialer import Dialer, Outcome, Source, never_dial
from fletchat.peer.registry import (
    Admit,
    Refuse,
    Registry,
    Slot,
    SlotLimits,
    admit_peer,
    admit_socket,
)
from fletchat.protocol import (
    MESSAGE_BURST,
    MESSAGES_PER_SECOND,
    RATE_BURST,
    RATE_FRAMES_PER_SECOND,
    ConnKey,
    TokenBucket,
)
from fletchat.trust import (
    CHANGED,
    KNOWN,
    LIMITED,
    MAX_KNOWN_PEERS,
    NEW,
    TRUST_LOG,
    FirstContacts,
    TrustStore,
)

# ---------------------------------------------------------------- slots (hole 5)

LIMITS = SlotLimits(max_connections=128, max_pending_per_address=8, max_peers=64,
                    max_peers_per_address=16)


def test_silent_sockets_from_one_address_cannot_keep_a_newcomer_out():
    slots: list[Slot[int]] = []
    refused = 0
    for i in range(135):  # what the red team opened, none ever saying hello
        verdict = admit_socket(slots, "10.0.0.66", LIMITS)
        if isinstance(verdict, Admit):
            slots.append(Slot(i, "10.0.0.66", float(i), False, float(i)))
        else:
            refused += 1
    assert len(slots) == LIMITS.max_pending_per_address and refused == 135 - 8
    assert isinstance(admit_socket(slots, "10.0.0.5", LIMITS), Admit)


def test_when_every_socket_is_taken_the_oldest_unauthenticated_of_the_crowd_goes():
    limits = SlotLimits(max_connections=4, max_pending_per_address=3)
    slots = [
        Slot("peer", "10.0.0.2", 0.0, True, 0.0),
        Slot("old-silent", "10.0.0.66", 1.0, False, 1.0),
        Slot("new-silent", "10.0.0.66", 2.0, False, 2.0),
        Slot("other-silent", "10.0.0.7", 0.5, False, 0.5),
    ]
    assert admit_socket(slots, "10.0.0.5", limits) == Admit("old-silent")
    authenticated = [Slot(i, f"10.0.0.{i}", 0.0, True, 0.0) for i in range(4)]
    assert isinstance(admit_socket(authenticated, "10.0.0.9", limits), Refuse)


def test_throwaway_ids_from_one_address_cannot_fill_the_peer_slots():
    peers: list[Slot[str]] = []
    for i in range(64):
        verdict = admit_peer(peers, "10.0.0.66", LIMITS, known_peer=False)
        if isinstance(verdict, Admit):
            peers.append(Slot(f"t{i}", "10.0.0.66", 0.0, True, float(i)))
    assert len(peers) == LIMITS.max_peers_per_address
    # Four such addresses fill the table; an honest newcomer from a fifth still gets in, and the
    # idlest peer of the most crowded address makes room.
    peers = [Slot(f"{a}-{i}", f"10.0.1.{a}", 0.0, True, float(i)) for a in range(4)
             for i in range(16)]
    verdict = admit_peer(peers, "10.0.0.5", LIMITS, known_peer=False)
    assert verdict == Admit("0-0")
    assert admit_peer(peers, "10.0.1.0", LIMITS, known_peer=True) == Admit()  # a reconnect


def test_a_full_table_of_one_peer_per_address_refuses_rather_than_evicts():
    limits = SlotLimits(max_peers=2)
    peers = [Slot("b", "10.0.0.2", 0.0, True, 0.0), Slot("c", "10.0.0.3", 0.0, True, 0.0)]
    assert isinstance(admit_peer(peers, "10.0.0.4", limits, known_peer=False), Refuse)


# ---------------------------------------------------------------- registry


def key(initiator: str, session: str = "s1", dial: int = 1) -> ConnKey:
    return ConnKey(initiator, session, dial)


def test_one_connection_per_peer_and_the_announce_rule():
    reg: Registry[str] = Registry()
    bob = Peer("bob", "Bob", host="10.0.0.2", port=7000)
    first = reg.offer("c1", bob, key("bob"))
    assert (first.accepted, first.replaced, first.announce) == (True, None, True)
    # both dialed: the connection dialed by the smaller id wins, on both ends
    loser = reg.offer("c2", bob, key("zed"))
    assert not loser.accepted and reg.get("bob") == "c1"
    newer = reg.offer("c3", bob, key("bob", dial=2))
    assert (newer.accepted, newer.replaced, newer.announce) == (True, "c1", False)
    restarted = reg.offer("c4", bob, key("bob", session="s2"))
    assert restarted.announce  # a restart is news
    renamed = reg.offer("c5", Peer("bob", "Robert", host="10.0.0.2", port=7000),
                        key("bob", session="s2", dial=9))
    assert renamed.announce


def test_peer_down_waits_out_a_grace_unless_replaced():
    reg: Registry[str] = Registry()
    bob = Peer("bob", "Bob")
    reg.offer("c1", bob, key("bob"))
    assert reg.remove("c1", "bob", grace_until=10.0) is False  # closed as a duplicate
    assert reg.known("bob") and "bob" not in reg
    assert reg.expire(5.0) == []
    again = reg.offer("c2", bob, key("bob", dial=2))
    assert again.accepted and not again.announce  # the replacement arrived: no down, no up
    assert reg.expire(20.0) == []
    reg.remove("c2", "bob", grace_until=30.0)
    assert [p.id for p in reg.expire(31.0)] == ["bob"]
    reg.offer("c3", bob, key("bob"))
    assert reg.remove("c3", "bob", grace_until=None) is True
    assert reg.remove("c3", "bob", grace_until=None) is False  # once


# ---------------------------------------------------------------- dialer (hole 9)


def test_adverts_for_loopback_own_or_multicast_addresses_are_never_dialed():
    own = frozenset({"192.168.1.10"})
    d = Dialer("me", own)
    for host in ("127.0.0.1", "::1", "0.0.0.0", "224.0.0.251", "192.168.1.10"):
        assert never_dial(host, own)
        result = d.want(host, 7000, "fake", Source.DISCOVERY)
        assert result.added is None and result.refused, host
    assert d.want("192.168.1.20", 7000, "real", Source.DISCOVERY).added is not None
    # --peer is the user's own word: loopback is fine there
    assert d.want("127.0.0.1", 7000, None, Source.MANUAL).added is not None


def test_a_thousand_fake_adverts_do_not_hide_a_real_newcomer():
    d = Dialer("me")
    for i in range(1000):
        result = d.want(f"10.9.{i // 250}.{i % 250 + 1}", 7000, f"fake{i}", Source.DISCOVERY)
        if result.added is not None:
            d.after(result.added, Outcome.FAILED, 0.5)  # nobody answers there
    assert sum(1 for w in d.wanted.values() if w.source is Source.DISCOVERY) <= d.max_discovered
    real = d.want("10.0.0.42", 7000, "real", Source.DISCOVERY)
    assert real.added is not None and real.added.peer_id == "real"
    assert len(real.dropped) == 1 and real.dropped[0].failures >= 1
    d.after(real.added, Outcome.UP, 0.5)
    for i in range(1000, 1200):  # more fakes never push out the address that connected
        d.want(f"10.8.{i // 250}.{i % 250 + 1}", 7000, f"fake{i}", Source.DISCOVERY)
    assert d.is_wanted(real.added)


def test_many_ports_on_one_advertised_host_are_bounded():
    d = Dialer("me")
    added = [d.want("10.0.0.66", 7000 + i, f"p{i}", Source.DISCOVERY).added for i in range(10)]
    assert sum(1 for a in added if a is not None) == d.max_ports_per_host


def test_backoff_grows_and_gossip_is_given_up():
    d = Dialer("me", reconnect=(0.5, 30.0))
    gossip = d.want("10.0.0.7", 7000, "g", Source.GOSSIP).added
    delays = [d.after(gossip, Outcome.FAILED, 0.999) for _ in range(5)]
    assert delays[:4] == sorted(delays[:4]) and delays[0] < delays[3]
    assert delays[4] is None and not d.is_wanted(gossip)
    manual = d.want("10.0.0.8", 7000, None, Source.MANUAL).added
    assert all(d.after(manual, Outcome.FAILED, 0.5) is not None for _ in range(50))
    assert d.after(manual, Outcome.UP, 0.5) == 0.375  # reset after a success: 0.5 × (0.5 + 0.5 × 0.5)
    assert d.after(manual, Outcome.SELF, 0.5) is None and not d.is_wanted(manual)
    assert d.want("10.0.0.9", 1, "me", Source.MANUAL).refused


def test_forget_leaves_sticky_addresses():
    d = Dialer("me")
    d.want("10.0.0.8", 7000, None, Source.MANUAL)
    d.want("10.0.0.9", 7000, "p", Source.DISCOVERY)
    d.wanted[("10.0.0.8", 7000)].peer_id = "p"  # learned at the handshake
    assert [w.host for w in d.forget("p")] == ["10.0.0.9"]
    assert [w.host for w in d.forget_all("p")] == ["10.0.0.8"]


# ---------------------------------------------------------------- catch-up pacing


def test_pacer_lets_a_burst_through_then_keeps_under_the_receivers_rate():
    pace = Pacer(frames_per_second=24, frame_burst=150, messages_per_second=3200,
                 message_burst=4000)
    now = 0.0
    sent = 0
    while sent < 10_000:
        wait = pace.wait(100, now)
        now += wait
        pace.spend(100, now)
        sent += 100
    # 4000 at once, then 6000 at 3200/s: just under two seconds, never faster than allowed
    assert 6000 / 3200 - 0.01 <= now <= 6000 / 3200 + 0.2


def test_default_pacing_never_trips_the_receivers_limits_even_with_live_traffic():
    # the receiver's own buckets (protocol.py) see the catch-up plus live messages at the room
    # the pacer leaves them: 10 % of the rate, LIVE_RESERVE of the burst
    clock = [0.0]
    frames = TokenBucket(RATE_FRAMES_PER_SECOND, RATE_BURST, clock=lambda: clock[0])
    messages = TokenBucket(MESSAGES_PER_SECOND, MESSAGE_BURST, clock=lambda: clock[0])
    pace, sent, live_due, ten_thousand_at = Pacer(), 0, 0.0, None
    while sent < 20_000:
        wait = pace.wait(100, clock[0])
        live_due += wait * MESSAGES_PER_SECOND * (1 - PACE_SHARE)
        clock[0] += wait
        while live_due >= 1:  # live frames of one message each, at the rate left to them
            assert messages.allow(1)
            live_due -= 1
        pace.spend(100, clock[0])
        assert frames.allow() and messages.allow(100)
        sent += 100
        if sent == 10_000:
            ten_thousand_at = clock[0]
    # the first MESSAGE_BURST - LIVE_RESERVE go at once, then 90 % of the rate: 10,000
    # messages (simulated time) without waiting for a token, 20,000 in under 2.8 s
    assert ten_thousand_at == 0.0
    assert clock[0] < (20_000 - (MESSAGE_BURST - LIVE_RESERVE)) / (MESSAGES_PER_SECOND * PACE_SHARE) + 0.05


# ---------------------------------------------------------------- trust store (hole 1)


def test_throwaway_ids_never_evict_a_known_key():
    store = TrustStore(None)
    alice = secrets.token_bytes(32)
    assert store.check("alice", alice, "Alice").status == NEW
    for i in range(MAX_KNOWN_PEERS + 5):  # the red team's 10,000 handshakes
        store.check(f"throwaway-{i}", secrets.token_bytes(32), "X")
    evil = secrets.token_bytes(32)
    assert store.check("alice", evil, "Alice").status == CHANGED
    assert store.key_of("alice") == alice


def test_first_contacts_are_bounded_per_address_and_per_window():
    store = TrustStore(None, FirstContacts(window=600, per_address=3, total=5))
    t = 1000.0
    got = [store.check(f"a{i}", secrets.token_bytes(32), "", "10.0.0.66", t).status
           for i in range(4)]
    assert got == [NEW, NEW, NEW, LIMITED]
    assert store.check("b1", secrets.token_bytes(32), "", "10.0.0.7", t).status == NEW
    assert store.check("b2", secrets.token_bytes(32), "", "10.0.0.8", t).status == NEW
    assert store.check("b3", secrets.token_bytes(32), "", "10.0.0.9", t).status == LIMITED
    assert store.check("a9", secrets.token_bytes(32), "", "10.0.0.66", t + 601).status == NEW
    # known peers are never limited
    assert store.check("a0", store.key_of("a0"), "", "10.0.0.66", t + 1).status == KNOWN


def test_first_contacts_append_to_a_journal_instead_of_rewriting_the_file(tmp_path):
    store = TrustStore.open(tmp_path)
    snapshot = tmp_path / "trust.json"
    before = (snapshot.stat().st_ino, snapshot.stat().st_mtime_ns, snapshot.read_bytes())
    for i in range(100):
        store.check(f"p{i}", secrets.token_bytes(32), "P", f"10.0.{i}.1")
    assert (snapshot.stat().st_ino, snapshot.stat().st_mtime_ns, snapshot.read_bytes()) == before
    assert len((tmp_path / TRUST_LOG).read_text().splitlines()) == 100
    store.close()
    again = TrustStore.open(tmp_path)  # replays the journal, then compacts it
    assert len(again.known()) == 100 and os.path.getsize(tmp_path / TRUST_LOG) == 0
    again.close()


def test_signature_book_writes_in_batches_and_reads_what_is_pending(tmp_path):
    from fletchat.trust import SignatureBook

    book = SignatureBook(tmp_path / "s.db")
    for i in range(500):
        book.put(f"m{i}", "o", bytes([i % 256]) * 64, verified=i % 2 == 0)
    assert book.get("m7") == (bytes([7]) * 64, False)  # at once, written or not
    book.put("m7", "o", bytes([7]) * 64, verified=True)
    book.put("m7", "o", bytes([7]) * 64, verified=False)  # never downgraded
    assert book.get("m7") == (bytes([7]) * 64, True)
    book.close()
    again = SignatureBook(tmp_path / "s.db")
    assert again.get("m7") == (bytes([7]) * 64, True) and again.get("m499") is not None
    again.close()
