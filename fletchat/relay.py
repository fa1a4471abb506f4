"""Host mode's relay: static (Pyodide) web clients join the conversation through ``/relay``.

A static client runs the app in the browser, so it has no hub of its own on the LAN. It opens a
WebSocket to the host-mode port, names itself (``hello``) and sends text (``send``); every frame is
parsed and validated here, at the edge (``relay_protocol.decode_client_frame``), rate-limited per
connection, and only then turned into a ``Message`` by a ``HubSession`` of its own (device
``browser-static``) and posted to the hub. Every hub event (messages, roster changes) is pushed back
to every connected client; recent history is sent on connect. A bad frame closes the connection
with a close code and a reason that says what was wrong; other clients are not affected.

Threads: the hub calls listeners on whichever thread posted (Flet's pool, the mesh's loop, ours), so
the listener only hands the event to this loop (``call_soon_threadsafe``); all client state is
touched on the loop alone.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .conversation.relay_frames import RelayConv
from .conversation.relay_host import conv_fan_out, conv_marks, conv_rows, on_conv
from .conversation.views import ReadChanged, RowChanged, TypingChanged
from .events import ChannelsChanged, Delivered, StoreFailed
from .files.relay_frames import RelayChunk, RelayDrop, RelayFetch, RelayShare, RelayUpload
from .files.views import FileChanged
from .hub import Hub, HubEvent, HubSession, ReadOnlyError, RosterChanged
from .model import DEFAULT_CHANNEL, Message, ValidationError
from .protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED_DATA,
    ProtocolError,
    TokenBucket,
    encode_msg,
    encode_pong,
)
from .relay_files import ClientFiles, RelayFiles, RelayUploads
from .relay_protocol import (
    CLOSE_TRY_AGAIN,
    MAX_RELAY_CLIENTS,
    MAX_RELAY_CLIENTS_PER_ADDRESS,
    NAME_REFUSED,
    RELAY_BURST,
    RELAY_DEVICE,
    RELAY_PAGE,
    RELAY_PATH,
    RELAY_QUEUE,
    RELAY_QUEUE_CHARS,
    RELAY_RATE_PER_SECOND,
    RelayCreateChannel,
    RelayHello,
    RelayHistory,
    RelayPing,
    RelaySearch,
    RelaySend,
    clip_reason,
    decode_client_frame,
    encode_channels,
    encode_delivered,
    encode_found,
    encode_history,
    encode_online,
    encode_page,
    encode_problems,
    encode_welcome,
)
from .relay_rooms import on_room, opened_frames, unsealed
from .room_frames import RelayRoom
from .webopened import OpenedLinks

log = logging.getLogger("fletchat.relay")

Close = tuple[int, str]

# Frames a client may send before it has joined with a name (hello).
_BEFORE_HELLO = (RelayPing, RelayHello, RelayHistory, RelaySearch)


SHARE_FINISH_S = 120.0  # a closed connection's shares get this long to post their message


async def _leave_after(shares: set[asyncio.Task], session: HubSession) -> None:
    await asyncio.wait(shares, timeout=SHARE_FINISH_S)
    session.leave()


# What happens while a new connection's history is read and is sent to it after the welcome
# (the roster, channels, typing and read marks are sent as they are then).
_REPLAYED = (Message, FileChanged, Delivered, StoreFailed, RowChanged)


def _retrieved(task: asyncio.Task) -> None:
    """A frame's action's failure is the reader's (it awaits it); once the connection ended
    nobody does: then it is logged here, not left as "exception never retrieved"."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("relay action ended with %r", task.exception())


