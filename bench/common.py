"""Shared bench plumbing: statistics, result rows (value next to a baseline, as a ratio; with the
spread over repetitions where a figure repeats), machine facts and load, the one place a bench
builds a peer's mesh, and a child process whose JSON lines are timestamped as they arrive."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "main.py")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class Skip(Exception):
    """A figure cannot run here (no root for namespaces, no Chromium): skipped, not failed."""


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    if not values:
        raise ValueError("no samples")
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def row(
    metric: str,
    value: float | None,
    baseline: float | None,
    *,
    unit: str,
    baseline_name: str,
    n: int | None = None,
    target_max: float | None = None,
    target_max_ratio: float | None = None,
    note: str = "",
    target_min_ratio: float | None = None,
) -> dict[str, Any]:
    """One line of the table: a figure, the baseline measured in the same run, and value/baseline.

    ``target_max`` is an absolute limit on ``value``; ``target_max_ratio`` a limit on the ratio;
    ``target_min_ratio`` a floor under it (a throughput: higher is better). ``met`` is None when
    the row has no target.
    """
    r = ratio(value, baseline)
    met: bool | None = None
    target = ""
    if target_max is not None:
        target = f"<= {target_max:g} {unit}"
        met = value is not None and value <= target_max
    elif target_max_ratio is not None:
        target = f"<= {target_max_ratio:g}x baseline"
        met = r is not None and r <= target_max_ratio
    elif target_min_ratio is not None:
        target = f">= {target_min_ratio:g}x baseline"
        met = r is not None and r >= target_min_ratio
    return {
        "metric": metric,
        "unit": unit,
        "value": value,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": r,
        "n": n,
        "target": target,
        "met": met,
        "note": note,
    }


def spread(values: list[float]) -> dict[str, Any]:
    """min / median / max of repeated measurements (``reps`` of them)."""
    if not values:
        return {"min": None, "median": None, "max": None, "reps": 0}
    return {"min": min(values), "median": percentile(values, 50), "max": max(values),
            "reps": len(values)}


def spread_row(
    metric: str,
    values: list[float],
    baselines: list[float],
    *,
    unit: str,
    baseline_name: str,
    n: int | None = None,
    target_max: float | None = None,
    target_max_ratio: float | None = None,
    note: str = "",
    target_min_ratio: float | None = None,
) -> dict[str, Any]:
    """A row from repetitions run in interleaved pairs (``values[i]`` next to ``baselines[i]``).

    ``value`` and ``baseline`` are medians; ``ratio`` is the median of the per-pair ratios (each
    pair ran back to back, so load that drifts between repetitions hits both sides of a ratio).
    The ``*_spread`` keys carry min / median / max so the table can show the spread.
    """
    if len(values) != len(baselines):
        raise ValueError("values and baselines must pair up")
    pair_ratios = [r for v, b in zip(values, baselines, strict=True)
                   if (r := ratio(v, b)) is not None]
    value = percentile(values, 50) if values else None
    baseline = percentile(baselines, 50) if baselines else None
    out = row(metric, value, baseline, unit=unit, baseline_name=baseline_name, n=n,
              target_max=target_max, target_max_ratio=target_max_ratio, note=note,
              target_min_ratio=target_min_ratio)
    out["ratio"] = percentile(pair_ratios, 50) if pair_ratios else None
    if target_max_ratio is not None:
        out["met"] = out["ratio"] is not None and out["ratio"] <= target_max_ratio
    elif target_min_ratio is not None and target_max is None:
        out["met"] = out["ratio"] is not None and out["ratio"] >= target_min_ratio
    out["value_spread"] = spread(values)
    out["baseline_spread"] = spread(baselines)
    out["ratio_spread"] = spread(pair_ratios)
    out["ratio_of"] = "median of per-repetition ratios (interleaved pairs)"
    return out


def loadavg() -> list[float] | None:
    """The 1, 5 and 15-minute load averages: other work on the machine skews every figure."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


