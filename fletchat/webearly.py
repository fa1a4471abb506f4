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
"""

from __future__ import annotations

import re
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
const APP_ZIP_PATH = "/home/pyodide/app.zip";
self.bootPyodide = async function (url) {
    self.fcMark("import pyodide.mjs");
    const pyodideModule = await import(url);
    const loadPyodide = pyodideModule.loadPyodide || self.loadPyodide;
    self.fcMark("loadPyodide");
    const pyodide = await loadPyodide({
        stdout: (text) => self.sendPythonOutput(text, false),
        stderr: (text) => self.sendPythonOutput(text, true),
        env: self.fcTiming === "imports" ? { PYTHONIMPORTTIME: "1" } : {},
    });
    self.fcMark("pyodide ready");
    return pyodide;
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
    self.preloaded = (async () => {
        const pyodide = await self.bootPyodide(data.pyodideUrl);
        pyodide.registerJsModule("flet_js", flet_js);
        try {
            const zipped = data.appPackageUrl.split(/[?#]/)[0].toLowerCase().endsWith(".zip");
            const bytes = new Uint8Array(await appBytes);
            self.fcMark("app fetched");
            if (zipped) {  // imported in place (zipimport): nothing to unpack
                pyodide.FS.writeFile(APP_ZIP_PATH, bytes);
            } else {
                pyodide.unpackArchive(bytes, "gztar");
            }
            pyodide.globals.set("_early_zip", zipped ? APP_ZIP_PATH : "");
            pyodide.globals.set("_early_imports", data.imports);
            await pyodide.runPythonAsync(`
import importlib, os, sys
from js import fcMark
fcMark("app in place")
if _early_zip:
    sys.path[:0] = [_early_zip + "/__pypackages__", _early_zip]
elif os.path.exists("__pypackages__"):
    sys.path.insert(0, "__pypackages__")
for _name in _early_imports.to_py():
    try:
        importlib.import_module(_name)
    except Exception as _err:
        print("early import of", _name, "failed:", repr(_err))
    fcMark("imported " + _name)
`);
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
    " return; }\n")
PAGE_ANCHOR = "let _documentUrl = document.URL;\n"
PAGE_WORKER = re.compile(r"app\.worker = new Worker\(")
PAGE_WORKER_NEW = "app.worker = _earlyWorker ? _earlyWorker : new Worker("
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


def early_python(out: Path, imports: tuple[str, ...] = PRELOAD_IMPORTS) -> None:
    """Patch the published ``python.js`` and ``python-worker.js`` in ``out`` (idempotent)."""
    import json

    page, worker = out / "python.js", out / "python-worker.js"
    text = page.read_text("utf-8")
    if MARK not in text:
        early = PAGE_EARLY.replace("__IMPORTS__", json.dumps(list(imports)))
        text = _replace(text, PAGE_ANCHOR, PAGE_ANCHOR + early, page.name)
        text = _replace(text, PAGE_WORKER, PAGE_WORKER_NEW, page.name)
        text = _replace(text, PAGE_TAKE, PAGE_TAKE_NEW, page.name)
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
