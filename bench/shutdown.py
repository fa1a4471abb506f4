"""Figure 15: host mode's exit after SIGTERM with N tabs open (issue 11, hole 13).

Two namespaced hosts with real mDNS: host mode (``main.py --web``, LAN on) on one, a headless peer
on the other. N headless Flet tabs on the host (``bench/ns_tabs.py``). Once the peer sees the host,
it sends a burst of messages (every tab gets each one) and, once the burst is in the host's history
file, the host is sent SIGTERM while it is still being shown to the tabs. The time is from SIGTERM to the host's exit, read by this process (one
monotonic clock). Each run also checks what the exit must keep: the peer saw the host go (the LAN
goodbye) and the burst is still in the host's history file. Baseline: the same with no tabs, the two
run back to back. With ``stress-ng`` installed, the largest N is measured again beside
``stress-ng --cpu 2`` (the load that once kept a host alive for over a minute).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import MAIN, Skip, spread_row, stop_process

PORT = 8552
HOST_NAME = "exitbench"
BURST = 30  # messages from the peer just before SIGTERM


def quick_plan(quick: bool) -> dict[str, Any]:
    return ({"tabs": [5], "reps": 1, "stress": False} if quick
            else {"tabs": [10, 50, 100], "reps": 3, "stress": True})


def _stored(db: Path, marker: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute("SELECT count(*) FROM messages WHERE text LIKE ?",
                           (f"%{marker}%",)).fetchone()[0]


def _sees_host(event: dict[str, Any], present: bool) -> bool:
    return (event.get("event") == "online"
            and any(p.get("name") == HOST_NAME for p in event.get("peers", [])) == present)


def exit_once(lan: Any, n: int, tmp: Path, tag: str) -> tuple[float, bool, int]:
    """(seconds from SIGTERM to exit, the peer saw the host leave, burst messages stored)."""
    h1, h2 = lan
    data, peer_data = tmp / f"{tag}-host", tmp / f"{tag}-peer"
    log = open(tmp / f"{tag}-host.log", "w")  # noqa: SIM115 - closed below
    host = h1.popen([sys.executable, MAIN, "--web", "--port", str(PORT), "--data-dir", str(data),
                     "--name", HOST_NAME], stdout=log, stderr=subprocess.STDOUT)
    peer = h2.spawn_json([sys.executable, MAIN, "--headless", "--data-dir", str(peer_data),
                          "--name", "bob"])
    tabs = None
    try:
        if peer.wait_for(lambda e: _sees_host(e, True), 120) is None:
            raise RuntimeError(f"the peer never saw the host ({tmp / tag}-host.log)")
        if n:
            tabs = h1.spawn_json([sys.executable, "-m", "bench.ns_tabs", str(PORT), str(n)])
            if tabs.wait_for(lambda e: e.get("ev") == "ready", 300) is None:
                raise RuntimeError(f"{n} tabs did not open")
        marker = f"exitprobe{tag}"
        for i in range(BURST):
            peer.send(f"{marker} {i}")
        deadline = time.monotonic() + 60  # the burst is stored here and still being shown
        while _stored(data / "history.db", marker) < BURST and time.monotonic() < deadline:
            time.sleep(0.02)
        before = len(peer.events)
        t0 = time.monotonic()
        stop_process(host, 120)
        took = time.monotonic() - t0
        deadline = time.monotonic() + 15
        while not (gone := any(_sees_host(e, False) for e in peer.events[before:])):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return took, gone, _stored(data / "history.db", marker)
    finally:
        for p in (host, peer.proc, tabs.proc if tabs else None):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        log.close()


def _series(lan: Any, n: int, reps: int, tmp: Path, label: str
            ) -> tuple[list[float], list[float], list[str]]:
    """``reps`` interleaved pairs: n tabs, then none."""
    took, base, problems = [], [], []
    for r in range(reps):
        for count, out in ((n, took), (0, base)):
            tag = f"{label}{n}x{count}r{r}"  # its own data dirs: nothing carried over
            secs, gone, stored = exit_once(lan, count, tmp, tag)
            out.append(secs)
            if not gone or stored != BURST:
                log = (tmp / f"{tag}-host.log").read_text(errors="replace").splitlines()
                said = [ln[24:] for ln in log if "goodbye" in ln or "WARNING" in ln][-3:]
                problems.append(f"{count} tabs (series {n}) rep {r}: exit {secs:.2f} s, goodbye "
                                f"seen {gone}, stored {stored}/{BURST}; host log: {said}")
    return took, base, problems


def run(quick: bool) -> dict[str, dict[str, Any]]:
    from tests.lan import lan_available, virtual_lan

    ok, reason = lan_available()
    if not ok:
        raise Skip(reason)
    plan = quick_plan(quick)
    rows, notes = [], []
    stress = shutil.which("stress-ng") if plan["stress"] else None
    with virtual_lan(2) as lan, tempfile.TemporaryDirectory(prefix="fcbench-exit-") as tmpd:
        tmp = Path(tmpd)
        for n in plan["tabs"]:
            took, base, problems = _series(lan, n, plan["reps"], tmp, "q")
            rows.append(spread_row(f"SIGTERM -> exit, {n} tabs, {BURST}-message burst, quiet",
                                   took, base, unit="s", baseline_name="same, no tabs",
                                   n=len(took), target_max=2.0))
            notes += problems
        if stress:
            n = plan["tabs"][-1]
            load = subprocess.Popen([stress, "--cpu", "2"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                time.sleep(2)
                took, base, problems = _series(lan, n, plan["reps"], tmp, "s")
            finally:
                load.terminate()
                load.wait(10)
            rows.append(spread_row(f"SIGTERM -> exit, {n} tabs, burst, beside stress-ng --cpu 2",
                                   took, base, unit="s", baseline_name="same, no tabs",
                                   n=len(took)))
            notes += problems
    notes.insert(0, "host mode (LAN on) and a headless peer on 2 namespaced hosts; headless Flet "
                 "tabs on /ws; each run checks the peer saw the goodbye and the burst was stored "
                 "(any run that did not is listed below)")
    return {"shutdown": {"rows": rows, "notes": notes}}
