"""Flet Chat's static web client: the app running in the browser (Pyodide), chatting through host mode.

``flet publish`` packs this folder (plus a copy of the ``fletchat`` modules it imports) into the
static build; ``python -m fletchat.webbuild`` does that. The UI is the one every session of host mode
shows (``fletchat.ui.ChatView``: channels, direct messages, search, older pages, delivery marks);
its ``ChatBackend`` is ``RelayBackend``: instead of a hub in this process it talks to the host's hub
over the ``/relay`` WebSocket (``docs/protocol.md``, "The relay for static web
clients"), opened with the browser's ``WebSocket`` from Python (``js.WebSocket``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

import flet as ft

from fletchat.conversation.kinds import NOT_AUTHOR, validate_emoji
from fletchat.conversation.relay_frames import (
    RelayDone,
    RelayMarks,
    RelayRow,
    RelayTyping,
    encode_client_conv,
)
from fletchat.conversation.signals import TYPING_TIMEOUT, ReadMark, TypingThrottle, person_key
from fletchat.conversation.views import ReadChanged, RowChanged, RowState, TypingChanged
from fletchat.events import (
    ChannelsChanged,
    Delivered,
    IdentityWarning,
    NameRefused,
    Online,
    RosterChanged,
    StoreFailed,
)
from fletchat.files.relay_frames import RelayAck, RelayFileState, RelaySlot
from fletchat.model import (
    DEFAULT_CHANNEL,
    MAX_NAME_CHARS,
    Message,
    ValidationError,
    validate_channel,
    validate_name,
    validate_text,
)
from fletchat.owner import new_owner_secret, validate_owner_secret
from fletchat.protocol import CLOSE_POLICY, MsgFrame, ProtocolError, SyncFrame
from fletchat.relay_protocol import (
    NAME_REFUSED,
    RELAY_PATH,
    RelayChannels,
    RelayDelivered,
    RelayFound,
    RelayOnline,
    RelayPage,
    RelayProblems,
    RelayWelcome,
    decode_server_frame,
    encode_client_channel,
    encode_client_hello,
    encode_client_history,
    encode_client_search,
    encode_client_send,
)
from fletchat.room_frames import RelayOpened
from fletchat.session import channel_name, dm_channel, dm_members  # the hub would load the store
from fletchat.ui import APP_TITLE, Capabilities, ChatView
from webclient.files import RelayFileMethods
from webclient.rooms import RelayRoomMethods

log = logging.getLogger("fletchat.webclient")

RECONNECT_SECONDS = 2.0
ANSWER_SECONDS = 15.0
MAX_ROWS_KEPT = 5000  # rows the host pushed, remembered here (oldest dropped)  # how long a history or search request waits for the host
WS_OPEN = 1  # WebSocket.readyState


class RelayBackend(RelayFileMethods, RelayRoomMethods):
    """``ChatBackend`` over ``/relay``: the host's hub, one WebSocket away.

    Names, texts and channel names are validated here exactly as a local session does (same
    ``model`` and ``hub`` rules), so the person sees the same errors; the host validates again.
    What the host pushes (channels, who is online, what is still pending) is mirrored here;
    history and search are requests answered by the host. Private rooms are sealed and opened
    by the host for this client (``webclient/rooms.py``: the browser build has no
    ``cryptography``); trust actions are off (``capabilities``): blocking devices is the host
    owner's decision. Files go through the host (``webclient/files.py``); voice notes need a
    recorder the static build does not have.
    """

    capabilities = Capabilities(rooms=True, trust=False, files=True, voice=False,
                                network_check=False)

    def __init__(self, client: RelayClient) -> None:
        self.client = client
        self._name: str | None = None
        self.last_name: str | None = None
        self.owner = ""  # the browser's owner secret, from ``join``
        self.host_peer = ""
        self._channels: list[str] = [DEFAULT_CHANNEL]
        self._pending: set[str] = set()
        self._online: list[Online] = []
        self._devices: list[Online] = []
        self._problems: tuple[str, ...] = ()
        self._handler = None
        self._req = 0
        self._waiting: dict[int, asyncio.Future] = {}
        self._rows: dict[str, RowState] = {}  # what the host pushed (``row`` frames)
        self._typing: dict[str, tuple[str, ...]] = {}
        self._typing_at: dict[str, float] = {}
        self._marks: dict[str, tuple[ReadMark, ...]] = {}
        self._throttle: dict[str, TypingThrottle] = {}
        self._send_receipts = self._send_typing = True
        self._files_init()
        self._rooms_init()

    @property
    def name(self) -> str | None:
        return self._name

    def join(self, raw_name: str, owner: str = "") -> None:
        name = validate_name(raw_name)
        self._name = self.last_name = name
        # the browser's owner secret, given again on every reconnect: what it wrote stays its own
        self.owner = validate_owner_secret(owner) if owner else new_owner_secret()
        self.client.send_frame(encode_client_hello(name, self.owner), queue=True)

    async def send(self, raw_text: str, channel: str) -> Message | None:
        if self._name is None:
            raise ValidationError("Join the chat first.")
        text = validate_text(raw_text)
        if text is None:
            return None
        if not self.client.is_open:
            raise ValidationError("Not connected to the host right now; try again in a moment.")
        channel = validate_channel(channel)
        self.client.send_frame(encode_client_send(text, channel, self.check_sealed(channel)))
        return Message.chat(self._name, text, "relay", channel)

    def leave(self) -> None:
        self._name = None
        self.client.close()

    def rejoin(self) -> None:
        """The client says hello again on every reconnect."""

    # ---- channels ----
    def channels(self) -> list[str]:
        return list(self._channels)

    def create_channel(self, raw: str) -> str:
        if self._name is None:
            raise ValidationError("Join the chat first.")
        name = channel_name(raw)
        if name not in self._channels:
            self.client.send_frame(encode_client_channel(name))
        return name

    def direct_channel(self, other: str) -> str:
        if self._name is None:
            raise ValidationError("Join the chat first.")
        if other.strip() == self._name:
            raise ValidationError("That is you.")
        return dm_channel(self._name, other[:MAX_NAME_CHARS])

    def can_see(self, channel: str) -> bool:
        members = dm_members(channel)
        return not members or (self._name is not None and self._name in members)

    # ---- history: requests the host answers ----
    async def _ask(self, encode) -> object:
        self._req += 1
        req = self._req
        future = asyncio.get_running_loop().create_future()
        self._waiting[req] = future
        self.client.send_frame(encode(req), queue=True)
        try:
            return await asyncio.wait_for(future, ANSWER_SECONDS)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(req, None)

    def answered(self, req: int, answer: object) -> None:
        future = self._waiting.get(req)
        if future is not None and not future.done():
            future.set_result(answer)

    async def history(self, channel: str, limit: int, before: str = "") -> list[Message]:
        page = await self._ask(lambda req: encode_client_history(req, channel, before))
        if not isinstance(page, RelayPage):
            return []
        self._pending -= {m.id for m in page.msgs}
        self._pending |= set(page.pending)
        self.learn_files(list(page.msgs))
        return list(page.msgs)

    async def search(self, query: str) -> list[tuple[Message, str]]:
        found = await self._ask(lambda req: encode_client_search(req, query))
        if not isinstance(found, RelayFound):
            return []
        self.learn_files([m for m, _ in found.results])
        return list(found.results)

    async def pending_ids(self) -> set[str]:
        return set(self._pending)

    def is_own(self, msg: Message) -> bool:
        return bool(self.host_peer) and msg.origin == self.host_peer

    # ---- people; trust is off ----
    def online(self) -> list[Online]:
        return list(self._online)

    def lan_peers(self) -> list[Online]:
        return list(self._devices)

    def problems(self) -> list[str]:
        return list(self._problems)  # the host's, from its last ``problems`` frame

    async def check_network(self) -> str:
        return ("The network check runs on the host: open the host's own page (without /app/) "
                "or run main.py --doctor there.")

    @property
    def fingerprint(self) -> str:
        return ""

    def is_unverified(self, msg: Message) -> bool:
        return False

    def identity_warnings(self) -> list[IdentityWarning]:
        return []

    def forget_peer(self, peer_id: str) -> None:
        raise ValidationError("Only the host can do that.")

    def block(self, peer_id: str) -> None:
        raise ValidationError("Only the host can do that.")

    def unblock(self, peer_id: str) -> None:
        raise ValidationError("Only the host can do that.")

    def blocked_peers(self) -> dict[str, str]:
        return {}

    # ---- the conversation: actions are ``conv`` requests the host answers with ``done``;
    # rows, typing and read marks are mirrored from what it pushes ----
    async def _conv(self, op: str, target: str = "", text: str = "",
                    channel: str = DEFAULT_CHANNEL) -> None:
        if self._name is None:
            raise ValidationError("Join the chat first.")
        if not self.client.is_open:
            raise ValidationError("Not connected to the host right now; try again in a moment.")
        sealed = op in ("reply", "edit") and self.check_sealed(channel)  # text: sealed in a room
        done = await self._ask(lambda req: encode_client_conv(req, op, target, text, channel,
                                                               sealed))
        if not isinstance(done, RelayDone):
            raise ValidationError("The host did not answer; try again.")
        if done.error:
            raise ValidationError(done.error)

    async def reply(self, parent: Message, raw_text: str, channel: str) -> Message | None:
        text = validate_text(raw_text)
        if text is None:
            return None
        await self._conv("reply", parent.id, text, validate_channel(channel))
        return None  # the host's copy arrives as a message like every other

    async def react(self, msg: Message, emoji: str) -> None:
        await self._conv("react", msg.id, validate_emoji(emoji), msg.channel)

    def _check_own(self, msg: Message) -> None:
        if not self.is_own(msg) or msg.author != self._name:
            raise ValidationError(NOT_AUTHOR)

    async def edit(self, msg: Message, raw_text: str) -> None:
        self._check_own(msg)
        text = validate_text(raw_text)
        if text is None:
            raise ValidationError("An edit cannot empty a message: delete it instead.")
        await self._conv("edit", msg.id, text, msg.channel)

    async def delete(self, msg: Message) -> None:
        self._check_own(msg)
        await self._conv("delete", msg.id, "", msg.channel)

    def row_state(self, msg: Message) -> RowState:
        base = RowState(msg.id, msg.author, msg.origin, msg.channel, msg.ts, msg.hlc, msg.text,
                        reply=msg.conv.reply if msg.conv is not None else None)
        pushed = self._rows.get(msg.id)
        if pushed is not None:
            return replace(pushed, author=msg.author, origin=msg.origin, channel=msg.channel,
                           ts=msg.ts, hlc=msg.hlc)
        if msg.conv is not None and msg.conv.redacted is not None:
            return replace(base, text="", deleted=True)
        return base

    def typing(self, channel: str) -> None:
        if self._name is not None and self._send_typing and self.client.is_open and self._throttle.setdefault(
                channel, TypingThrottle()).should_send(time.monotonic()):
            self.client.send_frame(encode_client_conv(0, "typing", channel=channel))

    def typing_names(self, channel: str) -> list[str]:
        if time.monotonic() - self._typing_at.get(channel, 0.0) >= TYPING_TIMEOUT:
            return []
        return [n for n in self._typing.get(channel, ()) if n != self._name]

    def mark_read(self, channel: str, upto: Message) -> None:
        if self._name is not None and self._send_receipts and upto.hlc and self.client.is_open:
            self.client.send_frame(encode_client_conv(0, "read", upto.hlc, channel=channel))

    def seen_by(self, msg: Message) -> list[str]:
        author = person_key(msg.origin, msg.author)
        return sorted(m.name for m in self._marks.get(msg.channel, ())
                      if m.reader != author and m.upto >= msg.hlc)

    def reach(self, msg: Message) -> tuple[int, int] | None:
        """Unknown here: the host does not tell a static client which devices acknowledged a
        message (``delivered`` says only that one did), so the row shows no "on N of M"."""
        return None

    def set_conversation_prefs(self, read_receipts: bool, typing: bool) -> None:
        self._send_receipts, self._send_typing = read_receipts, typing

    async def rename(self, raw_name: str) -> None:
        """Asks the host, which may refuse (a name in use, the same name): the new name is
        this client's only once the host said ``done`` without an error."""
        name = validate_name(raw_name)
        await self._conv("rename", "", name)
        self._name = self.last_name = name

    def subscribe(self, handler) -> None:
        self._handler = handler

    async def on_conv_frame(self, frame: RelayDone | RelayRow | RelayTyping | RelayMarks) -> None:
        """Mirror what the host pushed about the conversation, and tell the view."""
        if isinstance(frame, RelayDone):
            self.answered(frame.req, frame)
        elif isinstance(frame, RelayRow):
            self._rows[frame.row.id] = frame.row
            if len(self._rows) > MAX_ROWS_KEPT:
                self._rows.pop(next(iter(self._rows)))
            await self.deliver(RowChanged(frame.row.id, "", frame.row))
        elif isinstance(frame, RelayTyping):
            self._typing[frame.channel] = frame.names
            self._typing_at[frame.channel] = time.monotonic()
            await self.deliver(TypingChanged(frame.channel, frame.names))
        else:
            self._marks[frame.channel] = frame.marks
            await self.deliver(ReadChanged(frame.channel))

    async def on_problems(self, frame: RelayProblems) -> None:
        """The host's problems (its banner here too) and our messages it could not save."""
        self._problems = frame.problems
        if frame.problems or frame.not_saved:
            reason = "\n".join(frame.problems) or "Not saved on the host."
            await self.deliver(StoreFailed(reason, time.time(), frame.not_saved))

    async def name_refused(self, reason: str) -> None:
        """The host refused the name joined under (someone online there has it): not joined,
        and not again on a reconnect; the login asks again."""
        self._name = None
        await self.deliver(NameRefused(reason))

    async def deliver(self, event: object) -> None:
        """Hand a hub event to the view, as pubsub does in host mode. (Flet's pubsub needs an
        event loop it is given by a server; under Pyodide it has none, so it cannot be used.)"""
        if self._handler is not None:
            await self._handler(event)


