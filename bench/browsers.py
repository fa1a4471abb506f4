"""Figure 13: host mode in real browsers (issue 12): one sender tab and five receiver tabs in
Debian's Chromium (headless, Playwright) on one host process, each tab joined with its own name.
The sender types a message and presses Enter; the time is from that key press to the message's
row (its screen-reader label) visible in each receiver, as Playwright sees it. Reported: to the
last of the five (p50, p99) beside the first of the five in the same sends (the spread is what the
fan-out to several tabs adds to one tab's own path: host, WebSocket, Flutter's layout).
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import MAIN, ROOT, Skip, percentile, row, stop_process


def quick_plan(quick: bool) -> dict[str, Any]:
    """Receivers and messages (quick: a smoke run with two receivers)."""
    return {"receivers": 2 if quick else 5, "messages": 2 if quick else 20}


async def _measure(url: str, receivers: int, messages: int) -> tuple[list[float], list[float]]:
    from playwright.async_api import async_playwright

    from tests.browser import ChatPage, launch_browser

    last, first = [], []
    async with async_playwright() as p:
        browser = await launch_browser(p)
        try:
            tabs = []
            for i in range(receivers + 1):
                ctx = await browser.new_context(viewport={"width": 1200, "height": 760})
                tab = await ChatPage.open(ctx, url)
                await tab.join(f"Tab{i}")
                tabs.append(tab)
            sender, rest = tabs[0], tabs[1:]
            await sender.focus_field()
            tag = secrets.token_hex(3)
            for k in range(messages + 1):  # the first one warms up and is not counted
                text = f"probe {tag} {k}"
                await sender.type(text)
                t0 = time.perf_counter()
                await sender.page.keyboard.press("Enter")

                async def seen(tab: ChatPage, text: str = text) -> float:
                    await tab.message("Tab0", text).wait_for(timeout=60_000)
                    return time.perf_counter()

                times = await asyncio.gather(*(seen(t) for t in rest))
                if k:
                    last.append(max(times) - t0)
                    first.append(min(times) - t0)
                await asyncio.sleep(0.3)
        finally:
            await browser.close()
    return last, first


def run(quick: bool) -> dict[str, dict[str, Any]]:
    from tests.browser import chromium_available, free_port, wait_for_port

    ok, why = chromium_available()
    if not ok:
        raise Skip(why)
    plan = quick_plan(quick)
    with tempfile.TemporaryDirectory(prefix="fcbench-") as tmp:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, MAIN, "--web", "--no-lan", "--port", str(port),
             "--data-dir", str(Path(tmp) / "d")],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port("127.0.0.1", port, timeout=90, proc=proc)
            last, first = asyncio.run(_measure(f"http://127.0.0.1:{port}/",
                                               plan["receivers"], plan["messages"]))
        finally:
            stop_process(proc)
    r = plan["receivers"]
    rows = [
        row(f"send -> visible in all {r} receivers, p50", percentile(last, 50) * 1000,
            percentile(first, 50) * 1000, unit="ms", baseline_name="the first receiver",
            n=len(last)),
        row(f"send -> visible in all {r} receivers, p99", percentile(last, 99) * 1000,
            percentile(first, 99) * 1000, unit="ms", baseline_name="the first receiver",
            n=len(last)),
    ]
    return {"browsers": {"rows": rows, "notes": [
        ("one host process (--no-lan), 1 + receivers Chromium tabs in one headless browser on "
         "the same 2 cores: the browsers' own rendering is included and dominates under load.")]}}
