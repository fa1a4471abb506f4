"""Precompiled bytecode for the static web build, made with the site's own Pyodide under Node.js.

Where a second visit's time went (Chromium, console timestamps in the worker): most of it is
Python compiling source in the browser. Pyodide's ``python_stdlib.zip`` holds ``.py`` files only,
so every start compiles the ~200 modules Pyodide itself imports, then ``flet`` (~280 modules) and
the app, all in WebAssembly; nothing is kept between visits (the file system is in memory).
Compiled once at build time instead, loading Pyodide alone costs about 2.4 s of CPU instead of
5.2-6 s (Node, same V8).

The bytecode must come from the very interpreter that runs it (CPython 3.14 in Pyodide), so the
build runs the site's bundled Pyodide under Node.js (``node`` on PATH; without it the build keeps
the sources and logs that start-up is slower). Pyodide imports the app's start-up modules there,
and then:

- ``python_stdlib.zip``: every module imported by then gets an unchecked hash-based ``.pyc`` in
  place of its ``.py`` (zipimport prefers ``.pyc``), without docstrings; the rest stay source.
  Its entries are stored, not deflated, so the host's brotli copy of the whole zip is smaller
  than the original zip was;
- ``app.tar.gz``: third-party packages in ``__pypackages__`` become sourceless ``.pyc`` without
  docstrings (flet's are most of its size; the wheels' ``.pyi`` stubs and ``RECORD`` files go);
  the app's own modules that start-up imports keep their source and get a ``__pycache__`` entry
  (no docstrings either), so tracebacks still show our lines.

Results are cached in ``build/pyc`` by the inputs' hash, so rebuilds take no Node run.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger("fletchat.webbuild")

PYPACKAGES = "__pypackages__"
# Imported in Node before the stdlib's modules are counted: what the browser imports at start-up.
STARTUP_IMPORTS = ("flet", "webclient.main", "main", "flet.messaging.pyodide_connection")
DROPPED_SUFFIXES = (".pyi",)  # type stubs: never loaded
DROPPED_NAMES = ("RECORD", "py.typed")
DRIVER_VERSION = "4"  # bump when the compile step changes, to invalidate build/pyc

DRIVER_JS = r"""
const [indexURL, work] = process.argv.slice(2);
const { loadPyodide } = await import(indexURL + "/pyodide.mjs");
const py = await loadPyodide({ indexURL: indexURL + "/" });
py.registerJsModule("flet_js", {});  // the page's bridge, imported by Flet's Pyodide connection
py.FS.mkdirTree("/w");
py.FS.mount(py.FS.filesystems.NODEFS, { root: work }, "/w");
py.runPython(py.FS.readFile("/w/compile.py", { encoding: "utf8" }));
"""

COMPILE_PY = r"""
import importlib, importlib.util, json, os, sys, traceback, zipfile
import importlib._bootstrap_external as be

W = "/w"
cfg = json.load(open(W + "/config.json"))
APP = W + "/app"
PKGS = APP + "/" + cfg["pypackages"]
ZIP_PREFIX = [p for p in sys.path if p.endswith(".zip")][0] + "/"
sys.path[:0] = [PKGS, APP]
failed = []
for name in cfg["imports"]:
    try:
        importlib.import_module(name)
    except BaseException:
        failed.append(name + ": " + traceback.format_exc(limit=3))

import ast

