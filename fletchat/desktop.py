"""Desktop mode: Flet's own window. Falls back to host mode when there is no window to open."""

from __future__ import annotations

import asyncio
import contextlib
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


# How long a launched desktop client gets to connect and register before we give up on it. An
# old or mismatched client (e.g. one on FLET_VIEW_PATH from another Flet version) starts, shows
# "Working..." and never registers; without this the app would wait for it forever.
CLIENT_TIMEOUT_ENV = "FLETCHAT_DESKTOP_CLIENT_TIMEOUT"
DEFAULT_CLIENT_TIMEOUT = 30.0


def client_timeout(environ: dict[str, str] | None = None) -> float:
    raw = (os.environ if environ is None else environ).get(CLIENT_TIMEOUT_ENV, "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_CLIENT_TIMEOUT
    return value if value > 0 else DEFAULT_CLIENT_TIMEOUT


@contextlib.contextmanager
def _recording_launch(launched: asyncio.Future):
    """Flet launches its client inside ``run_async`` and keeps the process to itself; we need it
    to stop a client that never connects, so the launcher is wrapped while the window runs."""
    import flet_desktop

    original = flet_desktop.open_flet_view_async

    async def recording(*args, **kwargs):
        process, pid_file = await original(*args, **kwargs)
        if not launched.done():
            launched.set_result((process, pid_file))
        return process, pid_file

    flet_desktop.open_flet_view_async = recording
    try:
        yield
    finally:
        flet_desktop.open_flet_view_async = original


async def _stop_client(launched: asyncio.Future) -> None:
    from flet_desktop import close_flet_view

    process, pid_file = launched.result()
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(process.wait(), 5)
    close_flet_view(pid_file)


async def supervise(
    window: asyncio.Task, registered: asyncio.Event, launched: asyncio.Future, timeout: float
) -> str | None:
    """Wait for the window; the reason to fall back if the client never registers, else None."""
    joined = asyncio.ensure_future(registered.wait())
    try:
        await asyncio.wait({window, joined, launched}, return_when=asyncio.FIRST_COMPLETED)
        if not joined.done() and not window.done():  # launched: the clock starts now
            await asyncio.wait(
                {window, joined}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        if joined.done():
            await window  # a real window: it runs until the person closes it
            return None
        if window.done():
            window.result()  # its error, if any, is reported by run_desktop
            return "the Flet desktop client exited without connecting"
        await _stop_client(launched)
        window.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await window
        return (
            f"the Flet desktop client started but did not connect within {timeout:g} s "
            "(an old or mismatched client, e.g. on FLET_VIEW_PATH?)"
        )
    finally:
        joined.cancel()


async def serve_desktop(node: Node, prefill_name: str, timeout: float | None = None) -> str | None:
    """Run the window; None once it was used and closed, else why it could not be used."""
    import flet as ft

    from .ui import make_session_main
    from .ui.settings import PREFS_FILE

    session_main = make_session_main(
        lambda: node.hub, device=node.device, prefill_name=prefill_name,
        prefs_path=node.config.data_dir / PREFS_FILE,
    )
    registered = asyncio.Event()
    launched: asyncio.Future = asyncio.get_running_loop().create_future()

    async def main(page: ft.Page) -> None:
        registered.set()  # the client connected and registered: a session exists
        await node.start()

        async def on_lifecycle(e: ft.AppLifecycleStateChangeEvent) -> None:
            if e.state == ft.AppLifecycleState.RESUME:
                await node.resume()

        page.on_app_lifecycle_state_change = on_lifecycle
        await session_main(page)

    try:
        with _recording_launch(launched):
            window = asyncio.ensure_future(
                ft.run_async(main, view=ft.AppView.FLET_APP, assets_dir="assets")
            )
            return await supervise(window, registered, launched, timeout or client_timeout())
    finally:
        await node.stop()


def run_desktop(node: Node, prefill_name: str) -> str | None:
    """Run the window; return the reason it could not open (caller falls back), None if it ran."""
    try:
        reason = asyncio.run(serve_desktop(node, prefill_name))
    except KeyboardInterrupt:
        return None
    except Exception as err:  # noqa: BLE001 - no client, offline download, display refused
        print(f"fletchat: desktop window failed: {err!r}", file=sys.stderr)
        return f"the Flet desktop client could not start ({type(err).__name__}: {err})"
    if reason is not None:
        print(f"fletchat: {reason}", file=sys.stderr)
    return reason
