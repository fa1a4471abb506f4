"""Files connections yield the link to chat: a pacing rate that keeps the link's queue short.

A bulk TCP transfer fills whatever FIFO queue sits in front of the slowest link on its way (a
Wi-Fi access point's, a switch port's, the host's own qdisc), and every chat frame to or from
that host then waits behind it: on a 200 Mbit/s link a file transfer added about 2 ms to every
chat line, what the queue holds (figure 12, docs/performance.md). Pacing the transfer just below
the link's rate empties that queue at almost no cost in throughput. The link's rate is not
known, so this is LEDBAT's idea (RFC 6817: back off when the queueing delay one's own traffic
causes goes over a small target) applied to a pacing rate: the kernel measures the connection's
round trip (smoothed, and its minimum: the difference is time spent in queues), and this
controller sets ``SO_MAX_PACING_RATE`` from it.

It yields only what is its own doing: a cut is made only while this side has bytes waiting to be
sent (``tcpi_notsent_bytes``: not while it only answers requests now and then), only while new
bytes are being acknowledged and the receiver's window did not hold it back (a receiver that
reads slowly tells nothing of the link), and never while data also comes the other way (fellow
fetchers serving each other: the round trip then holds the other side's queue too; such a
connection is left to TCP). A cap never goes under half of what the link delivered when it began,
so a queue that is not its doing (a competing download, a noisy Wi-Fi link) costs a transfer at
most half its rate; one that ten cuts (or three, over half a second) do not clear lifts the cap
for about ``HOLD_S``, and the transfer gets what TCP alone gives it.

``YieldingRate`` is the controller, sans-I/O (times and readings are passed in);
``fletchat.files.lane`` reads ``TCP_INFO`` from a files connection's socket every ``TICK_S``
while it sends, and applies the rate. Only Linux and Android have both (the fields read need
kernel 4.10; TCP paces by itself, without the fq qdisc, from 4.13: before that the cap is taken
and does nothing); elsewhere the connection is simply not paced, as before.
"""

from __future__ import annotations

import functools
import random
import struct
import sys
from collections import deque
from dataclasses import dataclass

TICK_S = 0.01  # how often a sending connection's round trip is looked at
TARGET_QUEUE_S = 0.0005  # queueing delay a transfer may add to the link (chat waits this much more)
FILTER_TICKS = 4  # the queueing delay is the least of this many ticks' (a spike is not a queue)
CUT = 0.05  # over the target and not draining: the rate goes to (1 - CUT) x itself
# Under the target the rate grows each TICK_S of time by GROW_BYTES (bytes/s: the same step for
# every connection, which moves connections sharing a link towards equal shares) plus GROW of
# itself, twice as much for every ACCELERATE_S without a queue (the link got faster, or another
# transfer ended), and by APPROACH of the gap while under where the queue last formed (after a
# deep cut).
GROW_BYTES = 64 * 1024
GROW = 0.0025
ACCELERATE_S = 0.2
MAX_GROW = 0.1  # per tick
APPROACH = 0.2
DRAIN_S = 0.1  # a first cut also takes away what empties the queue beyond the target in this long
MAX_CUT = 0.5  # and takes at most this share of what was delivered
DRAINING = 0.98  # a queueing delay below this share of the last tick's: the queue is draining
GOODPUT_WINDOW_S = 0.1  # the first cap: bytes acknowledged over this long (with a queue: the link)
HISTORY_S = 1.0  # the first cap's longer window, and how long data coming back is looked at
MIN_RATE = 256 * 1024  # bytes/s: yielding never stalls a transfer ...
# ... nor takes a cap below this share of what the link delivered when the cap began: a queue
# that comes and goes (someone else's, a noisy link) can cost a transfer at most half its rate
FAIR_SHARE = 0.5
# the receiver's window held us back this long since the last reading: no news of the link (the
# kernel counts it in jiffies, 1-10 ms: in effect, any growth)
RWND_HELD_US = 1000
TWO_WAY = 0.1  # data coming back at this share of what goes out: the connection is not paced
VAIN_CUTS = 10  # cuts since the queue was last under the target: it is not ours ...
VAIN_S = 0.5  # (or three, with the queue over the target this long all the while) ...
HOLD_S = 2.0  # ... so no cap, and no cuts, for about this long (0.75-1.25x, at random)
UNCAPPED_AFTER = 2.0  # a cap this many times what is delivered, with no queue: no cap at all
IDLE_RESET_S = 1.0  # not called for this long (nothing to send): the next burst starts uncapped

