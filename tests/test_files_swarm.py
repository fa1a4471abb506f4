"""Receivers serve each other (docs/protocol.md, "Files", ``have``): the ``have`` frame, the fetch
state machine with partial holders (asked only for what they announced; the origin asked first for
what nobody else has; a liar dropped), and the service end to end over in-memory links: a
receiver holding chunks 0..k serves exactly those, four receivers swap chunks so the origin sends
fewer than four copies, a partial holder that serves a bad chunk loses its connection, receivers
left with partial copies after the sender goes say nobody has the file (and finish when it comes
back), and a peer that asks during the final hash check is told when the file is complete."""

from __future__ import annotations

import asyncio
import io
import random
import threading
from collections import Counter

import pytest

from fletchat.files import frames as F
from fletchat.files import limits as L
from fletchat.files.merkle import verify
from fletchat.files.serve import Server
from fletchat.files.service import NOBODY
from fletchat.files.transfer import Drop, Fetch, FetchState, HoldersGone, Request, Verdict, Verified
from tests import test_files_service as svc
from tests.test_files_service import connect, liar
from tests.test_files_transfer import CHUNKS, TREE, M, answer, make, requests

service = svc.service  # the fixture that starts and stops services
CHUNK = L.MIN_CHUNK_SIZE
SHA = "ab" * 32


# ---- the frame ----
def test_have_frames_round_trip_and_split_into_bounded_frames():
    frames = F.haves(SHA, set(range(0, 400, 2)))  # 200 runs of one chunk
    assert len(frames) == 5 and all(len(f.ranges) <= F.MAX_HAVE_RANGES for f in frames)
    assert all(len(F.encode(f)) <= F.MAX_TEXT_FRAME_BYTES for f in frames)
    assert sorted(i for f in frames for i in F.decode(F.encode(f)).indexes()) == list(range(0, 400, 2))
    assert F.haves(SHA, [3, 4, 5, 9]) == [F.Have(SHA, ((3, 3), (9, 1)))]
    assert F.haves(SHA, []) == [F.Have(SHA, ())]  # "I fetch it too, nothing yet"


@pytest.mark.parametrize("ranges", [
    "x", [[0]], [[0, 0]], [[-1, 2]], [[L.MAX_CHUNKS - 1, 2]], [[0, True]], [[0, 1]] * (F.MAX_HAVE_RANGES + 1),
    [[4, 2], [0, 1]], [[0, 3], [2, 1]],  # unsorted, overlapping

])
def test_bad_have_frames_are_refused(ranges):
    raw = F._text({"type": "have", "sha256": SHA, "ranges": ranges})
    with pytest.raises(F.FrameError):
        F.decode(raw)


def test_query_says_fetching_only_when_it_is_and_an_earlier_query_still_decodes():
    assert F.decode(F.encode(F.Query(SHA, fetching=True))) == F.Query(SHA, True)
    assert F.encode(F.Query(SHA)) == '{"v":1,"type":"query","sha256":"' + SHA + '"}'  # as before
    with pytest.raises(F.FrameError):
        F.decode(F._text({"type": "query", "sha256": SHA, "fetching": 1}))


# ---- the state machine ----
def test_a_partial_holder_is_asked_only_for_chunks_it_announced():
    f = Fetch(M)
    events = f.add_holder("mid", 0, chunks=[2, 5, 99])  # 99: beyond the file, ignored
    assert sorted(requests(events)) == [("mid", 2), ("mid", 5)]
    assert requests(answer(f, "mid", 2)) == []  # nothing else announced
    assert requests(f.add_holder("mid", 0, chunks=[7])) == [("mid", 7)]  # announcements add up


def test_the_origin_is_asked_first_for_what_no_partial_holder_has():
    f = Fetch(M)
    f.add_holder("mid", 0, chunks=range(5))
    events = f.add_holder("origin", 0)
    from_origin = [i for p, i in requests(events) if p == "origin"]
    assert from_origin and all(i >= 5 for i in from_origin)
    assert {i for p, i in requests(f.tick(0)) if p == "mid"} | set(f.in_flight("mid")) <= set(range(5))


