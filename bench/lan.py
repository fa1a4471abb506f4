"""Figures 1 and 2: discovery-to-visible and leave detection, on namespaced hosts with real mDNS.

Two headless peers (``main.py --headless``) run on h1 and h2; a newcomer is started again and again
on h3. Each start is timed from the moment the bench calls Popen (so interpreter start-up, which a
person waiting for the app feels, is included) and from the newcomer's own ``ready`` line, until
the newcomer's name is in the ``online`` list of *both* other peers. Then the newcomer leaves (EOF
on stdin, SIGTERM, SIGKILL, or its network vanishes) and the time until both others drop its name
is taken. Every line a child prints is timestamped on arrival by the bench (one clock).

Baselines, on the same hosts in the same run: plain python-zeroconf (``bench/zc_probe.py``)
register on h3 / browse on h1 for discovery and goodbyes; a plain TCP socket's EOF after SIGKILL;
the mesh's configured heartbeat timeout for a vanished network (nothing can detect that sooner).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import MAIN, ROOT, Skip, TimedProc, percentile, row, spawn_timed

PROBE = str(ROOT / "bench" / "zc_probe.py")
WAIT = 20.0
START_WAIT = 60.0  # the two existing peers' start: a limit, not a wait (quick mode shares the cores)


def _online_has(name: str):
    return lambda e: e.get("event") == "online" and name in e.get("people", [])


def _online_lacks(name: str):
    return lambda e: e.get("event") == "online" and name not in e.get("people", [])


def _headless(host, name: str, data_dir: Path) -> TimedProc:
    return spawn_timed(
        host.popen,
        [sys.executable, MAIN, "--headless", "--name", name, "--data-dir", str(data_dir)],
    )


def _finish(p: TimedProc, timeout: float = 15.0) -> None:
    try:
        p.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        p.proc.kill()
        p.proc.wait(5)


def _heartbeat_timeout() -> float:
    """The shipped heartbeat timeout: the default of the mesh's one settings object."""
    from fletchat.mesh import MeshSettings

    return float(MeshSettings().heartbeat_timeout)


def _stats_rows(
    label: str, samples: list[float], base: list[float], base_name: str, **kw: Any
) -> list[dict[str, Any]]:
    out = []
    for q in (50, 99):
        value = percentile(samples, q) if samples else None
        b = percentile(base, q) if base else None
        target = kw.get(f"target_p{q}")
        out.append(
            row(
                f"{label} p{q}", value, b, unit="s", baseline_name=base_name, n=len(samples),
                target_max=target, note=kw.get("note", ""),
            )
        )
    return out


def quick_plan(quick: bool) -> dict[str, Any]:
    """Newcomer starts (and zeroconf baseline registrations), extra SIGKILL and network-loss
    starts; quick: one start per way of leaving, no network loss (the heartbeat timeout alone is
    6 s)."""
    if quick:
        return {"n_clean": 3, "n_kill": 0, "n_netloss": 0,
                "methods": ["eof", "sigterm", "sigkill"]}
    return {"n_clean": 20, "n_kill": 5, "n_netloss": 3, "methods": ["eof", "sigterm"]}


