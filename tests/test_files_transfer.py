"""The sans-I/O fetch and serve state machines, driven without sockets (time passed in): which
chunks go to which holder, verdicts for lying or flooding holders, timeouts, "all holders gone",
a simulated multi-holder fetch with a liar, resume with a real blob store, and the serving budget."""

from __future__ import annotations

import io
from collections import Counter

import pytest

from fletchat.files import limits as L
from fletchat.files.blobstore import BlobStore
from fletchat.files.manifest import FileManifest
from fletchat.files.merkle import MerkleTree, leaf_hash
from fletchat.files.serve import Refuse, Serve, Server
from fletchat.files.transfer import (
    Complete,
    Drop,
    Fetch,
    FetchState,
    HoldersGone,
    Request,
    Verdict,
    Verified,
)

CHUNK = L.MIN_CHUNK_SIZE


def make(n_chunks: int, tail: int = 100) -> tuple[FileManifest, list[bytes], MerkleTree]:
    import hashlib
    import random

    data = random.Random(n_chunks).randbytes(CHUNK * n_chunks + tail)
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    tree = MerkleTree([leaf_hash(c) for c in chunks])
    m = FileManifest(hashlib.sha256(data).hexdigest(), len(data), CHUNK, tree.root.hex(), "f", "text/plain")
    return m, chunks, tree


M, CHUNKS, TREE = make(9)  # 10 chunks


def requests(events) -> list[tuple[str, int]]:
    return [(e.holder, e.index) for e in events if isinstance(e, Request)]


def answer(fetch: Fetch, peer: str, index: int, now: float = 0.0, data: bytes | None = None):
    return fetch.on_chunk(peer, index, CHUNKS[index] if data is None else data, TREE.proof(index), now)


def test_no_holder_means_waiting_and_is_reported_once():
    f = Fetch(M)
    assert f.start(0) == [HoldersGone(M.sha256, 10)]
    assert f.state is FetchState.WAITING
    assert f.tick(1) == []


def test_requests_are_spread_over_holders_and_bounded_in_flight():
    f = Fetch(M, max_in_flight=3)
    f.add_holder("a", 0)
    ev = f.add_holder("b", 0)
    asked = requests(ev)
    assert Counter(p for p, _ in asked) == {"b": 3}  # "a" already took 3 when it was added
    assert f.in_flight("a") == {0, 1, 2} and f.in_flight("b") == {3, 4, 5}
    assert f.state is FetchState.FETCHING


@pytest.mark.parametrize("peer, index, data, verdict", [
    ("a", 0, CHUNKS[0][:-1], Verdict.WRONG_SIZE),
    ("a", 0, CHUNKS[0] + b"x", Verdict.OVERSIZED),
    ("a", 0, bytes([CHUNKS[0][0] ^ 1]) + CHUNKS[0][1:], Verdict.BAD_HASH),
    ("a", 0, CHUNKS[1], Verdict.BAD_HASH),  # a real chunk, in the wrong place
    ("a", 7, CHUNKS[7], Verdict.UNREQUESTED),  # never asked of anyone
    ("stranger", 0, CHUNKS[0], Verdict.UNREQUESTED),  # asked, but of someone else
])
def test_a_holder_that_breaks_the_rules_is_dropped_with_a_verdict(peer, index, data, verdict):
    f = Fetch(M, max_in_flight=2)
    f.add_holder("a", 0)
    f.add_holder("b", 0)
    before = f.in_flight("a")
    ev = answer(f, peer, index, data=data)
    drops = [e for e in ev if isinstance(e, Drop)]
    assert [(d.peer, d.verdict) for d in drops] == [(peer, verdict)]
    assert not any(isinstance(e, Verified) for e in ev)
    assert index not in f.verified
    if peer == "a":
        # its chunks go back to the pool: the remaining holder gets them as it frees up
        assert f.holders == ["b"] and before == {0, 1} and f.in_flight("b") == {2, 3}
        assert requests(answer(f, "b", 2)) == [("b", 0)]


def test_a_good_chunk_is_verified_once_and_the_next_is_asked():
    f = Fetch(M, max_in_flight=1)
    f.add_holder("a", 0)
    ev = answer(f, "a", 0)
    assert [type(e) for e in ev] == [Verified, Request]
    assert ev[0].index == 0 and ev[0].leaf == leaf_hash(CHUNKS[0]) and ev[1].index == 1
    assert f.bytes_verified == CHUNK


