"""Figure 11: the static web build in Chromium: first-visit bytes and time to a usable login, and
the second visit (service worker and HTTP cache), beside the server-side app at ``/``.

A real host process serves both; the browser reaches it through a byte-counting TCP proxy, so
"bytes on the wire" is what the host sent (headers, compressed bodies, the service worker's own
fetches). "Usable login" is the name field in the accessibility tree, i.e. Python (in the browser
for the static site, on the host for ``/``) has drawn the login dialog. Each visit is a fresh
browser context (cold caches) except the second visit, which reuses the first one's.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import MAIN, ROOT, Skip, percentile, row, stop_process

LOGIN = "Enter your name to join the chat"
OFFLINE_READY = "Flet Chat: offline copy ready"
TIMING = "fletchat-timing "  # the site's start-up marks, logged with ?timing (fletchat.webearly)
# Marks of a second visit worth a line in the notes: where its time goes.
# A visit that restores Python from the first visit's snapshot has no import marks.
MARKS = ("worker pyodide ready", "worker snapshot restored", "worker app in place",
         "worker warmed up",
         "worker imported webclient.main",
         "page flutter-first-frame", "worker connection started", "worker app main",
         "worker login drawn", "worker app mounted")


def tree_cpu(exclude: set[int]) -> float | None:
    """CPU seconds used so far by this process's descendants (the browser: Playwright's driver
    and Chromium, reaped children included), leaving out ``exclude`` and theirs (the host).
    A loaded machine stretches wall time; the CPU a visit costs stays comparable. Linux only."""
    try:
        names = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return None
    stats: dict[int, tuple[int, int]] = {}
    for d in names:
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(d)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        if pid in exclude:
            continue
        total += stats[pid][1]
        todo.extend(children.get(pid, []))
    return total / os.sysconf("SC_CLK_TCK")


class CountingProxy:
    """127.0.0.1:port -> 127.0.0.1:target, counting the bytes the target sends."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.down = 0
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _client(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return

        async def pipe(src, dst, count: bool) -> None:
            try:
                while data := await src.read(65536):
                    if count:
                        self.down += len(data)
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))

    def close(self) -> None:
        if self.server:
            self.server.close()


async def _visit(context, url: str, proxy: CountingProxy, timeout_s: float,
                 exclude: set[int] = frozenset(), marks: dict[str, float] | None = None,
                 ) -> tuple[float, int, float | None]:
    """(seconds to a usable login, bytes the host sent meanwhile, browser CPU seconds meanwhile)
    for one page load; the site's start-up marks (ms since navigation) go to ``marks``."""
    page = await context.new_page()
    lines: list[str] = []
    page.on("console", lambda m: lines.append(m.text))
    start_bytes = proxy.down
    cpu0 = tree_cpu(exclude)
    t0 = time.monotonic()
    await page.goto(url, timeout=timeout_s * 1000)
    placeholder = page.locator("flt-semantics-placeholder")
    await placeholder.wait_for(state="attached", timeout=timeout_s * 1000)
    await placeholder.dispatch_event("click")
    await page.get_by_label(LOGIN).wait_for(timeout=timeout_s * 1000)
    seconds, sent, cpu1 = time.monotonic() - t0, proxy.down - start_bytes, tree_cpu(exclude)
    if marks is not None:
        for line in lines:
            if line.startswith(TIMING):
                where, _, at = line[len(TIMING):].rpartition(" ")
                marks.setdefault(where, float(at))
        marks["login usable"] = seconds * 1000
    return seconds, sent, (cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None)


