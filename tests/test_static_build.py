"""The static (Pyodide) web build, built here offline and served by host mode at /app/, chatting in
a real Chromium with a server-side session of the same host (through the ``/relay`` WebSocket).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile

import pytest
from playwright.async_api import expect

from fletchat import webbuild
from fletchat.rooms import SEALED_REFUSED
from tests.browser import WORLD_FONTS, WORLD_TEXT, ChatPage, chromium_available, host_mode_server
from tests.conftest import ROOT, need, once_per_run
from tests.timing import eventually, scaled, scaled_ms

TIMEOUT = scaled_ms(15_000)
PYTHON_READY = "Python worker initialized"


@pytest.fixture(scope="session")
def static_build(tmp_path_factory):
    """Build the site once per test run, for all xdist workers (about 3 s; the four wheels come from
    build/wheels, fetched from PyPI the first time). Read-only: no test writes into it."""
    try:
        return once_per_run(tmp_path_factory, "web-static", webbuild.build)
    except webbuild.BuildError as err:
        need(False, f"the static web build cannot be made here: {err}")


@pytest.fixture
def server(tmp_path, static_build):
    need(*chromium_available())
    with host_mode_server(tmp_path / "host", "--no-lan", "--static-dir", str(static_build)) as (
        url,
        _proc,
    ):
        yield url


def app_package(site):
    """The app's Python package: one zip, imported in place by zipimport in the browser."""
    return next(site.glob("app.*.zip"))


def fetch(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=scaled(10)) as resp:
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
    with zipfile.ZipFile(app_package(static_build)) as archive:
        names = set(archive.namelist())
        assert archive.read("main.py") == (ROOT / "main.py").read_bytes()
    assert {"webclient/main.py"} <= names
    assert any(n.startswith("fletchat/") for n in names)
    assert "pyproject.toml" not in names  # its dependencies would send micropip to PyPI


def test_host_mode_serves_the_build_and_its_packages(server, static_build):
    status, final_url, body = fetch(server + "app")
    assert status == 200 and final_url.endswith("/app/")
    assert b'<base href="/app/">' in body
    assert re.search(rb'flet\.pyodideUrl="\./pyodide-[0-9a-f]{12}/pyodide\.mjs"', body)
    manifest = json.loads(fetch(server + "app/manifest.json")[2])
    assert manifest["name"] == manifest["short_name"] == "Flet Chat"
    assert manifest["theme_color"] == "#2563EB"
    for icon in manifest["icons"]:
        assert fetch(server + "app/" + icon["src"])[0] == 200
    # The app's packages ship inside the app archive: no requirements.txt, so no micropip.
    package = app_package(static_build)
    assert fetch(server + "app/" + package.name)[0] == 200
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
    assert "requirements.txt" not in names and "main.py" in names
    for dist in ("flet", "msgpack", "repath", "six"):
        assert any(re.fullmatch(rf"__pypackages__/{dist}-[0-9.]+\.dist-info/METADATA", n)
                   for n in names), dist
    # The server-side app is still at "/".
    assert b"Flet Chat" in fetch(server)[2]


async def open_static(context, url: str) -> ChatPage:
    """The static client: wait for Python in the browser, then turn on the semantics tree."""
    page = await context.new_page()
    lines: list[str] = []
    page.on("console", lambda m: lines.append(m.text))
    try:
        async with page.expect_event(
            "console", predicate=lambda m: PYTHON_READY in m.text, timeout=scaled_ms(60_000)
        ):
            await page.goto(url, timeout=scaled_ms(30_000))
    except Exception:
        print("browser console:", *lines[-40:], sep="\n  ")  # why Python did not start
        raise
    placeholder = page.locator("flt-semantics-placeholder")
    await placeholder.wait_for(state="attached", timeout=scaled_ms(30_000))
    await placeholder.dispatch_event("click")
    await page.get_by_label("Enter your name to join the chat").wait_for(timeout=scaled_ms(30_000))
    tab = ChatPage(page)
    tab.console = lines  # type: ignore[attr-defined]
    return tab


