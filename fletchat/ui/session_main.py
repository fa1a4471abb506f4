"""The per-session Flet ``main`` of host mode and the desktop window: one ``HubSession``, its
``HubBackend`` and one ``ChatView`` per page."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flet as ft

from ..hub import Hub, HubSession
from ..model import ValidationError
from . import flet_speedup
from .hub_backend import HubBackend
from .screens import ScreensPublisher
from .settings import PrefsStore
from .view import ChatView

LEAVE_GRACE_SECONDS = 8.0  # a tab back within this long never "left" (issue 17)
log = logging.getLogger("fletchat.ui")


def make_session_main(
    hub_factory: Callable[[], Hub],
    device: str,
    prefill_name: str = "",
    uploads: Any = None,
    join_url: str = "",
    prefs_path: Path | None = None,
) -> Callable[[ft.Page], object]:
    """``join_url``: host mode's LAN address (its QR code is shown in the app); ``prefs_path``:
    where a window remembers its preferences (none: a browser tab, Flet's client storage)."""
    try:
        flet_speedup.install()  # the new controls of every update configured for less CPU
    except flet_speedup.FletChanged as err:
        log.warning("running Flet's own control walk: %s", err)
    async def session_main(page: ft.Page) -> None:
        hub = hub_factory()
        hub.use_pubsub(ScreensPublisher(page.pubsub, asyncio.get_running_loop()))
        address = str(getattr(page, "client_ip", "") or "")
        session = HubSession(hub, device=device, address=address)
        prefs = PrefsStore(prefs_path) if prefs_path is not None else PrefsStore(client=True)
        pubsub = page.pubsub  # kept: once Flet releases the tab, page.pubsub raises
        view = ChatView(page, HubBackend(session, pubsub, address), prefill_name, uploads=uploads,
                        prefs_store=prefs, join_url=join_url)

        def on_disconnect(e: ft.Event) -> None:
            # A reload or a blip: announced only if the tab is not back within the grace.
            session.leave(grace=LEAVE_GRACE_SECONDS)

        def on_close(e: ft.Event) -> None:
            view.close()
            pubsub.unsubscribe_all()  # Flet did, but mount may have subscribed since
            session.leave()
            view.files.release()  # uploads this tab started and never shared

        def on_connect(e: ft.Event) -> None:
            try:
                session.rejoin()  # the tab came back (network blip, laptop lid): same name again
            except ValidationError as err:  # another browser took the name meanwhile
                view.login.refused(str(err))

        page.on_disconnect = on_disconnect
        page.on_close = on_close
        page.on_connect = on_connect
        def gone() -> bool:
            """Closed, or already released by Flet (``page.session`` then raises)."""
            try:
                return view.updates.closed or page.session is None
            except RuntimeError:
                return True

        try:
            await view.mount()
        except Exception:  # e.g. Flet's "An attempt to fetch destroyed session.": the tab left
            if not gone():
                raise
        if gone():  # closed while mount waited for the browser: nothing may keep the view
            view.close()
            pubsub.unsubscribe_all()
            session.leave()
            # flet-web 1.0.5 ends a main quietly only on this one: returning, or its own
            # FletPageDisconnectedException, fails on the session it already dropped
            raise BrokenPipeError("the tab closed while it was opening")

    return session_main