# struct tcp_info (linux/tcp.h), the fields read here, by byte offset (the same on every
# architecture: the first 64-bit field, at 104, is 8-aligned either way)
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_RTT_AT = 68  # tcpi_rtt, microseconds (smoothed)
_BYTES_ACKED_AT = 120  # tcpi_bytes_acked
_BYTES_RECEIVED_AT = 128  # tcpi_bytes_received
_NOTSENT_AT = 144  # tcpi_notsent_bytes
_MIN_RTT_AT = 148  # tcpi_min_rtt, microseconds
_RWND_LIMITED_AT = 176  # tcpi_rwnd_limited, microseconds the receiver's window held us back
TCP_INFO_BYTES = 184
SO_MAX_PACING_RATE = 47  # asm-generic/socket.h: Linux on every architecture Android runs on


@dataclass(frozen=True)
class LinkReading:
    """What the kernel measured on one connection."""

    srtt_s: float  # smoothed round trip
    min_rtt_s: float  # the least round trip seen: the link without queues
    acked: int  # bytes the other end has acknowledged, since the connection opened
    received: int  # bytes received from it, since the connection opened
    notsent: int  # bytes written to the socket and not sent yet (0: this side has nothing waiting)
    rwnd_limited_us: int = 0  # time the receiver's window held the sender back, all told

    @property
    def queueing_s(self) -> float:
        return max(0.0, self.srtt_s - self.min_rtt_s)


def parse_tcp_info(raw: bytes) -> LinkReading | None:
    """The fields of a ``TCP_INFO`` answer, or None if it is too short (a kernel before 4.10)."""
    if len(raw) < TCP_INFO_BYTES:
        return None
    (rtt,) = _U32.unpack_from(raw, _RTT_AT)
    (min_rtt,) = _U32.unpack_from(raw, _MIN_RTT_AT)
    (acked,) = _U64.unpack_from(raw, _BYTES_ACKED_AT)
    (received,) = _U64.unpack_from(raw, _BYTES_RECEIVED_AT)
    (notsent,) = _U32.unpack_from(raw, _NOTSENT_AT)
    (rwnd_limited,) = _U64.unpack_from(raw, _RWND_LIMITED_AT)
    if min_rtt == 0xFFFFFFFF:  # no sample yet: no queue seen either
        min_rtt = rtt
    return LinkReading(rtt / 1e6, min_rtt / 1e6, acked, received, notsent, rwnd_limited)


