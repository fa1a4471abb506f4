"""An eavesdropper on the LAN: two headless peers chat over real mDNS on namespaced hosts while a raw
packet socket in the root namespace records every frame on one host's cable (its veth end, a port
of the LAN's bridge). The capture holds the peers' TCP traffic but not a word of what was said."""

from __future__ import annotations

import secrets
import socket
import struct
import sys
import threading

import pytest

from tests.conftest import need
from tests.lan import lan_available, virtual_lan
from tests.lan import start_headless_peer as start_peer
from tests.timing import eventually_sync

WAIT = 20.0
PEER_PORT = 8551  # the default --peer-port both peers use
ETH_P_ALL = 0x0003
MARKER = "zebra-marmalade-7319 plans for Friday: the secret is ✨quokka✨"
END_OF_CAPTURE = (
    "import socket, sys; "
    "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(sys.argv[2].encode(), (sys.argv[1], 9))"
)


class Sniffer:
    """Every Ethernet frame seen on ``iface`` (root namespace), collected on a thread."""

    def __init__(self, iface: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((iface, 0))
        self.sock.settimeout(0.2)
        self.frames: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.frames.append(self.sock.recv(65535))
            except TimeoutError:
                continue
            except OSError:
                return

    def stop(self) -> bytes:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        return b"".join(self.frames)

    def tcp_payload_bytes(self, port: int) -> int:
        """Bytes of TCP payload to or from ``port`` (IPv4 and IPv6) in the capture."""
        total = 0
        for f in self.frames:
            ethertype = struct.unpack("!H", f[12:14])[0]
            if ethertype == 0x0800 and f[23] == 6:
                ip_len = (f[14] & 0x0F) * 4
                total_len = struct.unpack("!H", f[16:18])[0]
                tcp = f[14 + ip_len : 14 + total_len]
            elif ethertype == 0x86DD and f[20] == 6:
                payload_len = struct.unpack("!H", f[18:20])[0]
                tcp = f[54 : 54 + payload_len]
            else:
                continue
            if len(tcp) < 20:
                continue
            sport, dport = struct.unpack("!HH", tcp[:4])
            if port in (sport, dport):
                total += len(tcp) - (tcp[12] >> 4) * 4
        return total


@pytest.fixture
def lan2():
    need(*lan_available())
    with virtual_lan(2) as lan:
        yield lan




def test_a_passive_listener_sees_tcp_traffic_but_no_message_text(lan2, tmp_path):
    h1, h2 = lan2
    sniffer = Sniffer(h1.port)
    try:
        a = start_peer(h1, "Alice", tmp_path / "a")
        b = start_peer(h2, "Bob", tmp_path / "b")
        assert a.wait_for(
            lambda e: e.get("event") == "online" and "Bob" in e.get("people", []), WAIT
        )
        a.send(MARKER)
        b.send("reply: " + MARKER)
        for peer, author in ((b, "Alice"), (a, "Bob")):
            assert peer.wait_for(
                lambda e, author=author: e.get("event") == "message"
                and e.get("author") == author and MARKER in e.get("text", ""),
                WAIT,
            ), f"the message of {author} did not arrive"
        # Everything on this cable before a last datagram from h1 is in the capture once that
        # datagram is (a packet socket keeps the order), instead of sleeping and hoping.
        token = secrets.token_hex(8)
        h1.run([sys.executable, "-c", END_OF_CAPTURE, h2.ip, token])
        eventually_sync(
            lambda: any(token.encode() in f for f in list(sniffer.frames)),
            "the sniffer caught up",
            WAIT,
        )
    finally:
        capture = sniffer.stop()
    # The eavesdropper did capture the peers' conversation on the wire...
    assert sniffer.tcp_payload_bytes(PEER_PORT) > 2000, "no peer traffic captured"
    # ...and mDNS adverts (plaintext by design: docs/security.md) show the names...
    assert b"Alice" in capture or b"Bob" in capture
    # ...but not what they said, in any encoding a sniffer would try.
    for needle in (MARKER, "zebra-marmalade", "quokka"):
        for encoding in ("utf-8", "utf-16-le"):
            assert needle.encode(encoding) not in capture, f"{needle!r} leaked as {encoding}"
