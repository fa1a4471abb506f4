"""Browsers on two host-mode hosts in different network namespaces chat through the LAN mesh.

Each host runs ``main.py --web`` with no configuration; they find each other over real mDNS. The
browser runs on a third namespaced host (Chromium is started through ``ip netns exec``), so all its
traffic stays on the test LAN. A headless desktop-like peer on the third host joins in too.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.browser import CHROMIUM, CHROMIUM_ARGS, ChatPage, chromium_available
from tests.conftest import need
from tests.lan import Host, lan_available, virtual_lan
from tests.timing import scaled, scaled_ms

MAIN = str(Path(__file__).resolve().parent.parent / "main.py")
TIMEOUT = scaled_ms(30_000)


def wait_port_in(host: Host, port: int, timeout: float = 40.0) -> None:
    code = (
        "import socket,sys,time\n"
        f"end=time.time()+{scaled(timeout)}\n"
        "while time.time()<end:\n"
        "    try:\n"
        f"        socket.create_connection(('127.0.0.1',{port}),0.5).close(); sys.exit(0)\n"
        "    except OSError: time.sleep(0.1)\n"
        "sys.exit(1)\n"
    )
    host.run([sys.executable, "-c", code], timeout=timeout + 5)


def chromium_in(host: Host, tmp_path: Path) -> str:
    """A launcher that starts Debian's Chromium inside ``host``'s namespace."""
    path = tmp_path / f"chromium-{host.name}.sh"
    path.write_text(f'#!/bin/sh\nexec ip netns exec {host.name} {CHROMIUM} "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def lan3():
    need(*chromium_available())
    need(*lan_available())
    with virtual_lan(3) as lan:
        yield lan


async def test_browsers_on_two_hosts_chat_through_the_lan(lan3, tmp_path, chromium_turn):
    h1, h2, h3 = lan3
    for host, name in ((h1, "one"), (h2, "two")):
        host.popen(
            [sys.executable, MAIN, "--web", "--data-dir", str(tmp_path / name)],
            stdout=open(tmp_path / f"{name}.log", "w"),  # noqa: SIM115, ASYNC230 - test set-up
            stderr=subprocess.STDOUT,
        )
    wait_port_in(h1, 8550)
    wait_port_in(h2, 8550)
    bot = h3.spawn_json(
        [sys.executable, MAIN, "--headless", "--name", "Desk", "--data-dir", str(tmp_path / "d")]
    )
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=chromium_in(h3, tmp_path), args=CHROMIUM_ARGS
        )
        try:
            alice = await ChatPage.open(await browser.new_context(), f"http://{h1.ip}:8550/")
            await alice.join("Alice")
            bob = await ChatPage.open(await browser.new_context(), f"http://{h2.ip}:8550/")
            await bob.join("Bob")
            # The hosts found each other with no --peer: Bob's join crosses the LAN.
            await expect(alice.notice("Bob has joined the chat.")).to_be_visible(timeout=TIMEOUT)
            await alice.send("hello from host one")
            await expect(bob.message("Alice", "hello from host one")).to_be_visible(
                timeout=TIMEOUT
            )
            await bob.send("and back from host two")
            await expect(alice.message("Bob", "and back from host two")).to_be_visible(
                timeout=TIMEOUT
            )
            # The headless peer on a third host got both, and its line reaches both browsers.
            for text in ("hello from host one", "and back from host two"):
                assert bot.wait_for(lambda e, t=text: e.get("text") == t, timeout=20), text
            bot.send("a bot says hi")
            await expect(alice.message("Desk", "a bot says hi")).to_be_visible(timeout=TIMEOUT)
            await expect(bob.message("Desk", "a bot says hi")).to_be_visible(timeout=TIMEOUT)
            await alice.screenshot("lan-alice.png")
        finally:
            await browser.close()
    assert os.path.exists(tmp_path / "one.log")
