"""``Lan.shape``: a namespaced host's link at a set rate, both ways (tests/lan.py). The qdiscs are
checked where they must be, with the rate asked for; no timing is asserted (that is bench/)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import need
from tests.lan import GSO_BYTES, tbf_args, tc_available, virtual_lan
from tests.timing import scaled

PAYLOAD = 300_000  # more than the bucket's burst: some of it waits for tokens
SERVE_ONCE = f"""
import socket, sys
s = socket.create_server((sys.argv[1], 8097))
c, _ = s.accept()
c.sendall(b"x" * {PAYLOAD})
c.close()
"""
FETCH_ONCE = """
import socket, sys, time
for _ in range(100):
    try:
        c = socket.create_connection((sys.argv[1], 8097), timeout=10)
        break
    except OSError:
        time.sleep(0.1)
n = 0
while chunk := c.recv(65536):
    n += len(chunk)
print(n)
"""


def _root_qdisc(*where: str) -> dict | None:
    """The root qdisc of a link (``where``: ``-n NS dev IFACE`` or ``dev PORT``), None if the link
    is gone or has none (a veth's default is ``noqueue``)."""
    ns, dev = (where[:2], where[2:]) if where[0] == "-n" else ((), where)
    res = subprocess.run(["tc", *ns, "-j", "qdisc", "show", *dev], capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        return None
    roots = [q for q in json.loads(res.stdout or "[]") if q.get("root")]
    return next((q for q in roots if q["kind"] != "noqueue"), None)


def test_tbf_args_keep_a_gso_packet_in_the_bucket():
    slow, fast = tbf_args(1), tbf_args(1000)
    assert slow[:3] == ["tbf", "rate", "1mbit"] and fast[:3] == ["tbf", "rate", "1000mbit"]
    assert int(slow[slow.index("burst") + 1]) >= 2 * GSO_BYTES
    assert int(fast[fast.index("burst") + 1]) >= 1000 * 1_000_000 // 8 // 1000  # 1 ms of the rate


def test_shape_puts_a_rate_on_both_directions_and_goes_with_the_lan():
    need(*tc_available())
    with virtual_lan(2) as lan:
        h1, h2 = lan
        h1.shape(200)
        up, down = _root_qdisc("-n", h1.name, "dev", h1.iface), _root_qdisc("dev", h1.port)
        for q in (up, down):
            assert q is not None and q["kind"] == "tbf"
            assert q["options"]["rate"] == 200 * 1_000_000 // 8  # bytes per second
        assert h1.mbit == 200 and h2.mbit is None
        assert _root_qdisc("-n", h2.name, "dev", h2.iface) is None  # only the host asked for
        assert _root_qdisc("dev", h2.port) is None

        h1.shape(1000)  # a second call replaces the rate
        assert _root_qdisc("dev", h1.port)["options"]["rate"] == 1000 * 1_000_000 // 8
        h1.unshape()
        assert _root_qdisc("-n", h1.name, "dev", h1.iface) is None
        assert _root_qdisc("dev", h1.port) is None and h1.mbit is None

        lan.shape_all(1000)
        assert all(_root_qdisc("dev", h.port) is not None for h in lan)
        names, ports = [h.name for h in lan], [h.port for h in lan]
        # TCP still crosses shaped links: h2 listens, h1 connects and reads what h2 sends
        server = h2.popen([sys.executable, "-c", SERVE_ONCE, h2.ip])
        got = h1.run([sys.executable, "-c", FETCH_ONCE, h2.ip], timeout=20)
        assert got.stdout.strip() == str(PAYLOAD), got.stderr
        server.wait(timeout=scaled(10))
    gone = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert not any(n in gone.stdout for n in names)
    for port in ports:  # the links, and the qdiscs on them, are gone with the LAN
        assert subprocess.run(["ip", "link", "show", port], capture_output=True,
                              check=False).returncode != 0
        assert _root_qdisc("dev", port) is None