def run(quick: bool) -> dict[str, dict[str, Any]]:
    from tests.lan import lan_available, virtual_lan

    ok, reason = lan_available()
    if not ok:
        raise Skip(reason)
    plan = quick_plan(quick)
    n_clean, n_kill, n_netloss = plan["n_clean"], plan["n_kill"], plan["n_netloss"]
    methods = plan["methods"]

    spawn_s: list[float] = []
    ready_s: list[float] = []
    leave: dict[str, list[float]] = {"eof": [], "sigterm": [], "sigkill": [], "netloss": []}
    failures: list[str] = []
    base_found_spawn: list[float] = []
    base_found_ready: list[float] = []
    base_goodbye: list[float] = []
    base_tcp_eof: list[float] = []

    with virtual_lan(3) as lan, tempfile.TemporaryDirectory(prefix="fcbench-") as tmp:
        h1, h2, h3 = lan
        tmpd = Path(tmp)
        peers = [_headless(h1, "Alice", tmpd / "a"), _headless(h2, "Bob", tmpd / "b")]
        for p in peers:
            if p.wait_for(lambda e: e.get("event") == "ready", START_WAIT) is None:
                raise RuntimeError("an existing peer did not start")
        for p in peers:
            if p.wait_for(_online_has("Alice"), START_WAIT) is None or p.wait_for(
                _online_has("Bob"), START_WAIT
            ) is None:
                raise RuntimeError("the two existing peers did not find each other")
        time.sleep(0.5)

        def one_start(i: int, method: str) -> None:
            name = f"New{i:02d}"
            p = _headless(h3, name, tmpd / f"n{i}")
            try:
                t_ready = p.wait_for(lambda e: e.get("event") == "ready", WAIT)
                seen = [q.wait_for(_online_has(name), WAIT, after=p.t_spawn) for q in peers]
                if t_ready is None or any(t is None for t in seen):
                    failures.append(f"{name}: not visible to both peers within {WAIT:g} s")
                    return
                t_vis = max(t for t in seen if t is not None)
                if method != "netloss":
                    spawn_s.append(t_vis - p.t_spawn)
                    ready_s.append(t_vis - t_ready)
                time.sleep(0.3)  # let the catch-up exchange settle: a leave, not a start-up race
                t_leave = time.monotonic()
                if method == "eof":
                    p.close_stdin()
                elif method == "sigterm":
                    p.proc.send_signal(signal.SIGTERM)
                elif method == "sigkill":
                    p.proc.send_signal(signal.SIGKILL)
                elif method == "netloss":
                    h3.run(["ip", "link", "set", h3.iface, "down"])
                gone = [q.wait_for(_online_lacks(name), WAIT, after=t_leave) for q in peers]
                if any(t is None for t in gone):
                    failures.append(f"{name}: not dropped by both peers after {method}")
                else:
                    leave[method].append(max(t for t in gone if t is not None) - t_leave)
            finally:
                if p.proc.poll() is None and method in ("sigkill", "netloss"):
                    p.proc.kill()
                _finish(p)
                if method == "netloss":
                    h3.run(["ip", "link", "set", h3.iface, "up"])
                time.sleep(0.3)

        for i in range(n_clean):
            one_start(i, methods[i % len(methods)])
        for i in range(n_kill):
            one_start(100 + i, "sigkill")

        # ---- baselines: plain zeroconf register (h3) / browse (h1); plain TCP EOF ----
        browser = spawn_timed(h1.popen, [sys.executable, PROBE, "browse"])
        if browser.wait_for(lambda e: e.get("event") == "ready", WAIT) is None:
            raise RuntimeError("zeroconf baseline browser did not start")
        time.sleep(0.5)
        for i in range(n_clean):
            name = f"bench{i:02d}-{int(time.time() * 1000) % 100000}"
            reg = spawn_timed(h3.popen, [sys.executable, PROBE, "register", name])
            try:
                t_ready = reg.wait_for(lambda e: e.get("event") == "ready", WAIT)
                t_added = browser.wait_for(
                    lambda e, n=name: e.get("event") == "added" and e.get("name", "").startswith(n),
                    WAIT, after=reg.t_spawn,
                )
                if t_ready is None or t_added is None:
                    failures.append(f"baseline {name}: not seen")
                    continue
                base_found_spawn.append(t_added - reg.t_spawn)
                base_found_ready.append(t_added - t_ready)
                reg.wait_for(lambda e: e.get("event") == "registered", WAIT)
                t_leave = time.monotonic()
                reg.close_stdin()
                t_rm = browser.wait_for(
                    lambda e, n=name: e.get("event") == "removed"
                    and e.get("name", "").startswith(n),
                    WAIT, after=t_leave,
                )
                if t_rm is not None:
                    base_goodbye.append(t_rm - t_leave)
            finally:
                reg.close_stdin()
                _finish(reg)
        browser.close_stdin()
        _finish(browser)
        for i in range(max(1, n_kill) if not quick else 1):
            port = 9100 + i
            holder = spawn_timed(h1.popen, [sys.executable, PROBE, "hold", str(port)])
            holder.wait_for(lambda e: e.get("event") == "ready", WAIT)
            conn = spawn_timed(h3.popen, [sys.executable, PROBE, "connect", h1.ip, str(port)])
            if holder.wait_for(lambda e: e.get("event") == "connected", WAIT) is not None:
                time.sleep(0.2)
                t_kill = time.monotonic()
                conn.proc.send_signal(signal.SIGKILL)
                t_gone = holder.wait_for(lambda e: e.get("event") == "peer_gone", WAIT)
                if t_gone is not None:
                    base_tcp_eof.append(t_gone - t_kill)
            for p in (conn, holder):
                if p.proc.poll() is None:
                    p.proc.kill()
                _finish(p)

        # Last: a vanished network (it takes h3's link down and up again).
        for i in range(n_netloss):
            one_start(200 + i, "netloss")

        for p in peers:
            p.close_stdin()
        for p in peers:
            _finish(p)

    hb = _heartbeat_timeout()
    disc_rows = _stats_rows(
        "visible to both peers, from spawn", spawn_s, base_found_spawn,
        "zeroconf register->browse Added, from spawn", target_p50=0.3, target_p99=0.6,
    ) + _stats_rows(
        "visible to both peers, from ready line", ready_s, base_found_ready,
        "zeroconf register->browse Added, from register call", target_p50=0.3, target_p99=0.6,
    )
    leave_rows = []
    for method, label, base, base_name in (
        ("eof", "clean exit (stdin EOF)", base_goodbye, "zeroconf goodbye -> browse Removed"),
        ("sigterm", "SIGTERM", base_goodbye, "zeroconf goodbye -> browse Removed"),
        ("sigkill", "SIGKILL (kernel closes sockets)", base_tcp_eof, "plain TCP: EOF after SIGKILL"),
    ):
        if leave[method]:
            leave_rows += _stats_rows(f"dropped after {label}", leave[method], base, base_name)
    if leave["netloss"]:
        vals = leave["netloss"]
        leave_rows.append(
            row(
                "dropped after network loss (link down), max", max(vals), hb, unit="s",
                baseline_name="configured heartbeat timeout (MeshSettings)", n=len(vals),
                note="detection window is timeout .. timeout + tick after the last frame",
            )
        )
    common = {"failures": failures}
    return {
        "discovery": {"rows": disc_rows, "notes": [
            ("3 namespaced hosts on a bridge, real mDNS; 2 headless peers, a new one started on h3;"
            " 'from spawn' includes ip netns exec + interpreter start-up + imports."),
        ], **common},
        "leave": {"rows": leave_rows, "notes": [
            "time until both other peers' online list lacks the newcomer's name.",
        ], **common},
    }
