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
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import MAIN, ROOT, Skip, percentile, row, stop_process

LOGIN = "Enter your name to join the chat"
OFFLINE_READY = "Flet Chat: offline copy ready"


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


async def _visit(context, url: str, proxy: CountingProxy, timeout_s: float) -> tuple[float, int]:
    """(seconds to a usable login, bytes the host sent meanwhile) for one page load."""
    page = await context.new_page()
    start_bytes = proxy.down
    t0 = time.monotonic()
    await page.goto(url, timeout=timeout_s * 1000)
    placeholder = page.locator("flt-semantics-placeholder")
    await placeholder.wait_for(state="attached", timeout=timeout_s * 1000)
    await placeholder.dispatch_event("click")
    await page.get_by_label(LOGIN).wait_for(timeout=timeout_s * 1000)
    return time.monotonic() - t0, proxy.down - start_bytes


async def _measure(port: int, runs: int) -> dict[str, list[float]]:
    from playwright.async_api import async_playwright

    from tests.browser import launch_browser

    proxy = CountingProxy(port)
    base = f"http://127.0.0.1:{await proxy.start()}/"
    out: dict[str, list[float]] = {k: [] for k in (
        "first_s", "first_mb", "offline_mb", "second_s", "second_mb", "server_s", "server_mb")}
    async with async_playwright() as p:
        browser = await launch_browser(p)
        try:
            for _ in range(runs):  # interleaved: the server-side app, then the static site
                context = await browser.new_context()
                seconds, sent = await _visit(context, base, proxy, 120)
                out["server_s"].append(seconds)
                out["server_mb"].append(sent / 1e6)
                await context.close()

                context = await browser.new_context()
                lines: list[str] = []
                context.on("console", lambda m, lines=lines: lines.append(m.text))
                before = proxy.down
                seconds, sent = await _visit(context, base + "app/", proxy, 300)
                out["first_s"].append(seconds)
                out["first_mb"].append(sent / 1e6)
                deadline = time.monotonic() + 120
                while not any(OFFLINE_READY in line for line in lines):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the service worker never finished its copy")
                    await asyncio.sleep(0.2)
                out["offline_mb"].append((proxy.down - before) / 1e6)
                seconds, sent = await _visit(context, base + "app/", proxy, 300)
                out["second_s"].append(seconds)
                out["second_mb"].append(sent / 1e6)
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
            m = asyncio.run(_measure(port, runs))
        finally:
            stop_process(proc)

    def p50(key: str) -> float:
        return percentile(m[key], 50)

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
    ]
    return {"static_site": {"rows": rows, "notes": [
        ("Debian Chromium (headless, Playwright) through a byte-counting proxy to one host "
        "process; Python in the browser (Pyodide) is CPU-bound, so times grow on a busy "
        "machine while bytes do not.")]}}