def _strip_docstrings(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
    return tree

def pyc(source, filename, docs=True):
    tree = ast.parse(source, filename)
    if not docs:
        tree = ast.fix_missing_locations(_strip_docstrings(tree))
    code = compile(tree, filename, "exec", dont_inherit=True)
    return be._code_to_hash_pyc(code, importlib.util.source_hash(source), checked=False)

used = sorted({m.__file__[len(ZIP_PREFIX):] for m in list(sys.modules.values())
               if (getattr(m, "__file__", None) or "").startswith(ZIP_PREFIX)
               and m.__file__.endswith(".py")})
src = zipfile.ZipFile(W + "/python_stdlib.zip")
out = zipfile.ZipFile(W + "/out/python_stdlib.zip", "w", zipfile.ZIP_DEFLATED)
wanted = set(used)
for info in src.infolist():
    data = src.read(info)
    if info.filename in wanted:
        out.writestr(info.filename[:-3] + ".pyc", pyc(data, ZIP_PREFIX + info.filename, False))
    else:
        out.writestr(info, data)
out.close()

imported = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
compiled = {}
for root, dirs, files in os.walk(APP):
    for f in files:
        if not f.endswith(".py"):
            continue
        path = os.path.join(root, f)
        rel = os.path.relpath(path, APP)
        with open(path, "rb") as fh:
            data = fh.read()
        third_party = rel.startswith(cfg["pypackages"] + "/")
        if not third_party and path not in imported:
            continue  # not needed at start-up: compiled in the browser if ever imported
        if third_party:
            target = rel[:-3] + ".pyc"  # sourceless, beside where the source was
        else:
            target = os.path.relpath(importlib.util.cache_from_source(path), APP)
        dest = W + "/out/app/" + target
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as fh:
            fh.write(pyc(data, "/home/pyodide/" + rel, False))
        compiled[rel] = target
json.dump({"stdlib": used, "app": compiled, "failed": failed}, open(W + "/out/report.json", "w"))
"""


class PrecompileError(RuntimeError):
    """Node.js could not run the site's Pyodide to compile bytecode."""


def node() -> str | None:
    return shutil.which("node") or shutil.which("nodejs")


def _key(stdlib: Path, package: Path) -> str:
    digest = hashlib.sha256(DRIVER_VERSION.encode())
    for part in (COMPILE_PY, DRIVER_JS, "\0".join(STARTUP_IMPORTS)):
        digest.update(part.encode())
    digest.update(stdlib.read_bytes())
    with tarfile.open(package, "r:gz") as tar:  # by content: the gzip header has a timestamp
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            digest.update(member.name.encode() + b"\0")
            if member.isfile():
                digest.update(tar.extractfile(member).read())
    return digest.hexdigest()[:24]


def _run_node(pyodide_dir: Path, package: Path, stdlib: Path, work: Path) -> dict:
    exe = node()
    if exe is None:
        raise PrecompileError("node is not on PATH")
    app = work / "app"
    app.mkdir()
    with tarfile.open(package, "r:gz") as tar:
        tar.extractall(app, filter="data")
    shutil.copy2(stdlib, work / "python_stdlib.zip")
    (work / "out" / "app").mkdir(parents=True)
    (work / "compile.py").write_text(COMPILE_PY, "utf-8")
    (work / "config.json").write_text(
        json.dumps({"imports": list(STARTUP_IMPORTS), "pypackages": PYPACKAGES}), "utf-8")
    (work / "driver.mjs").write_text(DRIVER_JS, "utf-8")
    proc = subprocess.run([exe, str(work / "driver.mjs"), str(pyodide_dir.resolve()),
                           str(work.resolve())], capture_output=True, text=True, timeout=600,
                          check=False)
    report = work / "out" / "report.json"
    if proc.returncode != 0 or not report.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
        raise PrecompileError(f"node exited with {proc.returncode}:\n{tail}")
    return json.loads(report.read_text("utf-8"))


def _repack(package: Path, compiled_dir: Path, compiled: dict[str, str]) -> bytes:
    """The app tarball with bytecode: third-party sources replaced, our own sources kept."""
    buf = io.BytesIO()
    with tarfile.open(package, "r:gz") as old, \
            tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as new:
        for member in old.getmembers():
            name = member.name.lstrip("/").removeprefix("./")
            base = name.rsplit("/", 1)[-1]
            if base in DROPPED_NAMES or base.endswith(DROPPED_SUFFIXES):
                continue
            target = compiled.get(name)
            if target is None or not target.startswith(f"{PYPACKAGES}/"):
                new.addfile(member, old.extractfile(member) if member.isfile() else None)
            if target is not None:
                data = (compiled_dir / target).read_bytes()
                entry = tarfile.TarInfo(target)
                entry.size, entry.mode, entry.mtime = len(data), 0o644, member.mtime
                new.addfile(entry, io.BytesIO(data))
    return buf.getvalue()


def precompile(package: Path, pyodide_dir: Path, cache: Path) -> bool:
    """Put bytecode into ``package`` (app.tar.gz) and ``pyodide_dir/python_stdlib.zip`` in place.
    Returns False (sources kept, a warning logged) when Node.js cannot do it here."""
    stdlib = pyodide_dir / "python_stdlib.zip"
    entry = cache / _key(stdlib, package)
    if not (entry / "app.tar.gz").is_file():
        try:
            with tempfile.TemporaryDirectory(prefix="fletchat-pyc-") as tmp:
                work = Path(tmp)
                report = _run_node(pyodide_dir, package, stdlib, work)
                if report["failed"]:
                    raise PrecompileError("start-up imports failed under Node: "
                                          + "; ".join(report["failed"]))
                data = _repack(package, work / "out" / "app", report["app"])
                part = entry.with_name(entry.name + ".tmp")
                shutil.rmtree(part, ignore_errors=True)
                part.mkdir(parents=True)
                shutil.copy2(work / "out" / "python_stdlib.zip", part / "python_stdlib.zip")
                (part / "app.tar.gz").write_bytes(data)
                (part / "report.json").write_text(json.dumps(report, indent=1), "utf-8")
                shutil.rmtree(entry, ignore_errors=True)
                part.replace(entry)
        except (PrecompileError, OSError, subprocess.SubprocessError, tarfile.TarError) as err:
            log.warning("no precompiled bytecode (start-up in the browser is slower): %s", err)
            return False
    stdlib.write_bytes(_stored(entry / "python_stdlib.zip"))
    shutil.copyfile(entry / "app.tar.gz", package)
    return True


def _stored(path: Path) -> bytes:
    """The zip with its entries stored, not deflated: the host then serves one brotli stream of
    the whole file (``.zip.br``), a third smaller than per-entry deflate, and the browser
    inflates it natively instead of zlib in WebAssembly."""
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = info.external_attr
            out.writestr(entry, src.read(info), zipfile.ZIP_STORED)  # same bytes every build
    return buf.getvalue()