def test_partial_holders_never_crowd_out_the_origin():
    f = Fetch(M, max_holders=2)
    f.add_holder("p1", 0, chunks=[0])
    f.add_holder("p2", 0, chunks=[1])
    f.add_holder("p3", 0, chunks=[2])  # a spare
    assert set(f.holders) == {"p1", "p2"}
    assert requests(f.add_holder("origin", 0))  # admitted beyond the cap: the others lack chunks
    assert set(f.holders) == {"p1", "p2", "origin"}
    f.remove_holder("origin", 0)
    f.add_holder("o2", 0)  # admitted: only partial holders were left
    f.remove_holder("p1", 0)
    assert "o2" in f.holders and "p3" not in f.holders  # still at the cap with o2


def test_spread_starts_requests_at_the_offset_and_wraps():
    big, _, _ = make(40)  # 41 chunks
    f = Fetch(big, max_in_flight=4)
    f.spread(38, 0)
    asked = [i for _, i in requests(f.add_holder("origin", 0))]
    # each one of the first MIX (8) chunks from the offset not asked yet, wrapping: 38 ... 7
    assert len(set(asked)) == 4 and set(asked) <= {38, 39, 40, *range(8)}
    g = Fetch(M)
    g.spread(8, 0)
    todo, asked = requests(g.add_holder("origin", 0)), []
    while todo:  # answered one by one, every chunk is asked exactly once
        _, i = todo.pop(0)
        asked.append(i)
        todo += requests(answer(g, "origin", i))
    assert sorted(asked) == list(range(10)) and len(g.verified) == 10


def test_with_a_stripe_the_origin_is_asked_only_for_ours_until_the_fellows_go_quiet():
    big, chunks, tree = make(40)  # 41 chunks
    f = Fetch(big, max_in_flight=16)
    f.stripe(1, 4, 0)  # four fetchers know of each other; we rank second

    def reply(peer, i, now):
        return f.on_chunk(peer, i, chunks[i], tree.proof(i), now)

    todo, asked = requests(f.add_holder("origin", 0)), []
    while todo:  # the origin answers at once: we drain our stripe
        _, i = todo.pop(0)
        asked.append(i)
        todo += [r for r in requests(reply("origin", i, 0.1))]
    assert sorted(asked) == list(range(1, 41, 4))  # ours only, each once
    assert requests(f.tick(0.1 + L.STRIPE_IDLE_S / 4)) == []  # the fellows bring the rest
    # a fellow announces chunks: asked of it, not of the origin
    got = requests(f.add_holder("fellow", 0.2, chunks=[0, 2, 3]))
    assert sorted(got) == [("fellow", 0), ("fellow", 2), ("fellow", 3)]
    for _, i in got:
        assert requests(reply("fellow", i, 0.3)) == []
    # it keeps announcing, slowly: once our stripe has been complete as long as it took (0.1 s),
    # and at least STRIPE_IDLE_S, the origin is asked for the others' chunks too
    late = requests(f.add_holder("fellow", 0.1 + L.STRIPE_IDLE_S, chunks=[6]))
    assert ("fellow", 6) in late
    assert {p for p, i in late if i != 6} == {"origin"} and all(i % 4 != 1 for _, i in late)
    # a stripe that took long: the wait after it is as long (the fellows may be as slow as we were)
    w = Fetch(big, max_in_flight=16)
    w.stripe(1, 4, 0)
    todo, t, step = requests(w.add_holder("origin", 0)), 0.0, 0
    while todo:
        p, i = todo.pop(0)
        t, step = t + 0.2, step + 1  # our 10 chunks, one every 0.2 s: our stripe took 2 s
        todo += [r for r in requests(w.on_chunk(p, i, chunks[i], tree.proof(i), t))
                 if r[0] == "origin"]
        w.add_holder("fellow", t, chunks=[2 * step])  # the fellows keep announcing theirs
    assert not [r for r in requests(w.add_holder("fellow", t + 1.5, chunks=[30])) if r[0] == "origin"]
    assert any(p == "origin" for p, _ in requests(w.add_holder("fellow", t + 2.0, chunks=[32])))
    # fellows that go quiet: the origin is asked for anything STRIPE_IDLE_S after the last news
    q = Fetch(big, max_in_flight=4)
    q.stripe(2, 4, 0)
    first = requests(q.add_holder("origin", 0))
    assert len(first) == 4 and all(i % 4 == 2 for _, i in first)
    q.add_holder("fellow", 0.1, chunks=[0])  # in flight from the fellow from now on
    for _, i in first:  # our stripe is not complete: only its chunks while the fellow is fresh
        assert all(j % 4 == 2 for p, j in requests(q.on_chunk("origin", i, chunks[i],
                                                                tree.proof(i), 0.2)) if p == "origin")
    i = min(q.in_flight("origin"))  # nothing from the fellow since 0.1: the next pick is free
    new = requests(q.on_chunk("origin", i, chunks[i], tree.proof(i), 0.1 + L.STRIPE_IDLE_S))
    assert any(p == "origin" and j % 4 != 2 for p, j in new)
    # a fellow that completed is asked for anything, stripe or not
    g = Fetch(big, max_in_flight=16)
    g.stripe(0, 2, 0)
    g.add_holder("done", 0, chunks=[5])
    g.add_holder("done", 0)  # holds the whole file now
    assert {i % 2 for _, i in requests(g.tick(0.1))} | {i % 2 for i in g.in_flight("done")} == {0, 1}
    # alone again (n = 1): no stripe
    h = Fetch(big, max_in_flight=4)
    h.stripe(0, 1, 0)
    assert len(requests(h.add_holder("origin", 0))) == 4


