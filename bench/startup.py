"""Figure 6: host mode start-up (``main.py --web --no-lan``) to the first page (HTTP 200 on /),
with a warm file cache (one unmeasured run first), and its RSS once idle.

Baseline, same run: the smallest flet-web app under uvicorn (``bench/bare_flet.py``), measured the
same way: the framework's own floor.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .common import MAIN, ROOT, percentile, row, rss_kib, stop_process

IDLE_S = 2.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quick_plan(quick: bool) -> dict[str, Any]:
    """Starts per side, the unmeasured warm-up and the idle time before RSS is read (quick: one
    start each, no warm-up: earlier figures of the run have warmed the file cache)."""
    return {"n": 1, "warm_up": False, "idle_s": 0.5} if quick else \
        {"n": 5, "warm_up": True, "idle_s": IDLE_S}


def _one(argv_for_port, timeout: float = 60.0, idle_s: float = IDLE_S) -> tuple[float, int | None]:
    """(seconds from Popen to HTTP 200 on /, RSS KiB after IDLE_S idle)."""
    port = _free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv_for_port(port), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"no HTTP 200 on {url} after {timeout:g} s")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        resp.read()
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.01)
        elapsed = time.monotonic() - t0
        time.sleep(idle_s)
        return elapsed, rss_kib(proc.pid)
    finally:
        stop_process(proc)


def run(quick: bool) -> dict[str, dict[str, Any]]:
    plan = quick_plan(quick)
    n, idle_s = plan["n"], plan["idle_s"]
    with tempfile.TemporaryDirectory(prefix="fcbench-") as tmp:
        k = iter(range(1000))

        def app(port: int) -> list[str]:
            d = Path(tmp) / f"d{next(k)}"
            return [sys.executable, MAIN, "--web", "--no-lan", "--port", str(port),
                    "--data-dir", str(d)]

        def bare(port: int) -> list[str]:
            return [sys.executable, str(ROOT / "bench" / "bare_flet.py"), str(port)]

        if plan["warm_up"]:
            _one(app, idle_s=0)  # warm the file cache
            _one(bare, idle_s=0)
        a_t, a_rss, b_t, b_rss = [], [], [], []
        for _ in range(n):  # interleaved, so drift hits both alike
            t, r = _one(app, idle_s=idle_s)
            a_t.append(t)
            a_rss.append(r)
            t, r = _one(bare, idle_s=idle_s)
            b_t.append(t)
            b_rss.append(r)
    rows = [
        row("start to first page (HTTP 200 /), p50", percentile(a_t, 50),
            percentile(b_t, 50), unit="s", baseline_name="bare flet-web app", n=n),
        row("start to first page, max", max(a_t), max(b_t), unit="s",
            baseline_name="bare flet-web app", n=n),
    ]
    rss = [r for r in a_rss if r is not None]
    brss = [r for r in b_rss if r is not None]
    if rss and brss:
        rows.append(row(f"RSS idle ({idle_s:g} s after first page)", percentile(rss, 50) / 1024,
                        percentile(brss, 50) / 1024, unit="MiB",
                        baseline_name="bare flet-web app", n=len(rss)))
    return {"startup": {"rows": rows, "notes": [
        "main.py --web --no-lan, own data dir, sys.executable (no uv); warm file cache."]}}