class RelayClient:
    """The WebSocket to the host: frames in become pubsub events for ``ChatView``."""

    def __init__(self, page: ft.Page) -> None:
        import js

        self.page = page
        self.backend = RelayBackend(self)
        self.ws = None
        self.seen: set[str] = set()
        self.pending: list[str] = []
        self.closing = False
        self.inbox: asyncio.Queue = asyncio.Queue()
        loc = js.location  # the worker's own URL: same origin as the page
        scheme = "wss" if str(loc.protocol) == "https:" else "ws"
        self.url = f"{scheme}://{loc.host}{RELAY_PATH}"
        self.backend.origin = f"{loc.protocol}//{loc.host}"  # where /files/blob/ is
        self.status = ft.Text("", color=ft.Colors.RED_700, size=12, visible=False)
        self._proxies: list = []

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
        """Handle socket events on the page's loop, one at a time (the socket is opened here
        unless ``connect`` already did)."""
        if self.ws is None:
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
        name = self.backend.name
        if name is not None:  # a reconnect: join again under the same name
            self.pending = [encode_client_hello(name, self.backend.owner)]
        for text in self.pending:
            self.ws.send(text)
        self.pending = []
        self.backend.unlock_again()  # a new session on the host: no room keys there yet

    async def on_frame(self, data: str) -> None:
        try:
            frame = decode_server_frame(data)
        except ProtocolError as err:
            print("relay: ignoring a bad frame from the host:", err.reason)
            return
        backend = self.backend
        if isinstance(frame, MsgFrame | SyncFrame):  # one live message, or the recent history
            live = isinstance(frame, MsgFrame)
            await self.publish_messages([frame.message] if live else frame.messages, live=live)
        elif isinstance(frame, RelayPage | RelayFound):
            backend.answered(frame.req, frame)
        elif isinstance(frame, RelayOnline):
            backend._online, backend._devices = list(frame.people), list(frame.devices)
            await backend.deliver(RosterChanged(frame.people, frame.devices))
        elif isinstance(frame, RelayChannels):
            backend._channels = list(frame.channels)
            await backend.deliver(ChannelsChanged(frame.channels))
        elif isinstance(frame, RelayDelivered):
            backend._pending -= set(frame.ids)
            await backend.deliver(Delivered(frame.ids, frame.at))
        elif isinstance(frame, RelayDone | RelayRow | RelayTyping | RelayMarks):
            await backend.on_conv_frame(frame)
        elif isinstance(frame, RelayOpened):
            backend.on_opened(frame)
        elif isinstance(frame, RelayFileState | RelaySlot | RelayAck):
            await backend.on_file_frame(frame)
        elif isinstance(frame, RelayProblems):
            await backend.on_problems(frame)
        elif isinstance(frame, RelayWelcome):
            backend.host_peer = frame.peer
            print("relay: joined as", frame.name)

    async def publish_messages(self, messages, live: bool = False) -> None:
        self.backend.learn_files(list(messages))
        for msg in messages:
            if msg.id not in self.seen:  # a reconnect sends the recent history again
                self.seen.add(msg.id)
                if live and self.backend.is_own(msg) and msg.kind == "chat":
                    self.backend._pending.add(msg.id)  # just written: nobody confirmed it yet
                await self.backend.deliver(msg)

    async def on_close(self, code: int, reason: str) -> bool:
        """The socket closed; True when the client is done (it left), else reconnect."""
        print(f"relay: closed ({code}) {reason}")
        self.backend.connection_lost()  # nothing is sealed on the host until unlocked again
        if self.closing:
            return True
        if code == CLOSE_POLICY and reason.startswith(NAME_REFUSED):
            await self.backend.name_refused(reason[len(NAME_REFUSED):])
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