def test_timeouts_move_work_and_a_late_answer_is_still_welcome():
    f = Fetch(M, max_in_flight=1, timeout=10)
    f.add_holder("slow", 0)
    f.add_holder("fast", 0)
    assert f.in_flight("slow") == {0}
    ev = f.tick(10)  # "slow" gets a strike; chunk 0 goes back in the pool
    assert ("slow", 2) in requests(ev) or ("slow", 0) in requests(ev) or f.in_flight("slow")
    ev = answer(f, "slow", 0, now=11)  # the late answer is not a protocol breach
    assert not any(isinstance(e, Drop) for e in ev)
    assert 0 in f.verified


def test_a_holder_that_keeps_timing_out_is_set_aside_not_dropped():
    f = Fetch(M, max_in_flight=1, timeout=1)
    f.add_holder("slow", 0)
    events = []
    for t in range(1, L.MAX_STRIKES + 2):
        events += f.tick(t)
    assert f.holders == []
    assert not any(isinstance(e, Drop) for e in events)
    assert any(isinstance(e, HoldersGone) for e in events)


def test_a_holder_asked_again_after_a_timeout_may_answer_twice():
    """The only holder is asked again for a chunk whose request timed out; it then answers both
    requests (its first answer was only slow). Neither copy is "unrequested": judging the second
    so closed an honest holder as a liar and stalled a one-holder download for good."""
    f = Fetch(M, max_in_flight=1, timeout=10)
    f.add_holder("only", 0)
    assert f.in_flight("only") == {0}
    assert ("only", 0) in requests(f.tick(10))  # timed out, asked again of the same holder
    first = answer(f, "only", 0, now=11)
    second = answer(f, "only", 0, now=12)
    assert [type(e) for e in first][:1] == [Verified]
    assert not any(isinstance(e, Drop) for e in first + second)
    assert not any(isinstance(e, Verified) for e in second) and "only" in f.holders


def test_a_holder_set_aside_for_timeouts_may_still_deliver_what_it_owes():
    f = Fetch(M, max_in_flight=1, timeout=1)
    f.add_holder("slow", 0)
    for t in range(1, L.MAX_STRIKES + 1):
        f.tick(t)
    assert f.holders == []  # set aside, not judged
    ev = answer(f, "slow", 0, now=L.MAX_STRIKES + 1)
    assert [type(e) for e in ev][:1] == [Verified] and 0 in f.verified
    assert not any(isinstance(e, Drop) for e in ev)
    ev = answer(f, "slow", 5, now=L.MAX_STRIKES + 2)  # never asked of it: still a verdict
    assert [e.verdict for e in ev if isinstance(e, Drop)] == [Verdict.UNREQUESTED]


def test_refusals():
    f = Fetch(M, max_in_flight=1)
    f.add_holder("a", 0)
    f.add_holder("b", 0)
    ev = f.on_refused("a", 0, "not_found", 0)
    assert "a" not in f.holders and not any(isinstance(e, Drop) for e in ev)
    ev = f.on_refused("b", 5, "busy", 0)  # not asked of b
    assert [e.verdict for e in ev if isinstance(e, Drop)] == [Verdict.UNREQUESTED]


def test_spare_holders_step_in():
    f = Fetch(M, max_holders=1)
    f.add_holder("a", 0)
    f.add_holder("b", 0)
    assert f.holders == ["a"]
    ev = f.remove_holder("a", 0)
    assert f.holders == ["b"] and requests(ev)


def test_all_holders_gone_then_one_comes_back():
    f = Fetch(M, max_in_flight=2)
    f.add_holder("a", 0)
    answer(f, "a", 0)
    ev = f.remove_holder("a", 1)
    assert ev == [HoldersGone(M.sha256, 9)]
    ev = f.add_holder("c", 2)
    assert requests(ev) == [("c", 1), ("c", 2)]


def test_already_complete_reports_complete_once():
    f = Fetch(M, have=range(10))
    assert f.start(0) == [Complete(M.sha256)]
    assert f.add_holder("a", 0) == []


# ---- a simulated multi-source fetch --------------------------------------------------------


def respond(fetch: Fetch, ev: Request, kind: str, queue: list) -> None:
    """One holder answers one request as its behaviour says; the fetch's reactions join ``queue``."""
    i = ev.index
    data = CHUNKS[i]
    if kind == "liar":
        data = bytes(len(data))
    queue += fetch.on_chunk(ev.holder, i, data, TREE.proof(i), 0)
    if kind == "flooder" and ev.holder not in {e.peer for e in queue if isinstance(e, Drop)}:
        j = (i + 5) % 10  # answers, then pushes a chunk nobody asked for
        queue += fetch.on_chunk(ev.holder, j, CHUNKS[j], TREE.proof(j), 0)


