"""Figure 14: scale-out, several hosts sharing one conversation through the mesh (issue 12).

Three host-mode processes (``main.py --web``, LAN on) on three namespaced hosts with real mDNS;
N headless Flet tabs on each (``bench/ns_tabs.py``: registered on ``/ws`` as a browser would, the
chat view built, invoke calls answered with "nothing"). A static-client tab on host 1 (``/relay``)
sends; the time is from that send to the *last* tab on each host having the patch with the new
message. Baseline: the same message to the last tab of host 1 (no mesh hop). Per-host RSS.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import MAIN, Skip, percentile, row, rss_kib, stop_process

PORT = 8551


def quick_plan(quick: bool) -> dict[str, Any]:
    """Tabs per host and messages (quick: a smoke run on a handful of tabs);
    ``FLETCHAT_SCALEOUT_TABS`` sets the tabs per host (to find the most a machine can take);
    ``FLETCHAT_SCALEOUT_LOGS`` names a folder to keep the hosts' logs in."""
    tabs = os.environ.get("FLETCHAT_SCALEOUT_TABS", "")
    return {"tabs": int(tabs) if tabs.isdigit() else 5 if quick else 100,
            "messages": 3 if quick else 20}


def _host(h: Any, data: Path) -> Any:
    log = open(f"{data}.log", "w")  # noqa: SIM115 - read back when the mesh does not form
    return h.popen([sys.executable, MAIN, "--web", "--port", str(PORT), "--data-dir", str(data)],
                   stdout=log, stderr=subprocess.STDOUT)


def _wait(proc: Any, pred, timeout: float, what: str) -> dict[str, Any]:
    ev = proc.wait_for(pred, timeout=timeout)
    if ev is None:
        raise RuntimeError(f"timed out waiting for {what}")
    return ev


def _status(tabs: list[Any], marker: str) -> list[str]:
    """Per host: how many of its tabs had ``marker``, how many are still open, which the host
    closed (code, reason), and how many later patches named the marker again."""
    lines = []
    for j, t in enumerate(tabs, 1):
        t.send(f"status {marker}")
        st = t.wait_for(lambda e: e.get("ev") == "status" and e.get("marker") == marker, 20) or {}
        shut = [e for e in t.events if e.get("ev") == "closed"]
        codes = sorted({(e.get("code"), e.get("reason")) for e in shut}, key=str)
        lines.append(f"host {j}: {st.get('got')} tabs had it, {st.get('open')} open, "
                     f"{len(shut)} closed by the host {codes}, {st.get('repeats')} repeats")
    return lines


def _log_problems(logs: Path, hosts: int) -> str:
    """Per host: how many WARNING/ERROR lines its log has, and the last of them."""
    out = []
    for j in range(1, hosts + 1):
        text = (logs / f"h{j}.log").read_text(errors="replace")
        bad = [ln for ln in text.splitlines()
               if "WARNING" in ln or "ERROR" in ln or "Traceback" in ln]
        out.append(f"host {j}: {text.count('no frame from')} heartbeat drops, {len(bad)} "
                   "warning/error lines" + (f" (last: {bad[-1][:160]})" if bad else ""))
    return "; ".join(out)


def _keep_logs(logs: Path) -> None:
    if keep := os.environ.get("FLETCHAT_SCALEOUT_LOGS"):  # a folder for the hosts' logs
        Path(keep).mkdir(parents=True, exist_ok=True)
        for log in logs.glob("h*.log"):
            shutil.copy(log, keep)


def _diagnose(tabs: list[Any], marker: str, logs: Path) -> str:
    """The tabs' status and the tail of each host's log (on stderr): a slow host and a host
    that dropped its tabs look alike until counted."""
    lines = _status(tabs, marker)
    for j in range(1, len(tabs) + 1):
        tail = (logs / f"h{j}.log").read_text(errors="replace")[-3000:]
        print(f"--- host {j} log (tail):\n{tail}", file=sys.stderr)
    print("\n".join(lines), file=sys.stderr)
    return "; ".join(lines)


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
            spawned = time.monotonic()
            tabs = [h.spawn_json([sys.executable, "-m", "bench.ns_tabs", str(PORT), str(n)])
                    for h in lan]
            ready = [_wait(t, lambda e: e.get("ev") == "ready", 300, "tabs to open")["t"]
                     for t in tabs]
            opening = max(ready) - spawned
            # the hosts find each other by mDNS and connect: a probe reaches hosts 3 and 2
            deadline = time.monotonic() + scaled(120)
            k = 0
            while True:
                k += 1
                probe = f"scaleprobe{secrets.token_hex(3)}w{k}"
                tabs[0].send(f"send {probe}")
                if all(t.wait_for(lambda e, p=probe: e.get("marker") == p and "last" in e,
                                  timeout=5) is not None for t in tabs[2:0:-1]):
                    break  # hosts 3 and 2 both have it
                if time.monotonic() > deadline:
                    why = _diagnose(tabs, probe, Path(tmpd))
                    raise RuntimeError(f"host 3 or 2 never got host 1's messages: {why}")
            for i in range(msgs):
                marker = f"scaleprobe{secrets.token_hex(3)}m{i}"
                tabs[0].send(f"send {marker}")
                sent = _wait(tabs[0], lambda e, m=marker: e.get("ev") == "sent"
                             and e.get("marker") == m, 30, "the send")["t"]
                for j, t in enumerate(tabs, 1):
                    seen = t.wait_for(lambda e, m=marker: e.get("ev") == "seen"
                                      and e.get("marker") == m, 60)
                    if seen is None:
                        why = _diagnose(tabs, marker, Path(tmpd))
                        raise RuntimeError(f"message {i}: not in all {n} tabs of host {j}: {why}")
                    lat[j].append(seen["last"] - sent)
                time.sleep(0.2)
            after = "; ".join(_status(tabs, marker))
            problems = _log_problems(Path(tmpd), len(hosts))
            print(f"after the last message: {after}\nhost logs: {problems}", file=sys.stderr)
            rss = [(rss_kib(p.pid) or 0) / 1024 for p in hosts]
            for t in tabs:
                t.send("quit")
        finally:
            for p in hosts:
                stop_process(p)
            _keep_logs(Path(tmpd))
    base = lat[1]
    rows = [row(f"{n} tabs on each of 3 hosts: host 1 tab -> last tab on host {j}, p50",
                percentile(lat[j], 50) * 1000, percentile(base, 50) * 1000, unit="ms",
                baseline_name="last tab on host 1 (no mesh hop)", n=len(lat[j]))
            for j in (2, 3)]
    rows += [row(f"{n} tabs on each of 3 hosts: to the last tab on host {j}, p99",
                 percentile(lat[j], 99) * 1000, percentile(base, 99) * 1000, unit="ms",
                 baseline_name="last tab on host 1 (no mesh hop), p99", n=len(lat[j]))
             for j in (2, 3)]
    rows.append(row(f"RSS per host with {n} tabs (max of 3)", max(rss), min(rss), unit="MiB",
                    baseline_name="min of the 3 hosts", n=3))
    return {"scaleout": {"rows": rows, "notes": [
        ("3 namespaced hosts on a bridge, real mDNS and the TLS mesh; headless Flet tabs on /ws "
         "(no browser rendering), a /relay tab on host 1 sends; times are the host's patches "
         "read by the tab clients (one monotonic clock)."),
        f"after the last message: {after}", f"host logs: {problems}",
        "RSS per host: " + ", ".join(f"{r:.1f} MiB" for r in rss),
        f"all {3 * n} tabs open after {opening:.1f} s"]}}
