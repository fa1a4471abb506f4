"""Draw Flet Chat's app icon, splash and web icons into this folder.

Run it from the repository root with a throwaway Pillow (Pillow is not a project dependency):

    uv run --no-project --with pillow python assets/make_icons.py

Everything is drawn with plain shapes at 4x and scaled down, so the output is deterministic and
needs no fonts. `flet build` reads `assets/icon.png` and `assets/splash.png` (see [tool.flet] in
pyproject.toml); host mode (flet-web) serves `favicon.png` and `icons/*` from the assets folder in
place of its own defaults.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SS = 4  # supersampling factor

# Brand colours; keep in step with [tool.flet] icon_background / splash colours in pyproject.toml.
TOP = (37, 99, 235)  # #2563EB
BOTTOM = (29, 78, 216)  # #1D4ED8
WHITE = (255, 255, 255, 255)


def _gradient(size: int) -> Image.Image:
    """A vertical gradient from TOP to BOTTOM, opaque."""
    column = Image.new("RGB", (1, size))
    for y in range(size):
        t = y / max(1, size - 1)
        column.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(TOP, BOTTOM)))
    return column.resize((size, size), Image.NEAREST).convert("RGBA")


def _bubble(size: int, scale: float, colour=WHITE, dots=TOP) -> Image.Image:
    """A speech bubble with three dots, centred on a transparent `size` canvas.

    `scale` is the bubble's width as a fraction of the canvas.
    """
    big = size * SS
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    w = big * scale
    h = w * 0.72
    cx, cy = big / 2, big / 2 - h * 0.06
    left, top = cx - w / 2, cy - h / 2
    right, bottom = cx + w / 2, cy + h / 2
    d.rounded_rectangle((left, top, right, bottom), radius=h * 0.36, fill=colour)
    # tail at the lower left
    d.polygon(
        [
            (left + w * 0.16, bottom - h * 0.1),
            (left + w * 0.08, bottom + h * 0.3),
            (left + w * 0.42, bottom - h * 0.05),
        ],
        fill=colour,
    )
    r = h * 0.085
    for i in (-1, 0, 1):
        x = cx + i * w * 0.24
        d.ellipse((x - r, cy - r, x + r, cy + r), fill=dots)
    return img.resize((size, size), Image.LANCZOS)


def _rounded_mask(size: int, radius_frac: float) -> Image.Image:
    big = size * SS
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        (0, 0, big - 1, big - 1), radius=big * radius_frac, fill=255
    )
    return mask.resize((size, size), Image.LANCZOS)


def app_icon(size: int, rounded: bool = True, glyph: float = 0.62) -> Image.Image:
    """The app icon: a white chat bubble on a blue (rounded) square."""
    icon = _gradient(size)
    icon.alpha_composite(_bubble(size, glyph))
    if rounded:
        icon.putalpha(_rounded_mask(size, 0.225))
    return icon


def splash(size: int) -> Image.Image:
    """The splash artwork: the bare white bubble, drawn on the splash colour by flet build."""
    return _bubble(size, 0.8)


def save(img: Image.Image, name: str) -> Path:
    path = HERE / name
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)
    return path


def main() -> None:
    outputs = [
        save(app_icon(1024), "icon.png"),
        save(splash(1024), "splash.png"),
        save(app_icon(32, glyph=0.74), "favicon.png"),
        # PWA / host-mode icons, names as in flet-web's own web/icons folder.
        save(app_icon(192), "icons/icon-192.png"),
        save(app_icon(512), "icons/icon-512.png"),
        # maskable: full bleed, glyph inside the 80 % safe zone
        save(app_icon(192, rounded=False, glyph=0.5), "icons/icon-maskable-192.png"),
        save(app_icon(512, rounded=False, glyph=0.5), "icons/icon-maskable-512.png"),
        save(app_icon(192, rounded=False), "icons/apple-touch-icon-192.png"),
    ]
    for path in outputs:
        print(f"{path.relative_to(HERE.parent)}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