def test_a_partial_holder_with_a_bad_chunk_is_dropped_and_others_take_over():
    f = Fetch(M)
    f.add_holder("mid", 0, chunks=[0, 1])
    f.add_holder("origin", 0)
    assert 0 in f.in_flight("mid")
    events = answer(f, "mid", 0, data=bytes(len(CHUNKS[0])))
    assert isinstance(events[0], Drop) and events[0].verdict is Verdict.BAD_HASH
    assert "mid" not in f.holders and f.add_holder("mid", 1, chunks=[0]) == []  # never again
    events = f.tick(1)
    assert not any(isinstance(e, Request) and e.holder == "mid" for e in events)


def test_a_verified_chunk_carries_its_proof_for_serving_on():
    f = Fetch(M)
    f.add_holder("origin", 0)
    (v,) = [e for e in answer(f, "origin", 0) if isinstance(e, Verified)]
    assert verify(bytes.fromhex(M.root), 0, M.chunk_count, v.leaf, v.proof)
    assert v.proof == tuple(TREE.proof(0))


def test_partial_holders_lacking_chunks_are_holders_gone_until_someone_has_the_rest():
    f = Fetch(M)  # 10 chunks
    f.add_holder("mid", 0, chunks=range(4))
    f.add_holder("origin", 0)
    answer(f, "origin", f.in_flight("origin").pop())
    events = f.remove_holder("origin", 1)  # the sender left: nobody has chunks 4..9 but one
    gone = [e for e in events if isinstance(e, HoldersGone)]
    assert gone == [HoldersGone(M.sha256, 10 - 4 - 1)] and f.state is FetchState.WAITING
    assert f.holders_gone and not [e for e in f.tick(2) if isinstance(e, HoldersGone)]  # once
    for i in list(f.in_flight("mid")):  # what the partial holder has is still fetched
        answer(f, "mid", i, now=2)
    assert set(range(4)) <= f.verified and f.state is FetchState.WAITING
    # a partial holder announcing the rest resumes it
    events = f.add_holder("mid2", 3, chunks=range(10))
    assert requests(events) and not f.holders_gone and f.state is FetchState.FETCHING
    assert not any(isinstance(e, HoldersGone) for e in events)
    # ... and when that one goes too, it is said again; a whole-file holder resumes it
    assert [e for e in f.remove_holder("mid2", 4) if isinstance(e, HoldersGone)]
    events = f.add_holder("origin2", 5)
    assert {p for p, _ in requests(events)} == {"origin2"} and f.state is FetchState.FETCHING


def test_adding_a_partial_holder_does_not_say_holders_gone_before_the_next_tick():
    f = Fetch(M)
    events = f.add_holder("mid", 0, chunks=[0])  # the origin's holds may be on its way
    assert requests(events) == [("mid", 0)] and not any(isinstance(e, HoldersGone) for e in events)
    assert [e for e in f.tick(1) if isinstance(e, HoldersGone)] == [HoldersGone(M.sha256, 9)]
    assert not [e for e in f.tick(2) if isinstance(e, HoldersGone)]  # once
    assert requests(f.add_holder("origin", 3))


# ---- the service ----
def make_data(n_chunks: int) -> bytes:
    return random.Random(n_chunks).randbytes(CHUNK * n_chunks + 33)