async def _measure(port: int, runs: int, host_pid: int) -> dict[str, list]:
    from playwright.async_api import async_playwright

    from tests.browser import launch_browser

    proxy = CountingProxy(port)
    base = f"http://127.0.0.1:{await proxy.start()}/"
    out: dict[str, list[float]] = {k: [] for k in (
        "first_s", "first_mb", "offline_mb", "second_s", "second_mb", "server_s", "server_mb",
        "first_cpu", "second_cpu", "second_marks")}
    exclude = {host_pid}
    async with async_playwright() as p:
        browser = await launch_browser(p)
        try:
            for _ in range(runs):  # interleaved: the server-side app, then the static site
                context = await browser.new_context()
                seconds, sent, _cpu = await _visit(context, base, proxy, 120)
                out["server_s"].append(seconds)
                out["server_mb"].append(sent / 1e6)
                await context.close()

                context = await browser.new_context()
                lines: list[str] = []
                context.on("console", lambda m, lines=lines: lines.append(m.text))
                before = proxy.down
                seconds, sent, cpu = await _visit(context, base + "app/?timing", proxy, 300,
                                                  exclude)
                out["first_s"].append(seconds)
                out["first_mb"].append(sent / 1e6)
                out["first_cpu"].append(cpu)
                deadline = time.monotonic() + 120
                while not any(OFFLINE_READY in line for line in lines):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the service worker never finished its copy")
                    await asyncio.sleep(0.2)
                out["offline_mb"].append((proxy.down - before) / 1e6)
                marks: dict[str, float] = {}
                seconds, sent, cpu = await _visit(context, base + "app/?timing", proxy, 300,
                                                  exclude, marks)
                out["second_s"].append(seconds)
                out["second_mb"].append(sent / 1e6)
                out["second_cpu"].append(cpu)
                out["second_marks"].append(marks)
                await context.close()
        finally:
            await browser.close()
            proxy.close()
    return out


def quick_plan(quick: bool) -> dict[str, Any]:
    """Interleaved rounds (server-side visit, first visit, second visit); the build is reused
    from the compression and bytecode caches in ``build/``."""
    return {"runs": 1 if quick else 3}


def run(quick: bool) -> dict[str, dict[str, Any]]:
    from fletchat import webbuild
    from tests.browser import chromium_available, free_port, wait_for_port

    ok, why = chromium_available()
    if not ok:
        raise Skip(why)
    runs = quick_plan(quick)["runs"]
    with tempfile.TemporaryDirectory(prefix="fcbench-") as tmp:
        try:
            site = webbuild.build(Path(tmp) / "web-static").out
        except webbuild.BuildError as err:
            raise Skip(f"no static build here: {err}") from err
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, MAIN, "--web", "--no-lan", "--port", str(port),
             "--data-dir", str(Path(tmp) / "d"), "--static-dir", str(site)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port("127.0.0.1", port, timeout=90, proc=proc)
            m = asyncio.run(_measure(port, runs, proc.pid))
        finally:
            stop_process(proc)

    def p50(key: str) -> float | None:
        values = [v for v in m[key] if v is not None]
        return percentile(values, 50) if values else None

    def mark(name: str) -> str:
        values = [marks[name] / 1000 for marks in m["second_marks"] if name in marks]
        return f"{percentile(values, 50):.1f}" if values else "-"

    server = "server-side app at /, first visit"
    rows = [
        row("first visit: bytes on the wire until the login is usable", p50("first_mb"),
            p50("server_mb"), unit="MB", baseline_name=server, n=runs, target_max=12),
        row("first visit: bytes including the service worker's offline copy",
            p50("offline_mb"), p50("server_mb"), unit="MB", baseline_name=server, n=runs),
        row("first visit: time to a usable login", p50("first_s"), p50("server_s"), unit="s",
            baseline_name=server, n=runs),
        row("second visit: time to a usable login", p50("second_s"), p50("first_s"), unit="s",
            baseline_name="first visit", n=runs, target_max=4),
        row("second visit: bytes on the wire", p50("second_mb"), p50("first_mb"), unit="MB",
            baseline_name="first visit", n=runs),
        row("second visit: browser CPU time until the login is usable", p50("second_cpu"),
            p50("first_cpu"), unit="s", baseline_name="first visit", n=runs),
    ]
    breakdown = ("Second visit, median seconds since navigation (the site's ?timing marks): "
                 + ", ".join(f"{name.split(' ', 1)[1]} {mark(name)}" for name in MARKS)
                 + f", login usable {mark('login usable')}.")
    return {"static_site": {"rows": rows, "notes": [
        ("Debian Chromium (headless, Playwright) through a byte-counting proxy to one host "
        "process; Python in the browser (Pyodide) is CPU-bound, so times grow on a busy "
        "machine while bytes do not; the browser's CPU time (all its processes) stays "
        "comparable there."), breakdown]}}