async def test_static_client_chats_with_a_server_side_session(server, browser):
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

    # The full UI over the relay: a channel, posting there, unread counts elsewhere, switching
    # back, search with a jump into the result's channel, a direct message.
    await bob.page.get_by_role("button", name="New channel").click()
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
    await bob.page.get_by_role("button", name="# general", exact=True).click()
    await expect(bob.message("Alice", "hi Bob, I am on the server side")).to_be_visible(
        timeout=TIMEOUT)
    await expect(bob.message("Bob Static", "pizza from the static client")).to_have_count(0)
    await bob.search("pizz")  # a prefix, over the relay's search
    result = bob.page.get_by_role("button", name=re.compile(r"^Result: Bob Static in # lunch"))
    await expect(result).to_have_count(1, timeout=TIMEOUT)
    await result.click()
    await expect(bob.message("Bob Static", "pizza from the static client")).to_be_visible(
        timeout=TIMEOUT)
    await expect(bob.message("Alice", "hi Bob, I am on the server side")).to_have_count(0)
    # a direct message from the people panel, arriving as Alice's unread DM
    await bob.page.get_by_label("Message Alice directly").click()
    await expect(bob.page.get_by_text(re.compile("direct conversation with Alice"))
                 ).to_be_visible(timeout=TIMEOUT)
    await bob.post("just between us")
    await expect(bob.message("Bob Static", "just between us")).to_be_visible(timeout=TIMEOUT)
    await expect(alice.page.get_by_role("button", name="@ Bob Static, 1 unread", exact=True)
                 ).to_be_visible(timeout=TIMEOUT)
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


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=scaled(20)) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def test_the_build_is_pruned_versioned_and_never_names_a_cdn(static_build):
    names = {p.relative_to(static_build).as_posix() for p in static_build.rglob("*")}
    assert "main.dart.wasm" not in names and "flutter_service_worker.js" not in names
    assert not [n for n in names if n.endswith(".symbols") or "/wimp" in n]
    # Both of Flutter's builds, versioned: dart2wasm + skwasm (Chromium), dart2js + CanvasKit.
    for ext in ("js", "wasm", "mjs"):
        assert [n for n in names if re.fullmatch(rf"main\.dart\.[0-9a-f]{{12}}\.{ext}", n)], ext
    assert [n for n in names if re.fullmatch(r"canvaskit-[0-9a-f]{12}/skwasm\.wasm", n)]
    assert [n for n in names if re.fullmatch(r"canvaskit-[0-9a-f]{12}/canvaskit\.wasm", n)]
    assert "sw.js" in names and "rive/wasm/rive_native.js" in names
    # The app's own scripts load nothing from a CDN (Pyodide keeps a CDN fallback for packages it
    # does not have, which this site never asks for: the browser test below checks every request).
    for path in [*static_build.glob("*.js"), *static_build.glob("*.html"),
                 *static_build.glob("*.wasm"), *static_build.glob("*.mjs")]:
        assert b"cdn.jsdelivr.net" not in path.read_bytes(), path
    bootstrap = (static_build / "flutter_bootstrap.js").read_text()
    ours = bootstrap.split("_flutter.buildConfig = ", 1)[1]  # after Flutter's loader library
    assert "serviceWorkerSettings" not in ours
    config = json.loads(ours.split(";\n", 1)[0])
    assert [(b["compileTarget"], b["renderer"]) for b in config["builds"]] == [
        ("dart2wasm", "skwasm"), ("dart2js", "canvaskit")]
    for build in config["builds"]:
        for key in ("mainWasmPath", "jsSupportRuntimePath", "mainJsPath"):
            assert key not in build or build[key] in names, build
    assert 'flet.webRenderer="auto"' in (static_build / "index.html").read_text()
    # Fonts Flutter would load at every start but Flet Chat never draws (KaTeX, Cupertino icons).
    families = {f["family"] for f in json.loads(
        (static_build / "assets" / "FontManifest.json").read_text())}
    assert {"MaterialIcons", "Roboto"} <= families
    assert not [f for f in families if "KaTeX" in f or "Cupertino" in f], families
    assert not [n for n in names if n.endswith(".ttf") and "katex" in n.lower()]
    # The service worker keeps what a visit loads, not micropip (no requirements to install).
    assert "micropip" not in (static_build / "sw.js").read_text()


