"""Files connections yield the link to chat (``fletchat/files/yielding.py``): the controller on a
simulated link (no timing: simulated time), ``TCP_INFO`` and the pacing option on real sockets,
and a real transfer over a shaped namespaced link whose files connection gets paced."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import struct
import sys
import threading

import pytest

from fletchat.files import yielding as Y
from fletchat.files.yielding import LinkReading, YieldingRate, apply_rate, parse_tcp_info, read_link
from tests.conftest import need
from tests.lan import lan_available, tc_available, virtual_lan
from tests.lan import start_headless_peer as start_peer
from tests.timing import eventually_sync

MBPS = 1_000_000 / 8  # bytes/s in one Mbit/s
TSQ_BYTES = 136_000  # what an unpaced Linux TCP socket keeps queued in a link's qdisc


class Link:
    """A bottleneck of ``capacity`` bytes/s with a FIFO in front: an unpaced sender keeps
    ``TSQ_BYTES`` in it (TCP small queues), a paced one sends its rate; the round trip is the
    base plus the queue's delay (plus ``other_queue_s``: someone else's traffic), smoothed as
    TCP smooths it."""

    def __init__(self, capacity: float, base_rtt: float = 0.0002, other_queue_s: float = 0.0):
        self.capacity, self.base, self.other = capacity, base_rtt, other_queue_s
        self.queue = 0.0
        self.acked = 0
        self.srtt = base_rtt
        self.delivered = 0.0
        self.queueing: list[float] = []

    def tick(self, rate: float | None, dt: float) -> LinkReading:
        self.queue += (self.capacity * dt + max(0.0, TSQ_BYTES - self.queue) if rate is None
                       else rate * dt)
        out = min(self.queue, self.capacity * dt)
        self.queue -= out
        self.acked += int(out)
        self.delivered += out
        delay = self.queue / self.capacity + self.other
        self.queueing.append(delay)
        self.srtt += (self.base + delay - self.srtt) / 4
        return LinkReading(self.srtt, self.base, self.acked)


def run(link: Link, seconds: float, control: YieldingRate, start: float = 0.0) -> list[float | None]:
    rates: list[float | None] = []
    now = start
    while now < start + seconds:
        rates.append(control.observe(now, link.tick(control.rate, Y.TICK_S)))
        now += Y.TICK_S
    return rates


@pytest.mark.parametrize("mbit", [100, 200, 1000])
def test_a_transfer_keeps_the_links_queue_near_the_target_and_most_of_its_rate(mbit):
    capacity = mbit * MBPS
    plain = Link(capacity)
    for _ in range(300):
        plain.tick(None, Y.TICK_S)  # the unpaced sender: the queue it keeps is what chat waits behind
    paced, control = Link(capacity), YieldingRate()
    run(paced, 1.0, control)  # settling
    delivered, queueing = paced.delivered, len(paced.queueing)
    run(paced, 3.0, control, start=1.0)
    throughput = (paced.delivered - delivered) / 3.0
    waits = sorted(paced.queueing[queueing:])
    median = waits[len(waits) // 2]
    assert throughput >= 0.9 * capacity, f"{throughput / capacity:.2f} of the link"
    assert median <= 4 * Y.TARGET_QUEUE_S, f"chat waits {median * 1000:.2f} ms at the median"
    assert median < plain.queueing[-1] / 4  # the unpaced queue: 1.1-11 ms here


def test_no_queue_means_no_cap():
    """A CPU-bound transfer (no link queue: the bare veth pair) is never paced."""
    control = YieldingRate()
    link = Link(capacity=10_000 * MBPS)  # far more than the sender makes
    rates = [control.observe(i * Y.TICK_S, LinkReading(link.base, link.base, i * 2_000_000))
             for i in range(200)]
    assert rates == [None] * 200


def test_someone_elses_queue_costs_at_most_half_the_rate():
    """A queue no cut of ours empties (another bulk transfer's) is not followed to a crawl."""
    capacity = 200 * MBPS
    link, control = Link(capacity, other_queue_s=0.005), YieldingRate()
    rates = run(link, 5.0, control)
    capped = [r for r in rates if r is not None]
    assert capped, "it did try to yield"
    first_goodput = capped[0] / (1 - Y.CUT)
    assert min(capped) >= Y.FAIR_SHARE * first_goodput * 0.99
    assert min(capped) >= Y.MIN_RATE


def test_a_new_burst_after_a_pause_starts_uncapped():
    link, control = Link(200 * MBPS), YieldingRate()
    run(link, 1.0, control)
    assert control.rate is not None
    link.queue = 0.0
    later = 1.0 + Y.IDLE_RESET_S + 0.5
    assert control.observe(later, LinkReading(link.base, link.base, link.acked)) is None


def test_tcp_info_fields_are_read_at_their_offsets():
    raw = bytearray(Y.TCP_INFO_BYTES)
    struct.pack_into("=I", raw, 68, 5_400)  # tcpi_rtt, µs
    struct.pack_into("=Q", raw, 120, 123_456_789)  # tcpi_bytes_acked
    struct.pack_into("=I", raw, 148, 40)  # tcpi_min_rtt, µs
    reading = parse_tcp_info(bytes(raw))
    assert reading == LinkReading(0.0054, 0.00004, 123_456_789)
    assert reading.queueing_s == pytest.approx(0.00536)
    assert parse_tcp_info(bytes(raw[:100])) is None  # an old kernel's shorter struct
    struct.pack_into("=I", raw, 148, 0xFFFFFFFF)  # no round trip measured yet
    assert parse_tcp_info(bytes(raw)).queueing_s == 0.0


def _linux_only() -> None:
    if not sys.platform.startswith("linux"):
        need(False, "TCP_INFO and SO_MAX_PACING_RATE are Linux's (and Android's)")


def test_a_real_sockets_round_trip_and_pacing_cap():
    _linux_only()
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
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
        assert 0 < reading.min_rtt_s <= reading.srtt_s < 1.0
        assert apply_rate(client, 3_000_000)
        got = struct.unpack("=I", client.getsockopt(socket.SOL_SOCKET, Y.SO_MAX_PACING_RATE, 4))
        assert got == (3_000_000,)
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
        assert 0.4 * 100e6 <= min(caps) < 100e6, caps[:10]