def run(fetch: Fetch, behaviour: dict[str, str], store: BlobStore | None = None,
        stop_after: int | None = None) -> tuple[list[Drop], Counter, bool]:
    """Answer requests as each holder's behaviour says until nothing is left to do."""
    queue: list = []
    for peer in behaviour:
        queue += fetch.add_holder(peer, 0)
    queue += fetch.start(0)
    drops, served, done, written = [], Counter(), False, 0
    closed: set[str] = set()
    while queue:
        closed |= {e.peer for e in queue if isinstance(e, Drop)}  # the mesh closes at once
        ev = queue.pop(0)
        if isinstance(ev, Request):
            if ev.holder in closed:
                continue  # its connection was closed: the request never reaches it
            served[ev.holder] += 1
            respond(fetch, ev, behaviour[ev.holder], queue)
        elif isinstance(ev, Verified):
            if store is not None:
                store.write_chunk(fetch.manifest, ev.index, ev.data, ev.leaf)
            written += 1
            if stop_after is not None and written >= stop_after:
                return drops, served, done
        elif isinstance(ev, Drop):
            drops.append(ev)
        elif isinstance(ev, Complete):
            done = True
    return drops, served, done


def test_several_holders_share_the_work_and_a_liar_is_dropped(tmp_path):
    store = BlobStore(tmp_path / "files")
    f = Fetch(M, store.begin(M), max_in_flight=2)
    drops, served, done = run(f, {"h1": "honest", "liar": "liar", "h2": "honest"}, store)
    assert done and f.state is FetchState.COMPLETE
    assert [(d.peer, d.verdict) for d in drops] == [("liar", Verdict.BAD_HASH)]
    assert served["h1"] >= 2 and served["h2"] >= 2  # both honest holders did part of it
    assert store.finish(M).read_bytes() == b"".join(CHUNKS)


def test_a_flooding_holder_is_dropped_and_the_file_still_completes():
    f = Fetch(M, max_in_flight=2)
    drops, _, done = run(f, {"flood": "flooder", "ok": "honest"})
    assert done
    assert [(d.peer, d.verdict) for d in drops] == [("flood", Verdict.UNREQUESTED)]
    assert f.verified == set(range(10))


def test_only_liars_left_reports_holders_gone():
    f = Fetch(M)
    queue = f.add_holder("liar", 0)
    seen = []
    while queue:
        ev = queue.pop(0)
        seen.append(ev)
        if isinstance(ev, Request):
            queue += f.on_chunk(ev.holder, ev.index, bytes(len(CHUNKS[ev.index])), TREE.proof(ev.index), 0)
    assert any(isinstance(e, HoldersGone) for e in seen)
    assert f.verified == set() and f.state is FetchState.WAITING


def test_resume_with_a_real_blob_store_refetches_nothing_verified(tmp_path):
    root = tmp_path / "files"
    store = BlobStore(root)
    first = Fetch(M, store.begin(M))
    run(first, {"h": "honest"}, store, stop_after=6)
    del store, first  # "SIGKILL": nothing is closed or flushed by us
    store = BlobStore(root)
    have = store.begin(M)
    assert len(have) == 6
    second = Fetch(M, have)
    _, served, done = run(second, {"h": "honest"}, store)
    assert done and served["h"] == 10 - 6  # not one verified chunk asked again
    assert store.finish(M).read_bytes() == b"".join(CHUNKS)


# ---- serving ------------------------------------------------------------------------------


def test_serving_budget_is_per_peer_and_refills_with_time():
    s = Server(bytes_per_minute=60 * L.MAX_CHUNK_SIZE, burst=2 * L.MAX_CHUNK_SIZE)  # 1 chunk/s
    ev = []
    for i in range(4):
        ev += s.on_request("a", M.sha256, i, L.MAX_CHUNK_SIZE, 0.0)
    assert ev == [Serve("a", M.sha256, 0), Serve("a", M.sha256, 1)]
    assert s.pending("a") == 2
    assert s.next_ready(0.0) == pytest.approx(1.0)
    # another peer has its own budget
    assert s.on_request("b", M.sha256, 0, L.MAX_CHUNK_SIZE, 0.0) == [Serve("b", M.sha256, 0)]
    assert s.poll(0.5) == []
    assert s.poll(1.0) == [Serve("a", M.sha256, 2)]
    assert s.poll(2.0) == [Serve("a", M.sha256, 3)]
    assert s.next_ready(2.0) is None


