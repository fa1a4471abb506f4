"""The fetching side of a file transfer, sans-I/O: which chunk to ask of which holder, what to
make of each answer. Time is passed in; nothing here touches a socket, a clock or a disk.

The mesh drives one ``Fetch`` per file: it tells it who holds the file (``add_holder`` /
``remove_holder``; a partial holder, another fetcher of the same file, with the chunks it has
announced), and that others fetch it too (``spread``), hands it every answer (``on_chunk`` / ``on_refused``) and calls ``tick`` now and
then; each call returns the events to act on:

- ``Request``: send a chunk request to that holder.
- ``Verified``: this chunk checked out against the manifest's Merkle root; store it
  (``BlobStore.write_chunk``).
- ``Drop``: the holder broke the protocol (bad hash, wrong size, a chunk nobody asked for); close
  its files connection and log the verdict. Its chunks are asked of others.
- ``Complete``: every chunk is verified; ``BlobStore.finish`` checks the whole file.
- ``HoldersGone``: nobody online has some chunk still missing (no whole-file holder is left and
  the partial holders have not announced it); the partial file stays, what the partial holders
  have is still fetched, and the fetch goes on when a holder of the rest is added.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from . import limits as L
from .manifest import FileManifest
from .merkle import leaf_hash, verify

MIX = 8  # after ``spread``, the origin is asked one of this many first chunks nobody else has


class Verdict(StrEnum):
    """Why a peer's files connection is closed (the mesh logs it and closes that connection)."""

    BAD_HASH = "chunk failed its hash"
    OVERSIZED = "chunk larger than requested"
    WRONG_SIZE = "chunk of the wrong size"
    UNREQUESTED = "chunk that was not requested"
    FLOOD = "too many chunk requests"


class FetchState(StrEnum):
    FETCHING = "fetching"
    WAITING = "waiting"  # nobody online has some missing chunk (``HoldersGone``)
    COMPLETE = "complete"


@dataclass(frozen=True)
class Request:
    holder: str
    sha256: str
    index: int


@dataclass(frozen=True)
class Verified:
    index: int
    data: bytes | memoryview
    leaf: bytes
    proof: tuple[bytes, ...] = field(default=(), compare=False)  # checked: served on to others


@dataclass(frozen=True)
class Drop:
    peer: str
    verdict: Verdict
    detail: str


@dataclass(frozen=True)
class Complete:
    sha256: str


@dataclass(frozen=True)
class HoldersGone:
    sha256: str
    missing: int  # chunks still to fetch that nobody online has announced


Event = Request | Verified | Drop | Complete | HoldersGone


