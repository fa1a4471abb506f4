"""The static (Pyodide) web build, built here offline and served by host mode at /app/, chatting in
a real Chromium with a server-side session of the same host (through the ``/relay`` WebSocket).
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.async_api import async_playwright, expect

from fletchat import webbuild
from tests.browser import ChatPage, chromium_available, host_mode_server, launch_browser
from tests.conftest import need

TIMEOUT = 15_000
PYTHON_READY = "Python worker initialized"


@pytest.fixture(scope="session")
def static_build(tmp_path_factory):
    """Build the site once per test run (about 3 s; the four wheels come from build/wheels, fetched
    from PyPI the first time)."""
    out = tmp_path_factory.mktemp("static") / "web-static"
    try:
        result = webbuild.build(out)
    except webbuild.BuildError as err:
        need(False, f"the static web build cannot be made here: {err}")
    return result.out


@pytest.fixture
def server(tmp_path, static_build):
    need(*chromium_available())
    with host_mode_server(tmp_path / "host", "--no-lan", "--static-dir", str(static_build)) as (
        url,
        _proc,
    ):
        yield url


def fetch(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.geturl(), resp.read()


def test_host_mode_serves_the_build_and_its_wheels(server, static_build):
    status, final_url, body = fetch(server + "app")
    assert status == 200 and final_url.endswith("/app/")
    assert b'<base href="/app/">' in body and b'flet.pyodideUrl="./pyodide/pyodide.mjs"' in body
    manifest = json.loads(fetch(server + "app/manifest.json")[2])
    assert manifest["name"] == manifest["short_name"] == "Flet Chat"
    assert manifest["theme_color"] == "#2563EB"
    for icon in manifest["icons"]:
        assert fetch(server + "app/" + icon["src"])[0] == 200
    wheels = sorted(p.name for p in (static_build / "wheels").iterdir())
    assert [w.split("-")[0] for w in wheels] == ["flet", "msgpack", "repath", "six"]
    assert all(w.endswith("-none-any.whl") for w in wheels)
    for wheel in wheels:
        assert fetch(server + "app/wheels/" + wheel)[0] == 200
    # The server-side app is still at "/".
    assert b"Flet Chat" in fetch(server)[2]


async def open_static(context, url: str) -> ChatPage:
    """The static client: wait for Python in the browser, then turn on the semantics tree."""
    page = await context.new_page()
    lines: list[str] = []
    page.on("console", lambda m: lines.append(m.text))
    try:
        async with page.expect_event(
            "console", predicate=lambda m: PYTHON_READY in m.text, timeout=120_000
        ):
            await page.goto(url)
    except Exception:
        print("browser console:", *lines[-40:], sep="\n  ")  # why Python did not start
        raise
    placeholder = page.locator("flt-semantics-placeholder")
    await placeholder.wait_for(state="attached", timeout=30_000)
    await placeholder.dispatch_event("click")
    await page.get_by_label("Enter your name to join the chat").wait_for(timeout=30_000)
    tab = ChatPage(page)
    tab.console = lines  # type: ignore[attr-defined]
    return tab


async def test_static_client_chats_with_a_server_side_session(server):
    async with async_playwright() as p:
        browser = await launch_browser(p)
        try:
            alice = await ChatPage.open(await browser.new_context(), server)
            await alice.join("Alice")
            await alice.send("before the static client came")

            bob = await open_static(await browser.new_context(), server + "app/")
            await bob.join("Bob Static")
            # Recent history arrived over the relay and shows as ChatMessage rows (behind the
            # modal login dialog until then, out of the semantics tree).
            await expect(bob.message("Alice", "before the static client came")).to_be_visible(
                timeout=TIMEOUT
            )
            await expect(alice.notice("Bob Static has joined the chat.")).to_be_visible(
                timeout=TIMEOUT
            )
            await bob.send("hello from Python in the browser")
            await expect(
                alice.message("Bob Static", "hello from Python in the browser")
            ).to_be_visible(timeout=TIMEOUT)
            await expect(
                bob.message("Bob Static", "hello from Python in the browser")
            ).to_be_visible(timeout=TIMEOUT)
            await alice.send("hi Bob, I am on the server side")
            await expect(bob.message("Alice", "hi Bob, I am on the server side")).to_be_visible(
                timeout=TIMEOUT
            )
            await expect(bob.page.get_by_text("Online (2)")).to_be_visible(timeout=TIMEOUT)
            await expect(alice.page.get_by_text("Online (2)")).to_be_visible(timeout=TIMEOUT)
            await bob.screenshot("static-client.png")

            # The full UI over the relay: a channel, posting there, unread counts elsewhere.
            # (Switching channels and search in the static client are not covered here yet.)
            await bob.page.get_by_label("New channel").click()
            await bob.type_in_field("lunch", "Channel name", tag="INPUT")
            await bob.page.keyboard.press("Enter")
            await expect(bob.notice("Bob Static created #lunch.")).to_be_visible(timeout=TIMEOUT)
            await expect(
                alice.page.get_by_role("button", name="# lunch", exact=True)
            ).to_be_visible(timeout=TIMEOUT)
            await bob.post("pizza from the static client")
            await expect(bob.message("Bob Static", "pizza from the static client")).to_be_visible(
                timeout=TIMEOUT
            )
            lunch = alice.page.get_by_role("button", name="# lunch, 1 unread", exact=True)
            await expect(lunch).to_be_visible(timeout=TIMEOUT)
            # The same validation as everywhere: an overlong message is refused and kept.
            await bob.type_in_field("x" * 4001)
            await bob.page.keyboard.press("Enter")
            await expect(bob.page.get_by_text("Message is too long", exact=False)).to_be_visible(
                timeout=TIMEOUT
            )
            # Closing the tab is leaving.
            await bob.page.close()
            await expect(alice.notice("Bob Static has left the chat.")).to_be_visible(
                timeout=TIMEOUT
            )
        finally:
            await browser.close()
