"""Thumbnails with Pillow: sizes and formats, EXIF orientation, and refusals (a crafted
decompression-bomb PNG, Pillow's own bomb check, formats we do not decode, broken files)."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from fletchat.files import limits as L
from fletchat.files import thumbs
from fletchat.files.thumbs import ImageRefused, amake_thumbnail, make_thumbnail


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A valid grayscale PNG of zeros: tiny on disk, width*height bytes once decoded."""
    comp = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + pixels
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    side = 8001  # 64 016 001 pixels > MAX_IMAGE_PIXELS
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(side, side))
    assert path.stat().st_size < 200 * 1024 < side * side // 300  # > 300:1
    with pytest.raises(ImageRefused, match="too large to preview: 8001 x 8001"):
        make_thumbnail(path)


def test_a_very_wide_image_is_refused(tmp_path):
    path = tmp_path / "wide.png"
    path.write_bytes(bomb_png(thumbs.MAX_IMAGE_SIDE + 1, 1))
    with pytest.raises(ImageRefused, match="too large"):
        make_thumbnail(path)


def test_pillows_own_bomb_check_is_an_error_too(tmp_path, monkeypatch):
    path = tmp_path / "medium.png"
    path.write_bytes(bomb_png(2000, 2000))
    monkeypatch.setattr(thumbs, "MAX_IMAGE_PIXELS", 10**9)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # warns above, errors at 2x
    with pytest.raises(ImageRefused, match="decompression bomb"):
        make_thumbnail(path)


def test_a_file_over_the_byte_limit_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    path.write_bytes(bomb_png(10, 10))
    monkeypatch.setattr(thumbs, "MAX_IMAGE_BYTES", 10)
    with pytest.raises(ImageRefused, match="too large for a preview"):
        make_thumbnail(path)


@pytest.mark.parametrize("content, fmt", [
    (b"not an image at all", None),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, None),  # a PNG signature and garbage
    (None, "TIFF"),  # a real image in a format we do not decode from the network
])
def test_non_images_and_other_formats_are_refused(tmp_path, content, fmt):
    path = tmp_path / "x"
    if content is None:
        buf = io.BytesIO()
        Image.new("RGB", (10, 10)).save(buf, fmt)
        content = buf.getvalue()
    path.write_bytes(content)
    with pytest.raises(ImageRefused, match="Not an image"):
        make_thumbnail(path)


def test_a_truncated_png_is_refused(tmp_path):
    buf = io.BytesIO()
    Image.effect_noise((300, 300), 50).save(buf, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageRefused):
        make_thumbnail(path)


def test_photo_thumbnail_is_a_small_jpeg(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.effect_noise((1600, 900), 60).convert("RGB").save(path, "JPEG", quality=95)
    t = make_thumbnail(path)
    assert t.mime == "image/jpeg" and (t.width, t.height) == (320, 180)
    assert (t.source_width, t.source_height) == (1600, 900)
    assert len(t.data) <= L.MAX_THUMB_BYTES
    assert Image.open(io.BytesIO(t.data)).size == (320, 180)


def test_transparent_image_gives_a_png_and_orientation_is_applied(tmp_path):
    path = tmp_path / "logo.png"
    Image.new("RGBA", (400, 200), (255, 0, 0, 128)).save(path)
    t = make_thumbnail(path)
    assert t.mime == "image/png" and Image.open(io.BytesIO(t.data)).mode == "RGBA"
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees
    Image.new("RGB", (400, 200)).save(rotated, "JPEG", exif=exif.tobytes())
    t = make_thumbnail(rotated)
    assert (t.width, t.height) == (160, 320)


def test_thumbnail_over_the_byte_limit_is_shrunk(tmp_path, monkeypatch):
    path = tmp_path / "noise.png"
    Image.effect_noise((320, 320), 100).convert("RGB").save(path)
    monkeypatch.setattr(L, "MAX_THUMB_BYTES", 4000)
    t = make_thumbnail(path)
    assert len(t.data) <= 4000 and t.width < 320


async def test_async_thumbnail_runs_in_a_thread(tmp_path, monkeypatch):
    import threading

    path = tmp_path / "p.png"
    Image.new("RGB", (50, 50)).save(path)
    where = []
    real = thumbs.make_thumbnail
    monkeypatch.setattr(thumbs, "make_thumbnail", lambda *a: where.append(threading.get_ident()) or real(*a))
    t = await amake_thumbnail(path)
    assert t.width == 50 and where and where[0] != threading.get_ident()


async def test_previews_are_decoded_one_at_a_time_on_their_own_thread(tmp_path, monkeypatch):
    """Many tabs sharing images at once: each decode can take hundreds of MiB, so they wait in
    line on the previews' thread instead of running side by side on the shared pool."""
    import asyncio
    import threading
    import time

    real = thumbs.make_thumbnail
    running, seen = {"now": 0, "most": 0}, set()
    lock = threading.Lock()

    def counted(path, max_side):
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
            seen.add(threading.current_thread().name.split("_")[0])
        time.sleep(0.05)
        try:
            return real(path, max_side)
        finally:
            with lock:
                running["now"] -= 1

    monkeypatch.setattr(thumbs, "make_thumbnail", counted)
    path = tmp_path / "p.png"
    Image.new("RGB", (400, 300)).save(path)
    shots = await asyncio.gather(*(amake_thumbnail(path) for _ in range(4)))
    assert all(t.width == 320 for t in shots)
    assert running["most"] == thumbs.THUMB_DECODES == 1 and seen == {"thumbs"}
