"""The last steps of the static web build: make it small, cacheable, offline and self-contained.

Run by ``fletchat.webbuild`` on the site ``flet publish`` wrote (see ``webstatic`` for how host mode
serves the result):

0. **No micropip**: the app's wheels are unpacked into ``app.tar.gz`` (``__pypackages__``).
   **No compiling in the browser**: bytecode made by the site's own Pyodide under Node.js
   (``webpyc``) goes into ``app.tar.gz`` and Pyodide's ``python_stdlib.zip``.
1. **Prune** what this site never loads: the wimp runtime, debug symbols and source maps, and
   Flutter's own (deprecated) service worker. Both of Flutter's builds stay: Chromium browsers
   (WasmGC) take the dart2wasm build with the skwasm renderer, which starts and draws faster
   (a second visit 2.6-2.9 s instead of 3.6-4.9 s here, docs/performance.md), the others the
   dart2js build with CanvasKit; Flutter's loader picks per browser.
2. **No request leaves the host.** ``main.dart.js`` (and ``main.dart.wasm``) load the Rive
   animation runtime from
   ``cdn.jsdelivr.net`` at start-up, which on a LAN with internet tells a third party that the app
   was opened. Flet Chat draws no Rive animation, so the URL points at ``rive/`` on the host, where a
   stub keeps Rive's loader waiting forever: exactly what happens today when the CDN is unreachable.
3. **Versioned names** (a content hash) for the big runtime files, so they can be cached for good.
4. **A service worker** (``sw.js``, scope ``/app/``) that keeps the site for offline use.
5. **Python starts while Flutter boots** (``webearly``): the page creates the Python worker at
   once instead of when Flutter asks for it.
6. **Precompressed** ``.br`` and ``.gz`` copies of every compressible file (kept only when at least
   10 % smaller), cached by content hash in ``build/compressed`` so rebuilds are quick.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import re
import shutil
import tarfile
import zipfile
from pathlib import Path

from .webearly import APP_ZIP, early_python
from .webpyc import precompile
from .webstatic import COMPRESSIBLE, HASH_CHARS

log = logging.getLogger("fletchat.webbuild")

UNUSED_FILES = ("flutter.js.map", "flutter_service_worker.js")
UNUSED_GLOBS = ("canvaskit/wimp*", "**/*.symbols")
# The entry files of Flutter's two builds, as buildConfig names them.
WASM_ENTRY = ("main.dart.wasm", "main.dart.mjs")  # dart2wasm: mainWasmPath, jsSupportRuntimePath
JS_ENTRY = "main.dart.js"  # dart2js: mainJsPath
UNUSED_DIRS = ("canvaskit/experimental_webparagraph",)
RIVE_CDN = re.compile(rb"https://cdn\.jsdelivr\.net/npm/@rive-app/[A-Za-z0-9_.@-]+/")
RIVE_LOCAL = b"rive/"
RIVE_STUB = """// Flet Chat draws no Rive animation: the Rive runtime is not shipped, and never fetched from a CDN.
// Rive's loader waits for this promise, which never settles (as when its CDN is unreachable).
globalThis.RiveNative = () => new Promise(() => {});
"""
BROTLI_SMALL = 1 << 18  # files up to 256 KiB get brotli's best (slow) quality, bigger ones 9


def _brotli_quality(size: int) -> int:
    return 11 if size <= BROTLI_SMALL else 9
SW_NAME = "sw.js"
SW_SCRIPT_MARK = "<!-- fletchat service worker -->"


class FinishError(RuntimeError):
    """flet publish's output no longer looks as expected."""


def prune(out: Path) -> None:
    for name in UNUSED_FILES:
        (out / name).unlink(missing_ok=True)
    for pattern in UNUSED_GLOBS:
        for path in out.glob(pattern):
            path.unlink()
    for name in UNUSED_DIRS:
        shutil.rmtree(out / name, ignore_errors=True)


