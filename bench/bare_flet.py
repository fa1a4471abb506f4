"""Baseline for start-up: the smallest flet-web app, served the way host mode serves (FastAPI app
from flet-web, uvicorn, ``no_cdn``). ``python bench/bare_flet.py PORT``."""

from __future__ import annotations

import sys

import flet as ft
import flet_web.fastapi as flet_fastapi
import uvicorn


def main(page: ft.Page) -> None:
    page.add(ft.Text("hello"))


if __name__ == "__main__":
    app = flet_fastapi.app(main, no_cdn=True)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