def test_precompressed_assets_and_cache_headers(server, static_build):
    import brotli

    index = (static_build / "index.html").read_bytes()
    status, headers, body = get(server + "app/", **{"Accept-Encoding": "gzip, br"})
    assert status == 200 and headers["content-encoding"] == "br"
    assert brotli.decompress(body) == index
    assert headers["vary"] == "Accept-Encoding" and headers["cache-control"] == "no-cache"
    assert headers["content-type"].startswith("text/html")
    status, headers, body = get(server + "app/", **{"Accept-Encoding": "gzip"})
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == index
    status, headers, body = get(server + "app/", **{"Accept-Encoding": "identity"})
    assert "content-encoding" not in headers and body == index
    assert headers["vary"] == "Accept-Encoding"
    status, headers, body = get(server + "app/", **{"Accept-Encoding": "br;q=0, gzip"})
    assert headers["content-encoding"] == "gzip"
    # Revalidation: the ETag of the copy served, 304 when unchanged.
    _, headers, _ = get(server + "app/", **{"Accept-Encoding": "br"})
    status, again, body = get(server + "app/", **{"Accept-Encoding": "br",
                                                  "If-None-Match": headers["etag"]})
    assert status == 304 and body == b"" and again["cache-control"] == "no-cache"
    # Versioned files are cached for good; the service worker and boot scripts are revalidated.
    main_js = next(static_build.glob("main.dart.*.js")).name
    status, headers, body = get(server + "app/" + main_js, **{"Accept-Encoding": "br"})
    assert status == 200 and headers["content-encoding"] == "br"
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["content-type"].startswith("text/javascript") or "javascript" in headers[
        "content-type"]
    wasm = next(static_build.glob("pyodide-*/pyodide.asm.wasm"))
    rel = wasm.relative_to(static_build).as_posix()
    status, headers, body = get(server + "app/" + rel, **{"Accept-Encoding": "gzip"})
    assert headers["content-type"] == "application/wasm" and headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == wasm.read_bytes()
    assert "immutable" in headers["cache-control"]
    package = app_package(static_build).name
    assert "immutable" in get(server + "app/" + package)[1]["cache-control"]
    for name in ("sw.js", "python.js", "flutter_bootstrap.js", "manifest.json"):
        assert get(server + "app/" + name)[1]["cache-control"] == "no-cache", name
    # Incompressible files have no copies, so no Vary.
    status, headers, _ = get(server + "app/favicon.png", **{"Accept-Encoding": "br"})
    assert status == 200 and "content-encoding" not in headers and "vary" not in headers


async def test_first_visit_stays_on_the_host_and_a_second_works_offline(
    tmp_path, static_build, browser
):
    with host_mode_server(tmp_path / "host", "--no-lan", "--static-dir", str(static_build)) as (
        url, proc,
    ):
        origin = url.rstrip("/")
        context = await browser.new_context()
        requests: list[str] = []
        context.on("request", lambda r: requests.append(r.url))
        page = await context.new_page()
        ready: list[str] = []
        page.on("console", lambda m: ready.append(m.text))
        async with page.expect_event(
            "console", predicate=lambda m: PYTHON_READY in m.text, timeout=scaled_ms(180_000)
        ):
            await page.goto(url + "app/", timeout=scaled_ms(30_000))
        await expect_console(ready, "Flet Chat: offline copy ready")
        outside = [u for u in requests if not u.startswith((origin + "/", "data:", "blob:"))]
        assert outside == [], outside
        # Chromium takes the dart2wasm build with skwasm (not main.dart.js and CanvasKit); the
        # Rive runtime's address in it resolves to the stub on the host.
        loaded = [u.removeprefix(origin) for u in requests]
        assert [u for u in loaded if re.fullmatch(r"/app/main\.dart\.[0-9a-f]{12}\.wasm", u)]
        assert [u for u in loaded if re.fullmatch(r"/app/canvaskit-[0-9a-f]{12}/skwasm\.wasm", u)]
        assert not [u for u in loaded if u.endswith(("main.dart.js", "canvaskit.wasm"))
                    or re.search(r"main\.dart\.[0-9a-f]{12}\.js$", u)], loaded
        assert any("/app/sw.js" in u for u in requests)
        # The host goes away; the site still starts, from the service worker's copy.
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(scaled(30))
        tab = await open_static(context, url + "app/")
        await expect(tab.page.get_by_label("Enter your name to join the chat")).to_be_visible()


