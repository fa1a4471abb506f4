"""The serving side of a file transfer, sans-I/O: which chunk requests to answer now, which later,
which peer to drop. Time is passed in.

Each requesting peer has a byte budget (a token bucket of ``SERVE_BYTES_PER_MINUTE``, burst
``SERVE_BURST_BYTES``) and a queue of at most ``MAX_PENDING_REQUESTS_PER_PEER`` requests; a peer
that asks for more than that at once is flooding and gets a ``Drop`` (close its files connection).
Peers are served round-robin, so one greedy peer cannot starve the others.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from . import limits as L
from .transfer import Drop, Verdict


@dataclass(frozen=True)
class Serve:
    """Read this chunk (``BlobStore.read_chunk``) and send it to ``peer``."""

    peer: str
    sha256: str
    index: int


@dataclass(frozen=True)
class Refuse:
    """Answer ``peer`` with an error frame for this chunk (reason: ``not_found``)."""

    peer: str
    sha256: str
    index: int
    reason: str


ServeEvent = Serve | Refuse | Drop


@dataclass
class _Peer:
    tokens: float
    at: float
    queue: deque[tuple[str, int, int]] = field(default_factory=deque)  # (sha, index, length)


class Server:
    def __init__(self, *, bytes_per_minute: int = L.SERVE_BYTES_PER_MINUTE,
                 burst: int = L.SERVE_BURST_BYTES,
                 max_pending: int = L.MAX_PENDING_REQUESTS_PER_PEER) -> None:
        if burst < L.MAX_CHUNK_SIZE:
            raise ValueError("the burst must hold at least one chunk")
        self._rate = bytes_per_minute / 60.0
        self._burst = float(burst)
        self._max_pending = max_pending
        self._peers: dict[str, _Peer] = {}
        self._turn: deque[str] = deque()

    def pending(self, peer: str) -> int:
        p = self._peers.get(peer)
        return len(p.queue) if p else 0

    def on_request(self, peer: str, sha256: str, index: int, length: int | None,
                   now: float) -> list[ServeEvent]:
        """A chunk request from ``peer``. ``length`` is the chunk's size if we hold that chunk,
        ``None`` if not (the driver asks the blob store)."""
        if length is None:
            return [Refuse(peer, sha256, index, "not_found")]
        p = self._peers.get(peer)
        if p is None:
            p = self._peers[peer] = _Peer(self._burst, now)
            self._turn.append(peer)
        if any(q[0] == sha256 and q[1] == index for q in p.queue):
            return self.poll(now)  # a repeat of a queued request is not a second one
        if len(p.queue) >= self._max_pending:
            self.forget(peer)
            return [Drop(peer, Verdict.FLOOD, f"more than {self._max_pending} requests pending")]
        p.queue.append((sha256, index, length))
        return self.poll(now)

    def on_cancel(self, peer: str, sha256: str, index: int) -> None:
        p = self._peers.get(peer)
        if p:
            p.queue = deque(q for q in p.queue if not (q[0] == sha256 and q[1] == index))

    def forget(self, peer: str) -> None:
        """The peer's connection closed: its queue goes (its budget state too)."""
        self._peers.pop(peer, None)
        if peer in self._turn:
            self._turn.remove(peer)

    def _refill(self, p: _Peer, now: float) -> None:
        if now > p.at:
            p.tokens = min(self._burst, p.tokens + (now - p.at) * self._rate)
            p.at = now

    def poll(self, now: float) -> list[ServeEvent]:
        """Every queued request the budgets allow now, round-robin over peers."""
        out: list[ServeEvent] = []
        progress = True
        while progress:
            progress = False
            for _ in range(len(self._turn)):
                peer = self._turn[0]
                self._turn.rotate(-1)
                p = self._peers[peer]
                self._refill(p, now)
                if p.queue and p.tokens >= p.queue[0][2]:
                    sha, index, length = p.queue.popleft()
                    p.tokens -= length
                    out.append(Serve(peer, sha, index))
                    progress = True
        return out

    def next_ready(self, now: float) -> float | None:
        """When the next queued request fits its peer's budget (for the driver's timer), or None."""
        best: float | None = None
        for p in self._peers.values():
            if p.queue:
                self._refill(p, now)
                need = p.queue[0][2] - p.tokens
                if need > 0 and self._rate <= 0:
                    continue  # a zero budget never refills
                at = now if need <= 0 else now + need / self._rate
                best = at if best is None else min(best, at)
        return best
