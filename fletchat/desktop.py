"""Desktop mode: Flet's own window. Falls back to host mode when there is no window to open."""

from __future__ import annotations

import asyncio
import os
import platform
import sys

from .node import Node


def local_device_kind() -> str:
    """What this install is, for others' peer lists."""
    platform_env = os.environ.get("FLET_PLATFORM", "")
    return platform_env if platform_env in ("android", "ios") else "desktop"


def desktop_unavailable_reason(environ: dict[str, str] | None = None) -> str | None:
    """Why a desktop window cannot open here (None if it might): checked before trying."""
    env = os.environ if environ is None else environ
    system = platform.system()
    if env.get("FLET_PLATFORM") in ("android", "ios"):
        return None
    if system == "Linux" and not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY/WAYLAND_DISPLAY not set)"
    if system not in ("Linux", "Windows", "Darwin"):
        return f"no Flet desktop client for {system}"
    return None


async def serve_desktop(node: Node, prefill_name: str) -> None:
    import flet as ft

    from .ui import make_session_main

    session_main = make_session_main(lambda: node.hub, device=node.device, prefill_name=prefill_name)

    async def main(page: ft.Page) -> None:
        await node.start()

        async def on_lifecycle(e: ft.AppLifecycleStateChangeEvent) -> None:
            if e.state == ft.AppLifecycleState.RESUME:
                await node.resume()

        page.on_app_lifecycle_state_change = on_lifecycle
        await session_main(page)

    try:
        await ft.run_async(main, view=ft.AppView.FLET_APP, assets_dir="assets")
    finally:
        await node.stop()


def run_desktop(node: Node, prefill_name: str) -> str | None:
    """Run the window; return the reason it could not open (caller falls back), None if it ran."""
    try:
        asyncio.run(serve_desktop(node, prefill_name))
    except KeyboardInterrupt:
        return None
    except Exception as err:  # noqa: BLE001 - no client, offline download, display refused
        print(f"fletchat: desktop window failed: {err!r}", file=sys.stderr)
        return f"the Flet desktop client could not start ({type(err).__name__}: {err})"
    return None
