"""Run ``main.py`` as Pyodide's worker does (``runpy``, ``__main__``), in an imitation of Emscripten.

Used by tests/test_static_build.py in a subprocess: ``sys.platform`` is ``"emscripten"``, the
modules a browser cannot have raise ``ImportError`` (as they would: the web build leaves them out),
``flet_js`` is the worker's bridge module, and there is a running event loop (the browser's).
Prints one JSON line: what was imported and whether Flet's Pyodide connection was started.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import json
import runpy
import sys
import types
from pathlib import Path

# Not in the browser: the web build's dependencies exclude them (pyproject markers).
UNAVAILABLE = frozenset(
    {
        "uvicorn",
        "zeroconf",
        "ifaddr",
        "websockets",
        "cryptography",
        "nacl",
        "flet_web",
        "flet_desktop",
        "fastapi",
        "starlette",
        "jnius",
    }
)


class Unavailable(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.refused: list[str] = []

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in UNAVAILABLE:
            self.refused.append(name)
            raise ImportError(f"No module named {name!r} (not installed under Emscripten)")


def main(main_py: str) -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in UNAVAILABLE:
            del sys.modules[name]
    finder = Unavailable()
    sys.meta_path.insert(0, finder)
    sys.platform = "emscripten"
    flet_js = types.ModuleType("flet_js")
    sys.modules["flet_js"] = flet_js
    sys.argv = [main_py]
    sys.path.insert(0, str(Path(main_py).resolve().parent))  # the worker runs in the app's folder

    async def as_the_worker() -> None:
        runpy.run_path(main_py, run_name="__main__")

    error = None
    try:
        asyncio.run(as_the_worker())
    except BaseException as err:  # noqa: BLE001 - reported to the test
        error = f"{type(err).__name__}: {err}"
    print(
        json.dumps(
            {
                "error": error,
                "refused": finder.refused,
                "started_connection": callable(getattr(flet_js, "start_connection", None)),
                "webclient_loaded": "webclient.main" in sys.modules,
                "loaded": sorted(n for n in sys.modules if n.split(".")[0] in UNAVAILABLE),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
