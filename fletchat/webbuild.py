"""Build the static (Pyodide) web client offline: ``uv run python -m fletchat.webbuild``.

``flet build web`` needs Flutter; ``flet publish`` does not, and with three workarounds (found on the
development machine, see ``docs/building.md``) it runs with no internet:

1. flet-cli fetches a Python build manifest from GitHub first: we write a local one, derived from the
   Pyodide that flet-web bundles, and point ``FLET_PYTHON_BUILD_MANIFEST`` at it.
2. ``--no-cdn`` downloads Pyodide although ``flet_web/web/pyodide`` ships it; flet-cli accepts a cache
   whose ``pyodide-lock.json`` has ``info.version``: we fill ``$FLET_CACHE_DIR/pyodide/<version>``
   from the bundled files and add it.
3. The published ``index.html`` sets ``flet.pyodideUrl = "pyodide/pyodide.mjs"``, which the worker's
   ``import()`` takes for a bare module name: we make it ``./pyodide/pyodide.mjs``.

The browser's micropip would install the app's requirements from PyPI, which an offline LAN cannot
reach, so they ship inside the app: wheels of flet, repath, six and a pure-Python msgpack
(``MSGPACK_PUREPYTHON=1``) are unpacked into ``app.tar.gz``'s ``__pypackages__`` (which Flet's worker
puts on ``sys.path``), so micropip is never loaded. The wheels are fetched from PyPI once, at build
time, and kept in ``build/wheels`` for later builds.

What is published is the project's ``main.py`` (the entry of every target: under Pyodide it runs
``webclient/``) with copies of ``webclient`` and ``fletchat`` (the model, the protocol and the UI),
as ``flet build web`` packs them; the site goes to ``build/web-static`` with base URL ``/app/``
(``[tool.flet.web].base_url``, where host mode serves it). Nothing of it is committed. ``webfinish``
then prunes it, keeps every request on the host (no Rive CDN), versions the runtime files, adds a
service worker and precompresses.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .model import FletChatError
from .webfinish import FinishError, finish

log = logging.getLogger("fletchat.webbuild")

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build"
DEFAULT_OUT = BUILD_DIR / "web-static"
WHEELS_CACHE = BUILD_DIR / "wheels"
ENTRY = ROOT / "main.py"  # the one entry of every target
WEBCLIENT_DIR = ROOT / "webclient"
PACKAGE_DIR = ROOT / "fletchat"
ASSETS_DIR = ROOT / "assets"
COMPRESS_CACHE = BUILD_DIR / "compressed"  # .br/.gz copies by content hash, reused by rebuilds
PYC_CACHE = BUILD_DIR / "pyc"  # bytecode made under Node.js, by the inputs' hash (webpyc)
SW_TEMPLATE = PACKAGE_DIR / "web" / "sw.js"

BASE_URL = "app"  # host mode serves the build at /app/ (host.STATIC_PATH)
# Flutter's loader picks per browser: dart2wasm + skwasm where WasmGC runs (Chromium), dart2js +
# CanvasKit elsewhere (pyproject [tool.flet.web] renderer, the same for `flet build web`).
WEB_RENDERER = "auto"
APP_NAME = "Flet Chat"
APP_DESCRIPTION = "Chat with people on your local network."
THEME_COLOR = "#2563EB"

# The browser's requirements: flet and what it needs under Emscripten (repath -> six, msgpack).
# Pinned to what the host runs, so the client and host mode speak the same Flet protocol.
PURE_WHEELS = ("flet", "repath", "six", "markdown-it-py", "mdurl")  # markdown: message rows
MSGPACK = "msgpack"


class BuildError(FletChatError, RuntimeError):
    """The build cannot be made here; the message says why and what to do."""


@dataclass(frozen=True)
class Result:
    out: Path
    wheels: tuple[str, ...]
    seconds: float
    version: str = ""  # the content hash in the runtime files' names


def installed_version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def pyodide_bundle() -> Path:
    """The Pyodide runtime flet-web ships (core, micropip, packaging)."""
    try:
        import flet_web
    except ImportError as err:
        raise BuildError("flet-web is not installed (uv sync)") from err
    path = Path(flet_web.__file__).resolve().parent / "web" / "pyodide"
    if not (path / "pyodide-lock.json").is_file():
        raise BuildError(f"flet-web has no bundled Pyodide at {path}")
    return path


def bundled_versions(bundle: Path) -> tuple[str, str]:
    """(pyodide version, Python full version) of the bundled runtime."""
    pyodide_version = json.loads((bundle / "package.json").read_text("utf-8"))["version"]
    python = json.loads((bundle / "pyodide-lock.json").read_text("utf-8"))["info"]["python"]
    return pyodide_version, python


def write_manifest(path: Path, pyodide_version: str, python: str) -> None:
    """Workaround 1: the python-build manifest flet-cli would fetch, listing only our Python."""
    short = ".".join(python.split(".")[:2])
    manifest = {
        "default_python_version": short,
        "pythons": {
            short: {
                "full_version": python,
                "pyodide_version": pyodide_version,
                "android_abis": ["arm64-v8a", "x86_64"],
                "prerelease": False,
            }
        },
    }
    path.write_text(json.dumps(manifest, indent=2), "utf-8")


def fill_pyodide_cache(cache_root: Path, bundle: Path, pyodide_version: str) -> None:
    """Workaround 2: flet-cli's Pyodide cache, from the bundled files, marked with its version."""
    target = cache_root / "pyodide" / pyodide_version
    lock_path = target / "pyodide-lock.json"
    if lock_path.is_file():
        lock = json.loads(lock_path.read_text("utf-8"))
        if lock.get("info", {}).get("version") == pyodide_version:
            return
    target.mkdir(parents=True, exist_ok=True)
    for src in bundle.iterdir():
        if src.is_file():
            shutil.copy2(src, target / src.name)
    lock = json.loads(lock_path.read_text("utf-8"))
    lock.setdefault("info", {})["version"] = pyodide_version
    lock_path.write_text(json.dumps(lock), "utf-8")