class _Client:
    """One connected static client: its outgoing queue (drained by one sender task)."""

    def __init__(self, ws: WebSocket, session: HubSession) -> None:
        self.ws = ws
        self.session = session  # what this client may see: its own DMs, not others'
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.queued_chars = 0  # of the frames in ``queue``: bounded by ``RELAY_QUEUE_CHARS``
        self.skip_ids: set[str] = set()  # sent in the history already
        self.fell_behind = False
        # files it was told about, its uploads' tasks, its links to a room's opened files
        self.files = ClientFiles(owner=f"relay-{secrets.token_hex(8)}")
        self.acting: asyncio.Task[Close | None] | None = None  # the frame being acted on
        where = ws.client
        self.address = where.host if where else "?"
        self.label = f"{where.host}:{where.port}" if where else "?"

    def push(self, text: str, msg_id: str | None = None) -> None:
        if self.fell_behind or (msg_id is not None and msg_id in self.skip_ids):
            return
        if self.queue.qsize() >= RELAY_QUEUE or self.queued_chars + len(text) > RELAY_QUEUE_CHARS:
            self.fell_behind = True
            self.queue.put_nowait(None)  # the sender closes the connection
            return
        self.queued_chars += len(text)
        self.queue.put_nowait(text)

    def welcome(self, text: str) -> None:
        """A frame of the welcome (``Relay._welcome``): always queued (it is bounded by the
        history sent), and counted, so what follows is bounded with it."""
        self.queued_chars += len(text)
        self.queue.put_nowait(text)

    async def send_loop(self) -> Close | None:
        while True:
            text = await self.queue.get()
            if text is None:
                return CLOSE_TRY_AGAIN, (f"client fell behind by {RELAY_QUEUE} events or "
                                         f"{RELAY_QUEUE_CHARS:,} characters; reconnect")
            self.queued_chars -= len(text)
            try:
                await self.ws.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError):
                return None


