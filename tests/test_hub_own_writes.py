"""Our own messages go out before their insert commits (issue 11, live delivery): ``Hub.post``
stamps and numbers a message, shows it and hands it to the LAN, and the store writer commits it
with the next batch. Held in memory until then (history, outbox, catch-up see it at once); acks
that arrive first still mark it delivered; a failed insert reaches the person (``StoreFailed``,
the row "not saved on this device") and loses nothing already stored."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from fletchat.clock import HLC
from fletchat.events import Delivered, StoreFailed
from fletchat.headless import event_line
from fletchat.hub import Hub, HubSession
from fletchat.model import Message, Peer
from fletchat.store import State, Store
from tests.test_hub import RecordingTransport


def remote(text: str, seq: int, origin: str = "peer-b") -> Message:
    m = Message.chat("Bob", text, origin)
    return replace(m, hlc=HLC(origin).now().encode(), seq=seq)


class HeldWriter:
    """Holds the store's batch inserts until ``release()``: what happens before the commit."""

    def __init__(self, store: Store) -> None:
        self.gate = threading.Event()
        self.calls = 0
        self._add_many = store.add_many
        store.add_many = self._held  # type: ignore[method-assign]

    def _held(self, records):
        self.calls += 1
        assert self.gate.wait(10), "the test never released the writer"
        return self._add_many(records)

    def release(self) -> None:
        self.gate.set()


def open_hub(path, **kw) -> tuple[Hub, RecordingTransport, list]:
    transport = RecordingTransport()
    hub = Hub("me", store=Store.open(path), transport=transport, **kw)
    events: list = []
    hub.add_listener(events.append)
    return hub, transport, events


