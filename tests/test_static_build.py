"""The static (Pyodide) web build, built here offline and served by host mode at /app/, chatting in
a real Chromium with a server-side session of the same host (through the ``/relay`` WebSocket).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import urllib.request

import pytest
from playwright.async_api import async_playwright, expect

from fletchat import webbuild
from tests.browser import ChatPage, chromium_available, host_mode_server, launch_browser
from tests.conftest import ROOT, need
from tests.timing import scaled

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


def simulate_emscripten(main_py) -> dict:
    """``main.py`` run as Pyodide's worker runs it, in an imitation of Emscripten (subprocess)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "emscripten_sim.py"), str(main_py)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_main_py_under_emscripten_runs_the_web_client_without_native_modules():
    """The one entry: under Pyodide it starts Flet's Pyodide connection with the web client and
    never imports uvicorn, zeroconf, websockets, cryptography or flet-web (absent there)."""
    report = simulate_emscripten(ROOT / "main.py")
    assert report["error"] is None, report
    assert report["refused"] == [] and report["loaded"] == []
    assert report["webclient_loaded"] and report["started_connection"]


def test_the_offline_build_packs_the_same_entry(static_build):
    """webbuild publishes the project's main.py (as flet build web does), not a second entry."""
    with tarfile.open(static_build / "app.tar.gz") as tar:
        names = {n.lstrip("/").removeprefix("./") for n in tar.getnames()}
        packed_main = tar.extractfile(
            next(m for m in tar.getmembers() if m.name.lstrip("/").removeprefix("./") == "main.py")
        )
        assert packed_main is not None
        assert packed_main.read() == (ROOT / "main.py").read_bytes()
    assert {"webclient/main.py", "fletchat/ui.py", "requirements.txt"} <= names
    assert "pyproject.toml" not in names  # its dependencies would send micropip to PyPI


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
    async with page.expect_event(
        "console", predicate=lambda m: PYTHON_READY in m.text, timeout=scaled(60) * 1000
    ):
        await page.goto(url)
    placeholder = page.locator("flt-semantics-placeholder")
    await placeholder.wait_for(state="attached", timeout=scaled(30) * 1000)
    await placeholder.dispatch_event("click")
    await page.get_by_label("Enter your name to join the chat").wait_for(timeout=scaled(30) * 1000)
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
            # The same validation as everywhere: an overlong message is refused and kept.
            await bob.send("x" * 4001)
            await expect(bob.page.get_by_text("Message is too long", exact=False)).to_be_visible(
                timeout=TIMEOUT
            )
            await bob.screenshot("static-client.png")
            # Closing the tab is leaving.
            await bob.page.close()
            await expect(alice.notice("Bob Static has left the chat.")).to_be_visible(
                timeout=TIMEOUT
            )
        finally:
            await browser.close()
