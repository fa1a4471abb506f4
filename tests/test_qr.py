"""Join by QR code: the PNG and the terminal rendering decode back to the host's URL
(zxing-cpp, a test-only dependency, is the phone's camera here)."""

from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image

from fletchat import qr

URLS = ["http://192.168.1.20:8550/", "http://[fd00::1a2b]:8550/", "https://chat.lan:9443/app/"]


def decode(img: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(img.convert("L"))]


@pytest.mark.parametrize("url", URLS)
def test_png_decodes_to_the_url(url: str) -> None:
    data = qr.png(url)
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.size[0] == img.size[1]
    assert decode(img) == [url]
    assert qr.png_base64(url).startswith("iVBORw0KGgo")  # what ft.Image(src=...) takes as text


@pytest.mark.parametrize("url", URLS)
def test_terminal_rendering_decodes_to_the_url(url: str) -> None:
    text = qr.terminal(url)
    lines = text.splitlines()
    # draw the text back as pixels: each character is one module wide and two tall
    width = max(len(line) for line in lines)
    img = Image.new("L", (width * 4, len(lines) * 8), 255)
    px = img.load()
    for y, line in enumerate(lines):
        for x, ch in enumerate(line.ljust(width)):
            top = ch in "\u2588\u2580"  # full block or upper half: light (inverted) on top
            bottom = ch in "\u2588\u2584"
            for dy in range(8):
                lit = top if dy < 4 else bottom
                for dx in range(4):
                    px[x * 4 + dx, y * 8 + dy] = 255 if lit else 0
    # inverted (light modules are blocks): put it on a dark frame so the quiet zone is light
    framed = Image.new("L", (img.width + 40, img.height + 40), 0)
    framed.paste(img, (20, 20))
    assert decode(framed) == [url]


def test_matrix_has_the_quiet_zone() -> None:
    mods = qr.matrix(URLS[0])
    assert not any(mods[0]) and not any(row[0] for row in mods)
    assert any(any(row) for row in mods)


@pytest.mark.parametrize(
    "bad", ["javascript:alert(1)", "file:///etc/passwd", "http://", "ftp://x/",
            "http://x/" + "a" * 600],
)
def test_only_web_addresses_are_encoded(bad: str) -> None:
    with pytest.raises(ValueError, match="not a web address"):
        qr.png(bad)


def test_join_url_skips_loopback() -> None:
    urls = ["http://localhost:8550/", "http://127.0.0.1:8550/", "http://10.0.0.5:8550/"]
    assert qr.join_url(urls) == "http://10.0.0.5:8550/"
    assert qr.join_url(urls[:1]) == "http://localhost:8550/"
    assert qr.join_url([]) == ""


def test_host_banner_shows_a_scannable_lan_url_and_nothing_for_loopback_only() -> None:
    assert qr.join_banner(["http://localhost:8550/", "http://127.0.0.1:8550/"]) == ""
    assert qr.join_banner([]) == ""
    banner = qr.join_banner(["http://localhost:8550/", "http://10.0.0.5:8550/"])
    first, _, code = banner.partition("\n")
    assert first == "Scan to join from a phone (http://10.0.0.5:8550/):"
    assert code == qr.terminal("http://10.0.0.5:8550/")