class Probe:
    """A raw files connection that records what it is sent."""

    def __init__(self) -> None:
        self.got: list = []
        self.closed: tuple[int, str] | None = None

    async def send(self, frame) -> None:
        self.got.append(F.decode(frame))

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_a_receiver_holding_chunks_0_to_k_serves_those_and_refuses_the_others(tmp_path, service):
    from tests.timing import eventually

    data = make_data(12)
    origin = service(tmp_path, "origin")
    m = origin.store.import_stream(io.BytesIO(data), "a.bin", "application/octet-stream", CHUNK)
    mid = service(tmp_path, "mid")
    ab, _ = await connect("origin", origin, "mid", mid, [])
    k = 3
    ab.tamper = lambda fr: fr if not isinstance(fr, bytes) or F.decode(fr).index <= k else None
    result = await mid.fetch(m, ["origin"])
    await eventually(lambda: all(mid.swarm.proof(m.sha256, i) for i in range(k + 1)), "chunks 0..k in")
    probe = Probe()
    await mid.attach("probe", probe)
    await mid.on_frame("probe", F.encode(F.Query(m.sha256)))  # an earlier version's: no have
    await mid.on_frame("probe", F.encode(F.Query(m.sha256, fetching=True)))
    for i in range(k + 3):
        await mid.on_frame("probe", F.encode(F.Get(m.sha256, i, CHUNK)))
    await eventually(lambda: len([g for g in probe.got if isinstance(g, F.Chunk | F.NoChunk)]) == k + 3,
                     "every request answered")
    holds = [g for g in probe.got if isinstance(g, F.Holds | F.Have)]
    # not the whole file, but these chunks, verified (told only to a query that says "fetching")
    assert holds == [F.Holds(m.sha256, False), F.Holds(m.sha256, False), F.Have(m.sha256, ((0, k + 1),))]
    chunks = {g.index: g for g in probe.got if isinstance(g, F.Chunk)}
    assert sorted(chunks) == list(range(k + 1))
    root = bytes.fromhex(m.root)
    from fletchat.files.merkle import leaf_hash

    for i, c in chunks.items():
        assert bytes(c.data) == data[i * CHUNK:(i + 1) * CHUNK]
        assert verify(root, i, m.chunk_count, leaf_hash(c.data), c.proof)
    refused = sorted(g.index for g in probe.got if isinstance(g, F.NoChunk))
    assert refused == [k + 1, k + 2] and probe.closed is None
    assert not result.done()


async def _four_receivers_fetch(tmp_path, service, ranked: bool) -> tuple[Counter, int]:
    """An origin that serves each receiver 16 chunks at once, then 8 a second (the receivers,
    all connected to each other, are faster); four fetch one 48-chunk file. With ``ranked`` they
    know their peer ids (the files lane sets ``me``). The chunk frames each peer sent, and the
    file's chunk count."""
    data = make_data(48)
    log: list = []
    origin = service(tmp_path, "origin", server=Server(bytes_per_minute=8 * CHUNK * 60,
                                                       burst=L.MAX_CHUNK_SIZE))
    m = origin.store.import_stream(io.BytesIO(data), "a.bin", "application/octet-stream", CHUNK)
    names = [f"r{i}" for i in range(4)]
    rs = {n: service(tmp_path, n, rng=random.Random(i)) for i, n in enumerate(names)}
    for n, s in rs.items():
        if ranked:
            s.me = n
        await connect("origin", origin, n, s, log)
    for a in range(4):
        for b in range(a + 1, 4):
            await connect(names[a], rs[names[a]], names[b], rs[names[b]], log)
    results = [await s.fetch(m, ["origin"]) for s in rs.values()]
    paths = await asyncio.wait_for(asyncio.gather(*results), 60)
    assert all(p.read_bytes() == data for p in paths)
    return Counter(p for p, f in log if isinstance(f, bytes)), m.chunk_count


async def test_four_receivers_swap_chunks_so_the_origin_sends_fewer_than_four_copies(tmp_path, service):
    chunks_from, count = await _four_receivers_fetch(tmp_path, service, ranked=False)
    assert sum(chunks_from[f"r{i}"] for i in range(4)) > 0  # receivers served each other
    assert chunks_from["origin"] < 4 * count


async def test_four_ranked_receivers_take_about_one_copy_from_the_origin(tmp_path, service):
    """With their peer ids known, fellow fetchers split the origin's chunks into stripes: the
    origin sends each chunk about once or twice, not three times."""
    chunks_from, count = await _four_receivers_fetch(tmp_path, service, ranked=True)
    # measured here: 69-79 chunk frames from the origin for 49 chunks (r0 starts alone and takes
    # some before it knows the others); without stripes (``me`` unset) 140-151
    assert chunks_from["origin"] < 2 * count, chunks_from