async def start_peer_mesh(hub: Any, me: Any, trust: Any = None, *,
                          on_down: Callable[[], None] | None = None, **options: Any) -> Any:
    """The one place a bench builds a peer's mesh: wired to ``hub`` as ``fletchat.node`` does
    (``mesh_for_hub``), listening on loopback, started. ``options`` are the mesh's tunables
    (``rate``, ``burst``, ...); ``on_down`` is also told of every peer-down event."""
    from fletchat.node import mesh_for_hub

    if on_down is not None:
        product_down = hub.peer_down

        def peer_down(peer: Any, reason: str = "") -> None:
            on_down()
            product_down(peer, reason)

        hub.peer_down = peer_down  # this hub instance only: mesh_for_hub wires hub.peer_down
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", 0)
    mesh = mesh_for_hub(hub, me, trust, settings=_mesh_settings(**options))
    await mesh.start()
    return mesh


def _mesh_settings(*, rate: float | None = None, burst: float | None = None,
                   **options: Any) -> Any:
    """The same options as a ``MeshSettings`` (the mesh's one settings object): ``rate`` and
    ``burst`` set every flood limit of a connection (frames and messages)."""
    from fletchat.mesh import MeshSettings

    if rate is not None:
        from fletchat.peer.connection import Limits

        burst = burst if burst is not None else rate
        options["limits"] = Limits(frames_per_second=rate, frame_burst=burst,
                                   messages_per_second=rate, message_burst=burst)
    return MeshSettings(**options)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} (kernel {platform.release()})"
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            timeout=5, check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    versions = {}
    for mod in ("flet", "websockets", "zeroconf"):
        try:
            versions[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            versions[mod] = "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": os_name,
        "python": platform.python_version(),
        "commit": commit,
        **versions,
    }


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux, ``/proc/PID/stat``): steadier
    than wall time on a machine others load."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process (Linux), KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def tree_rss_kib(pid: int) -> int | None:
    """RSS of a process and its descendants (``ip netns exec`` execs, but be safe)."""
    total = rss_kib(pid)
    if total is None:
        return None
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        total += tree_rss_kib(int(child)) or 0
    return total


