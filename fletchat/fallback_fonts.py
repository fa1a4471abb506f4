"""The fonts Flutter web falls back to (emoji, symbols, non-Latin scripts), served by the host.

Flutter's CanvasKit renderer draws text with the app's fonts and, for a character none of them
has, fetches a Noto font from ``fontFallbackBaseUrl`` (Google Fonts when unset). flet-web's
``no_cdn`` page sets that base to ``assets/fonts/``, where nothing is served: on a LAN without
internet every emoji was an empty box. The requests look like
``assets/fonts/notocoloremoji/v32/<id>.3.woff2`` (a family, its Google Fonts version, one of its
split parts). Each known family is answered with a redirect to one local file per family under
``/fallback-fonts/``, cached for good, so the parts Flutter asks for cost one download.

The files come from the ``manimgx-fonts`` package (Noto Emoji, Noto Sans, Noto Sans Symbols and
the Noto Sans of 19 scripts; OFL). Noto Emoji is the monochrome emoji font: a colour one ships in
no small package (README, "Emoji and other scripts"). CJK is not served (Noto Sans CJK is 16 MB
and Flutter splits it in 100+ parts): those requests get 404, as before. Nothing here reaches
the network.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

FONT_ROUTE = "/fallback-fonts"
CACHE_FOREVER = "public, max-age=31536000, immutable"
# Flutter's family directory -> the file's stem in manimgx_fonts (lower-cased, "[wght]" cut).
ALIASES = {"notocoloremoji": "notoemoji"}
_FAMILY = re.compile(r"^[a-z0-9]{1,60}$")


def font_dir() -> Path | None:
    """Where the font files are; None when the package is absent (a build without it)."""
    try:
        import manimgx_fonts
    except ImportError:
        return None
    return Path(manimgx_fonts.__file__).resolve().parent


def family_files(directory: Path | None) -> dict[str, Path]:
    """Flutter's family name (``notosansarabic``) -> the upright font file for it."""
    if directory is None:
        return {}
    files: dict[str, Path] = {}
    for path in sorted(directory.glob("*.ttf")):
        stem = path.stem.split("[", 1)[0]
        if stem.lower().endswith("-italic"):
            continue
        files[stem.lower()] = path
    for flutter_name, ours in ALIASES.items():
        if ours in files:
            files[flutter_name] = files[ours]
    return files


class FallbackFonts:
    """Two routes: Flutter's fallback URLs (under each base the app is served from) redirect to
    the family's one local file; ``/fallback-fonts/<family>.ttf`` serves it."""

    def __init__(self, directory: Path | None = None) -> None:
        self.files = family_files(directory if directory is not None else font_dir())

    def known(self, family: str) -> bool:
        return family in self.files

    async def fallback(self, request: Request) -> Response:
        family = request.path_params["family"]
        if not _FAMILY.match(family) or family not in self.files:
            return PlainTextResponse("no such font here", status_code=404)
        return RedirectResponse(f"{FONT_ROUTE}/{family}.ttf", status_code=307,
                                headers={"Cache-Control": CACHE_FOREVER})

    async def font(self, request: Request) -> Response:
        family = request.path_params["family"]
        path = self.files.get(family) if _FAMILY.match(family) else None
        if path is None:
            return PlainTextResponse("no such font here", status_code=404)
        return FileResponse(path, media_type="font/ttf",
                            headers={"Cache-Control": CACHE_FOREVER})

    def routes(self, bases: tuple[str, ...] = ("",)) -> list[Route]:
        """``bases``: the URL prefixes the Flutter app is served under ("" and "/app")."""
        found = [Route(f"{FONT_ROUTE}/{{family}}.ttf", self.font, methods=["GET", "HEAD"])]
        for base in bases:
            found.append(Route(f"{base}/assets/fonts/{{family}}/{{version}}/{{part}}",
                               self.fallback, methods=["GET", "HEAD"]))
        return found
