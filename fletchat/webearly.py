"""Start Python while Flutter boots: a build step on flet-web's ``python.js`` / ``python-worker.js``.

Flet's page creates the Python worker only when the Flutter app calls ``jsConnect``, i.e. after
``main.dart.js`` and CanvasKit have loaded and drawn (1.5-3 s of the main thread); only then does
the worker load Pyodide, fetch and unpack the app and import it. The two are independent, and a
browser runs them on different cores. Here the page creates the worker as soon as ``python.js``
runs (``flet.pyodideUrl`` and ``flet.appPackageUrl`` are set before it, in ``index.html``) and sends
it a ``preload`` message: Pyodide starts, the app package is unpacked and the start-up modules
(``PRELOAD_IMPORTS``) are imported. ``jsConnect`` later takes that worker and sends the usual
first message; the worker's bootstrap then skips what was done. Anything that fails early is
tried again the usual way, so the page behaves as before, only sooner.

Later visits skip most of that: once the start-up modules are imported, the first visit (which
boots Pyodide with its ``_makeSnapshot`` option) takes a snapshot of Python's memory
(``makeMemorySnapshot``) and keeps it in this browser's Cache Storage; the next visit boots
Pyodide from it (``_loadSnapshot``) with flet and the app already imported, writes the app zip
back into the file system (zipimport reads modules not imported yet from it) and reseeds
``random``. Nothing of it goes over the network. The snapshot's one JavaScript object that is not
reached through Python's globals is ``flet_js``, named by ``snapshotName``/``snapshotObject``.
A snapshot that cannot be made or restored only means the usual start.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

MARK = "/* fletchat: early python */"
# What the page's worker imports before Flutter asks for Python: the app, and Flet's Pyodide
# connection that ``ft.run`` would import only then.
PRELOAD_IMPORTS = ("flet", "webclient.main", "flet.messaging.pyodide_connection")

PAGE_EARLY = MARK + """
// Start-up timestamps (ms since the page's navigation) on the console, with ?timing in the URL.
// ?timing=imports also has Python print every module's import time (PYTHONIMPORTTIME).
const _fcTimingArg = new URLSearchParams(location.search).get("timing");
const _fcTiming = globalThis.fletchatTiming || (_fcTimingArg === null ? false : _fcTimingArg || true);
globalThis.fcMark = (what) => {
    if (_fcTiming) console.log("fletchat-timing page " + what + " " + performance.now().toFixed(0));
};
fcMark("python.js");
if (_fcTiming) {
    window.addEventListener("flutter-first-frame", () => fcMark("flutter-first-frame"));
}
let _earlyWorker = null;
if (globalThis.flet && flet.pyodide && flet.appPackageUrl) {
    const base = flet.entrypointBaseUrl.endsWith("/") ?
        flet.entrypointBaseUrl.slice(0, -1) : flet.entrypointBaseUrl;
    _earlyWorker = new Worker(base + "/python-worker.js", { type: "module" });
    _earlyWorker.postMessage({
        preload: true,
        pyodideUrl: flet.pyodideUrl || "pyodide/pyodide.mjs",
        appPackageUrl: flet.appPackageUrl,
        imports: __IMPORTS__,
        timing: _fcTiming,
        pageOrigin: performance.timeOrigin,
    });
}
"""

WORKER_EARLY = MARK + """
self.fcTiming = false;
self.fcPageOrigin = 0;
self.fcMark = function (what) {
    if (self.fcTiming) {
        const t = performance.timeOrigin + performance.now() - self.fcPageOrigin;
        console.log("fletchat-timing worker " + what + " " + t.toFixed(0));
    }
};
self.preloaded = null;
self.preloadedPackage = null;
// fcAfterFrames(): resolves once the page has drawn two animation frames after getting the ask,
// so what Python sent before asking is on screen (the static client's login goes out first).
self.fcFrameWaits = new Map();
self.fcFrameSeq = 0;
self.fcAfterFrames = function () {
    const id = ++self.fcFrameSeq;
    return new Promise((resolve) => {
        self.fcFrameWaits.set(id, resolve);
        self.postMessage({ fcAfterFrames: id });
    });
};
const APP_ZIP_PATH = "/home/pyodide/app.zip";
const WARM_UP = `
import flet_js, os, runpy, sys, traceback
from pyodide.http import pyfetch
import msgpack
async def _warm(py_args, name=None):
    if name is None and "script" not in (py_args or {}):
        try:
            deps = [line for req in ["a", "# b"] if (line := req.strip()) and not line.startswith("#")]
            return f"{name}: {deps!r} {os.path.exists('requirements.txt')}"
        except SystemExit as _exit:
            if _exit.code not in (None, 0):
                raise
await _warm({})
del _warm
`;
self.bootPyodide = async function (url, snapshot) {
    self.fcMark("import pyodide.mjs");
    const pyodideModule = await import(url);
    const loadPyodide = pyodideModule.loadPyodide || self.loadPyodide;
    self.fcMark("loadPyodide");
    const restoring = snapshot && snapshot._loadSnapshot;
    const unwrap = restoring ? self.growMemoryFor(restoring.length) : () => {};
    try {
        const pyodide = await loadPyodide({
            stdout: (text) => self.sendPythonOutput(text, false),
            stderr: (text) => self.sendPythonOutput(text, true),
            env: self.fcTiming === "imports" ? { PYTHONIMPORTTIME: "1" } : {},
            ...(snapshot || {}),
        });
        self.fcMark("pyodide ready");
        return pyodide;
    } finally {
        unwrap();
    }
};
// Pyodide restores a snapshot by copying it over the memory of a new WebAssembly instance,
// whose size is the module's own initial memory (its INITIAL_MEMORY setting does not apply:
// the module exports its memory). A snapshot taken once the app's imports had grown the memory
// past that does not fit ("RangeError: offset is out of bounds"), so the instance's memory is
// grown to the snapshot's size as it is made, before Pyodide's code sees it.
self.growMemoryFor = function (bytes) {
    const wasm = self.WebAssembly;
    const instantiate = wasm.instantiate, streaming = wasm.instantiateStreaming;
    const grown = (result) => {
        const memory = (result.instance || result).exports?.memory;
        if (memory && memory.buffer.byteLength < bytes) {
            memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / 65536));
        }
        return result;
    };
    wasm.instantiate = (...args) => instantiate.apply(wasm, args).then(grown);
    if (streaming) wasm.instantiateStreaming = (...args) => streaming.apply(wasm, args).then(grown);
    return () => {
        wasm.instantiate = instantiate;
        if (streaming) wasm.instantiateStreaming = streaming;
    };
};
// A snapshot of Python's memory once the app is imported, made in this browser on a visit
// without one and kept in Cache Storage: later visits restore it instead of starting Python
// and importing flet and the app again. Keyed by the build's runtime and app files (one kept:
// a new build's replaces it). Not named "fletchat-...": the service worker drops those.
const SNAPSHOT_CACHE = "fletchat.python-snapshot";
self.snapshotKey = (data) => new URL("python-snapshot?" + encodeURIComponent(
    // ?timing=imports boots with PYTHONIMPORTTIME, which a snapshot would keep
    [data.pyodideUrl, data.appPackageUrl, data.imports.join(","),
        data.timing === "imports" ? "importtime" : ""].join("|")),
    self.location.href).href;
