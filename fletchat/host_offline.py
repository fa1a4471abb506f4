"""Host mode makes no request outside the host (issue 17's request audit found one): flet-web's
app (``main.dart.wasm`` where the browser has WasmGC, ``main.dart.js`` elsewhere) loads the Rive
runtime from a public CDN when it starts. Flet Chat draws no Rive animation, so host mode serves
both with the CDN address replaced by a relative path of the same length that resolves to
``/rive/`` on the host (``/rive/./././…/``: a WebAssembly module keeps its strings' lengths), where
a stub stands that never settles (webfinish does the same for the static build). The patched
files are made once, in memory, and sent gzip-compressed to browsers that accept it."""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .webfinish import RIVE_CDN, RIVE_LOCAL, RIVE_STUB

RIVE_STUB_PATHS = ("/rive/wasm/rive_native.js", "/rive/wasm_compatibility/rive_native.js")


def flet_web_dir() -> Path:
    import flet_web

    return Path(flet_web.__file__).resolve().parent / "web"


def same_length_local(url: bytes) -> bytes:
    """A URL as long as ``url`` that resolves to ``rive/`` (``/rive/`` when the length is even;
    host mode's base is "/")."""
    head = RIVE_LOCAL if (len(url) - len(RIVE_LOCAL)) % 2 == 0 else b"/" + RIVE_LOCAL
    return head + b"./" * ((len(url) - len(head)) // 2)


def without_cdn(data: bytes) -> bytes:
    return RIVE_CDN.sub(lambda m: same_length_local(m.group(0)), data)


@cache
def patched(name: str) -> tuple[bytes, bytes]:
    """(plain, gzip) of flet-web's ``name`` without the CDN address."""
    data = without_cdn((flet_web_dir() / name).read_bytes())
    return data, gzip.compress(data, 6, mtime=0)


def _served(name: str, media_type: str):
    async def serve(request: Request) -> Response:
        plain, packed = patched(name)
        headers = {"Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(packed, media_type=media_type, headers=headers)
        return Response(plain, media_type=media_type, headers=headers)

    return serve


async def rive_stub(request: Request) -> Response:
    return Response(RIVE_STUB, media_type="text/javascript",
                    headers={"Cache-Control": "no-cache"})


def routes() -> list[Route]:
    return [Route("/main.dart.js", _served("main.dart.js", "text/javascript"),
                  methods=["GET", "HEAD"]),
            Route("/main.dart.wasm", _served("main.dart.wasm", "application/wasm"),
                  methods=["GET", "HEAD"]),
            *(Route(path, rive_stub, methods=["GET", "HEAD"]) for path in RIVE_STUB_PATHS)]
