"""Flet Chat's static web client: the app running in the browser (Pyodide), chatting through host mode.

``flet publish`` packs this folder (plus a copy of the ``fletchat`` modules it imports) into the
static build; ``python -m fletchat.webbuild`` does that. The UI is the one every session of host mode
shows (``fletchat.ui.ChatView``, ``ChatMessage`` rows); instead of a hub in this process it talks to
the host's hub over the ``/relay`` WebSocket (``docs/protocol.md``, "The relay for static web
clients"), opened with the browser's ``WebSocket`` from Python (``js.WebSocket``).
"""

from __future__ import annotations

import asyncio
import logging

import flet as ft

from fletchat.hub import PUBSUB_TOPIC, HubSession, Online, RosterChanged
from fletchat.model import (
    DEFAULT_CHANNEL,
    KIND_JOIN,
    Message,
    ValidationError,
    validate_name,
    validate_text,
)
from fletchat.protocol import MsgFrame, ProtocolError, SyncFrame
from fletchat.relay_protocol import (
    RELAY_DEVICE,
    RELAY_PATH,
    RelayOnline,
    RelayWelcome,
    decode_server_frame,
    encode_client_hello,
    encode_client_send,
)
from fletchat.ui import APP_TITLE, ChatView

log = logging.getLogger("fletchat.webclient")

RECONNECT_SECONDS = 2.0
WS_OPEN = 1  # WebSocket.readyState


class _Mirror:
    """What ``ChatView`` reads from a hub at mount time; the host's state arrives by frames."""

    def history(self) -> list[Message]:
        return []

    def online(self) -> list[Online]:
        return []

    def lan_peers(self) -> list[Online]:
        return []


class RelaySession(HubSession):
    """A ``HubSession`` whose hub is the host's, reached through ``/relay``.

    ``join`` and ``send`` validate exactly as a local session does (same ``model`` rules), so the
    person sees the same errors; the host validates again before anything reaches its hub.
    """

    def __init__(self, client: RelayClient) -> None:
        super().__init__(_Mirror(), device=RELAY_DEVICE)  # type: ignore[arg-type]
        self.client = client

    def join(self, raw_name: str) -> Message:
        name = validate_name(raw_name)
        self.name = self.last_name = name
        self.client.send_frame(encode_client_hello(name), queue=True)
        return Message.presence(KIND_JOIN, name, "relay")

    def send(self, raw_text: str, channel: str = DEFAULT_CHANNEL) -> Message | None:
        if channel != DEFAULT_CHANNEL:  # the relay posts to the default channel only
            raise ValidationError("The web client can only post to the main conversation.")
        if self.name is None:
            raise ValidationError("Join the chat first.")
        text = validate_text(raw_text)
        if text is None:
            return None
        if not self.client.is_open:
            raise ValidationError("Not connected to the host right now; try again in a moment.")
        self.client.send_frame(encode_client_send(text))
        return Message.chat(self.name, text, "relay")

    def leave(self) -> None:
        self.name = None
        self.client.close()

    def rejoin(self) -> Message | None:
        return None  # the client says hello again on every reconnect


class RelayClient:
    """The WebSocket to the host: frames in become pubsub events for ``ChatView``."""

    def __init__(self, page: ft.Page) -> None:
        import js

        self.page = page
        self.session = RelaySession(self)
        self.ws = None
        self.seen: set[str] = set()
        self.pending: list[str] = []
        self.closing = False
        self.inbox: asyncio.Queue = asyncio.Queue()
        loc = js.location  # the worker's own URL: same origin as the page
        scheme = "wss" if str(loc.protocol) == "https:" else "ws"
        self.url = f"{scheme}://{loc.host}{RELAY_PATH}"
        self.status = ft.Text("", color=ft.Colors.RED_700, size=12, visible=False)
        self._proxies: list = []
        self.view: ChatView | None = None

    @property
    def is_open(self) -> bool:
        return self.ws is not None and self.ws.readyState == WS_OPEN

    def connect(self) -> None:
        import js
        from pyodide.ffi import create_proxy

        ws = js.WebSocket.new(self.url)
        for proxy in self._proxies:
            proxy.destroy()
        self._proxies = [
            create_proxy(lambda e: self.inbox.put_nowait(("open", None))),
            create_proxy(lambda e: self.inbox.put_nowait(("frame", str(e.data)))),
            create_proxy(lambda e: self.inbox.put_nowait(("close", (e.code, str(e.reason))))),
        ]
        ws.onopen, ws.onmessage, ws.onclose = self._proxies
        self.ws = ws

    def send_frame(self, text: str, queue: bool = False) -> None:
        if self.is_open:
            self.ws.send(text)
        elif queue:
            self.pending.append(text)

    def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            self.ws.close(1000, "bye")

    async def run(self) -> None:
        """Handle socket events on the page's loop, one at a time."""
        self.connect()
        while True:
            kind, data = await self.inbox.get()
            try:
                if kind == "open":
                    self.on_open()
                elif kind == "frame":
                    await self.on_frame(data)
                elif kind == "close" and await self.on_close(*data):
                    return
            except Exception:
                log.exception("relay client: %s event failed", kind)

    def on_open(self) -> None:
        print("relay: connected to", self.url)
        self.show_status("")
        if self.session.name is not None:  # a reconnect: join again under the same name
            self.pending = [encode_client_hello(self.session.name)]
        for text in self.pending:
            self.ws.send(text)
        self.pending = []

    async def on_frame(self, data: str) -> None:
        try:
            frame = decode_server_frame(data)
        except ProtocolError as err:
            print("relay: ignoring a bad frame from the host:", err.reason)
            return
        if isinstance(frame, MsgFrame):
            await self.publish_messages([frame.message])
        elif isinstance(frame, SyncFrame):
            await self.publish_messages(frame.messages)
        elif isinstance(frame, RelayOnline):
            await self.deliver(RosterChanged(frame.people, frame.devices))
        elif isinstance(frame, RelayWelcome):
            print("relay: joined as", frame.name)

    async def publish_messages(self, messages) -> None:
        for msg in messages:
            if msg.id not in self.seen:  # a reconnect sends the recent history again
                self.seen.add(msg.id)
                await self.deliver(msg)

    async def deliver(self, event: object) -> None:
        """Hand a hub event to the view, as pubsub does in host mode. (Flet's pubsub needs an
        event loop it is given by a server; under Pyodide it has none, so it cannot be used.)"""
        if self.view is not None:
            await self.view.on_event(PUBSUB_TOPIC, event)

    async def on_close(self, code: int, reason: str) -> bool:
        """The socket closed; True when the client is done (it left), else reconnect."""
        print(f"relay: closed ({code}) {reason}")
        if self.closing:
            return True
        self.show_status(f"Lost the connection to the host ({reason or code}); reconnecting...")
        await asyncio.sleep(RECONNECT_SECONDS)
        self.connect()
        return False

    def show_status(self, text: str) -> None:
        self.status.value = text
        self.status.visible = bool(text)
        try:
            self.status.update()
        except (RuntimeError, AssertionError):  # not on the page yet
            pass


async def main(page: ft.Page) -> None:
    client = RelayClient(page)
    view = client.view = ChatView(page, client.session)
    view.mount()
    page.add(client.status)
    page.title = APP_TITLE
    page.run_task(client.run)


if __name__ == "__main__":
    ft.run(main)
