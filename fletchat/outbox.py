"""The hub's answers to catch-up (what we have, what a peer lacks) and the outbox (which of our
messages peers confirmed, or refused and why). docs/store.md and docs/protocol.md describe both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from .events import Delivered, MessageRefused
from .model import Message
from .store import Record, StoreError

# A message sent to a peer above a gap in its origin's sequence (which the peer's summary cannot
# show it holds) is not sent to that peer again for this long, unless the peer's summary for that
# origin went backwards (it lost data): gapped sequences cost one send per 10 minutes, not one
# per round. Remembered per connection (the mesh's key): what was queued on a connection that
# died may never have arrived, so a new connection is sent it again, once.
RESEND_AFTER_S = 600.0
SENT_MEMORY = 10_000  # (connection key, origin) entries remembered
MAX_REASON_CHARS = 200


def wire(record: Record) -> Message:
    """A stored record as the shared ``Message`` type, with its clock stamp and seq (read rows
    carry both already: no copy, which was a tenth of a catch-up's cost to its sender)."""
    msg, hlc, seq = record.msg, record.hlc.encode(), record.seq or 0
    return msg if msg.hlc == hlc and msg.seq == seq else replace(msg, hlc=hlc, seq=seq)


def _valid_seq(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class CatchUpAnswers:
    """``summary`` (verified rows only, for origins whose key is known) and ``missing``."""

    def __init__(self, store: Any, keyed: Callable[[str], bool],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._keyed = keyed
        self._now = clock
        self._sent: OrderedDict[tuple[str, str], tuple[int, int, float]] = OrderedDict()
        self._since: dict[str, dict[str, int]] = {}

    def summary(self) -> dict[str, int]:
        return self._store.have_summary(self._keyed)

    def missing(self, summary: dict[str, int], after: tuple[str, int] | None, limit: int,
                peer: str = "") -> list[Message]:
        """What a peer with ``summary`` lacks, in (origin, seq) order from ``after``. With
        ``peer`` (the mesh passes one key per connection), messages already sent to it above a
        gap are left out (``RESEND_AFTER_S``)."""
        if not peer:
            return [wire(r) for r in self._store.missing_for(summary, limit, after)]
        if after is None or peer not in self._since:
            now = self._now()
            self._since[peer] = {
                origin: row for (p, origin), (have, row, at) in self._sent.items()
                if p == peer and _valid_seq(summary.get(origin)) >= have
                and now - at < RESEND_AFTER_S
            }
        records = self._store.missing_for(summary, limit, after, self._since[peer])
        now = self._now()
        for r in records:
            key = (peer, r.msg.origin)
            have = _valid_seq(summary.get(r.msg.origin))
            old = self._sent.get(key)
            top = max(r.row, old[1]) if old is not None and have >= old[0] else r.row
            self._sent[key] = (have, top, now)
            self._sent.move_to_end(key)
        while len(self._sent) > SENT_MEMORY:
            self._sent.popitem(last=False)
        return [wire(r) for r in records]


class Outbox:
    """Our own messages: handed out, confirmed by a peer (an ack or its summary), or refused."""

    def __init__(self, store: Any, own_id: str, publish: Callable[[Any], None]) -> None:
        self._store = store
        self._own = own_id
        self._publish = publish

    def peer_has(self, peer_id: str, summary: dict[str, int]) -> None:
        """A peer's summary: everything of ours up to its seq for us is delivered."""
        self._store.update_cursor(peer_id, summary)
        upto = _valid_seq(summary.get(self._own))
        self.delivered(tuple(
            r.msg.id for r in self._store.pending()
            if r.msg.origin == self._own and r.seq is not None and r.seq <= upto
        ))

    def delivered(self, ids: tuple[str, ...]) -> None:
        done = tuple(self._store.mark_delivered_many(ids)) if ids else ()
        if done:
            self._publish(Delivered(done, time.time()))

    def refused(self, peer_id: str, refusals: tuple[tuple[str, str], ...]) -> None:
        """A peer refused some of our messages: remember why, tell the writer's views."""
        marked = tuple(
            (msg_id, reason[:MAX_REASON_CHARS]) for msg_id, reason in refusals
            if self._store.mark_refused(msg_id, peer_id, reason[:MAX_REASON_CHARS])
        )
        if marked:
            self._publish(MessageRefused(peer_id, marked, time.time()))

    def pending_ids(self) -> set[str]:
        return {r.msg.id for r in self._store.pending()}

    def refusals(self) -> dict[str, tuple[str, str]]:
        return self._store.refusals()


@contextlib.contextmanager
def _logged() -> Iterator[None]:
    """An outbox job's failure, logged: nobody reads the job's result (what it took is lost,
    as with a store that failed; the next marks are a new job)."""
    try:
        yield
    except StoreError as err:
        logging.getLogger("fletchat.hub").error("outbox not updated: %s", err)
    except Exception:
        logging.getLogger("fletchat.hub").exception("outbox job failed")


class MeshSideMethods:
    """The hub's catch-up answers and coalesced outbox marks, as the mesh calls them (a mixin of
    ``Hub``: uses its ``answers``, ``outbox``, ``store``, ``_bg``, ``_qlock``, ``_outbox_due``)."""

    answers: Any
    outbox: Any
    store: Any
    _bg: Any
    _qlock: Any
    _outbox_due: tuple[list[str], list[str]]
    _due_summaries: dict[str, dict[str, int]]  # peer -> its newest summary, for the worker
    _due_refusals: list[tuple[str, tuple[tuple[str, str], ...]]]
    vouched: Callable[[list[Message]], list[Message]]
    _after_own: Callable[[], None]

    def summary(self) -> dict[str, int]:
        """Per origin, the seq up to which everything is held (verified rows only, for origins
        whose key is known here)."""
        return self.answers.summary()

    async def summary_async(self) -> dict[str, int]:
        """``summary()`` read off the event loop."""
        return await asyncio.to_thread(self.summary)

    def missing(self, summary: dict[str, int], after: tuple[str, int] | None, limit: int,
                peer: str = "") -> list[Message]:
        """What a peer lacks (a worker thread: it waits for our own queued messages' rows)."""
        self._after_own()
        return self.vouched(self.answers.missing(summary, after, limit, peer))

    def _outbox_later(self, sent: tuple[str, ...] = (), delivered: tuple[str, ...] = ()) -> None:
        """Queue outbox marks for the worker thread, coalesced: one job (one transaction each
        for sent and delivered) however many messages and receipts arrive meanwhile."""
        with self._qlock:
            idle = not (self._outbox_due[0] or self._outbox_due[1])
            self._outbox_due[0].extend(sent)
            self._outbox_due[1].extend(delivered)
        if idle:
            self._bg.submit(self._outbox_flush)

    def _outbox_flush(self) -> None:
        with self._qlock:  # taken first: whatever happens next, the next mark submits anew
            sent, delivered = self._outbox_due
            self._outbox_due = ([], [])
        with _logged():
            self._after_own()  # a receipt may come before our own row is committed
            if sent:
                self.store.mark_sent_many(sent)
            if delivered:
                self.outbox.delivered(tuple(delivered))

    def refused(self, peer_id: str, refusals: tuple[tuple[str, str], ...]) -> None:
        """A peer refused these messages of ours (id, reason): outbox + ``MessageRefused``."""
        self._receipts_later(refusals=(peer_id, tuple(refusals)))

    def _receipts_later(self, summary: tuple[str, dict[str, int]] | None = None,
                        refusals: tuple[str, tuple[tuple[str, str], ...]] | None = None) -> None:
        """A peer's catch-up summary or refusals for the outbox worker, coalesced: one job
        however many arrive meanwhile, and of each peer's summaries only the newest (a flood of
        ``have`` frames once queued a store transaction each on the one worker, and a tab
        opening a channel waited behind them all)."""
        with self._qlock:
            idle = not (self._due_summaries or self._due_refusals)
            if summary is not None:
                self._due_summaries[summary[0]] = summary[1]
            if refusals is not None:
                self._due_refusals.append(refusals)
        if idle:
            self._bg.submit(self._receipts_flush)

    def _receipts_flush(self) -> None:
        with self._qlock:  # taken first: whatever happens next, the next arrival submits anew
            summaries, self._due_summaries = self._due_summaries, {}
            refusals, self._due_refusals = self._due_refusals, []
        with _logged():
            self._after_own()  # a receipt may come before our own row is committed
            for peer_id, marks in refusals:
                self.outbox.refused(peer_id, marks)
            for peer_id, summary in summaries.items():
                self.outbox.peer_has(peer_id, summary)

    def sync_batch(self) -> list[Message]:
        """Nothing: presence travels in ``presence`` frames and history by catch-up."""
        return []