def fix_pyodide_url(index_html: Path) -> None:
    """Workaround 3: a relative URL the worker's ``import()`` resolves against its own address."""
    text = index_html.read_text("utf-8")
    fixed, count = re.subn(r'(flet\.pyodideUrl\s*=\s*["\'])(pyodide/pyodide\.mjs)', r"\1./\2", text)
    if count == 0 and "./pyodide/pyodide.mjs" not in text:
        raise BuildError(f"flet.pyodideUrl not found in {index_html}; flet-cli changed?")
    index_html.write_text(fixed, "utf-8")


def add_theme_color(index_html: Path) -> None:
    """The browser's toolbar colour (the manifest's ``theme_color`` only applies once installed)."""
    text = index_html.read_text("utf-8")
    if 'name="theme-color"' not in text:
        meta = f'<meta name="theme-color" content="{THEME_COLOR}">'
        text = text.replace("<head>", f"<head>\n  {meta}", 1)
        index_html.write_text(text, "utf-8")


def _pip() -> list[str]:
    """A pip to download with: this interpreter's, else one run by uv (the venv has no pip)."""
    try:
        import pip  # noqa: F401

        return [sys.executable, "-m", "pip"]
    except ImportError:
        pass
    uv = shutil.which("uv")
    if uv:
        return [uv, "tool", "run", "--from", "pip", "pip"]
    raise BuildError("no pip to fetch wheels with: install pip or uv")


def _run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, check=False, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BuildError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{tail}")
    return proc.stdout


def _wheel_for(cache: Path, dist: str, version: str) -> Path | None:
    prefix = f"{dist.replace('-', '_')}-{version}-"
    found = sorted(p for p in cache.glob("*.whl") if p.name.lower().startswith(prefix.lower()))
    return found[0] if found else None


def ensure_wheels(cache: Path = WHEELS_CACHE) -> list[Path]:
    """The browser's wheels, from the cache or fetched once from PyPI (pure Python only)."""
    cache.mkdir(parents=True, exist_ok=True)
    wanted = {dist: installed_version(dist) for dist in (*PURE_WHEELS, MSGPACK)}
    missing = [d for d in PURE_WHEELS if _wheel_for(cache, d, wanted[d]) is None]
    if missing:
        log.info("fetching %s from PyPI", ", ".join(missing))
        _run(
            [
                *_pip(),
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--implementation",
                "py",
                "--platform",
                "any",
                "--python-version",
                "3.12",
                "--dest",
                str(cache),
                *(f"{d}=={wanted[d]}" for d in missing),
            ]
        )
    if _wheel_for(cache, MSGPACK, wanted[MSGPACK]) is None:
        # msgpack's PyPI wheels are compiled; its sdist builds a pure-Python one on request.
        log.info("building a pure-Python msgpack %s wheel", wanted[MSGPACK])
        env = dict(os.environ, MSGPACK_PUREPYTHON="1")
        _run(
            [
                *_pip(),
                "wheel",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--wheel-dir",
                str(cache),
                f"{MSGPACK}=={wanted[MSGPACK]}",
            ],
            env=env,
        )
    wheels = []
    for dist, version in wanted.items():
        wheel = _wheel_for(cache, dist, version)
        if wheel is None or not wheel.name.endswith("-none-any.whl"):
            raise BuildError(f"no pure-Python wheel of {dist} {version} in {cache}")
        wheels.append(wheel)
    return wheels