async def test_a_second_visit_restores_python_from_the_first_visits_snapshot(server, browser):
    """The first visit keeps a snapshot of Python's memory once flet and the app are imported
    (in this browser's Cache Storage); the next visit restores it instead of starting Python
    and importing again, and the restored interpreter chats through the relay."""
    context = await browser.new_context()
    first = await open_static(context, server + "app/?timing")
    await expect_console(first.console, "fletchat-timing worker snapshot kept")
    assert not [line for line in first.console if "snapshot restored" in line]
    await first.page.close()
    second = await open_static(context, server + "app/?timing")
    lines = second.console
    assert [line for line in lines if "fletchat-timing worker snapshot restored" in line], "\n".join(lines)
    assert not [line for line in lines if "snapshot made" in line or "imported flet" in line]
    await second.join("Carol Restored")
    await second.send("hello from a restored Python")
    await expect(second.message("Carol Restored", "hello from a restored Python")).to_be_visible(
        timeout=TIMEOUT
    )


async def expect_console(lines: list[str], text: str) -> None:
    from tests.timing import eventually

    await eventually(lambda: any(text in line for line in lines), f"console says {text!r}", 120)


def test_python_in_the_browser_gets_bytecode_and_starts_with_the_page(static_build):
    """No compiling in the browser: the start-up modules of Pyodide's stdlib and every module in
    __pypackages__ ship as bytecode (made by the site's own Pyodide under Node.js), the app's own
    keep their source beside their bytecode; and the page starts the Python worker at once."""

    from fletchat import webpyc

    need(webpyc.node() is not None, "node is not on PATH: the build keeps sources")
    stdlib = next(static_build.glob("pyodide-*/python_stdlib.zip"))
    with zipfile.ZipFile(stdlib) as z:
        names = set(z.namelist())
        assert {"encodings/__init__.pyc", "asyncio/__init__.pyc"} <= names
        assert "encodings/__init__.py" not in names
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        magic = z.read("encodings/__init__.pyc")[:4]
    assert stdlib.with_name(stdlib.name + ".br").is_file()  # served as one brotli stream
    with zipfile.ZipFile(app_package(static_build)) as archive:
        members = set(archive.namelist())
        flet_pyc = archive.read("__pypackages__/flet/__init__.pyc")
        # Stored, not deflated: zipimport reads it in place, brotli compresses it on the wire.
        assert all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())
    assert "__pypackages__/flet/__init__.py" not in members
    assert not [n for n in members if n.endswith(".pyi")]
    assert {"main.py", "webclient/main.py"} <= members  # the app's source stays...
    assert {"main.pyc", "webclient/main.pyc"} <= members  # ...beside bytecode zipimport reads
    assert not [n for n in members if "__pycache__" in n]
    import importlib.util

    assert flet_pyc[:4] == magic  # one interpreter's bytecode: Pyodide's...
    assert magic != importlib.util.MAGIC_NUMBER  # ...not this host's Python 3.11
    page = (static_build / "python.js").read_text()
    worker = (static_build / "python-worker.js").read_text()
    assert "preload: true" in page and "_earlyWorker" in page
    assert "self.preload(" in worker and "App package unpacked early" in worker
    assert "makeMemorySnapshot" in worker and "_loadSnapshot" in worker  # later visits
    # Flet's controls the app names are imported early (and so kept in the snapshot), not when
    # the view is first built on every visit.
    assert '"flet.controls.material.alert_dialog"' in page and '"flet.app"' in page
    # The login is drawn before the view is built: the page answers the worker's frame asks.
    assert "fcAfterFrames" in worker and "fcFramesDone" in worker and "fcFramesDone" in page
async def test_static_site_draws_emoji_with_fonts_from_the_host(server, browser):
    """Issue 17: every request of the static client, emoji and other scripts included, stays
    on the host; the fallback fonts Flutter asks for are answered (not 404, not a CDN)."""
    origin = server.rstrip("/")
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    requests: list[str] = []
    served: list[tuple[str, int]] = []
    context.on("request", lambda r: requests.append(r.url))
    context.on("response", lambda r: served.append((r.url, r.status)))
    tab = await open_static(context, server + "app/")
    await tab.join("Bob Static")
    await tab.send("emoji 😀 and مرحبا")
    await expect(tab.message("Bob Static", "emoji 😀 and مرحبا")).to_be_visible(timeout=TIMEOUT)
    await tab.send(WORLD_TEXT)
    await expect(tab.message("Bob Static", WORLD_TEXT)).to_be_visible(timeout=TIMEOUT)

    def font(family: str, suffix: str = ".ttf") -> bool:
        return (f"{origin}/fallback-fonts/{family}{suffix}", 200) in served

    from tests.timing import eventually

    for family, suffix in WORLD_FONTS.items():  # colour emoji, Chinese, Korean
        await eventually(lambda f=family, x=suffix: font(f, x), f"{family} from the host", 60)
    await eventually(lambda: font("notosansarabic"), "the Arabic font from the host", 60)
    assert any(u.startswith(f"{origin}/app/assets/fonts/notocoloremoji/") for u in requests)
    outside = [u for u in requests if not u.startswith((origin + "/", "data:", "blob:"))]
    assert outside == [], outside


