"""Host mode's side of private rooms for static clients (``room_frames.py`` has the frames): a
client's passphrase becomes its relay session's room key, derived off the loop with the same
bounds as a tab's (``room_keys.DERIVER``: per address and in all); what the session then sends
there is sealed by ``HubSession`` as a tab's is, and every sealed message of the room it is sent
(live, in a page, a search, an edited row) is preceded by an ``opened`` frame saying what it says.
Runs on the relay's loop, like the rest of ``relay.py``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .conversation.relay_frames import encode_done
from .model import KIND_CHAT, Message, ValidationError
from .room_frames import Opened, RelayRoom, encode_opened, shown_text
from .room_keys import DERIVER, RoomKeyDeriver
from .rooms import is_sealed

if TYPE_CHECKING:
    from .session import HubSession

MAX_ROOMS_PER_CLIENT = 64  # rooms one connection may unlock (each costs every message a lookup)


NOT_UNLOCKED = ("This private room is not unlocked on the host for this page: unlock it again "
                "(the lock by its name).")


def unsealed(session: HubSession, channel: str, sealed: bool) -> bool:
    """The client asked for ``channel``'s seal (``sealed``) but its session has no key there: what
    it sent would go out in the clear (a ``room`` that failed after a reconnect), so it is refused."""
    return sealed and channel not in session.room_keys


def opened_frames(session: HubSession, msgs: Iterable[Message],
                  memo: dict[tuple[str, bytes], str] | None = None) -> list[str]:
    """``opened`` frames for the sealed chat messages of ``msgs`` in rooms ``session`` holds a
    key for (none for the rest): sent just before the messages themselves. ``memo`` shares the
    work between the clients one event goes to: a message is opened once per key, not once
    per client."""
    out = []
    memo = {} if memo is None else memo
    for msg in msgs:
        key = session.room_keys.get(msg.channel)
        if msg.kind != KIND_CHAT or key is None or not is_sealed(msg.text):
            continue
        frame = memo.get((msg.id, key))
        if frame is None:
            text, how = session.reveal(msg)
            shown = shown_text(text) if how == Opened.OPEN else None
            frame = memo[(msg.id, key)] = (
                encode_opened(msg.id, msg.channel, Opened.OPEN, shown) if shown is not None
                else encode_opened(msg.id, msg.channel, Opened.REFUSED))
        out.append(frame)
    return out


async def on_room(frame: RelayRoom, client: Any, session: HubSession,
                  deriver: RoomKeyDeriver | None = None) -> None:
    """Derive the room key for the client's passphrase and keep it in its session; ``done``
    says whether that worked (a short passphrase, the deriver busy: the sentence to show).
    Awaited before the client's next frame is read, like every request."""
    error = ""
    try:
        if not session.can_see(frame.channel):
            raise ValidationError("Not one of your channels.")
        if frame.channel not in session.room_keys and len(
                session.room_keys) >= MAX_ROOMS_PER_CLIENT:
            raise ValidationError(f"You have {MAX_ROOMS_PER_CLIENT} private rooms open here "
                                  "already.")
        key = await (deriver or DERIVER).derive(client, frame.channel, frame.passphrase, client.address)
        session.set_room_key(frame.channel, key)
    except ValidationError as err:
        error = str(err)
    client.push(encode_done(frame.req, error))