@dataclass
class _Holder:
    in_flight: dict[int, float] = field(default_factory=dict)  # index -> asked at
    expired: set[int] = field(default_factory=set)  # timed out: a late answer is still welcome
    strikes: int = 0
    window: int = L.START_IN_FLIGHT_PER_HOLDER  # requests it may have outstanding now
    has: set[int] | None = None  # a partial holder's announced chunks; None = the whole file
    fellow: bool = False  # it was a partial holder (a fellow fetcher) before it held the whole file

    def answered(self, asked_at: float, now: float, start: int, most: int) -> None:
        """Grow the window by one after an answer within ``FAST_ANSWER_S``; halve it after a
        slower one (never below ``start``)."""
        if now - asked_at <= L.FAST_ANSWER_S:
            self.window = min(most, self.window + 1)
        else:
            self.window = max(start, self.window // 2)


class Fetch:
    """One file being fetched from any number of holders at once."""

    def __init__(self, manifest: FileManifest, have: Iterable[int] = (), *,
                 max_in_flight: int = L.MAX_IN_FLIGHT_PER_HOLDER,
                 max_holders: int = L.MAX_HOLDERS_PER_FETCH,
                 timeout: float = L.CHUNK_TIMEOUT_S) -> None:
        self.manifest = manifest
        self._root = bytes.fromhex(manifest.root)
        self._count = manifest.chunk_count
        self.verified: set[int] = {i for i in have if 0 <= i < self._count}
        self._max_in_flight = max_in_flight
        self._start_in_flight = min(L.START_IN_FLIGHT_PER_HOLDER, max_in_flight)
        self._max_holders = max_holders
        self._timeout = timeout
        self._holders: dict[str, _Holder] = {}
        # more holders than max_holders, asked when one goes: peer -> its chunks (None = all)
        self._spares: dict[str, set[int] | None] = {}
        self._offset = 0  # requests start at this chunk (``spread``), then wrap around
        self._mix: random.Random | None = None  # after ``spread``: the origin's picks vary
        self._stripe: tuple[int, int] | None = None  # (k, n): the origin's chunks i % n == k are ours
        self._partial_at = 0.0  # when a partial holder last delivered or announced a chunk
        self._stripe_at = 0.0  # when the stripe was (last) set
        self._stripe_done_at: float | None = None  # when every chunk of our stripe was verified
        self._done_reported = False
        self._gone_reported = False
        self._liars: set[str] = set()  # holders that got a verdict: never asked again for this file
        self._set_aside: dict[str, set[int]] = {}  # holders set aside for timeouts: what they owe

    # ---- queries ----
    @property
    def state(self) -> FetchState:
        if len(self.verified) == self._count:
            return FetchState.COMPLETE
        return FetchState.WAITING if self._unheld() else FetchState.FETCHING

    @property
    def holders_gone(self) -> bool:
        """``HoldersGone`` was reported and nobody online has the missing chunks yet."""
        return self._gone_reported and len(self.verified) < self._count

    @property
    def holders(self) -> list[str]:
        return list(self._holders)

    @property
    def bytes_verified(self) -> int:
        return sum(self.manifest.chunk_span(i)[1] for i in self.verified)

    def in_flight(self, holder: str) -> set[int]:
        h = self._holders.get(holder)
        return set(h.in_flight) if h else set()

    # ---- inputs ----
    def start(self, now: float) -> list[Event]:
        """First events: ``Complete`` at once if everything was already on disk."""
        return self._schedule(now)

    def add_holder(self, peer: str, now: float, chunks: Iterable[int] | None = None) -> list[Event]:
        """``peer`` holds the whole file (``chunks`` None), or, a partial holder, these chunks
        (announced ones add up; a peer known to hold the whole file stays so)."""
        if peer in self._liars:
            return []
        has = None if chunks is None else {i for i in chunks if 0 <= i < self._count}
        if has:
            self._partial_at = now
        h = self._holders.get(peer)
        if h is not None:
            if h.has is not None:
                h.has = None if has is None else h.has | has
        elif peer in self._spares:
            old = self._spares[peer]
            self._spares[peer] = None if old is None or has is None else old | has
        elif len(self._holders) < self._max_holders or (has is None and self._all_partial()):
            self._holders[peer] = self._new_holder(has)  # (one whole-file holder beyond the cap)
        else:
            self._spares[peer] = has
        return self._schedule(now, report=False)

    def spread(self, offset: int, now: float) -> list[Event]:
        """Others fetch this file too: ask from chunk ``offset`` on (wrapping around), so the
        fetchers start at different places and have different chunks to give each other."""
        self._offset = offset % self._count
        self._mix = random.Random(offset)
        return self._schedule(now, report=False)

    def stripe(self, k: int, n: int, now: float) -> list[Event]:
        """``n`` fetchers of this file know of each other and this one is the ``k``-th (each
        ranks the same ids the same way): it asks whole-file holders that are not fellows (the
        origin) for the chunks ``i % n == k`` and waits for the others to come from the fellows,
        so the origin's upload carries each chunk about once. Outside its stripe it asks the
        origin once ``STRIPE_IDLE_S`` passed without anything from a partial holder (the fellows
        left or stalled), or once its own stripe has been complete as long again as it took (at
        least ``STRIPE_IDLE_S``): a fellow that slow is not waited for at its pace."""
        self._stripe = (k, n) if n > 1 and 0 <= k < n else None
        self._partial_at = self._stripe_at = now
        self._stripe_done_at = None
        return self._schedule(now, report=False)

    def remove_holder(self, peer: str, now: float) -> list[Event]:
        """The holder disconnected, or no longer has the file: its requests go to others."""
        self._spares.pop(peer, None)
        self._holders.pop(peer, None)
        self._promote_spares()
        return self._schedule(now)

    def on_chunk(self, peer: str, index: int, data: bytes | memoryview, proof: Sequence[bytes],
                 now: float, leaf: bytes | None = None) -> list[Event]:
        """A chunk arrived; ``leaf`` is its ``leaf_hash`` when the caller computed it already
        (off the event loop), else it is computed here."""
        h = self._holders.get(peer)
        asked_at = _take_answer(h, self._set_aside.get(peer), index)
        if asked_at is False:
            return self._drop(peer, Verdict.UNREQUESTED, f"chunk {index}", now)
        _, length = self.manifest.chunk_span(index)
        if len(data) > length:
            return self._drop(peer, Verdict.OVERSIZED, f"chunk {index}: {len(data)} > {length}", now)
        if len(data) != length:
            return self._drop(peer, Verdict.WRONG_SIZE, f"chunk {index}: {len(data)} != {length}", now)
        if leaf is None:
            leaf = leaf_hash(data)
        if not verify(self._root, index, self._count, leaf, proof):
            return self._drop(peer, Verdict.BAD_HASH, f"chunk {index}", now)
        events: list[Event] = []
        if index not in self.verified:
            self.verified.add(index)
            events.append(Verified(index, data, leaf, tuple(proof)))
        if h is not None and asked_at is not None:
            h.strikes = 0
            h.answered(asked_at, now, self._start_in_flight, self._max_in_flight)
        if h is not None and h.has is not None:
            self._partial_at = now
        return events + self._schedule(now)

    def on_refused(self, peer: str, index: int, reason: str, now: float) -> list[Event]:
        """The holder answered an error for a chunk we asked: ``not_found`` means it does not have
        the file (it stops being a holder of it); anything else (``busy``) is a strike."""
        h = self._holders.get(peer)
        if h is None or (index not in h.in_flight and index not in h.expired):
            return self._drop(peer, Verdict.UNREQUESTED, f"refusal of chunk {index}", now)
        h.in_flight.pop(index, None)
        h.expired.discard(index)
        if reason == "not_found":
            return self.remove_holder(peer, now)
        h.strikes += 1
        if h.strikes >= L.MAX_STRIKES:
            return self.remove_holder(peer, now)
        return self._schedule(now)

    def forget(self, index: int, now: float) -> list[Event]:
        """A verified chunk could not be stored: fetch it again."""
        self.verified.discard(index)
        self._done_reported = False
        return self._schedule(now)

    def tick(self, now: float) -> list[Event]:
        """Requests older than the timeout are asked of someone else; the slow holder gets a strike
        (and is set aside after ``MAX_STRIKES``), but its late answer is still accepted."""
        for peer, h in list(self._holders.items()):
            stale = [i for i, at in h.in_flight.items() if now - at >= self._timeout]
            for i in stale:
                del h.in_flight[i]
                h.expired.add(i)
            if stale:
                h.window = self._start_in_flight
                h.strikes += 1
                if h.strikes >= L.MAX_STRIKES:
                    self._holders.pop(peer)
                    # what it still owes may come late: welcome, not unrequested
                    self._set_aside[peer] = set(h.in_flight) | h.expired
        self._promote_spares()
        return self._schedule(now)

    # ---- internals ----
    def _new_holder(self, has: set[int] | None = None) -> _Holder:
        return _Holder(window=self._start_in_flight, has=has, fellow=has is not None)

    def _all_partial(self) -> bool:
        return all(h.has is not None for h in self._holders.values())

    def _promote_spares(self) -> None:
        """Spares step in for holders that went, whole-file holders first; one always does if
        only partial holders are left (they may lack chunks)."""
        while self._spares and (len(self._holders) < self._max_holders or self._all_partial()):
            whole = [p for p, has in self._spares.items() if has is None]
            if len(self._holders) >= self._max_holders and not whole:
                break
            peer = whole[0] if whole else next(iter(self._spares))
            self._holders[peer] = self._new_holder(self._spares.pop(peer))

    def _drop(self, peer: str, verdict: Verdict, detail: str, now: float) -> list[Event]:
        drop = Drop(peer, verdict, f"{self.manifest.sha256[:12]}: {detail}")
        self._liars.add(peer)
        return [drop, *self.remove_holder(peer, now)]

    def _schedule(self, now: float, report: bool = True) -> list[Event]:
        """Requests to send; ``Complete`` once; ``HoldersGone`` once while nobody online has some
        missing chunk (not on ``report`` False: a holder was just added, a whole-file holder may
        be about to answer too; the next ``tick`` reports it)."""
        if len(self.verified) == self._count:
            if self._done_reported:
                return []
            self._done_reported = True
            return [Complete(self.manifest.sha256)]
        gone: list[Event] = []
        unheld = self._unheld()
        if not unheld:
            self._gone_reported = False  # told again if the holders of the rest go
        elif report and not self._gone_reported:
            self._gone_reported = True
            gone = [HoldersGone(self.manifest.sha256, unheld)]
        if not self._holders:
            return gone
        taken = {i for h in self._holders.values() for i in h.in_flight}
        partial = [h.has for h in self._holders.values() if h.has is not None]
        events: list[Event] = []
        idle: set[str] = set()  # holders with nothing left that we want
        # Fill the least busy holder with room in its window first, one chunk at a time, so
        # holders share the work.
        while True:
            open_ = [kv for kv in self._holders.items()
                     if len(kv[1].in_flight) < kv[1].window and kv[0] not in idle]
            if not open_:
                break
            # partial holders first: the origin's upload is the one everybody shares
            peer, h = min(open_, key=lambda kv: (kv[1].has is None, len(kv[1].in_flight)))
            index = self._pick(h, taken, partial, now)
            if index is None:
                idle.add(peer)
                continue
            taken.add(index)
            h.in_flight[index] = now
            events.append(Request(peer, self.manifest.sha256, index))
        return events + gone

    def _origin_stripe(self, now: float) -> tuple[int, int] | None:
        """The stripe the origin is asked from now; None: any chunk (no stripe, the fellows have
        been quiet for ``STRIPE_IDLE_S``, or our stripe has been complete as long again as it
        took, and at least that long)."""
        if self._stripe is None or now - self._partial_at >= L.STRIPE_IDLE_S:
            return None
        k, n = self._stripe
        done = self._stripe_done_at
        if done is None:
            if all(i in self.verified for i in range(k, self._count, n)):
                self._stripe_done_at = now
        elif now - done >= max(L.STRIPE_IDLE_S, done - self._stripe_at):
            return None
        return self._stripe

    def _unheld(self) -> int:
        """How many missing chunks nobody online has: none while a whole-file holder is there
        (asked or spare); else those that no partial holder has announced."""
        partial = [*(h.has for h in self._holders.values()), *self._spares.values()]
        if any(has is None for has in partial):
            return 0
        announced: set[int] = set().union(*partial)  # type: ignore[arg-type]
        return self._count - len(self.verified) - len(announced - self.verified)

    def _pick(self, h: _Holder, taken: set[int], partial: list[set[int]],
              now: float) -> int | None:
        """The chunk to ask of ``h`` next, in order from ``_offset`` (wrapping): a partial holder
        gives the first chunk it has that we still want; a whole-file holder (the origin, whose
        upload everyone shares) the first that no partial holder can give (after ``spread``, one
        of the first ``MIX`` such, at random, so fetchers seldom ask it for the same chunk), else
        the first. With a ``stripe``, the origin (not a fellow that completed) is asked only for
        chunks of this fetcher's stripe while ``_origin_stripe`` says so."""
        n, off = self._count, self._offset
        if h.has is not None:
            cands = [i for i in h.has if i not in self.verified and i not in taken]
            return min(cands, key=lambda i: (i - off) % n) if cands else None
        stripe = None if h.fellow else self._origin_stripe(now)
        first, rare = None, []
        for k in range(n):
            i = (k + off) % n
            if i in self.verified or i in taken or (stripe and i % stripe[1] != stripe[0]):
                continue
            if not any(i in has for has in partial):
                rare.append(i)
                if self._mix is None or len(rare) == MIX:
                    break
            if first is None:
                first = i
        if rare:
            return rare[0] if self._mix is None else self._mix.choice(rare)
        return None if stripe else first


def _take_answer(h: _Holder | None, late: set[int] | None, index: int) -> float | None | bool:
    """Take an answer off what was asked of a holder: when it was asked (a request in flight),
    None (a late answer: to a request that timed out, maybe asked again of the same holder, which
    then answers twice; or from a holder set aside for its timeouts: ``late``, what it owes), or
    False (never asked: a verdict)."""
    if h is not None and index in h.in_flight:
        return h.in_flight.pop(index)  # a copy for an expired request may still come
    if h is not None and index in h.expired:
        h.expired.discard(index)
        return None
    if late is not None and index in late:
        late.discard(index)
        return None
    return False