class Relay:
    """The ``/relay`` WebSocket endpoint. ``hub_factory`` returns the node's hub."""

    def __init__(self, hub_factory: Callable[[], Hub], path: str = RELAY_PATH,
                 uploads_root: Path | None = None, opened: OpenedLinks | None = None) -> None:
        self._hub_factory = hub_factory
        self.path = path
        # Files over the relay (relay_files.py): uploads land under ``uploads_root``.
        self.files = RelayFiles(RelayUploads(uploads_root) if uploads_root is not None else None,
                                opened)
        self._clients: set[_Client] = set()
        self._joining: dict[_Client, list[HubEvent]] = {}  # events while a history is read
        self._leaving: set[asyncio.Task] = set()  # closed clients' sessions waiting on shares
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hub: Hub | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def route(self) -> WebSocketRoute:
        return WebSocketRoute(self.path, self.endpoint, name="relay")

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # ---- hub -> clients ----
    def _listen(self, hub: Hub) -> None:
        if self._unsubscribe is None:
            self._loop, self._hub = asyncio.get_running_loop(), hub
            self._unsubscribe = hub.add_listener(self._on_hub_event)

    def _on_hub_event(self, event: HubEvent) -> None:
        """Called by the hub on any thread: hand the event to the relay's loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._arrived, event)
        except RuntimeError:  # the loop closed meanwhile (shutdown)
            pass

    def _arrived(self, event: HubEvent) -> None:
        """On the loop: held for the clients whose history is being read, sent to the others."""
        if isinstance(event, _REPLAYED):  # the rest is in the state a welcome sends
            for client, held in self._joining.items():
                if len(held) < RELAY_QUEUE:
                    held.append(event)
                else:  # as a client this far behind is: closed, to reconnect (``_welcome``)
                    client.fell_behind = True
        self._fan_out(event)

    def _fan_out(self, event: HubEvent, to: list[_Client] | None = None) -> None:
        """``event`` to every client (``to``: only those)."""
        clients = list(self._clients) if to is None else to
        if not clients:
            return
        if isinstance(event, Message | FileChanged):
            self._fan_out_message(event, clients)
            return
        if isinstance(event, ChannelsChanged):
            for client in clients:
                client.push(encode_channels(visible(client.session, event.channels)))
            return
        if isinstance(event, RowChanged | TypingChanged | ReadChanged):
            conv_fan_out(clients, event)
            return
        if isinstance(event, RosterChanged):
            texts = [encode_online(event.online, event.devices)]
        elif isinstance(event, Delivered):
            texts = encode_delivered(event.ids, event.at)
        elif isinstance(event, StoreFailed) and self._hub is not None:
            texts = encode_problems(self._hub.problems() or [event.reason], event.not_saved)
        else:
            return
        for client in clients:
            for text in texts:
                client.push(text)

    def _fan_out_message(self, event: Message | FileChanged, clients: list[_Client]) -> None:
        """A message (after the ``file`` frames of its files) to those who may see it, or a
        file's new state to those who were told about it."""
        if isinstance(event, FileChanged):
            for client in clients:
                for frame in self.files.changed(client.session, client.files, event):
                    client.push(frame)
            return
        text = encode_msg(event)
        opened: dict[tuple[str, bytes], str] = {}  # a room's text, opened once per key
        for client in clients:
            if client.session.can_see(event.channel):  # others' direct messages stay out
                if event.id not in client.skip_ids:
                    for frame in [*self.files.frames_for(client.session, client.files,
                                                         [event] if event.files else []),
                                  *opened_frames(client.session, [event], opened)]:
                        client.push(frame)
                client.push(text, event.id)

    def close(self) -> None:
        """Stop listening to the hub (the clients' connections end with the server)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ---- one connection ----
    async def endpoint(self, ws: WebSocket) -> None:
        await ws.accept()
        address = ws.client.host if ws.client else "?"
        clients = (*self._clients, *self._joining)  # those being welcomed count too
        if len(clients) >= MAX_RELAY_CLIENTS or sum(
                c.address == address for c in clients) >= MAX_RELAY_CLIENTS_PER_ADDRESS:
            await ws.close(CLOSE_TRY_AGAIN, "too many relay clients; try again later")
            return
        hub = self._hub_factory()
        self._listen(hub)
        session = HubSession(hub, device=RELAY_DEVICE, address=address)
        client = _Client(ws, session)
        held: list[HubEvent] = []  # what happens while the history is read (off the loop)
        self._joining[client] = held
        try:
            history = await hub.history_async()
        finally:
            del self._joining[client]
        self._welcome(client, history, held)
        log.debug("relay client %s connected", client.label)

        reader = asyncio.create_task(self._read_loop(ws, client, session))
        sender = asyncio.create_task(client.send_loop())
        result: Close | None = None
        try:
            done, _ = await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
            result = next(iter(done)).result()
        except asyncio.CancelledError:  # server shutting down
            result = (CLOSE_GOING_AWAY, "host is shutting down")
            raise
        finally:
            for task in (reader, sender):
                task.cancel()
            self._clients.discard(client)
            shares = self.files.closed(id(client), client.files)
            if result is not None:
                code, reason = result
                log.info("relay client %s closed: %s (%s)", client.label, reason, code)
                try:
                    await ws.close(code, clip_reason(reason))
                except (RuntimeError, OSError, WebSocketDisconnect) as err:  # already gone
                    log.debug("relay client %s: close failed: %s", client.label, err)
            if client.acting is not None and not client.acting.done():
                shares = {*shares, client.acting}  # a post on its thread: the leave after it
            if shares:  # the person leaves once what they sent is posted
                task = asyncio.get_running_loop().create_task(_leave_after(shares, session))
                self._leaving.add(task)
                task.add_done_callback(self._leaving.discard)
            else:
                session.leave()
            log.debug("relay client %s left", client.label)

    def _welcome(self, client: _Client, history: list[Message], held: list[HubEvent]) -> None:
        """Register ``client`` and queue its first frames in one step (no await): the history
        read before, the state now, then what happened during the read that the state does not
        already say (messages, in order, skipping those in the history; delivery marks; store
        faults; rows of messages not in the history: the rows sent here are newer)."""
        session, hub = client.session, client.session.hub
        self._clients.add(client)
        if client.fell_behind:  # more happened during the read than a client may be behind
            client.queue.put_nowait(None)
            return
        client.skip_ids = {m.id for m in history}
        for frame in self.files.frames_for(session, client.files, history):  # what the host has
            client.welcome(frame)
        for frame in encode_history(history):
            client.welcome(frame)
        client.welcome(encode_online(hub.online(), hub.lan_peers()))
        client.welcome(encode_channels(visible(session, hub.channels())))
        if hub.problems():  # e.g. the history is read-only: the banner, as on the host's pages
            client.welcome(encode_problems(hub.problems())[0])
        for frame in [*conv_rows(session, history), *conv_marks(session, DEFAULT_CHANNEL)]:
            client.welcome(frame)  # rows with reactions, edits, replies; who read what
        for event in held:  # ``_REPLAYED`` only; the rows sent above are newer than these
            if not isinstance(event, RowChanged) or event.message_id not in client.skip_ids:
                self._fan_out(event, [client])

    async def _read_loop(self, ws: WebSocket, client: _Client, session: HubSession) -> Close | None:
        bucket = TokenBucket(RELAY_RATE_PER_SECOND, RELAY_BURST, clock=time.monotonic)
        while True:
            event = await ws.receive()
            if event["type"] == "websocket.disconnect":
                return None
            result = self._take(event.get("text"), bucket, client, session)
            if inspect.isawaitable(result):  # a chunk, a query: done before the next frame is read
                # shielded: a connection that ends meanwhile leaves after it (``endpoint``)
                client.acting = asyncio.ensure_future(result)
                client.acting.add_done_callback(_retrieved)
                result = await asyncio.shield(client.acting)
            if result is not None:
                return result

    def _take(
        self, text: str | None, bucket: TokenBucket, client: _Client, session: HubSession
    ) -> Close | None | Awaitable[Close | None]:
        """One received frame: checked, rate-limited and decoded here, then handed to its handler;
        a ``Close`` ends the connection."""
        if text is None:
            return CLOSE_UNSUPPORTED_DATA, "binary frames are not accepted: send JSON text"
        try:
            frame = decode_client_frame(text)
        except ProtocolError as err:
            return err.code, err.reason
        # Chunks are paced by the host itself (each is written before the next frame is read).
        if not isinstance(frame, RelayChunk) and not bucket.allow():
            flood = f"flood: over {RELAY_BURST:g} frames at once or "
            return CLOSE_POLICY, flood + f"{RELAY_RATE_PER_SECOND:g} per second"
        if not isinstance(frame, _BEFORE_HELLO) and not session.joined:
            return CLOSE_PROTOCOL_ERROR, "send before hello: join with a name first"
        handler = self._HANDLERS.get(type(frame))
        return handler(self, frame, client, session) if handler is not None else None

    def _on_ping(self, _frame: RelayPing, client: _Client, _session: HubSession) -> Close | None:
        client.push(encode_pong())
        return None

    def _on_hello(self, frame: RelayHello, client: _Client, session: HubSession) -> Close | None:
        if session.joined:
            return CLOSE_PROTOCOL_ERROR, "hello sent twice"
        try:
            session.join(frame.name, frame.owner)
        except ValidationError as err:  # the name is someone else's here: the login asks again
            return CLOSE_POLICY, f"{NAME_REFUSED}{err}"
        client.push(encode_welcome(frame.name, session.hub.peer_id))
        client.push(encode_channels(visible(session, session.hub.channels())))
        return None

    async def _on_query(
        self, frame: RelayHistory | RelaySearch, client: _Client, session: HubSession
    ) -> Close | None:
        """Answered off the loop (the read lanes), and before this client's next frame is read:
        one query at a time per connection, and a flood of them never stalls the host's loop."""
        text, msgs = await _answer(session, frame)
        for file_frame in self.files.frames_for(session, client.files, msgs):
            client.push(file_frame)
        marks = conv_marks(session, frame.channel) if isinstance(frame, RelayHistory) else []
        for row in [*opened_frames(session, msgs), *conv_rows(session, msgs), *marks]:  # before
            # the page: what it will show
            client.push(row)
        client.push(text)
        return None

    async def _on_send(self, frame: RelaySend, client: _Client,
                       session: HubSession) -> Close | None:
        """Posted on a worker thread (it takes the acceptance lock, which catch-up pages hold
        on theirs, and writes the store's journal), as a tab's send is."""
        if frame.text is None:
            return None  # whitespace only: nothing to post (the UI does the same)
        if not session.can_see(frame.channel):
            return CLOSE_PROTOCOL_ERROR, "send.channel: not one of your channels"
        if unsealed(session, frame.channel, frame.sealed):  # never posted in the clear
            return CLOSE_PROTOCOL_ERROR, "send.sealed: that room is not unlocked on this connection"
        try:
            await asyncio.to_thread(session.send, frame.text, frame.channel)
        except ReadOnlyError:  # the host's fault, not the client's: say why, stay connected
            client.push(encode_problems(session.hub.problems())[0])
        except ValidationError as err:  # validated already; the hub's own check
            return CLOSE_PROTOCOL_ERROR, f"send.text: {err}"
        return None

    def _on_create_channel(
        self, frame: RelayCreateChannel, client: _Client, session: HubSession
    ) -> Close | None:
        try:
            session.create_channel(frame.name)
        except ReadOnlyError:
            client.push(encode_problems(session.hub.problems())[0])
        except ValidationError as err:  # the client checks with the same rule first
            return CLOSE_PROTOCOL_ERROR, f"channel.name: {err}"
        return None

    # Each decoded frame type's handler (a dispatch table instead of an if-chain).
    _HANDLERS: ClassVar[dict[type, Callable[..., Close | None | Awaitable[Close | None]]]] = {
        RelayPing: _on_ping,
        RelayHello: _on_hello,
        RelayHistory: _on_query,
        RelaySearch: _on_query,
        RelaySend: _on_send,
        RelayCreateChannel: _on_create_channel,
        RelayConv: lambda self, frame, client, session: on_conv(frame, client, session),
        RelayRoom: lambda self, frame, client, session: on_room(frame, client, session),
        # Files (relay_files.py): uploads in slots, shares and fetches answered by ``done``.
        RelayUpload: lambda self, frame, client, session: client.push(
            self.files.on_upload(frame, id(client), client.address, session.hub)),
        RelayChunk: lambda self, frame, client, session: self.files.on_chunk(
            frame, id(client), client.push),
        RelayShare: lambda self, frame, client, session: self.files.on_share(
            frame, id(client), session, client.files, client.push),
        RelayFetch: lambda self, frame, client, session: self.files.on_fetch(
            frame, session, client.files, client.push),
        RelayDrop: lambda self, frame, client, session: self.files.on_drop(frame, id(client)),
    }


async def _answer(session: HubSession, frame: RelayHistory | RelaySearch,
                  ) -> tuple[str, list[Message]]:
    """A page of history or search results, only from channels this client may see."""
    hub = session.hub
    if isinstance(frame, RelaySearch):
        found = [(m, s) for m, s in await hub.search_async(frame.query)
                 if session.can_see(m.channel)]
        return encode_found(frame.req, found), [m for m, _ in found]
    if not session.can_see(frame.channel):
        return encode_page(frame.req, frame.channel, [], (), False), []
    try:
        msgs = await hub.history_async(frame.channel, RELAY_PAGE + 1, before=frame.before)
    except ValidationError:  # a "before" that is no clock stamp: nothing is before it
        msgs = []
    more = len(msgs) > RELAY_PAGE
    pending = await hub.pending_ids_async() if msgs else set()
    return (encode_page(frame.req, frame.channel, msgs[-RELAY_PAGE:], pending, more),
            msgs[-RELAY_PAGE:])


def visible(session: HubSession, channels) -> list[str]:
    """The channels a client is told about: all but other people's direct messages."""
    return [c for c in channels if session.can_see(c)]