def stage_app(stage: Path, wheels: list[Path]) -> None:
    """What ``flet publish`` packs: the project's entry (``main.py``, which runs ``webclient``
    under Pyodide, as in ``flet build web``), the ``fletchat`` modules and subpackages (``ui/``),
    icons, requirements."""
    shutil.copy2(ENTRY, stage / "main.py")
    for package in (PACKAGE_DIR, WEBCLIENT_DIR):
        for module in package.rglob("*.py"):
            target = stage / package.name / module.relative_to(package)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(module, target)
    assets = stage / "assets"
    assets.mkdir()
    shutil.copy2(ASSETS_DIR / "favicon.png", assets / "favicon.png")
    shutil.copytree(ASSETS_DIR / "icons", assets / "icons")
    # Order matters to micropip only in that all four are given at once: flet's own requirements
    # (repath, msgpack, six via repath) are then already satisfied and nothing goes to PyPI.
    lines = [f"wheels/{w.name}" for w in sorted(wheels, key=lambda w: w.name.startswith("flet"))]
    (stage / "requirements.txt").write_text("\n".join(lines) + "\n", "utf-8")


def check_manifest(out: Path) -> dict:
    """The PWA manifest: our name, colours and icons (flet publish writes most of it; fix the rest)."""
    path = out / "manifest.json"
    manifest = json.loads(path.read_text("utf-8"))
    manifest.update(
        name=APP_NAME,
        short_name=APP_NAME,
        description=APP_DESCRIPTION,
        theme_color=THEME_COLOR,
        background_color=THEME_COLOR,
        start_url=".",
        scope=".",
        display="standalone",
    )
    for icon in manifest.get("icons", []):
        if not (out / icon["src"]).is_file():
            raise BuildError(f"manifest icon {icon['src']} is missing from the build")
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), "utf-8")
    return manifest


def build(out: Path = DEFAULT_OUT, wheels_cache: Path = WHEELS_CACHE) -> Result:
    """Make the static site in ``out`` (replaced if present). Raises ``BuildError``."""
    started = time.monotonic()
    bundle = pyodide_bundle()
    pyodide_version, python = bundled_versions(bundle)
    wheels = ensure_wheels(wheels_cache)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fletchat-webbuild-") as tmp:
        tmp_path = Path(tmp)
        stage = tmp_path / "webclient"
        stage.mkdir()
        stage_app(stage, wheels)
        manifest = tmp_path / "python-build-manifest.json"
        write_manifest(manifest, pyodide_version, python)
        flet_cache = BUILD_DIR / "flet-cache"
        fill_pyodide_cache(flet_cache, bundle, pyodide_version)
        env = dict(
            os.environ,
            FLET_PYTHON_BUILD_MANIFEST=str(manifest),
            FLET_CACHE_DIR=str(flet_cache),
            PYTHONIOENCODING="utf-8",
        )
        short = ".".join(python.split(".")[:2])
        _run(
            [
                sys.executable,
                "-m",
                "flet_cli.cli",
                "publish",
                str(stage / "main.py"),
                "--distpath",
                str(out),
                "--no-cdn",
                "--web-renderer",
                WEB_RENDERER,
                "--python-version",
                short,
                "--base-url",
                BASE_URL,
                "--app-name",
                APP_NAME,
                "--app-short-name",
                APP_NAME,
                "--app-description",
                APP_DESCRIPTION,
                "--pwa-background-color",
                THEME_COLOR,
                "--pwa-theme-color",
                THEME_COLOR,
            ],
            env=env,
            cwd=stage,
        )
    fix_pyodide_url(out / "index.html")
    add_theme_color(out / "index.html")
    check_manifest(out)
    try:
        version = finish(out, COMPRESS_CACHE, SW_TEMPLATE, wheels, PYC_CACHE)
    except FinishError as err:
        raise BuildError(str(err)) from err
    return Result(out, tuple(w.name for w in wheels), time.monotonic() - started, version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fletchat.webbuild",
        description="Build Flet Chat's static (Pyodide) web client with flet publish, offline "
        "apart from fetching four wheels from PyPI once. Host mode serves it at /app/.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    parser.add_argument(
        "--wheels", type=Path, default=WHEELS_CACHE, help=f"wheel cache (default {WHEELS_CACHE})"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = build(args.out, args.wheels)
    except BuildError as err:
        print(f"webbuild: error: {err}", file=sys.stderr)
        return 1
    print(f"Static web build in {result.out} ({result.seconds:.1f} s): {', '.join(result.wheels)}")
    print("Host mode serves it at http://HOST:PORT/app/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