def test_serving_refuses_what_we_lack_and_drops_a_flood():
    s = Server(max_pending=3, bytes_per_minute=0, burst=L.MAX_CHUNK_SIZE)
    assert s.on_request("a", M.sha256, 0, None, 0) == [Refuse("a", M.sha256, 0, "not_found")]
    s.on_request("a", M.sha256, 0, L.MAX_CHUNK_SIZE, 0)  # served from the burst
    for i in range(1, 4):
        assert s.on_request("a", M.sha256, i, L.MAX_CHUNK_SIZE, 0) == []
    assert s.on_request("a", M.sha256, 3, L.MAX_CHUNK_SIZE, 0) == []  # a repeat is not a new one
    ev = s.on_request("a", M.sha256, 4, L.MAX_CHUNK_SIZE, 0)
    assert [(e.peer, e.verdict) for e in ev] == [("a", Verdict.FLOOD)]
    assert s.pending("a") == 0


def test_serving_is_round_robin_and_cancel_and_forget_work():
    s = Server(bytes_per_minute=60 * CHUNK, burst=L.MAX_CHUNK_SIZE)
    got = []
    for peer in ("a", "b"):
        for i in range(20):
            got += s.on_request(peer, M.sha256, i, CHUNK, 0.0)
    assert Counter(e.peer for e in got) == {"a": 16, "b": 16}  # each its own 1 MiB burst
    s.on_cancel("a", M.sha256, 16)
    assert s.pending("a") == 3
    s.forget("b")
    assert s.pending("b") == 0
    assert [e.index for e in s.poll(60.0)] == [17, 18, 19]


def test_two_greedy_peers_share_one_slow_budget_fairly():
    s = Server(bytes_per_minute=60 * CHUNK, burst=L.MAX_CHUNK_SIZE)
    for peer in ("a", "b"):
        for i in range(L.MAX_PENDING_REQUESTS_PER_PEER):
            s.on_request(peer, M.sha256, i, CHUNK, 0.0)
    out = s.poll(10.0)
    assert Counter(e.peer for e in out) == {"a": 10, "b": 10}


def test_server_refuses_a_burst_below_one_chunk():
    with pytest.raises(ValueError):
        Server(burst=L.MAX_CHUNK_SIZE - 1)


def test_blob_store_import_feeds_a_fetch(tmp_path):
    """A manifest made by the blob store from a local file is one a Fetch can complete."""
    sender = BlobStore(tmp_path / "s")
    data = b"".join(CHUNKS)
    m = sender.import_stream(io.BytesIO(data), "f", "text/plain", CHUNK)
    assert m.root == M.root and m.sha256 == M.sha256


def test_the_window_grows_with_fast_answers_and_shrinks_with_slow_ones_and_timeouts():
    m, chunks, tree = make(60)  # 61 chunks
    f = Fetch(m, max_in_flight=8, timeout=30)
    asked = requests(f.add_holder("a", 0))
    assert [i for _, i in asked] == [0, 1, 2, 3]  # START_IN_FLIGHT_PER_HOLDER

    def reply(index: int, now: float) -> list[int]:
        return [i for _, i in requests(f.on_chunk("a", index, chunks[index], tree.proof(index), now))]

    # answered within FAST_ANSWER_S: one more request each time (the answered slot + one), up to 8
    assert reply(0, 0.1) == [4, 5]
    assert reply(1, 0.1) == [6, 7]
    assert reply(2, 0.1) == [8, 9]
    assert reply(3, 0.1) == [10, 11]
    assert len(f.in_flight("a")) == 8
    assert reply(4, 0.2) == [12]  # at the maximum: one for one
    # a slow answer (asked at 0.1, answered later than FAST_ANSWER_S) halves the window (never
    # below the start): no new request until fewer than 4 are outstanding
    slow = 0.1 + L.FAST_ANSWER_S + 0.5
    assert reply(5, slow) == []
    assert reply(6, slow) == [] and reply(7, slow) == [] and reply(8, slow) == []
    assert f.in_flight("a") == {9, 10, 11, 12}
    assert reply(9, slow) == [13]  # one for one again
    # a timeout sets it back to the start
    f.tick(100.0)
    assert f.in_flight("a") and len(f.in_flight("a")) <= L.START_IN_FLIGHT_PER_HOLDER