def _patch(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text("utf-8")
    if old not in text:
        raise FinishError(f"{old!r} not found in {path.name}; flet publish changed?")
    path.write_text(text.replace(old, new, count), "utf-8")


def same_length_rive(url: bytes) -> bytes:
    """A relative URL as long as ``url`` that resolves to ``rive/`` beside the page: a
    WebAssembly module keeps its strings' lengths (``rive/`` + ``./`` repeated, with one
    ``_/../`` when the parity needs an odd number of characters more)."""
    head = RIVE_LOCAL
    if (len(url) - len(head)) % 2:
        head += b"_/../"
    if len(url) < len(head):
        raise FinishError(f"Rive's CDN address is too short to replace: {url!r}")
    return head + b"./" * ((len(url) - len(head)) // 2)


def local_rive(out: Path) -> None:
    for entry, local in ((JS_ENTRY, RIVE_LOCAL),
                         (WASM_ENTRY[0], lambda m: same_length_rive(m.group(0)))):
        fixed, n = RIVE_CDN.subn(local, (out / entry).read_bytes())
        if n:
            (out / entry).write_bytes(fixed)
    stub = out / "rive" / "wasm" / "rive_native.js"
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text(RIVE_STUB, "utf-8")
    (out / "rive" / "wasm_compatibility").mkdir(exist_ok=True)
    shutil.copy2(stub, out / "rive" / "wasm_compatibility" / "rive_native.js")


PYPACKAGES = "__pypackages__"


def bundle_wheels(out: Path, wheels: list[Path]) -> None:
    """Unpack the app's wheels into ``app.tar.gz`` under ``__pypackages__`` and drop its
    ``requirements.txt``: Flet's worker puts ``__pypackages__`` on ``sys.path``, so Python in the
    browser never loads micropip nor resolves and unpacks wheels at every start."""
    src = out / "app.tar.gz"
    tmp = out / "app.tar.gz.tmp"
    with tarfile.open(src, "r:gz") as old, \
            tarfile.open(tmp, "w:gz", format=tarfile.GNU_FORMAT) as new:
        for member in old.getmembers():
            if member.name.lstrip("/") == "requirements.txt":
                continue
            new.addfile(member, old.extractfile(member) if member.isfile() else None)
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                for info in archive.infolist():
                    if info.is_dir():
                        continue
                    data = archive.read(info)
                    entry = tarfile.TarInfo(f"{PYPACKAGES}/{info.filename}")
                    entry.size, entry.mode = len(data), 0o644
                    new.addfile(entry, io.BytesIO(data))
    tmp.replace(src)


ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _zip_name(name: str) -> str:
    """Where a tar member goes in the app zip: bytecode made for a source beside it
    (``pkg/__pycache__/mod.cpython-3XY.pyc``) becomes ``pkg/mod.pyc``, which zipimport reads."""
    head, _, base = name.rpartition("/")
    if head.endswith("__pycache__") and base.endswith(".pyc") and base.count(".") == 2:
        parent = head[: -len("__pycache__")]
        return parent + base.split(".", 1)[0] + ".pyc"
    return name


def zip_app(out: Path) -> None:
    """Turn ``app.tar.gz`` into ``app.zip`` with stored (uncompressed) entries, imported in
    place: the page's worker writes the zip into Pyodide's file system and puts it on
    ``sys.path`` (zipimport), so nothing is unpacked in the browser (it took 1-3 s of a second
    visit). Stored, not deflated: the host serves one brotli stream of it, smaller than the
    tarball's gzip, and zipimport inflates nothing in WebAssembly. Flet's own fallback (the
    worker downloading and unpacking the package itself) still works on a zip."""
    src = out / "app.tar.gz"
    with tarfile.open(src, "r:gz") as tar, \
            zipfile.ZipFile(out / APP_ZIP, "w", zipfile.ZIP_STORED) as archive:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if not member.isfile():
                continue
            name = _zip_name(member.name.lstrip("/").removeprefix("./"))
            entry = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, tar.extractfile(member).read())
    src.unlink()


# Flutter loads every family of FontManifest.json at start. Flet's client carries KaTeX's
# fonts (for math in its Markdown control) and the Cupertino icons; Flet Chat draws neither
# (its own Markdown is plain Flet controls; its icons are Material), so they only cost bytes
# on a first visit and font parsing on every visit.
UNUSED_FONT_PREFIXES = ("packages/flutter_math_fork/", "packages/cupertino_icons/")


def trim_fonts(out: Path) -> None:
    path = out / "assets" / "FontManifest.json"
    families = json.loads(path.read_text("utf-8"))
    kept = [f for f in families if not f["family"].startswith(UNUSED_FONT_PREFIXES)]
    for family in families:
        if family not in kept:
            for font in family["fonts"]:
                (out / "assets" / font["asset"]).unlink(missing_ok=True)
    path.write_text(json.dumps(kept, separators=(",", ":")), "utf-8")


def both_builds(out: Path) -> None:
    """flutter_bootstrap.js: the dart2wasm (skwasm) build first, where the browser can run it,
    then the dart2js (CanvasKit) one; and no Flutter service worker of its own."""
    path = out / "flutter_bootstrap.js"
    text = path.read_text("utf-8")
    match = re.search(r"_flutter\.buildConfig = (\{.*?\});\n", text)
    if not match:
        raise FinishError("_flutter.buildConfig not found in flutter_bootstrap.js")
    config = json.loads(match.group(1))
    targets = [b.get("compileTarget") for b in config["builds"]]
    if targets != ["dart2wasm", "dart2js"]:
        raise FinishError(f"flutter_bootstrap.js builds {targets}, not dart2wasm and dart2js")
    text, n = re.subn(r"\n\s*serviceWorkerSettings:\s*\{[^{}]*\},", "", text)
    if n != 1:
        raise FinishError("serviceWorkerSettings not found in flutter_bootstrap.js")
    path.write_text(text, "utf-8")


def content_hash(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for top in paths for p in ([top] if top.is_file() else top.rglob("*"))):
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:HASH_CHARS]