// JavaScript objects Python holds at the snapshot, besides those reached through its globals
// (which Pyodide names by their path): only flet_js, the module Flet's connection imports.
self.snapshotName = (obj) => {
    if (obj === self.flet_js) return "flet_js";
    throw new Error("Python holds a JavaScript object a snapshot cannot name");
};
self.snapshotObject = (name) => (name === "flet_js" ? self.flet_js : null);
self.loadSnapshot = async function (key) {
    try {
        const cache = await caches.open(SNAPSHOT_CACHE);
        const hit = await cache.match(key);
        return hit ? new Uint8Array(await hit.arrayBuffer()) : null;
    } catch (error) {
        return null;  // no Cache Storage here (e.g. not a secure context)
    }
};
self.keepSnapshot = async function (key, bytes) {
    try {
        const cache = await caches.open(SNAPSHOT_CACHE);
        for (const old of await cache.keys()) await cache.delete(old);
        await cache.put(key, new Response(bytes, {
            headers: { "Content-Type": "application/octet-stream" } }));
        self.fcMark("snapshot kept");
    } catch (error) {
        console.warn("Python: start-up snapshot not kept:", String(error));
    }
};
self.preload = function (data) {
    self.fcTiming = data.timing || false;
    self.fcPageOrigin = data.pageOrigin || 0;
    self.fcMark("preload");
    // The app package is fetched while Pyodide boots, not after.
    const appBytes = fetch(data.appPackageUrl, { credentials: "same-origin" }).then((r) => {
        if (!r.ok) throw new Error("HTTP " + r.status + " " + data.appPackageUrl);
        return r.arrayBuffer();
    });
    appBytes.catch(() => {});  // reported below, once Pyodide is there
    const zipped = data.appPackageUrl.split(/[?#]/)[0].toLowerCase().endsWith(".zip");
    const key = self.snapshotKey(data);
    const stored = zipped && self.caches ? self.loadSnapshot(key) : Promise.resolve(null);
    self.preloaded = (async () => {
        let pyodide = null;
        const snapshot = await stored;
        if (snapshot) {
            try {
                pyodide = await self.bootPyodide(data.pyodideUrl, {
                    _loadSnapshot: snapshot, _snapshotDeserializer: self.snapshotObject });
                self.fcMark("snapshot restored");
            } catch (error) {
                console.warn("Python: start-up snapshot not usable, starting afresh:", error);
                pyodide = null;
            }
        }
        const restored = pyodide !== null;
        const making = !restored && zipped && !!self.caches;
        if (!restored) {
            pyodide = await self.bootPyodide(data.pyodideUrl,
                making ? { _makeSnapshot: true } : null);
        }
        pyodide.registerJsModule("flet_js", flet_js);
        try {
            const bytes = new Uint8Array(await appBytes);
            self.fcMark("app fetched");
            if (zipped) {  // imported in place (zipimport): nothing to unpack
                pyodide.FS.writeFile(APP_ZIP_PATH, bytes);
            } else {
                pyodide.unpackArchive(bytes, "gztar");
            }
            if (restored) {  // the modules are in memory already; only fresh randomness
                pyodide.runPython("import random; random.seed()");
                self.fcMark("app in place");
                // The first Python a restored interpreter compiles and runs is slow (its
                // WebAssembly functions are compiled on first use): the worker's bootstrap at
                // connect took 0.5-2 s of the critical path. Run its imports and like code now,
                // while Flutter starts.
                await pyodide.runPythonAsync(WARM_UP);
                self.fcMark("warmed up");
            } else {
                pyodide.globals.set("_early_zip", zipped ? APP_ZIP_PATH : "");
                pyodide.globals.set("_early_imports", JSON.stringify(data.imports));
                await pyodide.runPythonAsync(`
import importlib, json, os, sys
from js import fcMark
fcMark("app in place")
if _early_zip:
    sys.path[:0] = [_early_zip + "/__pypackages__", _early_zip]
elif os.path.exists("__pypackages__"):
    sys.path.insert(0, "__pypackages__")
for _name in json.loads(_early_imports):
    try:
        importlib.import_module(_name)
    except Exception as _err:
        print("early import of", _name, "failed:", repr(_err))
    fcMark("imported " + _name)
for _k in ("_name", "_early_zip", "_early_imports"):
    globals().pop(_k, None)
`);
                if (making) {
                    try {
                        const made = pyodide.makeMemorySnapshot({ serializer: self.snapshotName });
                        self.fcMark("snapshot made");
                        self.keepSnapshot(key, made);  // not awaited: the app goes on
                    } catch (error) {
                        console.warn("Python: no start-up snapshot:", String(error));
                    }
                    // With _makeSnapshot, Python's "js" is a proxy of the globals that records
                    // paths, and a getter such as js.location fails through it ("Illegal
                    // invocation"): from here on this visit uses the globals themselves.
                    try {
                        pyodide.registerJsModule("js", self);
                        pyodide.runPython("import sys; sys.modules.pop('js', None); import js");
                    } catch (error) {
                        console.warn("Python: js module not replaced:", String(error));
                    }
                }
            }
            self.preloadedPackage = data.appPackageUrl;
            pyodide.globals.set("preloaded_package", data.appPackageUrl);
        } catch (error) {
            console.warn("Python: early start of the app failed, retrying at connect:", error);
        }
        return pyodide;
    })();
};
"""

WORKER_BOOT = re.compile(
    r"const pyodideModule = await import\(self\.pyodideUrl\);\s*"
    r"const loadPyodide = pyodideModule\.loadPyodide \|\| self\.loadPyodide;\s*"
    r"self\.pyodide = await loadPyodide\(\{.*?\}\);",
    re.DOTALL,
)
WORKER_BOOT_NEW = ("self.pyodide = await (self.preloaded || "
                   "self.bootPyodide(self.pyodideUrl));")
WORKER_DOWNLOAD = 'if "script" not in py_args:'
WORKER_DOWNLOAD_NEW = (
    'if "script" not in py_args and globals().get("preloaded_package") == app_package_url:\n'
    '            print("App package unpacked early")\n'
    '        elif "script" not in py_args:')
WORKER_ONMESSAGE = "self.onmessage = async (event) => {\n"
WORKER_ONMESSAGE_NEW = WORKER_ONMESSAGE + (
    "    if (event.data && event.data.preload) { if (!self.preloaded) self.preload(event.data);"
    " return; }\n"
    "    if (event.data && event.data.fcFramesDone) {"
    " const done = self.fcFrameWaits.get(event.data.fcFramesDone);"
    " self.fcFrameWaits.delete(event.data.fcFramesDone); if (done) done(); return; }\n")
PAGE_ANCHOR = "let _documentUrl = document.URL;\n"
PAGE_WORKER = re.compile(r"app\.worker = new Worker\(")
PAGE_WORKER_NEW = "app.worker = _earlyWorker ? _earlyWorker : new Worker("
PAGE_ONMESSAGE = "    app.worker.onmessage = (event) => {\n"
PAGE_ONMESSAGE_NEW = PAGE_ONMESSAGE + (  # the worker's fcAfterFrames: answered two frames later
    "        if (event.data && event.data.fcAfterFrames) { const id = event.data.fcAfterFrames;"
    " requestAnimationFrame(() => requestAnimationFrame("
    "() => app.worker.postMessage({ fcFramesDone: id }))); return; }\n")
PAGE_TAKE = "    var error;\n"
PAGE_TAKE_NEW = "    _earlyWorker = null;\n" + PAGE_TAKE
# Timestamps (``?timing``): where Flutter asks for Python, where Python answers.
PAGE_MARKS = (
    ("    console.log(`Starting up Python worker", '    fcMark("jsConnect");\n'),
    ("        console.log(`Python worker initialized", '        fcMark("python initialized");\n'),
)
WORKER_MARKS = (
    ("self.initPyodide = async function () {\n", '    self.fcMark("connect");\n', True),
    ("        await self.flet_js.start_connection(self.receiveCallback);\n",
     '        self.fcMark("connection started");\n', True),
    ("            runpy.run_module(python_module_name",
     "            import js; js.fcMark('run main')\n", False),
)


class EarlyError(RuntimeError):
    """flet-web's python.js / python-worker.js changed: the patch no longer applies."""


def _replace(text: str, old: str | re.Pattern[str], new: str, name: str) -> str:
    if isinstance(old, re.Pattern):
        out, n = old.subn(lambda _m: new, text, count=1)
    else:
        n = text.count(old)
        out = text.replace(old, new, 1)
    if n < 1:
        pattern = old.pattern if isinstance(old, re.Pattern) else old
        raise EarlyError(f"{pattern[:60]!r} not found in {name}; flet-web changed?")
    return out


APP_ZIP = "app.zip"  # the app's Python, as the build writes it (webfinish.zip_app)
FLET_NAME = re.compile(r"\bft\.([A-Za-z_]\w*)")
APP_SOURCES = ("main.py", "webclient/", "fletchat/")  # in the app zip: what the browser runs


def flet_modules_used(sources: Iterable[str]) -> tuple[str, ...]:
    """The modules behind flet's lazy exports that the app's code names (``ft.ListView`` ->
    ``flet.controls.core.list_view``). Flet imports each on first use, building its controls'
    dataclasses then: when the view is first built, on every visit. Imported early instead, they
    are in the snapshot, so a later visit restores them. Empty if flet's map is not there."""
    import flet

    lazy = getattr(flet, "_LAZY", None)
    if not isinstance(lazy, dict):
        return ()
    names: set[str] = set()
    for text in sources:
        names.update(FLET_NAME.findall(text))
    return tuple(sorted({lazy[n] for n in names if isinstance(lazy.get(n), str)}))


def app_sources(app_zip: Path) -> list[str]:
    """The app's own Python sources in its zip (not ``__pypackages__``)."""
    with zipfile.ZipFile(app_zip) as archive:
        return [archive.read(name).decode("utf-8", "replace") for name in archive.namelist()
                if name.endswith(".py") and name.startswith(APP_SOURCES)]


def early_python(out: Path, imports: tuple[str, ...] | None = None) -> None:
    """Patch the published ``python.js`` and ``python-worker.js`` in ``out`` (idempotent).
    ``imports``: what the worker imports early (and keeps in the snapshot); by default
    ``PRELOAD_IMPORTS`` and the flet modules the app zip's code names."""
    import json

    if imports is None:
        zipped = out / APP_ZIP
        used = flet_modules_used(app_sources(zipped)) if zipped.is_file() else ()
        imports = PRELOAD_IMPORTS + tuple(m for m in used if m not in PRELOAD_IMPORTS)

    page, worker = out / "python.js", out / "python-worker.js"
    text = page.read_text("utf-8")
    if MARK not in text:
        early = PAGE_EARLY.replace("__IMPORTS__", json.dumps(list(imports)))
        text = _replace(text, PAGE_ANCHOR, PAGE_ANCHOR + early, page.name)
        text = _replace(text, PAGE_WORKER, PAGE_WORKER_NEW, page.name)
        text = _replace(text, PAGE_TAKE, PAGE_TAKE_NEW, page.name)
        text = _replace(text, PAGE_ONMESSAGE, PAGE_ONMESSAGE_NEW, page.name)
        for anchor, mark in PAGE_MARKS:
            text = _replace(text, anchor, mark + anchor, page.name)
        page.write_text(text, "utf-8")
    text = worker.read_text("utf-8")
    if MARK not in text:
        text = WORKER_EARLY + text
        text = _replace(text, WORKER_BOOT, WORKER_BOOT_NEW, worker.name)
        text = _replace(text, WORKER_DOWNLOAD, WORKER_DOWNLOAD_NEW, worker.name)
        text = _replace(text, WORKER_ONMESSAGE, WORKER_ONMESSAGE_NEW, worker.name)
        for anchor, mark, after in WORKER_MARKS:
            text = _replace(text, anchor, anchor + mark if after else mark + anchor, worker.name)
        worker.write_text(text, "utf-8")