class YieldingRate:
    """The pacing cap for one sending connection: ``None`` (no cap) until its traffic queues on
    the link; then ``1 - CUT`` of what the link delivered (bytes acknowledged over the last
    ``GOODPUT_WINDOW_S`` or ``HISTORY_S``, the larger) less what drains the excess queue, and
    ``1 - CUT`` of itself whenever the queueing delay is over the target and not falling, at
    most once a round trip (a cut shows a round trip later), never under ``FAIR_SHARE`` of what
    began it; grown while it is under (``_grow``). So the rate saws just under the link's (or
    its share of it) and the queue stays near the target. ``rng`` jitters the holds."""

    def __init__(self, target_s: float = TARGET_QUEUE_S, rng: random.Random | None = None) -> None:
        self.target_s = target_s
        self.rng = rng or random.Random()
        self._floor = MIN_RATE  # FAIR_SHARE of what was delivered when the cap began
        self.rate: float | None = None
        self._hist: deque[tuple[float, int, int]] = deque()  # (time, acked, received), HISTORY_S
        self._srtts: deque[float] = deque(maxlen=FILTER_TICKS)
        self._queueing = 0.0  # at the last tick
        self._vain = 0  # cuts since the queue was last under the target
        self._formed = 0.0  # what was delivered when a queue last formed
        self._clear_since: float | None = None  # under the target since
        self._over_since: float | None = None  # over it since
        self._next_cut = float("-inf")
        self._hold_until = float("-inf")
        self._last = float("-inf")  # the last tick with news
        self._last_call = float("-inf")
        self._rwnd_limited_us = 0

    def goodput(self, window: float = GOODPUT_WINDOW_S) -> float | None:
        """Bytes/s acknowledged over the last ``window`` (at least over the last two ticks with
        news); None until there are two."""
        if len(self._hist) < 2:
            return None
        t1, a1, _ = self._hist[-1]
        t0, a0, _ = next((h for h in reversed(self._hist) if t1 - h[0] >= window), self._hist[0])
        return (a1 - a0) / (t1 - t0) if t1 - t0 >= 2 * TICK_S else None

    def _two_way(self) -> bool:
        """Data comes the other way too (a fellow fetcher serves us on the same connection):
        then the round trip holds the other side's queue, which no cut of ours shortens."""
        (t0, a0, r0), (t1, a1, r1) = self._hist[0], self._hist[-1]
        return t1 - t0 >= GOODPUT_WINDOW_S and r1 - r0 > TWO_WAY * (a1 - a0)

    def observe(self, now: float, reading: LinkReading) -> float | None:
        """Called every tick while the connection has something to send; the cap to apply now
        (bytes/s; ``None``: no cap)."""
        if now - self._last_call > IDLE_RESET_S:  # a new burst: the link may be another one's now
            self.rate, self._vain = None, 0
            self._hist.clear()
            self._srtts.clear()
        self._last_call = now
        if self._hist and reading.acked == self._hist[-1][1]:
            return self.rate  # nothing acknowledged since: no news (a stalled receiver)
        elapsed = self._record(now, reading)
        queueing = max(0.0, min(self._srtts) - reading.min_rtt_s)
        short, long = self.goodput(), self.goodput(HISTORY_S)
        # the larger: a loss (a retransmission's wait) in the short window is not a slower link
        goodput = None if short is None else max(short, long or 0.0)
        if len(self._hist) > 1 and self._two_way():
            self.rate = None  # not ours to judge: TCP alone
        elif goodput is not None and now >= self._hold_until:
            if queueing <= self.target_s:
                self._under(now, elapsed, goodput)
            else:
                self._over(now, reading, goodput, queueing)
        self._queueing = queueing
        return self.rate

    def _record(self, now: float, reading: LinkReading) -> float:
        """Take the reading into the history; the time since the last one with news."""
        if reading.rwnd_limited_us - self._rwnd_limited_us > RWND_HELD_US:
            self._hist.clear()  # the receiver, not the link, set the pace: no news of the link
        self._rwnd_limited_us = reading.rwnd_limited_us
        elapsed, self._last = min(now - self._last, 2 * TICK_S), now  # a gap is no time to grow
        self._hist.append((now, reading.acked, reading.received))
        while len(self._hist) > 2 and now - self._hist[1][0] > HISTORY_S:
            self._hist.popleft()
        self._srtts.append(reading.srtt_s)
        return elapsed

    def _under(self, now: float, elapsed: float, goodput: float) -> None:
        self._vain, self._over_since = 0, None
        if self._clear_since is None:
            self._clear_since = now
        if self.rate is not None:
            self._grow(now, elapsed / TICK_S)
            if self.rate > UNCAPPED_AFTER * max(goodput, MIN_RATE):
                self.rate = None

    def _over(self, now: float, reading: LinkReading, goodput: float, queueing: float) -> None:
        self._clear_since = None
        if self._over_since is None:
            self._over_since = now
        if (reading.notsent and now >= self._next_cut
                and queueing >= DRAINING * self._queueing):
            self._cut(now, goodput, queueing, reading.srtt_s)

    def _grow(self, now: float, ticks: float) -> None:
        """Back to where the queue formed quickly (a deep cut drained it), then past it, faster
        the longer no queue formed."""
        assert self.rate is not None
        near = (1 - CUT) * self._formed
        if self.rate < near:
            self.rate += (near - self.rate) * (1 - (1 - APPROACH) ** ticks)
        share = min(MAX_GROW, GROW * 2 ** ((now - self._clear_since) / ACCELERATE_S))
        self.rate = self.rate * (1 + share) ** ticks + GROW_BYTES * ticks

    def _cut(self, now: float, goodput: float, queueing: float, srtt: float) -> None:
        self._vain += 1
        assert self._over_since is not None
        if self._vain > VAIN_CUTS or (self._vain > 2 and now - self._over_since > VAIN_S):
            # not our queue: what TCP alone gives, for a while
            self.rate, self._vain, self._over_since = None, 0, None
            self._hold_until = now + HOLD_S * self.rng.uniform(0.75, 1.25)
            return
        if self.rate is None:  # a cap begins: never below half of what the link delivers now
            self._floor = max(MIN_RATE, FAIR_SHARE * goodput)
        if self.rate is None or self.rate > 2 * goodput:
            # TCP's own queue in front of the link, or the link got much slower: send a little
            # under what it delivers (with a queue and bytes waiting: its rate, or our share of
            # it), less what empties the queue beyond the target in DRAIN_S.
            self._formed = goodput
            excess = (queueing - self.target_s) * goodput
            self.rate = max(goodput * (1 - MAX_CUT), goodput * (1 - CUT) - excess / DRAIN_S)
        else:  # the queue formed at this rate
            self._formed = self.rate
            self.rate *= 1 - CUT
        self.rate = max(self._floor, self.rate)
        self._next_cut = now + srtt + TICK_S  # a cut shows a round trip later


