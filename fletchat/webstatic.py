"""Host mode serves the static web build (``/app/``): precompressed, cached for good where it may be.

``python -m fletchat.webbuild`` leaves next to each compressible file a ``.br`` (brotli) and a
``.gz`` (gzip) copy, and gives the big runtime files versioned names (a content hash in the name:
``main.dart.<hash>.js``, ``canvaskit-<hash>/``, ``pyodide-<hash>/``, ``app.<hash>.zip``; wheels
carry their version already). Here:

- a client that accepts ``br`` (else ``gzip``) gets the precompressed copy with ``Content-Encoding``;
  every response of a file that has copies says ``Vary: Accept-Encoding``; the ETag is the served
  file's, so each encoding revalidates on its own;
- versioned files are ``Cache-Control: public, max-age=31536000, immutable``; everything else
  (``index.html``, the service worker ``sw.js``, small boot scripts, fonts) is ``no-cache``: the
  browser keeps it and asks again with ``If-None-Match`` (a 304 is a few hundred bytes).

The service worker (``sw.js``, written by the build) then keeps the whole site for offline use.
"""

from __future__ import annotations

import mimetypes
import os
import re

from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

HASH_CHARS = 12
_H = f"[0-9a-f]{{{HASH_CHARS}}}"
VERSIONED = re.compile(
    rf"(main\.dart\.{_H}\.js|app\.{_H}\.zip|canvaskit-{_H}/.+|pyodide-{_H}/.+"
    r"|wheels/[^/]+\.whl)"
)
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))  # preferred first
# Worth compressing (text, wasm, fonts that are not woff2, Pyodide's stored stdlib zip); images,
# wheels and woff2 are not (a copy is kept only when 10 % smaller, so deflated zips get none).
COMPRESSIBLE = frozenset({".js", ".mjs", ".wasm", ".json", ".html", ".css", ".txt", ".otf",
                          ".ttf", ".svg", ".tar", ".map", ".wat", ".zip"})
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".mjs")


def cache_control(relative_path: str) -> str:
    return IMMUTABLE if VERSIONED.fullmatch(relative_path) else REVALIDATE


def accepted(header: str) -> set[str]:
    """Codings the client accepts (``q=0`` excluded)."""
    out = set()
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        q = params.strip()
        if q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        if name:
            out.add(name.strip().lower())
    return out


class PrecompressedStaticFiles(StaticFiles):
    """Starlette's StaticFiles, choosing a precompressed copy and setting the cache policy."""

    def file_response(self, full_path, stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        request_headers = Headers(scope=scope)
        path = os.fspath(full_path)
        relative = os.path.relpath(path, os.fspath(self.directory)).replace(os.sep, "/")
        media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        headers = {"cache-control": cache_control(relative)}
        served, served_stat = path, stat_result
        has_copies = False
        wanted = accepted(request_headers.get("accept-encoding", ""))
        for coding, suffix in ENCODINGS:
            try:
                copy_stat = os.stat(path + suffix)
            except OSError:
                continue
            has_copies = True
            if coding in wanted and served == path:
                served, served_stat = path + suffix, copy_stat
                headers["content-encoding"] = coding
        if has_copies:
            headers["vary"] = "Accept-Encoding"
        response = FileResponse(served, status_code=status_code, stat_result=served_stat,
                                media_type=media_type, headers=headers)
        if self.is_not_modified(response.headers, request_headers):
            return NotModifiedResponse(response.headers)
        return response