def version_names(out: Path) -> str:
    """Rename the big runtime files with a content hash; point index.html and the bootstrap there."""
    wasm, mjs = WASM_ENTRY
    version = content_hash(
        [out / JS_ENTRY, out / wasm, out / mjs, out / "canvaskit", out / "pyodide", out / APP_ZIP],
        out,
    )
    (out / JS_ENTRY).rename(out / f"main.dart.{version}.js")
    (out / wasm).rename(out / f"main.dart.{version}.wasm")
    (out / mjs).rename(out / f"main.dart.{version}.mjs")
    (out / "canvaskit").rename(out / f"canvaskit-{version}")
    (out / "pyodide").rename(out / f"pyodide-{version}")
    (out / APP_ZIP).rename(out / f"app.{version}.zip")
    index = out / "index.html"
    _patch(index, 'flet.canvasKitBaseUrl="/app/canvaskit/"',
           f'flet.canvasKitBaseUrl="/app/canvaskit-{version}/"')
    _patch(index, 'flet.pyodideUrl="./pyodide/pyodide.mjs"',
           f'flet.pyodideUrl="./pyodide-{version}/pyodide.mjs"')
    _patch(index, '"app.tar.gz"', f'"app.{version}.zip"', count=2)
    _patch(out / "flutter_bootstrap.js", '"mainJsPath":"main.dart.js"',
           f'"mainJsPath":"main.dart.{version}.js"')
    _patch(out / "flutter_bootstrap.js", '"mainWasmPath":"main.dart.wasm"',
           f'"mainWasmPath":"main.dart.{version}.wasm"')
    _patch(out / "flutter_bootstrap.js", '"jsSupportRuntimePath":"main.dart.mjs"',
           f'"jsSupportRuntimePath":"main.dart.{version}.mjs"')
    return version


