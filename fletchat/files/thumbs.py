"""Image thumbnails, made with Pillow on the device that has the file, refusing decompression bombs.

Before anything is decoded: the file is at most ``MAX_IMAGE_BYTES``, its format is one of
``FORMATS`` (no exotic decoders reachable from the network), and the header's width x height is at
most ``MAX_IMAGE_PIXELS`` (a 1 KB PNG can declare 100 000 x 100 000 pixels = 10 GB to decode).
Pillow's own bomb check is turned into an error too. Only the first frame of an animation is used.
The result is a JPEG (PNG when the image has transparency) of at most ``THUMB_MAX_SIDE`` pixels a
side and ``MAX_THUMB_BYTES`` bytes. Decoding is CPU-heavy: ``amake_thumbnail`` runs it in a thread.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..aio import Lane
from ..model import ValidationError
from . import limits as L

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

MAX_IMAGE_BYTES = 64 * L.MIB
MAX_IMAGE_PIXELS = 64_000_000  # ~ a 64-megapixel phone photo
MAX_IMAGE_SIDE = 20_000
THUMB_MAX_SIDE = 320
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")


class ImageRefused(ValidationError):
    """An image we will not decode; ``str(err)`` says why."""


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    mime: str
    width: int
    height: int
    source_width: int
    source_height: int


def make_thumbnail(path: Path, max_side: int = THUMB_MAX_SIDE) -> Thumbnail:
    from PIL import Image, ImageOps, UnidentifiedImageError

    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise ImageRefused(f"Image file is too large for a preview ({size} > {MAX_IMAGE_BYTES} bytes).")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path, formats=FORMATS) as im:
                w, h = im.size
                if w <= 0 or h <= 0 or w > MAX_IMAGE_SIDE or h > MAX_IMAGE_SIDE or w * h > MAX_IMAGE_PIXELS:
                    raise ImageRefused(
                        f"Image is too large to preview: {w} x {h} pixels "
                        f"(at most {MAX_IMAGE_PIXELS} pixels, {MAX_IMAGE_SIDE} a side)."
                    )
                im.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale
                im.seek(0)
                # smaller first, then turned upright: exif_transpose copies the whole decoded
                # image (a 64-megapixel RGBA is 256 MiB: two of them before)
                im.thumbnail((max_side, max_side))
                frame = ImageOps.exif_transpose(im)
                alpha = frame.mode in ("RGBA", "LA", "PA") or (
                    frame.mode == "P" and "transparency" in frame.info)
                frame = frame.convert("RGBA" if alpha else "RGB")
        except ImageRefused:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageRefused(f"Image refused as a decompression bomb: {err}") from err
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise ImageRefused(f"Not an image that can be previewed ({type(err).__name__}).") from err
    return _encode(frame, alpha, w, h)


def _encode(frame: PILImage, alpha: bool, w: int, h: int) -> Thumbnail:
    while True:
        out = io.BytesIO()
        if alpha:
            frame.save(out, "PNG", optimize=True)
        else:
            frame.save(out, "JPEG", quality=80, optimize=True)
        if out.tell() <= L.MAX_THUMB_BYTES or max(frame.size) <= 32:
            break
        frame = frame.resize((max(1, frame.width * 3 // 4), max(1, frame.height * 3 // 4)))
    return Thumbnail(out.getvalue(), "image/png" if alpha else "image/jpeg",
                     frame.width, frame.height, w, h)


THUMB_DECODES = 1  # images decoded at once for previews, over every tab and client of a host
_DECODES = Lane(THUMB_DECODES, "thumbs")


async def amake_thumbnail(path: Path, max_side: int = THUMB_MAX_SIDE) -> Thumbnail:
    """On the previews' own thread (a decoded image can take hundreds of MiB: many tabs
    sharing images at once waited in line instead of decoding side by side on the loop's
    shared pool, which also runs the hub's and the uploads' work)."""
    return await _DECODES.run(make_thumbnail, path, max_side)