def wait_for(check, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_a_message_goes_out_and_is_shown_before_its_insert_commits(tmp_path):
    hub, transport, events = open_hub(tmp_path / "h.db")
    held = HeldWriter(hub.store)
    ann = HubSession(hub, key="k")
    ann.join("Ann")
    sent = ann.send("hello before the commit")
    assert sent is not None and sent.seq == 2  # the join is seq 1
    joined = next(e for e in events if isinstance(e, Message))
    assert [m.id for m, _ in transport.calls] == [joined.id, sent.id]  # out to the LAN
    assert sent in events  # shown to local sessions
    assert hub.store.get(sent.id) is None  # not committed yet...
    assert sent.id in {m.id for m in hub.history()}  # ...but history has it
    assert sent.id in hub.pending_ids()  # ...and so does the outbox
    held.release()
    assert hub.flush()
    rec = hub.store.get(sent.id)
    assert rec is not None and rec.seq == 2 and rec.state is State.PENDING and rec.verified
    assert sent.id in hub.pending_ids()
    hub.close()


def test_numbering_continues_after_a_restart(tmp_path):
    path = tmp_path / "h.db"
    hub, _, _ = open_hub(path)
    s = HubSession(hub, key="k")
    s.join("Ann")
    first = [s.send(f"m{i}") for i in range(3)]
    assert [m.seq for m in first] == [2, 3, 4]
    hub.close()
    again, _, _ = open_hub(path)
    s = HubSession(again, key="k")
    s.join("Ann")
    assert s.send("after").seq == 6
    assert again.flush() and again.store.have_summary() == {"me": 6}
    again.close()


def test_a_receipt_before_the_commit_still_marks_delivered(tmp_path):
    hub, _, events = open_hub(tmp_path / "h.db")
    hub.peer_up(Peer("peer-b", "Bob"))
    held = HeldWriter(hub.store)
    ann = HubSession(hub, key="k")
    ann.join("Ann")
    sent = ann.send("acked quickly")
    hub.acked("peer-b", (sent.id,))  # the peer stored it before we did
    time.sleep(0.1)
    assert not [e for e in events if isinstance(e, Delivered)]  # the mark waits for our row
    held.release()
    assert wait_for(lambda: any(isinstance(e, Delivered) and sent.id in e.ids for e in events))
    rec = hub.store.get(sent.id)
    assert rec is not None and rec.state is State.DELIVERED
    assert sent.id not in hub.pending_ids()
    hub.close()


def test_a_message_sent_with_peers_connected_is_stored_as_sent(tmp_path):
    hub, _, _ = open_hub(tmp_path / "h.db")
    hub.peer_up(Peer("peer-b", "Bob"))
    ann = HubSession(hub, key="k")
    ann.join("Ann")
    sent = ann.send("to a connected peer")
    assert hub.flush()
    assert hub.store.get(sent.id).state is State.SENT
    assert [r.msg.id for r in hub.store.pending()][-1] == sent.id  # still in the outbox
    hub.close()


def test_catch_up_answers_include_a_message_not_committed_yet(tmp_path):
    hub, _, _ = open_hub(tmp_path / "h.db")
    hub._writer.interval = 0.3  # a slow batch: the answer must wait for it, not miss the message
    ann = HubSession(hub, key="k")
    ann.join("Ann")
    sent = ann.send("for a newcomer")
    assert sent.id in {m.id for m in hub.missing({}, None, 100, peer="peer-c")}
    hub.close()


def test_an_id_stored_long_ago_is_still_a_duplicate(tmp_path):
    path = tmp_path / "h.db"
    hub, _, _ = open_hub(path)
    s = HubSession(hub, key="k")
    s.join("Ann")
    old = s.send("once")
    hub.close()
    again, transport, _ = open_hub(path)  # a new process: the id is no longer in memory
    assert wait_for(lambda: again.store.known.ready)
    assert again.post(old) is None and not transport.calls
    again.close()


def test_a_failed_insert_reaches_the_person_and_loses_nothing_stored(tmp_path):
    path = tmp_path / "h.db"
    hub, transport, events = open_hub(path)
    ann = HubSession(hub, key="k")
    ann.join("Ann")
    kept = [ann.send(f"kept {i}") for i in range(5)]
    assert hub.flush()
    held = HeldWriter(hub.store)
    lost = [ann.send(f"goes out, then the disk fills {i} " + "x" * 3000) for i in range(3)]
    got = hub.receive(remote("from bob", 1), "peer-b", verified=True)
    out = {m.id for m, _ in transport.calls}
    assert all(m.id in out for m in lost)  # they went out before the commit
    pages = hub.store._con.execute("PRAGMA page_count").fetchone()[0]
    hub.store._con.execute(f"PRAGMA max_page_count = {pages}")  # no room for more rows
    held.release()
    hub.flush()
    faults = [e for e in events if isinstance(e, StoreFailed)]
    assert faults and "disk is full" in faults[0].reason
    assert {i for f in faults for i in f.not_saved} == {m.id for m in lost}
    assert event_line(faults[0]) == {"event": "error", "error": faults[0].reason,
                                     "not_saved": list(faults[0].not_saved)}
    shown = {m.id for m in hub.history(limit=100)}
    assert not shown & {m.id for m in lost}  # not kept as if saved
    assert not hub.pending_ids() & {m.id for m in lost}
    assert got.message.id not in shown  # never acknowledged, its sender keeps it
    hub.close()
    again, _, _ = open_hub(path)  # room again: what went out is stored from the journal
    assert {m.id for m in kept} | {m.id for m in lost} <= {m.id for m in again.history(limit=100)}
    again.close()


KILLED_MID_BATCH = """
import os, signal, sys, threading
from fletchat.hub import Hub, HubSession
from fletchat.store import Store
hub = Hub("me", store=Store.open(sys.argv[1]))
s = HubSession(hub, key="k")
s.join("Ann")
hub.flush()
hub.store.add_many = lambda records: threading.Event().wait()  # the commit never comes
for i in range(5):
    print(s.send(f"sent, never committed {i}").id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_messages_sent_before_a_crash_are_stored_at_the_next_start(tmp_path):
    path = tmp_path / "h.db"
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_BATCH, str(path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    sent = proc.stdout.split()
    assert len(sent) == 5
    hub, _, _ = open_hub(path)
    s = HubSession(hub, key="k")
    assert {m.id for m in hub.history()} >= set(sent)  # replayed when the store opened
    assert [hub.store.get(i).seq for i in sent] == [2, 3, 4, 5, 6]
    s.join("Ann")
    assert s.send("after the restart").seq == 8  # no seq given twice
    assert hub.pending_ids() >= set(sent)  # still waiting for a peer to confirm them
    hub.close()
    assert not (tmp_path / "h.db.sending").read_bytes()  # emptied once committed


def test_without_a_data_dir_the_outbox_sees_a_posted_message_at_once():
    hub = Hub("me")
    ann = HubSession(hub, key="k")
    ann.join("Ann")
    sent = ann.send("memory only")
    assert sent.seq == 2 and sent.id in hub.pending_ids()
    hub.acked("peer-b", (sent.id,))
    assert wait_for(lambda: sent.id not in hub.pending_ids())
    hub.close()


def test_a_flood_of_summaries_and_refusals_is_one_outbox_job(tmp_path: Path):
    """Each ``have`` frame's summary (and each refusal) was a job on the outbox's one worker:
    a peer's flood queued thousands, and a tab opening a channel waited behind them. Now they
    wait coalesced: one job, and of each peer's summaries only the newest."""
    hub = Hub("me-peer", store=Store.open(tmp_path / "h.db"))
    try:
        me = HubSession(hub, device="headless")
        me.join("Ann")
        sent = me.send("one of mine")
        assert sent is not None
        calls: list[tuple[str, dict[str, int]]] = []
        real = hub.outbox.peer_has
        hub.outbox.peer_has = lambda peer, summary: (calls.append((peer, summary)),
                                                     real(peer, summary))
        refusals: list[tuple[str, tuple]] = []
        real_refused = hub.outbox.refused
        hub.outbox.refused = lambda peer, marks: (refusals.append((peer, marks)),
                                                  real_refused(peer, marks))
        release = threading.Event()
        busy = hub._bg.submit(release.wait, 10.0)  # the worker, busy meanwhile
        for i in range(2000):
            hub.peer_has("peer-b", {"peer-b": i})
        hub.peer_has("peer-c", {"me-peer": sent.seq or 0})
        hub.refused("peer-d", ((sent.id, "not today"),))
        assert hub._bg._work_queue.qsize() <= 1, "the flood queued a job each"
        release.set()
        busy.result(10.0)
        hub._bg.submit(lambda: None).result(10.0)  # one worker: everything before it is done
        assert calls == [("peer-b", {"peer-b": 1999}), ("peer-c", {"me-peer": sent.seq})]
        assert refusals == [("peer-d", ((sent.id, "not today"),))]
        assert sent.id not in hub.pending_ids()  # peer-c's summary covers it: delivered
    finally:
        hub.close()


async def test_callers_share_an_outbox_question_not_yet_begun(tmp_path: Path):
    """A hundred tabs opening channels asked the outbox worker a hundred times; those asked
    while one question still waits share it (its answer is read after they all asked)."""
    import asyncio

    hub = Hub("me-peer", store=Store.open(tmp_path / "h.db"))
    try:
        me = HubSession(hub, device="headless")
        me.join("Ann")
        release = threading.Event()
        busy = hub._bg.submit(release.wait, 10.0)
        first = asyncio.ensure_future(hub.pending_ids_async())
        await asyncio.sleep(0)
        sent = me.send("one of mine")  # asked after the first, before the worker is free
        assert sent is not None
        rest = [asyncio.ensure_future(hub.pending_ids_async()) for _ in range(99)]
        await asyncio.sleep(0)
        assert hub._bg._work_queue.qsize() <= 2  # the shared question (and the writer's)
        rest[0].cancel()  # one tab gone: the others still get their answer
        release.set()
        busy.result(10.0)
        answers = await asyncio.wait_for(asyncio.gather(first, *rest[1:]), 10.0)
        assert all(sent.id in a for a in answers)
    finally:
        hub.close()


def test_a_failed_receipts_job_does_not_stop_the_next(tmp_path: Path):
    """The coalesced job takes what is due before it waits for the writer: a job that failed
    in that wait left the due summaries in place, and with them no new job was ever sent."""
    hub = Hub("me-peer", store=Store.open(tmp_path / "h.db"))
    try:
        calls: list[dict[str, int]] = []
        hub.outbox.peer_has = lambda peer, summary: calls.append(summary)
        real_after_own, failures = hub._after_own, []

        def after_own_once_broken(*args):
            if not failures:
                failures.append(1)
                raise RuntimeError("the writer's wait broke")
            return real_after_own(*args)

        hub._after_own = after_own_once_broken
        hub.peer_has("peer-b", {"peer-b": 1})
        hub._bg.submit(lambda: None).result(10.0)
        hub.peer_has("peer-b", {"peer-b": 2})
        hub._bg.submit(lambda: None).result(10.0)
        assert failures and calls == [{"peer-b": 2}]
    finally:
        hub.close()