async def test_static_client_shares_files_and_gets_those_others_shared(server, browser, tmp_path):
    """Files over the relay: the static tab attaches an image and a text file (chunks on
    ``/relay``); a server-side tab sees the image inline and saves the text file; then that tab
    shares a file and the static tab shows it and downloads the same bytes from the host."""
    from tests.test_browser_files import attach, png, served

    picture = tmp_path / "static square.png"
    png(picture, colour=(20, 120, 220))
    notes = tmp_path / "static notes.txt"
    notes.write_bytes(b"sent from Python in the browser\n" * 3000)  # ~96 KB: several chunks
    reply = tmp_path / "reply.txt"
    reply.write_bytes(b"the server side answers\n" * 50)

    alice = await ChatPage.open(await browser.new_context(accept_downloads=True), server)
    alice_fetched = served(alice.page)
    await alice.join("Alice")
    bob = await open_static(await browser.new_context(accept_downloads=True), server + "app/")
    bob_fetched = served(bob.page)
    await bob.join("Bob Static")
    await expect(alice.notice("Bob Static has joined the chat.")).to_be_visible(timeout=TIMEOUT)

    await bob.type_in_field("from the static client")
    await attach(bob, picture, notes)
    row = re.compile(r"^Bob Static at [0-9:\- ]+: from the static client.*image static square\.png"
                     r".*file static notes\.txt")
    await expect(alice.page.get_by_label(row)).to_be_visible(timeout=TIMEOUT)
    await expect(bob.page.get_by_label(row)).to_be_visible(timeout=TIMEOUT)
    image = alice.page.get_by_role("button", name="Image static square.png, open full size")
    await expect(image).to_be_visible(timeout=TIMEOUT)
    async with alice.page.expect_download(timeout=TIMEOUT) as download_info:
        await alice.page.get_by_label("Save static notes.txt").click()
    saved = tmp_path / "alice-saved.txt"
    await (await download_info.value).save_as(saved)
    assert saved.read_bytes() == notes.read_bytes()
    # The static tab shows its own image inline too, loaded from the host.
    await expect(bob.page.get_by_role("button", name="Image static square.png, open full size")
                 ).to_be_visible(timeout=TIMEOUT)
    await eventually(lambda: bob_fetched, "the static tab loaded the image from the host", 30)
    assert alice_fetched

    # The other way: a file shared by the server-side tab, downloaded by the static one.
    await alice.type_in_field("an answer")
    await attach(alice, reply)
    await expect(bob.page.get_by_label(re.compile(r"^Alice at [0-9:\- ]+: an answer.*reply\.txt"))
                 ).to_be_visible(timeout=TIMEOUT)
    async with bob.page.expect_download(timeout=TIMEOUT) as download_info:
        await bob.page.get_by_label("Save reply.txt").click()
    download = await download_info.value
    assert download.suggested_filename == "reply.txt"
    got = tmp_path / "bob-saved.txt"
    await download.save_as(got)
    assert got.read_bytes() == reply.read_bytes()
    await bob.screenshot("static-client-files.png")


def test_the_flet_modules_the_app_names_are_found_for_the_early_imports():
    from fletchat.webearly import flet_modules_used

    found = flet_modules_used(["x = ft.ListView(controls=[ft.Text('a')])", "ft.NotAControl()"])
    assert "flet.controls.core.list_view" in found and "flet.controls.core.text" in found
    assert all(m.startswith("flet") for m in found)  # an unknown name adds nothing
    assert flet_modules_used([]) == ()