# ---- the socket edge (Linux and Android) ----
@functools.cache  # the platform does not change: asked every tick by read_link
def paceable() -> bool:
    """Whether this platform has Linux's ``TCP_INFO`` layout and ``SO_MAX_PACING_RATE`` (other
    systems that have a ``TCP_INFO``, e.g. FreeBSD, lay it out differently)."""
    import socket

    return sys.platform.startswith(("linux", "android")) and hasattr(socket, "TCP_INFO")


def read_link(sock: object) -> LinkReading | None:
    """``TCP_INFO`` of a connected TCP socket; None where the platform has none."""
    import socket

    if not paceable():
        return None
    level, option = socket.IPPROTO_TCP, socket.TCP_INFO
    try:
        return parse_tcp_info(sock.getsockopt(level, option, TCP_INFO_BYTES))  # type: ignore[attr-defined]
    except OSError:
        return None


def apply_rate(sock: object, rate: float | None) -> bool:
    """Set the socket's ``SO_MAX_PACING_RATE`` (None: unlimited); False where it cannot be."""
    import socket

    value = 0xFFFFFFFF if rate is None else min(int(rate), 0xFFFFFFFE)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, struct.pack("=I", value))  # type: ignore[attr-defined]
    except OSError:
        return False
    return True


class SocketPacer:
    """``YieldingRate`` on one socket: ``step`` once a tick while it sends, ``release`` after."""

    def __init__(self, sock: object) -> None:
        self.sock = sock
        self.control = YieldingRate()
        self.applied: float | None = None

    def step(self, now: float) -> LinkReading | None:
        """Read the link, set the cap; the reading, or None where pacing cannot be done (the
        caller stops stepping)."""
        reading = read_link(self.sock)
        if reading is None:
            return None
        rate = self.control.observe(now, reading)
        if rate != self.applied:
            if not apply_rate(self.sock, rate):
                return None
            self.applied = rate
        return reading

    def release(self) -> None:
        """No cap any more (the socket goes on to carry other things)."""
        if self.applied is not None:
            apply_rate(self.sock, None)
            self.applied = None