async def test_a_partial_holder_that_serves_a_bad_chunk_loses_its_connection(tmp_path, service):
    data = make_data(48)
    origin = service(tmp_path, "origin", server=Server(bytes_per_minute=4 * CHUNK * 60,
                                                       burst=L.MAX_CHUNK_SIZE))
    m = origin.store.import_stream(io.BytesIO(data), "a.bin", "application/octet-stream", CHUNK)
    good = service(tmp_path, "good", rng=random.Random(1))
    bad = service(tmp_path, "bad", rng=random.Random(2))
    await connect("origin", origin, "good", good, [])
    await connect("origin", origin, "bad", bad, [])
    bad_to_good, good_to_bad = await connect("bad", bad, "good", good, [])
    bad_to_good.tamper = liar
    results = [await good.fetch(m, ["origin"]), await bad.fetch(m, ["origin"])]
    assert (await asyncio.wait_for(results[0], 60)).read_bytes() == data
    assert good_to_bad.closed == (1008, "chunk failed its hash")  # good closed its link to bad
    await asyncio.wait_for(results[1], 60)


async def test_receivers_left_with_partial_copies_say_nobody_has_it_and_finish_when_it_is_back(
        tmp_path, service):
    from tests.timing import eventually

    data = make_data(12)  # 13 chunks
    log: list = []
    origin = service(tmp_path, "origin")
    m = origin.store.import_stream(io.BytesIO(data), "a.bin", "application/octet-stream", CHUNK)
    events: dict[str, list] = {"r1": [], "r2": []}
    rs = {n: service(tmp_path, n, events[n], rng=random.Random(i)) for i, n in enumerate(events)}
    k = 3  # the origin's chunks beyond k never arrive: then it leaves
    for n, s in rs.items():
        to_r, _ = await connect("origin", origin, n, s, log)
        to_r.tamper = lambda fr: fr if not isinstance(fr, bytes) or F.decode(fr).index <= k else None
    await connect("r1", rs["r1"], "r2", rs["r2"], log)
    results = {n: await s.fetch(m, ["origin"]) for n, s in rs.items()}
    await eventually(lambda: all(s.swarm.proof(m.sha256, i) for s in rs.values() for i in range(k + 1)),
                     "chunks 0..k in at both")
    fetches = {n: s._jobs[m.sha256].fetch for n, s in rs.items()}
    await eventually(lambda: "r2" in fetches["r1"].holders and "r1" in fetches["r2"].holders,
                     "each a partial holder for the other")  # (their chunks 0..k: none missing)
    for n, s in rs.items():
        await s.detach("origin")
        await origin.detach(n)
    for n in rs:
        await eventually(lambda n=n: events[n] and events[n][-1].kind == "waiting", f"{n} says nobody has it")
        assert events[n][-1].reason == NOBODY
    assert not any(r.done() for r in results.values())
    # the sender is back (for r1 only): r1 finishes, tells r2 it holds the file, r2 finishes
    await connect("origin", origin, "r1", rs["r1"], log)
    paths = await asyncio.wait_for(asyncio.gather(*results.values()), 60)
    assert all(p.read_bytes() == data for p in paths)
    assert all(e[-1].kind == "done" for e in events.values())


async def test_a_peer_that_asks_during_the_final_hash_check_is_told_when_the_file_is_complete(
        tmp_path, service):
    from tests.timing import eventually

    data = make_data(4)
    origin = service(tmp_path, "origin")
    m = origin.store.import_stream(io.BytesIO(data), "a.bin", "application/octet-stream", CHUNK)
    me = service(tmp_path, "me")
    await connect("origin", origin, "me", me, [])
    checking, go_on = threading.Event(), threading.Event()
    finish = me.store.finish

    def slow_finish(manifest):  # runs on the files lane's thread
        checking.set()
        go_on.wait(30)
        return finish(manifest)

    me.store.finish = slow_finish
    result = await me.fetch(m, ["origin"])
    await eventually(checking.is_set, "the final hash check started")
    probe = Probe()
    await me.attach("probe", probe)
    await me.on_frame("probe", F.encode(F.Query(m.sha256)))  # an earlier version's query
    await eventually(lambda: F.Holds(m.sha256, False) in probe.got, "answered: not yet")
    go_on.set()
    await asyncio.wait_for(result, 30)
    await eventually(lambda: F.Holds(m.sha256, True) in probe.got, "told once the file is complete")
    assert probe.closed is None