@dataclass
class TimedProc:
    """A child printing JSON lines; every line is stamped with ``time.monotonic()`` on arrival
    (a reader thread per child, so the stamp is within a scheduler tick of the write)."""

    proc: subprocess.Popen[str]
    t_spawn: float
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            t = time.monotonic()
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"event": "text", "text": line.rstrip("\n")}
            if not isinstance(ev, dict):
                ev = {"event": "text", "text": line.rstrip("\n")}
            with self._cond:
                self.events.append((t, ev))
                self._cond.notify_all()
        with self._cond:
            self.events.append((time.monotonic(), {"event": "eof"}))
            self._cond.notify_all()

    def wait_for(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float, after: float = 0.0
    ) -> float | None:
        """Arrival time of the first event after ``after`` matching ``pred``; None on timeout/EOF."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for t, ev in self.events[seen:]:
                    if t >= after and pred(ev):
                        return t
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0 or (self.events and self.events[-1][1].get("event") == "eof"):
                    return None
                self._cond.wait(left)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass


def spawn_timed(popen: Callable[..., subprocess.Popen[str]], argv: list[str], **kw) -> TimedProc:
    """Start ``argv`` with ``popen`` (e.g. ``Host.popen``); the spawn time is taken just before."""
    kw.setdefault("stdin", subprocess.PIPE)
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.DEVNULL)
    kw.setdefault("text", True)
    t0 = time.monotonic()
    proc = popen(argv, **kw)
    return TimedProc(proc, t0)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit == "KiB":
        return f"{value:.0f} KiB"
    if unit == "msg/s":
        return f"{value:.0f} msg/s"
    return f"{value:.3g} {unit}"


def cell(r: dict[str, Any], key: str) -> str:
    """A table cell for ``value`` / ``baseline`` / ``ratio``: the median with its spread
    (min-max over the repetitions) when the row has one, else the one number."""
    sp = r.get(f"{key}_spread")
    if key == "ratio":
        def one(x: float | None) -> str:
            return "-" if x is None else f"{x:.2f}x"
    else:
        def one(x: float | None) -> str:
            return fmt(x, r["unit"])
    if not sp or sp.get("reps", 0) < 2:
        return one(r[key])
    lo, hi = one(sp["min"]), one(sp["max"])
    if key != "ratio":  # "2.1-3.4 ms", not "2.1 ms-3.4 ms"
        unit = f" {r['unit']}"
        lo = lo.removesuffix(unit) if lo.endswith(unit) and hi.endswith(unit) else lo
    return f"{one(r[key])} ({lo}–{hi})"


def breakdown_lines(b: dict[str, Any]) -> list[str]:
    """The per-message breakdown, grouped, as a small markdown table (``python -m bench`` prints
    it; every part is in results.json)."""
    busy, cpu = b["loop_busy_us_per_msg"], b["loop_cpu_us_per_msg"]
    lines = [
        "",
        ("Where one message's delivery time goes (1 -> 4, all five peers on one loop; "
         f"{b['messages']} messages, µs per message, exclusive, profiled run):"),
        "",
        "| part | wall µs/msg | CPU µs/msg | share of loop busy (wall) |",
        "|---|---|---|---|",
    ]
    for group, g in sorted(b["groups"].items(), key=lambda kv: -kv[1]["us_per_msg"]):
        share = "(not on the loop)" if "off the loop" in group else f"{g['us_per_msg'] / busy:.0%}"
        lines.append(f"| {group} | {g['us_per_msg']:.0f} | {g['cpu_us_per_msg']:.0f} | {share} |")
    lines.append(f"| **the loop, per message** | {busy:.0f} | {cpu:.0f} | 100% |")
    u = b.get("unprofiled")
    if u:
        lines.append(
            f"\nUnprofiled, same run: loop busy {u['app_loop_busy_us_per_msg']:.0f} µs/msg "
            f"(CPU {u['app_loop_cpu_us_per_msg']:.0f}) for the app vs "
            f"{u['raw_loop_busy_us_per_msg']:.0f} µs/msg (CPU {u['raw_loop_cpu_us_per_msg']:.0f}) "
            f"for raw websockets; p50 {u['app_p50_ms']:.2f} ms vs {u['raw_p50_ms']:.2f} ms.")
    sw = b.get("switch_interval")
    if sw:
        lines.append(
            f"With the GIL switch interval at {sw['short_s'] * 1000:g} ms instead of "
            f"{sw['default_s'] * 1000:g} ms: app p50 {sw['app_p50_ms_short']:.2f} ms, loop busy "
            f"{sw['app_loop_busy_us_per_msg_short']:.0f} µs/msg.")
    return lines


def merge_results(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with the figures of ``new`` (a run of some figures) put in: every other figure is
    kept, and each merged figure records its own run (when, commit, load), since those differ from
    the file's. Refused when one is a quick run and the other is not."""
    if old.get("schema") != new.get("schema") or bool(old.get("quick")) != bool(new.get("quick")):
        raise ValueError("cannot merge a quick run with a full one (or another schema)")
    run = {"when": new["when"], "commit": new["machine"].get("commit"),
           "loadavg_1min": new.get("loadavg_1min")}
    figures = dict(old.get("figures", {}))
    for fid, fig in new["figures"].items():
        figures[fid] = {**fig, "run": run}
    merged = {**old, "figures": figures}
    merged["merged_runs"] = [*old.get("merged_runs", []), {**run, "figures": list(new["figures"])}]
    return merged


def stop_process(proc: Any, wait: float = 15) -> None:
    """SIGTERM a server the bench started (it says goodbye); SIGKILL if it has not gone in
    ``wait`` seconds."""
    import signal
    import subprocess

    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
