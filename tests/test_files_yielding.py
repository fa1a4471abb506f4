"""Files connections yield the link to chat (``fletchat/files/yielding.py``): the controller on a
simulated link (no timing: simulated time), ``TCP_INFO`` and the pacing option on real sockets,
and a real transfer over a shaped namespaced link whose files connection gets paced."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import Callable

import pytest

from fletchat.files import yielding as Y
from fletchat.files.yielding import (
    LinkReading,
    YieldingRate,
    apply_rate,
    paceable,
    parse_tcp_info,
    read_link,
)
from tests.conftest import need
from tests.lan import lan_available, tc_available, virtual_lan
from tests.lan import start_headless_peer as start_peer
from tests.timing import eventually_sync

MBPS = 1_000_000 / 8  # bytes/s in one Mbit/s
TSQ_BYTES = 136_000  # what an unpaced Linux TCP socket keeps queued in a link's qdisc


class SharedLink:
    """A bottleneck of ``capacity`` bytes/s with one FIFO in front, shared by ``flows`` senders
    and drained in proportion to what each has in it: an unpaced sender keeps ``TSQ_BYTES`` in
    it (TCP small queues), a paced one adds its rate, up to as much. Each sender's round trip is the base plus
    the queue's delay (plus ``other_queue_s``: traffic that is not ours, and ``noise``: a
    Wi-Fi-like extra delay per tick), smoothed as the kernel smooths it (per ACK). What does not fit in the FIFO
    (``limit_s``) is dropped."""

    def __init__(self, capacity: float, flows: int = 1, base_rtt: float = 0.0002,
                 other_queue_s: float = 0.0, noise: Callable[[], float] = lambda: 0.0,
                 limit_s: float = 1.0):
        self.capacity, self.base, self.other, self.noise = capacity, base_rtt, other_queue_s, noise
        self.limit_s = limit_s  # the FIFO holds this long of the link's rate; the rest is dropped
        self.other_fn: Callable[[], float] | None = None  # a queue not ours that changes
        self.queued = [0.0] * flows
        self.acked = [0] * flows
        self.srtt = [base_rtt] * flows
        self.delivered = [0.0] * flows
        self.delays: list[float] = []

    def tick(self, rates: list[float | None], active: list[bool], dt: float) -> list[LinkReading]:
        for i, rate in enumerate(rates):
            # TCP keeps at most its small-queue limit of a socket's bytes in the FIFO: unpaced,
            # that much; paced, what the rate adds, up to that much (the rest waits in the socket)
            top = TSQ_BYTES + self.capacity * dt
            if active[i] and rate is None:
                self.queued[i] = max(self.queued[i], top)
            elif active[i]:
                self.queued[i] = min(top, self.queued[i] + rate * dt)
        self._delivered_before = list(self.delivered)
        total = sum(self.queued)
        room = self.capacity * (self.limit_s + dt)
        if total > room:  # dropped at the tail, in proportion
            self.queued = [q * room / total for q in self.queued]
            total = room
        out = min(total, self.capacity * dt)
        for i in range(len(rates)):
            share = out * self.queued[i] / total if total else 0.0
            self.queued[i] -= share
            self.acked[i] += int(share)
            self.delivered[i] += share
        delay = sum(self.queued) / self.capacity
        self.delays.append(delay)
        readings = []
        for i in range(len(rates)):
            # the kernel moves its smoothed round trip an eighth of the way per ACK (one per
            # two segments): at these rates, tens of ACKs a tick
            acks = max(1.0, (self.delivered[i] - self._delivered_before[i]) / 2896)
            gain = 1 - (7 / 8) ** acks
            other = self.other_fn() if self.other_fn is not None else self.other
            self.srtt[i] += (self.base + delay + other + self.noise() - self.srtt[i]) * gain
            readings.append(LinkReading(self.srtt[i], self.base, self.acked[i], 0, 1 << 20))
        return readings


class Run:
    """Senders with a controller each on one ``SharedLink``, in simulated ticks."""

    def __init__(self, link: SharedLink, starts: tuple[float, ...] = (0.0,)):
        self.link, self.starts = link, starts
        self.controls = [YieldingRate() for _ in starts]
        self.now = 0.0

    def until(self, end: float) -> None:
        while self.now < end:
            active = [self.now >= s for s in self.starts]
            readings = self.link.tick([c.rate for c in self.controls], active, Y.TICK_S)
            for control, reading, on in zip(self.controls, readings, active, strict=True):
                if on:
                    control.observe(self.now, reading)
            self.now += Y.TICK_S

    def measure(self, seconds: float) -> tuple[list[float], float]:
        """(each sender's share of the link, the median queueing delay) over the next ``seconds``."""
        before, first = list(self.link.delivered), len(self.link.delays)
        self.until(self.now + seconds)
        shares = [(d - b) / seconds / self.link.capacity
                  for d, b in zip(self.link.delivered, before, strict=True)]
        waits = sorted(self.link.delays[first:])
        return shares, waits[len(waits) // 2]


@pytest.mark.parametrize("mbit", [20, 200, 1000])
def test_a_transfer_keeps_the_links_queue_near_the_target_and_most_of_its_rate(mbit):
    unpaced = SharedLink(mbit * MBPS)
    for _ in range(300):
        unpaced.tick([None], [True], Y.TICK_S)  # the queue chat waits behind without pacing
    run = Run(SharedLink(mbit * MBPS))
    run.until(1.0)
    (share,), wait = run.measure(3.0)
    assert share >= 0.9, f"{share:.2f} of the link"
    # a few packets are the least a paced sender can keep queued on a slow link
    assert wait <= 4 * Y.TARGET_QUEUE_S + 8 * 1500 / (mbit * MBPS), f"chat waits {wait * 1000:.2f} ms"
    assert wait < unpaced.delays[-1] / 2  # the unpaced queue: 1.1-55 ms here


@pytest.mark.parametrize("mbit", [200, 1000])
def test_transfers_sharing_a_link_keep_it_full_its_queue_short_and_each_a_share(mbit):
    """A second transfer that starts while the first fills the link (the four-receiver swarm:
    each sender serves several) gets a share (not an equal one: its first cut comes at a small
    rate, and cuts and growth in proportion keep the shares' ratio), and together they keep the
    link full and its queue short."""
    run = Run(SharedLink(mbit * MBPS, flows=2), starts=(0.0, 1.0))
    run.until(6.0)
    shares, wait = run.measure(2.0)
    assert sum(shares) >= 0.9, shares
    assert min(shares) >= 0.25, shares
    assert wait <= 4 * Y.TARGET_QUEUE_S


def test_four_transfers_starting_apart_fill_the_link_and_queue_less_than_unpaced():
    """One sender serving four receivers over its one uplink: together they keep the link full,
    and the queue is never longer than with no pacing (what a connection falls back to when its
    cuts look vain: another's queue is in its round trip too)."""
    def median_wait(paced: bool) -> tuple[float, float]:
        link = SharedLink(200 * MBPS, flows=4, limit_s=0.01)
        run = Run(link, starts=(0.0, 0.3, 0.6, 0.9))
        if not paced:
            run.controls = [_Unpaced() for _ in run.controls]  # type: ignore[misc]
        run.until(1.0)
        shares, wait = run.measure(9.0)
        return sum(shares), wait

    total, wait = median_wait(paced=True)
    _, unpaced = median_wait(paced=False)
    assert total >= 0.9
    assert wait <= unpaced, (wait, unpaced)


class _Unpaced:
    rate = None

    def observe(self, now: float, reading: LinkReading) -> None:
        return None


def test_the_cap_follows_the_link_when_it_slows_down_and_speeds_up():
    """A link that gets four times slower: the cap (held at half of what began it) cannot
    follow, its queue makes ten cuts vain, and after a hold without a cap a new one begins from
    what the slower link delivers; a link that gets faster: growth that speeds up finds it."""
    link = SharedLink(200 * MBPS, limit_s=0.01)
    run = Run(link)
    run.until(1.0)
    link.capacity = 50 * MBPS  # a Wi-Fi client moved away from the access point
    run.until(5.0)
    (share,), wait = run.measure(2.0)
    assert share >= 0.85 and wait <= 4 * Y.TARGET_QUEUE_S, (share, wait)
    link.capacity = 200 * MBPS  # and back
    run.until(run.now + 3.0)
    (share,), _ = run.measure(2.0)
    assert share >= 0.85, share


def test_a_queue_that_is_not_ours_costs_little():
    """Someone else's queue (another bulk download) is not followed down to a crawl: ten cuts
    that do not shorten it lift the cap for a while, and the transfer gets what TCP alone would."""
    run = Run(SharedLink(200 * MBPS, other_queue_s=0.005))
    run.until(1.0)
    (share,), _ = run.measure(4.0)
    assert share >= 0.8, share


def test_someone_elses_queue_that_empties_now_and_then_costs_little():
    """Another download over a shallow buffer: its queue rises to 5 ms and empties every 0.2 s,
    so cuts never add up to ten in a row: the cap stops at its floor, half the rate."""
    link = SharedLink(200 * MBPS)
    run = Run(link)
    ticks = itertools.count()
    link.other_fn = lambda: 0.0 if next(ticks) % 20 < 4 else 0.005
    run.until(1.0)
    (share,), _ = run.measure(4.0)
    assert share >= Y.FAIR_SHARE * 0.95, share


def test_a_noisy_round_trip_costs_little():
    """Wi-Fi adds a millisecond or more to some round trips (aggregation, contention): not a
    queue the transfer can shorten. At worst it costs half the rate (the floor)."""
    rng = random.Random(7)
    noise = lambda: rng.expovariate(1 / 0.001)
    run = Run(SharedLink(200 * MBPS, noise=noise))
    run.until(1.0)
    (share,), _ = run.measure(4.0)
    assert share >= Y.FAIR_SHARE * 0.95, share


def test_a_stalled_receiver_leaves_the_cap_as_it_was():
    """No bytes acknowledged (the receiver stopped reading): no news, no cut and no growth."""
    run = Run(SharedLink(200 * MBPS))
    run.until(1.0)
    control, rate = run.controls[0], run.controls[0].rate
    assert rate is not None
    acked = run.link.acked[0]
    for i in range(30):  # 0.3 s, the round trip still long from before
        assert control.observe(run.now + i * Y.TICK_S, LinkReading(0.004, 0.0002, acked, 0, 1 << 20)) == rate


def test_no_decision_while_the_receivers_window_holds_the_sender_back():
    """A receiver that reads slowly shuts its window: what was delivered then says nothing of
    the link, and the queue reading is stale."""
    control = YieldingRate()
    rates = [control.observe(i * Y.TICK_S, LinkReading(0.005, 0.0002, 50_000 * i, 0, 1 << 20,
                                                         rwnd_limited_us=4_000 * i))
             for i in range(1, 100)]
    assert rates == [None] * 99
    paced = YieldingRate()  # the same without the window: cut
    assert any(paced.observe(i * Y.TICK_S, LinkReading(0.005, 0.0002, 50_000 * i, 0, 1 << 20))
               for i in range(1, 100))


def test_the_cap_never_goes_under_the_floor():
    control = YieldingRate()
    rates = [control.observe(i * Y.TICK_S, LinkReading(0.02, 0.0002, 100 * i, 0, 1 << 20))
             for i in range(1, 300)]  # a queue, and a trickle delivered
    capped = [r for r in rates if r is not None]
    assert capped and min(capped) >= Y.MIN_RATE


def test_a_side_with_nothing_waiting_is_not_cut():
    """A side that only answers now and then (nothing waiting in its socket) is not the queue's
    cause, whatever the round trip says (the other direction's data, another sender)."""
    control = YieldingRate()
    rates = [control.observe(i * Y.TICK_S, LinkReading(0.005, 0.0002, 1000 * i, 0, 0))
             for i in range(100)]
    assert rates == [None] * 100


def test_a_connection_with_data_both_ways_is_left_to_tcp():
    """Fellow fetchers serve each other on one connection: the round trip then holds the other
    side's queue, which no cut of ours shortens."""
    control = YieldingRate()
    rates = [control.observe(i * Y.TICK_S, LinkReading(0.005, 0.0002, 100_000 * i, 50_000 * i, 1 << 20))
             for i in range(100)]
    assert rates[11:] == [None] * 89  # judged over a tenth of a second
    one_way = YieldingRate()
    assert any(one_way.observe(i * Y.TICK_S, LinkReading(0.005, 0.0002, 100_000 * i, 500 * i, 1 << 20))
               for i in range(100))  # the same, with only requests coming back: paced


def test_no_queue_means_no_cap():
    """A CPU-bound transfer (no link queue: the bare veth pair) is never paced."""
    control = YieldingRate()
    rates = [control.observe(i * Y.TICK_S, LinkReading(0.0002, 0.0002, i * 2_000_000, 0, 1 << 20))
             for i in range(200)]
    assert rates == [None] * 200


def test_a_new_burst_after_a_pause_starts_uncapped():
    run = Run(SharedLink(200 * MBPS))
    run.until(1.0)
    control = run.controls[0]
    assert control.rate is not None
    later = run.now + Y.IDLE_RESET_S + 0.5
    acked = run.link.acked[0]
    # the first readings of the new burst show a queue: a connection that went on would cut
    assert control.observe(later, LinkReading(0.005, 0.0002, acked + 1, 0, 1 << 20)) is None
    assert control.observe(later + Y.TICK_S, LinkReading(0.005, 0.0002, acked + 2, 0, 1 << 20)) is None


def test_tcp_info_fields_are_read_at_their_offsets():
    raw = bytearray(Y.TCP_INFO_BYTES)
    struct.pack_into("=I", raw, 68, 5_400)  # tcpi_rtt, µs
    struct.pack_into("=Q", raw, 120, 123_456_789)  # tcpi_bytes_acked
    struct.pack_into("=Q", raw, 128, 4_567)  # tcpi_bytes_received
    struct.pack_into("=I", raw, 72, 999)  # tcpi_rttvar: not read
    struct.pack_into("=I", raw, 144, 65_536)  # tcpi_notsent_bytes
    struct.pack_into("=I", raw, 148, 40)  # tcpi_min_rtt, µs
    struct.pack_into("=Q", raw, 160, 11)  # tcpi_delivery_rate: not read
    struct.pack_into("=Q", raw, 168, 22)  # tcpi_busy_time: not read
    struct.pack_into("=Q", raw, 176, 33_000)  # tcpi_rwnd_limited, µs
    reading = parse_tcp_info(bytes(raw))
    assert reading == LinkReading(0.0054, 0.00004, 123_456_789, 4_567, 65_536, 33_000)
    assert reading.queueing_s == pytest.approx(0.00536)
    assert parse_tcp_info(bytes(raw[:100])) is None  # an old kernel's shorter struct
    struct.pack_into("=I", raw, 148, 0xFFFFFFFF)  # no round trip measured yet
    assert parse_tcp_info(bytes(raw)).queueing_s == 0.0


def _linux_only() -> None:
    if not paceable():
        need(False, "TCP_INFO and SO_MAX_PACING_RATE are Linux's (and Android's)")


def _loopback_pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    return server, client, peer


def _ss_line(sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    out = subprocess.run(["ss", "-tinH", "sport", "=", str(port)], capture_output=True, text=True,
                         check=True).stdout
    return " ".join(out.split())


def test_a_real_sockets_fields_agree_with_what_ss_reads():
    """The offsets against the kernel itself: ``ss`` reads the same ``TCP_INFO``, by name."""
    _linux_only()
    if shutil.which("ss") is None:
        need(False, "ss (iproute2) is not installed")
    server, client, peer = _loopback_pair()
    try:
        payload = os.urandom(200_000)
        got_bytes = []

        def drain() -> None:
            while sum(got_bytes) < len(payload) and (chunk := peer.recv(65536)):
                got_bytes.append(len(chunk))

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        client.sendall(payload)
        reader.join(10)
        reading = eventually_sync(lambda: (r := read_link(client)) and r.acked >= len(payload) and r,
                                  "the bytes acknowledged", 5)
        line = _ss_line(client)
        rtt = re.search(r" rtt:([\d.]+)/", line)
        minrtt = re.search(r" minrtt:([\d.]+)", line)
        acked = re.search(r" bytes_acked:(\d+)", line)
        assert rtt and minrtt and acked, line
        assert reading.srtt_s * 1000 == pytest.approx(float(rtt[1]), abs=0.0011)
        assert reading.min_rtt_s * 1000 == pytest.approx(float(minrtt[1]), abs=0.0011)
        assert reading.acked == int(acked[1])
        assert reading.notsent == 0  # everything went
    finally:
        for s in (client, peer, server):
            s.close()


def test_a_paced_socket_holds_bytes_back_and_the_cap_reads_back():
    _linux_only()
    server, client, peer = _loopback_pair()
    try:
        assert apply_rate(client, 100_000)  # 100 kB/s: a second for 100 kB
        got = struct.unpack("=I", client.getsockopt(socket.SOL_SOCKET, Y.SO_MAX_PACING_RATE, 4))
        assert got == (100_000,)
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.send(os.urandom(500_000))
        reading = read_link(client)
        assert reading is not None and reading.notsent > 0  # waiting for the pacer
        assert apply_rate(client, None)
        got = struct.unpack("=I", client.getsockopt(socket.SOL_SOCKET, Y.SO_MAX_PACING_RATE, 4))
        assert got == (0xFFFFFFFF,)
    finally:
        for s in (client, peer, server):
            s.close()


_PACING = re.compile(r"pacing_rate ([\d.]+)([KMG]?)bps/([\d.]+)([KMG]?)bps")
_UNIT = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}


def _pacing_caps(host) -> list[float]:
    """Max pacing rates (bit/s) ``ss`` shows on ``host``'s TCP connections (only one peer runs
    there; ``ss`` shows ``pacing_rate NOW/MAX`` only once a max is set)."""
    out = host.run(["ss", "-tin"], check=False).stdout
    return [float(m[2]) * _UNIT[m[3]] for m in _PACING.findall(out)]


def test_a_transfer_on_a_shaped_link_is_paced_below_the_link(tmp_path):
    """100 Mbit/s each way: the sender's files connection gets a cap under the link's rate (the
    queue it would keep is what chat waits behind); the file still arrives whole."""
    need(*lan_available())
    need(*tc_available())
    with virtual_lan(2) as lan:
        h1, h2 = lan
        lan.shape_all(100)
        a = start_peer(h1, "Alice", tmp_path / "a")
        b = start_peer(h2, "Bob", tmp_path / "b", "--download-all")
        for peer in (a, b):
            assert peer.wait_for(lambda e: e.get("event") == "online" and e.get("peers"), 30)
        src = tmp_path / "video.bin"
        src.write_bytes(os.urandom(40_000_000))  # 3.2 s at the link's rate
        sha = hashlib.sha256(src.read_bytes()).hexdigest()
        a.send(f"/file {src}")
        caps: list[float] = []
        done = None
        for _ in range(400):
            caps += _pacing_caps(h1)
            done = b.wait_for(lambda e: e.get("event") == "file" and e.get("sha256") == sha, 0.05)
            if done:
                break
        assert done is not None, b.events[-5:]
        assert caps, "the files connection was never paced"
        # under the link's rate at times (it saws around it), and never under the floor (a first
        # cut during TCP's slow start may start from little: only MIN_RATE is certain)
        assert Y.MIN_RATE * 8 <= min(caps) < 100e6, caps[:10]
