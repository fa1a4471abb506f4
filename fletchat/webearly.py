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
PRELOAD_IMPORTS = ("flet", "webclient.main")

PAGE_EARLY = MARK + """
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
    });
}
"""

WORKER_EARLY = MARK + """
self.preloaded = null;
self.preloadedPackage = null;
self.bootPyodide = async function (url) {
    const pyodideModule = await import(url);
    const loadPyodide = pyodideModule.loadPyodide || self.loadPyodide;
    return await loadPyodide({
        stdout: (text) => self.sendPythonOutput(text, false),
        stderr: (text) => self.sendPythonOutput(text, true),
    });
};
self.preload = function (data) {
    self.preloaded = (async () => {
        const pyodide = await self.bootPyodide(data.pyodideUrl);
        pyodide.registerJsModule("flet_js", flet_js);
        try {
            pyodide.globals.set("_early_url", data.appPackageUrl);
            pyodide.globals.set("_early_imports", data.imports);
            await pyodide.runPythonAsync(`
import importlib, os, sys
from pyodide.http import pyfetch
_r = await pyfetch(_early_url)
if not _r.ok:
    raise RuntimeError(f"HTTP {_r.status} {_early_url}")
await _r.unpack_archive(format="zip" if _early_url.lower().endswith(".zip") else "gztar")
if os.path.exists("__pypackages__"):
    sys.path.insert(0, "__pypackages__")
for _name in _early_imports.to_py():
    try:
        importlib.import_module(_name)
    except Exception as _err:
        print("early import of", _name, "failed:", repr(_err))
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
        page.write_text(text, "utf-8")
    text = worker.read_text("utf-8")
    if MARK not in text:
        text = WORKER_EARLY + text
        text = _replace(text, WORKER_BOOT, WORKER_BOOT_NEW, worker.name)
        text = _replace(text, WORKER_DOWNLOAD, WORKER_DOWNLOAD_NEW, worker.name)
        text = _replace(text, WORKER_ONMESSAGE, WORKER_ONMESSAGE_NEW, worker.name)
        worker.write_text(text, "utf-8")
