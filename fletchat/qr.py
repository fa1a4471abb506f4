"""Join by QR code: host mode's URL as a QR code for the terminal and for an ``ft.Image``.

Only the URL is encoded, never a passphrase: a phone that scans it lands on the passphrase form
when one is set, exactly as a typed URL would. ``qrcode`` (pure Python) builds the module matrix;
the PNG is written here with zlib (a few lines, so neither Pillow nor pypng is needed at run time).
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Sequence
from urllib.parse import urlsplit

import qrcode
from qrcode.constants import ERROR_CORRECT_M

MAX_URL_CHARS = 512  # a LAN URL is short; anything longer is a mistake, not a QR code
BOX_PIXELS = 8  # one module in the PNG
BORDER = 4  # the quiet zone the QR standard asks for, in modules


def _check(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_URL_CHARS:
        raise ValueError(f"not a web address to join: {url!r}")
    return url


def matrix(url: str) -> list[list[bool]]:
    """The QR modules of ``url`` with the quiet zone, True = dark."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=BORDER)
    code.add_data(_check(url))
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]


def terminal(url: str) -> str:
    """Two module rows per text line with half blocks, for the usual dark-background terminal:
    light modules (and the quiet zone) are blocks, dark modules the terminal's background."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=BORDER)
    code.add_data(_check(url))
    code.make(fit=True)
    out = io.StringIO()
    code.print_ascii(out=out, tty=False, invert=True)
    return out.getvalue()


def png(url: str, box: int = BOX_PIXELS) -> bytes:
    """A black-on-white 8-bit greyscale PNG of the QR code (``ft.Image(src=png(url))``)."""
    return _encode_png(matrix(url), box)


def png_base64(url: str, box: int = BOX_PIXELS) -> str:
    return base64.b64encode(png(url, box)).decode("ascii")


def _encode_png(mods: Sequence[Sequence[bool]], box: int) -> bytes:
    size = len(mods) * box
    raw = bytearray()
    for row in mods:
        line = b"".join((b"\x00" if dark else b"\xff") * box for dark in row)
        for _ in range(box):
            raw += b"\x00" + line  # filter type 0 (none) per scanline
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b""))


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def join_url(urls: Sequence[str]) -> str:
    """Of host mode's served URLs, the one a phone can reach: the first that is not loopback."""
    for url in urls:
        if not _loopback(url):
            return url
    return urls[0] if urls else ""


def join_banner(urls: Sequence[str]) -> str:
    """What host mode prints under its URLs: a QR code of the first LAN URL, or "" when it
    serves loopback only (no phone could reach it)."""
    url = join_url(urls)
    if not url or _loopback(url):
        return ""
    return f"Scan to join from a phone ({url}):\n{terminal(url)}"
