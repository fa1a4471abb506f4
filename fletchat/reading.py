"""The hub's read side: history pages, search, the outbox view. Store reads block, so the UI
and the relay call the ``*_async`` forms, never the plain ones on a loop. Those run on lanes of
their own (``aio.Lane``), bounded over every tab and relay client of the process: a flood of
searches (each may wait up to 2 s for the store writer) queues behind itself, not in front of
the sends and the mesh's checks on the loop's shared pool."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .aio import Lane
from .clock import Stamp
from .model import DEFAULT_CHANNEL, ROW_KINDS, Message
from .outbox import wire
from .store import StoreError

HISTORY_PAGE = 100
HISTORY_READ_THREADS = 2  # history pages read at once, per process
SEARCH_THREADS = 1  # searches run at once, per process
SEARCH_WAIT_S = 2.0  # how long a search waits for messages still being stored
_HISTORY_READS = Lane(HISTORY_READ_THREADS, "history-reads")
_SEARCHES = Lane(SEARCH_THREADS, "searches")


class HistoryReads:
    """Mixed into ``Hub`` (uses its store, writer, queued map and outbox worker)."""

    store: Any
    outbox: Any
    _writer: Any
    _qlock: Any
    _queued: dict[str, tuple[Message, bool, int]]
    _bg: Any
    _pending_job: Any  # a pending_ids question the outbox worker has not begun (or None)
    _committed_async: Callable[..., Awaitable[None]]
    conv: Any
    peer_id: str

    def history(self, channel: str = DEFAULT_CHANNEL, limit: int = HISTORY_PAGE,
                before: str = "") -> list[Message]:
        """A page of the conversation in clock order, oldest first; ``before`` pages upwards
        (pass the first message's ``hlc``). Messages still queued for the store are included."""
        with self._qlock:  # first: one committed during the store's read is in one or the other
            queued = [m for m, _, _ in self._queued.values()
                      if m.channel == channel and m.kind in ROW_KINDS]
        records = self.store.recent(channel, limit, before=Stamp.decode(before) if before else None)
        msgs = {r.msg.id: wire(r) for r in records}
        for m in queued:
            if not before or m.hlc < before:
                msgs.setdefault(m.id, m)
        return sorted(msgs.values(), key=lambda m: (m.hlc, m.id))[-limit:] if limit > 0 else []

    async def history_async(self, channel: str = DEFAULT_CHANNEL, limit: int = HISTORY_PAGE,
                            before: str = "") -> list[Message]:
        return await _HISTORY_READS.run(self.history, channel, limit, before)

    def search(self, query: str, channel: str | None = None, limit: int = 50):
        """Messages matching the words of ``query`` (prefixes too), newest first, as (message,
        snippet) pairs; the snippet marks matches with ``store.MARK_START/END``. Blocking."""
        self._writer.flush(timeout=SEARCH_WAIT_S)
        return self._search_stored(query, channel, limit)

    async def search_async(self, query: str, channel: str | None = None, limit: int = 50):
        """``search``, waiting for the writer on the loop (a callback, no thread held: searches
        made while a big catch-up is stored wait side by side, then query one at a time)."""
        try:
            await self._committed_async(self._writer.flush_ticket(), SEARCH_WAIT_S)
        except StoreError:
            pass  # still storing: what is stored is searched
        return await _SEARCHES.run(self._search_stored, query, channel, limit)

    def _search_stored(self, query: str, channel: str | None, limit: int):
        hits = [(wire(h.record), h.snippet) for h in self.store.search(query, channel, limit)]
        return self.conv.search_filter(hits)  # latest texts only (edits, deletes)

    def pending_ids(self) -> set[str]:
        """Messages written here that no peer has confirmed yet (the outbox)."""
        return self._bg.submit(self._pending_now).result()

    async def pending_ids_async(self) -> set[str]:
        """``pending_ids`` off the loop. Callers share a question still waiting for the outbox
        worker (its answer is read after all of them asked): a hundred tabs opening channels
        queue one read, not a hundred."""
        job = self._pending_job
        if job is None or job.running() or job.done():
            job = self._pending_job = self._bg.submit(self._pending_now)
        # shielded: one caller given up (a tab closed) must not cancel the others' question
        return set(await asyncio.shield(asyncio.wrap_future(job)))

    def _pending_now(self) -> set[str]:
        """On the outbox worker, where every delivered mark is made: ours still queued for the
        store (read first: one committed meanwhile is in the outbox read), then the outbox."""
        with self._qlock:
            queued = {i for i, (m, _, _) in self._queued.items() if m.origin == self.peer_id}
        return queued | self.outbox.pending_ids()

    def refusals(self) -> dict[str, tuple[str, str]]:
        """Our undelivered messages a peer refused: id -> (peer id, reason)."""
        return self._bg.submit(self.outbox.refusals).result()

