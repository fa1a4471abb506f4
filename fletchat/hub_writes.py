"""The hub's side of the store: accepted messages queued for the writer thread, what is held
for an id or an (origin, seq) slot until it is committed, the ids seen lately, the wait that
lets an acknowledgement mean "stored", and the read-only fault people are told about. Mixed
into ``Hub`` (hub.py), which owns the maps and locks set up in its ``__post_init__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from .acceptance import Held
from .aio import within
from .clock import Stamp
from .events import StoreFailed
from .model import Message
from .outbox import wire
from .store import Record, State, StoreError, StoreFull

log = logging.getLogger("fletchat.hub")

SEEN_IDS_KEPT = 20_000
STORE_WAIT_S = 10.0  # wait_stored gives up (and nothing is acknowledged) after this long


def fault_text(fault: str) -> str:
    """What people are told when the history cannot be written ("" when it can)."""
    if not fault:
        return ""
    return (f"History is read-only: {fault}. Everything stored so far is kept and shown; "
            "free some space (or fix the data folder's permissions) and restart to send.")


class StoredMessages:
    """Mixed into ``Hub``: the queue to the store writer and what it holds until committed."""

    store: Any
    store_error: str
    _writer: Any
    _lock: threading.RLock
    _qlock: threading.Lock
    _seen: OrderedDict[str, bool]
    _queued: dict[str, tuple[Message, bool, int]]
    _queued_slots: dict[tuple[str, int], str]
    _failed: OrderedDict[str, None]
    _origins: set[str]
    _own_ticket: int

    def _publish(self, event: Any) -> None: ...

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything accepted so far is committed (tests, shutdown; not on a loop)."""
        return bool(self._writer.flush(timeout=timeout))

    async def wait_stored(self, ids: tuple[str, ...]) -> None:
        """Return once the accepted ``ids`` are committed; ``StoreError`` if any could not be
        (then acknowledge none of them). The wait runs in a thread, never on the loop."""
        with self._qlock:
            tickets = [self._queued[i][2] for i in ids if i in self._queued]
        if tickets:
            await self._committed_async(max(tickets))
        with self._qlock:
            failed = [i for i in ids if i in self._failed]
        if failed:
            raise StoreFull(self.store.fault or f"{len(failed)} messages were not stored")

    async def _committed_async(self, ticket: int, timeout: float = STORE_WAIT_S) -> None:
        """Wait for the writer to pass ``ticket``: a callback from its thread, no thread here."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def resolve() -> None:
            if not done.done():
                done.set_result(None)

        def committed() -> None:  # on the writer's thread
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(resolve)

        self._writer.when_done(ticket, committed)
        try:
            await within(done, timeout)  # a timer in no context: a tab's page is not held
        except TimeoutError:
            raise StoreError("the history did not store the messages in time") from None

    def _held(self, msg: Message) -> tuple[Held | None, Held | None]:
        """What is held for ``msg``'s id and (origin, seq): queued first, then the store."""
        with self._qlock:
            q = self._queued.get(msg.id)
            s = self._queued.get(self._queued_slots.get((msg.origin, msg.seq), ""))
        by_id = Held(q[0], q[1]) if q is not None else None
        in_slot = Held(s[0], s[1]) if s is not None else None
        if (by_id is None or in_slot is None) and self.store.may_hold(msg.id, msg.origin, msg.seq):
            rec_id, rec_slot = self.store.lookup(msg.id, msg.origin, msg.seq)
            by_id = by_id or (Held(wire(rec_id), rec_id.verified) if rec_id else None)
            in_slot = in_slot or (Held(wire(rec_slot), rec_slot.verified) if rec_slot else None)
        return by_id, in_slot

    def _queue_many(self, taken: Sequence[tuple[Message, bool, tuple[str, ...]]],
                    records: list[Record] | None = None) -> int:
        """Hold each (message, verified, ids it displaces) until committed, in order (the
        unverified rows a verified message replaces are forgotten first), and hand them to the
        writer in one go (``records``, else plain ones); the last one's ticket."""
        with self._qlock:
            for msg, verified, displaced in taken:
                for gone in displaced:
                    self._seen.pop(gone, None)
                self._queued[msg.id] = (msg, verified, 0)
                self._queued_slots[(msg.origin, msg.seq)] = msg.id
                self._remember_locked(msg.id, verified)
        self._origins.update(msg.origin for msg, _, _ in taken)
        last = self._writer.submit_many(records or [
            Record(m, Stamp.decode(m.hlc), m.seq, verified=v) for m, v, _ in taken])
        with self._qlock:
            for ticket, (msg, verified, _) in enumerate(taken, last - len(taken) + 1):
                if self._queued.get(msg.id, (None,))[0] is msg:
                    self._queued[msg.id] = (msg, verified, ticket)
        return last

    # ---- our own messages (Hub.post): out to peers first, committed by the writer after ----
    def _queue_own(self, msg: Message, stamp: Stamp, state: State) -> None:
        """A message written here, stamped and numbered: held and queued like a received one,
        stored as ``state`` (sent if handed to a connection) and put in the outbox."""
        try:
            self._own_ticket = self._queue_many(
                [(msg, True, ())], [Record(msg, stamp, msg.seq, state, verified=True, local=True)])
        except StoreError:  # not journaled, not queued: forget it was ever held
            with self._qlock:
                self._queued.pop(msg.id, None)
                self._queued_slots.pop((msg.origin, msg.seq), None)
                self._seen.pop(msg.id, None)
            raise

    def _stored_long_ago(self, msg: Message, seq: int) -> bool:
        """``msg``'s id was stored before (no longer in the seen ids): SQLite is asked only when
        the store's filter cannot rule it out (``seq``, our next, is a free slot)."""
        return (self.store.may_hold(msg.id, msg.origin, seq)
                and self.store.get(msg.id) is not None)

    def _after_own(self, timeout: float = STORE_WAIT_S) -> None:
        """Block (a worker thread, never the loop) until every message ``post`` queued so far is
        committed or failed: outbox marks, reads and catch-up answers then see its row."""
        self._writer.wait(self._own_ticket, timeout, now=False)

    def _committed(self, batch: list[Record], results: list[bool] | None) -> None:
        """The writer finished a batch (on its thread); ``results`` is None if it failed: then
        its messages written here are reported as not saved (they may have gone out already)."""
        with self._qlock:
            for rec in batch:
                if self._queued.get(rec.msg.id, (None,))[0] is rec.msg:
                    del self._queued[rec.msg.id]
                    slot = (rec.msg.origin, rec.msg.seq or 0)
                    if self._queued_slots.get(slot) == rec.msg.id:  # not taken over since
                        del self._queued_slots[slot]
                if results is None:
                    self._seen.pop(rec.msg.id, None)
                    self._failed[rec.msg.id] = None
            while len(self._failed) > SEEN_IDS_KEPT:
                self._failed.popitem(last=False)
        if results is None:
            own = tuple(rec.msg.id for rec in batch if rec.local)
            if self.store.fault or own:
                self._storage_fault(self.store.fault, own)

    def _seen_verified(self, msg_id: str) -> bool | None:
        with self._qlock:
            return self._seen.get(msg_id)

    def _remember_locked(self, msg_id: str, verified: bool) -> None:
        self._seen[msg_id] = verified
        self._seen.move_to_end(msg_id)
        if len(self._seen) > SEEN_IDS_KEPT:
            self._seen.popitem(last=False)

    # ---- storage faults ----
    def _storage_fault(self, fault: str, not_saved: tuple[str, ...] = ()) -> None:
        """Tell people once that the history went read-only, and about every message written
        here that could not be saved (``StoreFailed.not_saved``)."""
        with self._lock:
            first = bool(fault) and not self.store_error
            if first:
                self.store_error = fault_text(fault)
            reason = self.store_error or (
                f"{len(not_saved)} message(s) could not be saved on this device")
        if first:
            log.error("%s", self.store_error)
        if first or not_saved:
            if not_saved:
                log.error("not saved on this device: %s", ", ".join(not_saved))
            self._publish(StoreFailed(reason, time.time(), not_saved))
