"""Null objects for the hub: history kept in memory (no data directory, or none wanted) and a
writer that applies at once. They follow ``Store``/``StoreWriter`` so the hub has one code path.

The memory store keeps the latest ``limit`` messages (oldest dropped) with the same rules as the
SQLite store: verified beats unverified, per-origin seq slots, outbox states, catch-up answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from .clock import Stamp
from .model import DEFAULT_CHANNEL, EVENT_KINDS, ROW_KINDS, Message
from .store import MARK_END, MARK_START, MAX_BATCH, DuplicateMessage, Hit, Record, State


class MemoryStore:
    """History in memory, bounded to ``limit`` messages. Thread-safe."""

    fts = False
    fault = ""
    read_only = False

    def __init__(self, limit: int = 500, clock: Callable[[], float] = time.time) -> None:
        self.limit = max(1, limit)
        self._now = clock
        self._lock = threading.RLock()
        self._rows: dict[str, Record] = {}  # id -> record, in insertion order
        self._slots: dict[tuple[str, int], str] = {}
        self._contiguous: dict[str, list[int]] = {}  # origin -> [any, verified]
        self._outbox: dict[str, list[object]] = {}  # id -> [delivered, refused_by, reason]
        self._channels: set[str] = {DEFAULT_CHANNEL}
        self._cursors: dict[tuple[str, str], int] = {}
        self._n = 0

    def close(self) -> None:
        pass

    # ---- writing ----
    def add_many(self, records: Iterable[Record]) -> list[bool]:
        with self._lock:
            return [self._put_local(r) if r.local else self._put(r) for r in records]

    def _put_local(self, rec: Record) -> bool:
        """A message written here (``Hub.post``): its own state, and into the outbox."""
        if not self._put(rec, rec.state):
            return False
        self._outbox[rec.msg.id] = [False, None, None]
        return True

    def _put(self, rec: Record, state: State = State.DELIVERED) -> bool:
        m = rec.msg
        held = self._rows.get(m.id)
        if held is not None:
            if not rec.verified or held.verified:
                return False
            self._drop(m.id)
        if rec.seq is not None:
            slot = self._slots.get((m.origin, rec.seq))
            if slot is not None:
                if not rec.verified or self._rows[slot].verified:
                    return False
                self._drop(slot)
        self._n += 1
        self._rows[m.id] = Record(m, rec.hlc, rec.seq, state, self._now(), rec.verified, self._n)
        if rec.seq is not None:
            self._slots[(m.origin, rec.seq)] = m.id
            self._advance(m.origin)
        self._channels.add(m.channel)
        while len(self._rows) > self.limit:
            self._drop(next(iter(self._rows)), forget_slot=False)
        return True

    def _drop(self, msg_id: str, forget_slot: bool = True) -> None:
        rec = self._rows.pop(msg_id)
        self._outbox.pop(msg_id, None)
        if forget_slot and rec.seq is not None:
            self._slots.pop((rec.msg.origin, rec.seq), None)
            self._contiguous.pop(rec.msg.origin, None)
            self._advance(rec.msg.origin)

    def _advance(self, origin: str) -> None:
        counts = self._contiguous.setdefault(origin, [0, 0])
        for i, need_verified in enumerate((False, True)):
            while True:
                nxt = self._slots.get((origin, counts[i] + 1))
                if nxt is None or (need_verified and not self._rows[nxt].verified):
                    break
                counts[i] += 1

    def add_local(self, msg: Message, hlc: Stamp) -> Record:
        with self._lock:
            if msg.id in self._rows:
                raise DuplicateMessage(f"message {msg.id} is already stored")
            seq = self._next_seq(msg.origin)
            self._put(Record(msg, hlc, seq, verified=True), State.PENDING)
            self._outbox[msg.id] = [False, None, None]
            return self._rows[msg.id]

    def next_seq(self, origin: str) -> int:
        with self._lock:
            return self._next_seq(origin)

    def _next_seq(self, origin: str) -> int:
        return 1 + max((s for (o, s) in self._slots if o == origin), default=0)

    # ---- reading ----
    def get(self, msg_id: str) -> Record | None:
        with self._lock:
            return self._rows.get(msg_id)

    def may_hold(self, msg_id: str, origin: str, seq: int) -> bool:
        return True  # lookup is a dict read here

    def lookup(self, msg_id: str, origin: str, seq: int) -> tuple[Record | None, Record | None]:
        with self._lock:
            slot = self._slots.get((origin, seq))
            return self._rows.get(msg_id), None if slot is None else self._rows.get(slot)

    def lookup_many(self, keys: Sequence[tuple[str, str, int]]) -> list[Record]:
        """Every row holding one of the (id, origin, seq) keys' ids or slots."""
        found = (self.lookup(*key) for key in keys)
        return [rec for pair in found for rec in pair if rec is not None]

    def recent(self, channel: str = DEFAULT_CHANNEL, limit: int = 50,
               before: Stamp | None = None) -> list[Record]:
        with self._lock:
            rows = [r for r in self._rows.values()
                    if r.msg.channel == channel and (before is None or r.hlc < before)
                    and r.msg.kind in ROW_KINDS]
        rows.sort(key=lambda r: (r.hlc, r.msg.id))
        return rows[-max(0, min(limit, MAX_BATCH)):] if limit > 0 else []

    def conversation_events(self) -> list[Record]:
        with self._lock:
            return [r for r in self._rows.values() if r.msg.kind in EVENT_KINDS]

    def redact(self, delete: Message) -> int:
        """``store.Store.redact``: erase the target's text and its author's edits of it."""
        from dataclasses import replace

        from .conversation.fields import ConvFields

        assert delete.conv is not None
        target, n = delete.conv.target, 0
        with self._lock:
            for mid, rec in list(self._rows.items()):
                m = rec.msg
                mine = m.origin == delete.origin and m.author == delete.author
                if not mine or not (mid == target or (
                        m.kind == "edit" and m.conv is not None and m.conv.target == target)):
                    continue
                conv = replace(m.conv or ConvFields(), redacted_by=delete.id, redacted=None)
                self._rows[mid] = replace(rec, msg=replace(m, text="", conv=conv))
                n += 1
        return n

    def count(self) -> int:
        with self._lock:
            return len(self._rows)

    def last_hlc(self, origin: str | None = None) -> Stamp | None:
        with self._lock:
            stamps = [r.hlc for r in self._rows.values() if origin is None or r.msg.origin == origin]
        return max(stamps, default=None)

    def search(self, query: str, channel: str | None = None, limit: int = 50,
               marks: tuple[str, str] = (MARK_START, MARK_END)) -> list[Hit]:
        words = [w.casefold() for w in query.split() if w] if isinstance(query, str) else []
        if not words:
            return []
        with self._lock:
            found = [r for r in self._rows.values()
                     if all(w in _searchable(r.msg) for w in words)
                     and (channel is None or r.msg.channel == channel)]
        found.sort(key=lambda r: r.hlc, reverse=True)
        return [Hit(r, r.msg.text or " ".join(f.name for f in r.msg.files)) for r in found[:limit]]

    def with_file(self, sha256: str, limit: int = 20) -> list[Record]:
        with self._lock:
            found = [r for r in self._rows.values() if any(f.sha256 == sha256 for f in r.msg.files)]
        found.sort(key=lambda r: r.hlc, reverse=True)
        return found[:limit]

    # ---- catch-up ----
    def have_summary(self, keyed: Callable[[str], bool] | None = None) -> dict[str, int]:
        with self._lock:
            counts = dict(self._contiguous)
        out = {o: c[1] if keyed is not None and keyed(o) else c[0] for o, c in counts.items()}
        return {o: n for o, n in out.items() if n > 0}

    def missing_for(self, summary: Mapping[str, int], limit: int = 200,
                    after: tuple[str, int] | None = None,
                    since: Mapping[str, int] | None = None) -> list[Record]:
        since = since or {}
        limit = max(1, min(limit, MAX_BATCH))
        with self._lock:
            rows = [r for r in self._rows.values() if r.seq is not None]
        out = []
        for r in sorted(rows, key=lambda r: (r.msg.origin, r.seq or 0)):
            have = summary.get(r.msg.origin, 0)
            if isinstance(have, bool) or not isinstance(have, int) or have < 0:
                have = 0
            if after is not None and (r.msg.origin, r.seq or 0) <= after:
                continue
            if (r.seq or 0) > have and r.row > since.get(r.msg.origin, 0):
                out.append(r)
                if len(out) >= limit:
                    break
        return out

    def update_cursor(self, peer: str, summary: Mapping[str, int]) -> None:
        with self._lock:
            for origin, seq in summary.items():
                if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0:
                    key = (peer, origin)
                    self._cursors[key] = max(self._cursors.get(key, 0), seq)

    def cursor(self, peer: str) -> dict[str, int]:
        with self._lock:
            return {o: s for (p, o), s in self._cursors.items() if p == peer}

    # ---- outbox ----
    def pending(self, limit: int = MAX_BATCH) -> list[Record]:
        with self._lock:
            return [self._rows[i] for i, o in self._outbox.items() if not o[0]][:limit]

    def mark_sent(self, msg_id: str) -> bool:
        return self._set_state(msg_id, State.SENT, only_from=State.PENDING)

    def mark_delivered(self, msg_id: str) -> bool:
        with self._lock:
            box = self._outbox.get(msg_id)
            if box is None or box[0]:
                return False
            box[0] = True
        self._set_state(msg_id, State.DELIVERED)
        return True

    def _set_state(self, msg_id: str, state: State, only_from: State | None = None) -> bool:
        with self._lock:
            rec = self._rows.get(msg_id)
            if rec is None or msg_id not in self._outbox:
                return False
            if only_from is None or rec.state == only_from:
                self._rows[msg_id] = Record(rec.msg, rec.hlc, rec.seq, state, rec.received_at,
                                            rec.verified, rec.row)
            return True

    def mark_sent_many(self, msg_ids: Iterable[str]) -> None:
        for msg_id in msg_ids:
            self.mark_sent(msg_id)

    def mark_delivered_many(self, msg_ids: Iterable[str]) -> list[str]:
        return [i for i in dict.fromkeys(msg_ids) if self.mark_delivered(i)]

    def mark_refused(self, msg_id: str, peer: str, reason: str) -> bool:
        with self._lock:
            box = self._outbox.get(msg_id)
            if box is None or box[0]:
                return False
            box[1], box[2] = peer, reason[:200]
            return True

    def refusals(self) -> dict[str, tuple[str, str]]:
        with self._lock:
            return {i: (str(o[1]), str(o[2])) for i, o in self._outbox.items()
                    if o[1] is not None and not o[0]}

    # ---- channels ----
    def channels(self) -> list[str]:
        with self._lock:
            return sorted(self._channels)

    def create_channel(self, name: str) -> bool:
        with self._lock:
            if name in self._channels:
                return False
            self._channels.add(name)
            return True


class ImmediateWriter:
    """``StoreWriter``'s interface, applied at once on the caller's thread (memory is fast)."""

    def __init__(self, store: MemoryStore,
                 on_commit: Callable[[list[Record], list[bool] | None], None] | None = None,
                 ) -> None:
        self.store = store
        self.on_commit = on_commit
        self.failed = 0
        self._tickets = 0

    def submit(self, record: Record) -> int:
        return self.submit_many([record])

    def submit_many(self, records: list[Record]) -> int:
        results = self.store.add_many(records)
        self._tickets += len(records)
        if self.on_commit is not None:
            self.on_commit(records, results)
        return self._tickets

    def wait(self, ticket: int, timeout: float | None = None, now: bool = True) -> bool:
        return True

    def when_done(self, ticket: int, callback: Callable[[], None]) -> None:
        callback()

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def flush_ticket(self) -> int:
        return self._tickets

    running = False  # no thread: nothing is ever left writing

    def close(self, timeout: float | None = None) -> None:
        pass


def _searchable(msg: Message) -> str:
    """The text and the attachments' names (search finds messages by attachment name)."""
    return "\n".join([msg.text, *(f.name for f in msg.files)]).casefold()
