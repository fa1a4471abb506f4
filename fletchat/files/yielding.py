"""Files connections yield the link to chat: a pacing rate that keeps the link's queue short.

A bulk TCP transfer fills whatever FIFO queue sits in front of the slowest link on its way (a
Wi-Fi access point's, a switch port's, the host's own qdisc), and every chat frame to or from
that host then waits behind it: on a 200 Mbit/s link a file transfer added about 3 ms to every
small round trip, about what the queue holds (figure 12, docs/performance.md). Pacing the
transfer just below the link's rate empties that queue at almost no cost in throughput (0.95x).
The link's rate is not known, so this is LEDBAT's idea (RFC 6817: back off when the queueing
delay one's own traffic causes goes over a small target) applied to a pacing rate instead of a
window: the kernel measures the connection's round trip (smoothed, and its minimum: the
difference is time spent in queues) and this controller sets ``SO_MAX_PACING_RATE`` from it.

``YieldingRate`` is the controller, sans-I/O (times and readings are passed in);
``fletchat.files.lane`` reads ``TCP_INFO`` from a files connection's socket every ``TICK_S``
while it sends, and applies the rate. Where the platform has no ``TCP_INFO`` or no pacing
(anything but Linux and Android), the connection is simply not paced, as before.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

TICK_S = 0.01  # how often a sending connection's round trip is looked at
TARGET_QUEUE_S = 0.0005  # queueing delay a transfer may add to the link (chat waits this much more)
CUT = 0.05  # over the target: the rate goes to (1 - CUT) x what the link delivered
GROW = 0.005  # under it: the rate grows by this share per tick (a cut is made up in about 0.1 s)
GOODPUT_WINDOW_S = 0.1  # what the link delivered: bytes acknowledged over this long
MIN_RATE = 256 * 1024  # bytes/s: yielding never stalls a transfer
# ... nor below this share of what the link delivered when it was first cut: against someone
# else's bulk transfer (whose queue no cut of ours can empty) it keeps a fair share
FAIR_SHARE = 0.5
UNCAPPED_AFTER = 2.0  # a cap this many times what is delivered, with no queue: no cap at all
IDLE_RESET_S = 1.0  # nothing sent for this long: the next burst starts uncapped

# struct tcp_info (linux/tcp.h), the fields read here, by byte offset: stable since Linux 4.10
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_RTT_AT = 68  # tcpi_rtt, microseconds (smoothed)
_BYTES_ACKED_AT = 120  # tcpi_bytes_acked
_MIN_RTT_AT = 148  # tcpi_min_rtt, microseconds
TCP_INFO_BYTES = 152
SO_MAX_PACING_RATE = 47  # asm-generic/socket.h: Linux on every architecture Android runs on


@dataclass(frozen=True)
class LinkReading:
    """What the kernel measured on one connection."""

    srtt_s: float  # smoothed round trip
    min_rtt_s: float  # the least round trip seen: the link without queues
    acked: int  # bytes the other end has acknowledged, since the connection opened

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
    if min_rtt == 0xFFFFFFFF:  # no sample yet: no queue seen either
        min_rtt = rtt
    return LinkReading(rtt / 1e6, min_rtt / 1e6, acked)


class YieldingRate:
    """The pacing cap for one sending connection: ``None`` (no cap) until its traffic queues on
    the link; then ``1 - CUT`` of what the link delivered (bytes acknowledged over the last
    ``GOODPUT_WINDOW_S``: with a queue, the link's own rate) whenever the queueing delay is over
    the target, and no sooner than that queue could have drained at the cut rate, never below
    ``FAIR_SHARE`` of the first cut's; grown by ``GROW`` a tick while it is under the target.
    So the rate saws just under the link's and the queue stays near the target."""

    def __init__(self, target_s: float = TARGET_QUEUE_S) -> None:
        self.target_s = target_s
        self.rate: float | None = None
        self._floor = MIN_RATE
        self._acks: deque[tuple[float, int]] = deque()  # (time, bytes acked), the window
        self._next_cut = float("-inf")
        self._last_busy = float("-inf")

    def goodput(self) -> float | None:
        """Bytes/s acknowledged over the window; None until it spans two ticks."""
        (t0, a0), (t1, a1) = self._acks[0], self._acks[-1]
        return (a1 - a0) / (t1 - t0) if t1 - t0 >= 2 * TICK_S else None

    def observe(self, now: float, reading: LinkReading) -> float | None:
        """Called every tick while the connection has something to send; the cap to apply now
        (bytes/s; ``None``: no cap)."""
        if now - self._last_busy > IDLE_RESET_S:
            self.rate = None  # a new burst: the link may be another one's now
            self._acks.clear()
        self._last_busy = now
        self._acks.append((now, reading.acked))
        while now - self._acks[0][0] > GOODPUT_WINDOW_S:
            self._acks.popleft()
        goodput = self.goodput()
        if goodput is None:
            return self.rate
        if reading.queueing_s <= self.target_s:
            if self.rate is not None:
                self.rate *= 1 + GROW
                if self.rate > UNCAPPED_AFTER * max(goodput, MIN_RATE):
                    self.rate = None
        elif now >= self._next_cut:
            if self.rate is None:
                self._floor = max(MIN_RATE, FAIR_SHARE * goodput)
            # from the cap itself once capped (what was delivered lags a cut), unless the link
            # now delivers far less than it (someone else's traffic took it)
            base = goodput if self.rate is None or self.rate > 2 * goodput else self.rate
            self.rate = max(self._floor, base * (1 - CUT))
            # the queue drains at CUT x the link's rate: look again once it could have
            self._next_cut = now + reading.queueing_s / CUT + reading.srtt_s
        return self.rate


# ---- the socket edge (Linux and Android) ----
def read_link(sock: object) -> LinkReading | None:
    """``TCP_INFO`` of a connected TCP socket; None where the platform has none."""
    import socket

    level, option = socket.IPPROTO_TCP, getattr(socket, "TCP_INFO", None)
    if option is None:
        return None
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