def precache_list(out: Path, version: str) -> list[str]:
    """What every visit needs, for the service worker to keep (Flutter's build and renderer the
    browser picks, dart2wasm with skwasm or dart2js with CanvasKit, are added by the page, which
    knows which it loaded)."""
    names = ["./", "python.js", "flutter.js", "flutter_bootstrap.js", "python-worker.js",
             "manifest.json", "favicon.png", "icons/loading-animation.png",
             f"app.{version}.zip", "assets/FontManifest.json",
             "rive/wasm/rive_native.js"]
    pyodide = out / f"pyodide-{version}"
    core = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip",
            "pyodide-lock.json")
    names += [f"pyodide-{version}/{n}" for n in core if (pyodide / n).is_file()]
    names += [f"assets/fonts/{p.name}" for p in sorted((out / "assets" / "fonts").iterdir())]
    fonts = json.loads((out / "assets" / "FontManifest.json").read_text("utf-8"))
    names += [f"assets/{f['asset']}" for family in fonts for f in family["fonts"]]
    names = list(dict.fromkeys(names))
    missing = [n for n in names if n != "./" and not (out / n).is_file()]
    if missing:
        raise FinishError(f"files the service worker should keep are missing: {missing}")
    return names


def add_service_worker(out: Path, version: str, template: Path) -> None:
    script = template.read_text("utf-8")
    script = script.replace("__VERSION__", version).replace(
        "__PRECACHE__", json.dumps(precache_list(out, version), indent=1)
    )
    (out / SW_NAME).write_text(script, "utf-8")
    register = template.with_name("sw-register.html").read_text("utf-8")
    _patch(out / "index.html", '<script src="python.js"></script>',
           f'{SW_SCRIPT_MARK}\n{register}\n  <script src="python.js"></script>')


def _compressed(data: bytes, coding: str, cache: Path) -> bytes:
    key = hashlib.sha256(data).hexdigest()
    level = _brotli_quality(len(data)) if coding == "br" else 9
    path = cache / f"{key}.{coding}{level}"
    if path.is_file():
        return path.read_bytes()
    if coding == "gz":
        packed = gzip.compress(data, level, mtime=0)
    else:
        import brotli

        packed = brotli.compress(data, quality=level)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(packed)
    tmp.replace(path)
    return packed


def brotli_available() -> bool:
    try:
        import brotli  # noqa: F401
    except ImportError:
        return False
    return True


def precompress(out: Path, cache: Path) -> tuple[int, int]:
    """Write .br/.gz copies; returns (files compressed, copies written)."""
    codings = ["gz", "br"] if brotli_available() else ["gz"]
    if "br" not in codings:
        log.warning("brotli is not installed (uv sync --dev): gzip copies only")
    files = copies = 0
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        name = path.name
        if path.suffix not in COMPRESSIBLE or name.endswith((".gz", ".br")):
            continue
        data = path.read_bytes()
        if len(data) < 256:
            continue
        files += 1
        for coding in codings:
            packed = _compressed(data, coding, cache)
            if len(packed) <= 0.9 * len(data):
                path.with_name(f"{name}.{coding}").write_bytes(packed)
                copies += 1
    return files, copies


def finish(out: Path, compress_cache: Path, sw_template: Path, wheels: list[Path],
           pyc_cache: Path | None = None) -> str:
    """All steps, in order; returns the build's version (content hash)."""
    bundle_wheels(out, wheels)
    prune(out)
    if pyc_cache is not None:
        precompile(out / "app.tar.gz", out / "pyodide", pyc_cache)
    zip_app(out)
    trim_fonts(out)
    local_rive(out)
    both_builds(out)
    early_python(out)
    version = version_names(out)
    add_service_worker(out, version, sw_template)
    precompress(out, compress_cache)
    return version
