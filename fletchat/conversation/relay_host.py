"""Host mode's side of the relay's conversation frames: run a static client's ``conv`` action
through its own session (the same rules as everywhere), and push rows, typing and read marks to
the clients that may see the channel. Runs on the relay's loop, like the rest of ``relay.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..model import DEFAULT_CHANNEL, ROW_KINDS, Message, ValidationError
from .commands import act_on
from .relay_frames import RelayConv, encode_done, encode_marks, encode_row, encode_typing
from .views import ReadChanged, RowChanged, TypingChanged

if TYPE_CHECKING:
    from ..session import HubSession


def _row_frame(session: HubSession, msg: Message) -> str:
    return encode_row(session.hub.conv.row_state(msg, (session.hub.peer_id, session.name or "")))


def conv_rows(session: HubSession, msgs: Iterable[Message]) -> list[str]:
    """``row`` frames for the messages whose row differs from the message alone."""
    conv = session.hub.conv
    return [_row_frame(session, m) for m in msgs
            if m.conv is not None or conv.events_for(m.id)]


def conv_marks(session: HubSession, channel: str) -> list[str]:
    """The read positions in ``channel`` as a ``marks`` frame (none if nobody has read there):
    sent with a page of it, so "seen by" is right before anyone reads further."""
    if not session.can_see(channel):
        return []
    marks = session.hub.conv.marks_in(channel)
    return [encode_marks(channel, marks)] if marks else []


def conv_fan_out(clients: Iterable[Any], event: RowChanged | TypingChanged | ReadChanged) -> None:
    clients = [c for c in clients if c.session.can_see(event.channel or DEFAULT_CHANNEL)]
    if not clients:
        return
    hub = clients[0].session.hub
    if isinstance(event, TypingChanged):
        for c in clients:
            c.push(encode_typing(event.channel, event.names))
    elif isinstance(event, ReadChanged):
        text = encode_marks(event.channel, hub.conv.marks_in(event.channel))
        for c in clients:
            c.push(text)
    else:
        found = hub.find(event.message_id)
        if found is not None:
            from ..relay_rooms import opened_frames  # an edit in a private room: its new text

            opened: dict[tuple[str, bytes], str] = {}  # once per key, not per client
            for c in clients:
                for frame in [*opened_frames(c.session, [found[0]], opened),
                              _row_frame(c.session, found[0])]:
                    c.push(frame)


# Actions that read or write the store (a message looked up, a post): on a worker thread, as
# the tabs' do (hub_backend.py); typing and read marks stay on the loop (in memory, timers).
_STORING_OPS = ("rename", "reply", "react", "edit", "delete")


async def on_conv(frame: RelayConv, client: Any, session: HubSession) -> None:
    """Do what the client asked; ``done`` says whether it worked (the connection stays open).
    Awaited before the client's next frame is read: one action at a time per connection."""
    error = ""
    try:
        if frame.op in _STORING_OPS:
            await asyncio.to_thread(_run, frame, session)
        else:
            _run(frame, session)
    except ValidationError as err:
        error = str(err)
    client.push(encode_done(frame.req, error))


def _run(frame: RelayConv, session: HubSession) -> None:
    if not session.can_see(frame.channel):
        raise ValidationError("Not one of your channels.")
    from ..relay_rooms import NOT_UNLOCKED, unsealed

    if unsealed(session, frame.channel, frame.sealed):  # a reply or edit would go in the clear
        raise ValidationError(NOT_UNLOCKED)
    if frame.op == "typing":
        session.typing(frame.channel)
        return
    if frame.op == "rename":
        session.rename(frame.text)
        return
    if frame.op == "read":
        if session.name is not None and session.send_read_receipts:
            session.hub.conv.local_read(session.name, frame.channel, frame.target)
        return
    found = session.hub.find(frame.target)
    if found is None or found[0].kind not in ROW_KINDS or not session.can_see(found[0].channel):
        raise ValidationError("That message is not here.")
    act_on(session, frame.op, found[0], frame.text, frame.channel)
