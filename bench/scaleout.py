"""Figure 14: scale-out, several hosts sharing one conversation through the mesh (issue 12).

Three host-mode processes (``main.py --web``, LAN on) on three namespaced hosts with real mDNS;
N headless Flet tabs on each (``bench/ns_tabs.py``: registered on ``/ws`` as a browser would, the
chat view built, invoke calls answered with "nothing"). A static-client tab on host 1 (``/relay``)
sends; the time is from that send to the *last* tab on each host having the patch with the new
message. Baseline: the same message to the last tab of host 1 (no mesh hop). Per-host RSS.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import MAIN, Skip, percentile, row, rss_kib, stop_process

PORT = 8551


def quick_plan(quick: bool) -> dict[str, Any]:
    """Tabs per host and messages (quick: a smoke run on a handful of tabs)."""
    return {"tabs": 5 if quick else 100, "messages": 3 if quick else 20}


def _host(h: Any, data: Path) -> Any:
    log = open(f"{data}.log", "w")  # noqa: SIM115 - read back when the mesh does not form
    return h.popen([sys.executable, MAIN, "--web", "--port", str(PORT), "--data-dir", str(data)],
                   stdout=log, stderr=subprocess.STDOUT)


def _wait(proc: Any, pred, timeout: float, what: str) -> dict[str, Any]:
    ev = proc.wait_for(pred, timeout=timeout)
    if ev is None:
        raise RuntimeError(f"timed out waiting for {what}")
    return ev


def run(quick: bool) -> dict[str, dict[str, Any]]:
    from tests.lan import lan_available, virtual_lan
    from tests.timing import scaled

    ok, reason = lan_available()
    if not ok:
        raise Skip(reason)
    plan = quick_plan(quick)
    n, msgs = plan["tabs"], plan["messages"]
    lat: dict[int, list[float]] = {1: [], 2: [], 3: []}
    rss: list[float] = []
    with virtual_lan(3) as lan, tempfile.TemporaryDirectory(prefix="fcbench-scale-") as tmpd:
        hosts = [_host(h, Path(tmpd) / f"h{i}") for i, h in enumerate(lan, 1)]
        try:
            time.sleep(3)  # each host is up and announced before its tabs arrive
            tabs = [h.spawn_json([sys.executable, "-m", "bench.ns_tabs", str(PORT), str(n)])
                    for h in lan]
            for t in tabs:
                _wait(t, lambda e: e.get("ev") == "ready", 300, "tabs to open")
            # the hosts find each other by mDNS and connect: a probe reaches host 3's tabs
            deadline = time.monotonic() + scaled(120)
            k = 0
            while True:
                k += 1
                probe = f"scaleprobe{secrets.token_hex(3)}w{k}"
                tabs[0].send(f"send {probe}")
                if tabs[2].wait_for(lambda e, p=probe: e.get("marker") == p and "last" in e,
                                    timeout=5) is not None:
                    break
                if time.monotonic() > deadline:
                    for i in (1, 3):
                        tail = (Path(tmpd) / f"h{i}.log").read_text()[-1500:]
                        print(f"host {i} log:\n{tail}", file=sys.stderr)
                    raise RuntimeError("host 3 never got host 1's messages (mesh not formed)")
            for i in range(msgs):
                marker = f"scaleprobe{secrets.token_hex(3)}m{i}"
                tabs[0].send(f"send {marker}")
                sent = _wait(tabs[0], lambda e, m=marker: e.get("ev") == "sent"
                             and e.get("marker") == m, 30, "the send")["t"]
                for j, t in enumerate(tabs, 1):
                    seen = _wait(t, lambda e, m=marker: e.get("ev") == "seen"
                                 and e.get("marker") == m, 60, f"host {j}'s tabs")
                    lat[j].append(seen["last"] - sent)
                time.sleep(0.2)
            rss = [(rss_kib(p.pid) or 0) / 1024 for p in hosts]
            for t in tabs:
                t.send("quit")
        finally:
            for p in hosts:
                stop_process(p)
    base = lat[1]
    rows = [row(f"{n} tabs on each of 3 hosts: host 1 tab -> last tab on host {j}, p50",
                percentile(lat[j], 50) * 1000, percentile(base, 50) * 1000, unit="ms",
                baseline_name="last tab on host 1 (no mesh hop)", n=len(lat[j]))
            for j in (2, 3)]
    rows.append(row(f"{n} tabs on each of 3 hosts: to the last tab on host 3, p99",
                    percentile(lat[3], 99) * 1000, percentile(base, 99) * 1000, unit="ms",
                    baseline_name="last tab on host 1 (no mesh hop), p99", n=len(lat[3])))
    rows.append(row(f"RSS per host with {n} tabs (max of 3)", max(rss), min(rss), unit="MiB",
                    baseline_name="min of the 3 hosts", n=3))
    return {"scaleout": {"rows": rows, "notes": [
        ("3 namespaced hosts on a bridge, real mDNS and the TLS mesh; headless Flet tabs on /ws "
         "(no browser rendering), a /relay tab on host 1 sends; times are the host's patches "
         "read by the tab clients (one monotonic clock).")]}}