async def test_static_client_unlocks_a_private_room_and_writes_in_it(server, browser, tmp_path):
    """The host opens and seals for a static client as for its tabs: sealed rows until the
    passphrase is given, then the room's text and files both ways (the room's image through
    a link made for that connection, never the blob route)."""
    from tests.test_browser_files import attach, png

    picture = tmp_path / "plan.png"
    picture_bytes = png(picture, (20, 120, 220), (320, 200))
    notes = tmp_path / "room notes.txt"
    notes.write_bytes(b"from the static client, sealed\n" * 40)
    alice = await ChatPage.open(await browser.new_context(accept_downloads=True), server)
    await alice.join("Alice")
    await alice.page.get_by_role("button", name="New channel").click()
    await alice.type_in_field("secret", "Channel name", tag="INPUT")
    await alice.page.keyboard.press("Enter")
    await expect(alice.notice("Alice created #secret.")).to_be_visible(timeout=TIMEOUT)
    await alice.page.get_by_label(re.compile("^Private room")).click()
    await alice.type_in_field("correct horse battery", "Passphrase", tag="INPUT")
    await alice.page.keyboard.press("Enter")
    await expect(alice.page.get_by_text(re.compile("is private for you now")).first
                 ).to_be_visible(timeout=TIMEOUT)
    await alice.post("the plan")
    await expect(alice.message("Alice", "the plan")).to_be_visible(timeout=TIMEOUT)

    await alice.type_in_field("the map")
    await attach(alice, picture)
    await expect(alice.page.get_by_label(re.compile(r"^Alice at [0-9:\- ]+: the map.*plan\.png"))
                 ).to_be_visible(timeout=TIMEOUT)

    bob = await open_static(await browser.new_context(accept_downloads=True), server + "app/")
    opened: list[str] = []
    bob.page.on("response", lambda r: opened.append(r.url)
                if "/files/opened/" in r.url and r.status == 200 else None)
    await bob.join("Bob Static")
    await bob.page.get_by_role("button", name=re.compile(r"^# secret")).click()
    await expect(bob.page.get_by_text("Unlock private room # secret")).to_be_visible(
        timeout=TIMEOUT)
    await bob.type_in_field("wrong passphrase", "Passphrase", tag="INPUT")
    await bob.page.keyboard.press("Enter")  # the host derives it; the rows say it is wrong
    await expect(bob.page.get_by_text(re.compile("unlocked: its sealed messages open")).first
                 ).to_be_visible(timeout=TIMEOUT)
    await expect(bob.message("Alice", SEALED_REFUSED)).to_be_visible(
        timeout=TIMEOUT)
    await expect(bob.message("Alice", "the plan")).to_have_count(0)
    await bob.page.get_by_label(re.compile("^Private room")).click()
    await bob.page.get_by_label("Passphrase", exact=True).click(timeout=TIMEOUT)  # (rows say
    await bob.page.keyboard.insert_text("correct horse battery")  # "wrong passphrase" too)
    await bob.page.keyboard.press("Enter")
    await expect(bob.message("Alice", "the plan")).to_be_visible(timeout=TIMEOUT)
    await expect(bob.page.get_by_role("button", name=re.compile(r"^# secret, private"))
                 ).to_be_visible(timeout=TIMEOUT)
    await bob.post("count me in")
    await expect(bob.message("Bob Static", "count me in")).to_be_visible(timeout=TIMEOUT)
    await expect(alice.message("Bob Static", "count me in")).to_be_visible(timeout=TIMEOUT)
    await alice.post("see you at noon")  # live, while Bob is in the room
    await expect(bob.message("Alice", "see you at noon")).to_be_visible(timeout=TIMEOUT)
    # The room's image: shown to Bob through his connection's own link, the plaintext.
    await expect(bob.page.get_by_role("button", name="Image plan.png, open full size")
                 ).to_be_visible(timeout=TIMEOUT)
    await eventually(lambda: opened, "the static tab loaded the opened image", 30)
    assert await (await bob.page.request.get(opened[0])).body() == picture_bytes
    # Bob's file in the room is sealed by the host for him; Alice saves the same bytes.
    await attach(bob, notes)
    await expect(alice.page.get_by_label(re.compile(r"^Bob Static at .*room notes\.txt"))
                 ).to_be_visible(timeout=TIMEOUT)
    async with alice.page.expect_download(timeout=TIMEOUT) as download_info:
        await alice.page.get_by_label("Save room notes.txt").click()
    saved = tmp_path / "alice-saved.txt"
    await (await download_info.value).save_as(saved)
    assert saved.read_bytes() == notes.read_bytes()
    await expect(bob.page.get_by_label("Save room notes.txt")).to_be_visible(timeout=TIMEOUT)
    await bob.screenshot("static-private-room.png")