def mark(what: str) -> None:
    """A start-up timestamp on the browser's console when the page has ``?timing``
    (``fletchat.webearly`` defines ``fcMark`` in the worker); nothing elsewhere."""
    try:
        import js

        js.fcMark(what)
    except (ImportError, AttributeError):
        pass


FRAME_WAIT_S = 2.0  # the longest the view waits for the login to be drawn (a hidden tab draws none)


async def login_on_screen() -> None:
    """Until the page has drawn what Python sent so far (``fcAfterFrames`` in
    ``fletchat.webearly``: two animation frames after the page got the ask), at most
    ``FRAME_WAIT_S``; at once where the page cannot say."""
    try:
        import js

        ask = js.fcAfterFrames
    except (ImportError, AttributeError):
        return

    async def drawn() -> None:
        await ask()

    try:
        await asyncio.wait_for(drawn(), FRAME_WAIT_S)
    except TimeoutError:
        pass
    mark("login drawn")


async def main(page: ft.Page) -> None:
    mark("app main")
    client = RelayClient(page)
    client.connect()  # the browser opens the socket while Python builds the view
    view = ChatView(page, client.backend, uploads=client.backend)  # files: share_picked
    page.run_task(client.run)  # before mounting: the first page of history comes through it
    await view.mount(dialog_first=login_on_screen)
    page.add(client.status)
    page.title = APP_TITLE
    mark("app mounted")


if __name__ == "__main__":
    ft.run(main)
