"""Private rooms in the static web client: the ``ChatBackend`` room methods of ``RelayBackend``
(a mixin).

The browser build has no ``cryptography``, so the host seals and opens for this client, as it
does for its own tabs (``fletchat/room_frames.py``): the passphrase goes to the host in a
``room`` request, and every sealed message of an unlocked room comes after an ``opened`` frame
saying what it says. The passphrases are kept in this page's memory only, to unlock the rooms
again on the host after a reconnect (a new connection is a new session there, with no keys).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fletchat.conversation.relay_frames import RelayDone
from fletchat.model import Message, ValidationError, validate_channel
from fletchat.room_frames import Opened, RelayOpened, encode_client_room
from fletchat.rooms import SEALED_NO_KEY, SEALED_REFUSED, check_passphrase, is_sealed

MAX_OPENED_KEPT = 5000  # opened texts remembered (oldest dropped; a page asked again has them)


class RelayRoomMethods:
    """Room methods for ``RelayBackend`` (which provides ``client``, ``_ask`` and ``name``)."""

    client: Any
    _ask: Callable[..., Any]

    def _rooms_init(self) -> None:
        self._passphrases: dict[str, str] = {}  # channel -> passphrase, of rooms unlocked here
        self._opened: dict[str, RelayOpened] = {}  # message id -> what the host opened

    def reveal(self, msg: Message) -> tuple[str, str]:
        """As ``HubSession.reveal``, from what the host opened for this client."""
        if not is_sealed(msg.text):
            return msg.text, "plain"
        opened = self._opened.get(msg.id)
        if msg.channel not in self._passphrases or opened is None or opened.channel != msg.channel:
            return SEALED_NO_KEY, "no_key"
        if opened.how is Opened.OPEN:
            return opened.text, "open"
        return SEALED_REFUSED, "refused"

    def on_opened(self, frame: RelayOpened) -> None:
        """What a sealed message says: kept until its row is drawn (the message comes next)."""
        self._opened.pop(frame.id, None)  # an edit's newer text: the newest entry again
        self._opened[frame.id] = frame
        if len(self._opened) > MAX_OPENED_KEPT:
            self._opened.pop(next(iter(self._opened)))

    async def set_room_passphrase(self, channel: str, passphrase: str) -> None:
        """Unlock ``channel`` on the host (it derives the key: a moment, longer when others
        are unlocking too); ``ValidationError`` with the host's sentence when it refuses."""
        if getattr(self, "name", None) is None:
            raise ValidationError("Join the chat first.")
        channel = validate_channel(channel)
        check_passphrase(passphrase)  # the host's rule too: said at once, not after a round trip
        if not self.client.is_open:
            raise ValidationError("Not connected to the host right now; try again in a moment.")
        done = await self._ask(lambda req: encode_client_room(req, channel, passphrase))
        if not isinstance(done, RelayDone):
            raise ValidationError("The host did not answer; try again.")
        if done.error:
            raise ValidationError(done.error)
        self._passphrases[channel] = passphrase

    def has_room_key(self, channel: str) -> bool:
        return channel in self._passphrases

    def room_frames(self) -> list[str]:
        """The rooms to unlock again on a new connection (their answers are not awaited)."""
        return [encode_client_room(0, c, p) for c, p in self._passphrases.items()]
