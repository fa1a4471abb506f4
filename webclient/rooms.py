"""Private rooms in the static web client: the ``ChatBackend`` room methods of ``RelayBackend``
(a mixin).

The browser build has no ``cryptography``, so the host seals and opens for this client, as it
does for its own tabs (``fletchat/room_frames.py``): the passphrase goes to the host in a
``room`` request, and every sealed message of an unlocked room comes after an ``opened`` frame
saying what it says. The passphrases are kept in this page's memory only, to unlock the rooms
again on the host after a reconnect (a new connection is a new session there, with no keys).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fletchat.conversation.relay_frames import RelayDone
from fletchat.events import RoomsUnlocked
from fletchat.model import Message, ValidationError, validate_channel
from fletchat.room_frames import MAX_PASSPHRASE_CHARS, Opened, RelayOpened, encode_client_room
from fletchat.rooms import SEALED_NO_KEY, SEALED_REFUSED, check_passphrase, is_sealed

UNLOCK_TRIES = 5  # a room unlocked again after a reconnect: tries while the host is busy ...
UNLOCK_RETRY_S = 2.0  # ... waiting this long, then twice as long, and so on
MAX_OPENED_KEPT = 5000  # opened texts remembered (oldest dropped; a page asked again has them)


def _trim(kept: dict) -> None:
    while len(kept) > MAX_OPENED_KEPT:
        kept.pop(next(iter(kept)))


class RelayRoomMethods:
    """Room methods for ``RelayBackend`` (which provides ``client``, ``_ask``, ``deliver``
    and ``name``)."""

    client: Any
    _ask: Callable[..., Any]
    deliver: Callable[[object], Any]

    def _rooms_init(self) -> None:
        self._passphrases: dict[str, str] = {}  # channel -> passphrase, of rooms unlocked here
        self._confirmed: set[str] = set()  # ... and unlocked on the host on this connection
        self._opened: dict[str, RelayOpened] = {}  # message id -> what the host opened
        self._refused: dict[str, str] = {}  # message id -> channel, of those that did not open
        self._unlocking: asyncio.Task | None = None
        self._connection = 0  # which connection an unlocking is for (a newer one stops it)
        self._not_again: dict[str, str] = {}  # rooms the host refused to unlock again, and why

    def reveal(self, msg: Message) -> tuple[str, str]:
        """As ``HubSession.reveal``, from what the host opened for this client."""
        if not is_sealed(msg.text):
            return msg.text, "plain"
        if msg.channel not in self._passphrases:
            return SEALED_NO_KEY, "no_key"
        if self._refused.get(msg.id) == msg.channel:
            return SEALED_REFUSED, "refused"
        opened = self._opened.get(msg.id)
        if opened is None or opened.channel != msg.channel:
            return SEALED_NO_KEY, "no_key"
        return opened.text, "open"

    def on_opened(self, frame: RelayOpened) -> None:
        """What a sealed message says: kept until its row is drawn (the message comes next).
        Refusals are kept apart: many junk sealed messages never push out a text that opened."""
        self._opened.pop(frame.id, None)  # an edit's newer text: the newest entry again
        self._refused.pop(frame.id, None)
        if frame.how is Opened.OPEN:
            self._opened[frame.id] = frame
            _trim(self._opened)
        else:
            self._refused[frame.id] = frame.channel
            _trim(self._refused)

    async def set_room_passphrase(self, channel: str, passphrase: str) -> None:
        """Unlock ``channel`` on the host (it derives the key: a moment, longer when others
        are unlocking too); ``ValidationError`` with the host's sentence when it refuses."""
        if getattr(self, "name", None) is None:
            raise ValidationError("Join the chat first.")
        channel = validate_channel(channel)
        check_passphrase(passphrase)  # the host's rules too: said at once, not after a round trip
        if len(passphrase) > MAX_PASSPHRASE_CHARS:
            raise ValidationError(f"A room passphrase has at most {MAX_PASSPHRASE_CHARS} characters.")
        if not self.client.is_open:
            raise ValidationError("Not connected to the host right now; try again in a moment.")
        await self._unlock(channel, passphrase)
        self._passphrases[channel] = passphrase
        self._confirmed.add(channel)
        self._not_again.pop(channel, None)

    async def _unlock(self, channel: str, passphrase: str) -> None:
        done = await self._ask(lambda req: encode_client_room(req, channel, passphrase))
        if not isinstance(done, RelayDone):
            raise ValidationError("The host did not answer; try again.")
        if done.error:
            raise ValidationError(done.error)

    def has_room_key(self, channel: str) -> bool:
        return channel in self._passphrases

    def check_sealed(self, channel: str) -> bool:
        """Whether what is sent to ``channel`` must be sealed (a room this page holds: once
        unlocked, for the page's life); ``ValidationError`` while the host has no key for it on
        this connection (after a reconnect, until it is unlocked there again): sent then, it
        would be posted in the clear."""
        if channel not in self._passphrases:
            return False
        if channel in self._confirmed:
            return True
        why = self._not_again.get(channel)
        if why is not None:
            raise ValidationError(f"The host could not unlock this private room again ({why}): "
                                  "unlock it with the lock before writing here.")
        raise ValidationError("This private room is being unlocked again on the host; "
                              "try again in a moment.")

    def connection_lost(self) -> None:
        """The connection ended: its session's keys went with it (nothing is sealed there now),
        and an unlocking still running is for a connection that is gone."""
        self._confirmed.clear()
        self._connection += 1
        if self._unlocking is not None:
            self._unlocking.cancel()
            self._unlocking = None

    def unlock_again(self) -> None:
        """A new connection (a new session on the host, with no keys): unlock every room this
        page holds again, each answer awaited; the view hears which opened and which could not."""
        self.connection_lost()
        if self._passphrases:
            self._unlocking = asyncio.ensure_future(self._unlock_all(self._connection))

    async def _unlock_all(self, connection: int) -> None:
        opened, lost = [], []
        for channel in list(self._passphrases):
            why = await self._unlock_one(connection, channel)
            if connection != self._connection:
                return  # another connection's turn now
            if why is None:
                self._confirmed.add(channel)
                self._not_again.pop(channel, None)
                opened.append(channel)
            elif why:
                self._not_again[channel] = why  # held all the same: nothing goes in the clear
                lost.append((channel, why))
        await self.deliver(RoomsUnlocked(tuple(opened), tuple(lost)))

    async def _unlock_one(self, connection: int, channel: str) -> str | None:
        """None when unlocked; "" when there is nothing to do (the room was unlocked anew
        meanwhile); else the host's last sentence. A busy host or no answer is tried again."""
        why = ""
        for attempt in range(UNLOCK_TRIES):
            passphrase = self._passphrases.get(channel)
            if passphrase is None or channel in self._confirmed or connection != self._connection:
                return ""
            try:
                await self._unlock(channel, passphrase)
            except ValidationError as err:
                why = str(err)
                if "try again" not in why.lower() or attempt == UNLOCK_TRIES - 1:
                    return why  # not busy, not unanswered (or the last try): final
                await asyncio.sleep(UNLOCK_RETRY_S * (attempt + 1))
                continue
            if self._passphrases.get(channel) != passphrase:  # given anew meanwhile: that one
                return ""
            return None
        return why  # (not reached: the last try returns)
