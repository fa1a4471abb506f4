"""One person's view of the hub (a browser tab, the desktop window, the headless peer, a relay
client), and the channel-name rules they use. The UI only ever talks to a ``HubSession``."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from .aio import later
from .budgets import Refusal
from .conversation.session_part import ConvSessionMethods
from .model import (
    DEFAULT_CHANNEL,
    KIND_CHAT,
    KIND_JOIN,
    KIND_LEAVE,
    MAX_NAME_CHARS,
    Message,
    ValidationError,
    name_key,
    new_id,
    validate_channel,
    validate_name,
)
from .owner import DEVICE_OWNER, new_owner_secret, owner_digest
from .protocol import TokenBucket

if TYPE_CHECKING:
    from .hub import Hub

CHANNEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
DM_PREFIX = "@"


def channel_name(raw: str) -> str:
    """A new channel's name: lower-case letters, digits, - and _, up to 32; "#" is optional."""
    name = raw.strip().lstrip("#").strip().lower()
    if not CHANNEL_NAME_RE.match(name):
        raise ValidationError(
            "Channel names are 1-32 characters: letters, digits, - and _ (e.g. #lunch)."
        )
    return name


def dm_channel(a: str, b: str) -> str:
    """The channel of two: the same name whoever opens it ("@Ann+Bob")."""
    first, second = sorted((validate_name(a), validate_name(b)))
    return validate_channel(f"{DM_PREFIX}{first}+{second}")


def dm_members(channel: str) -> tuple[str, ...]:
    """The two names of a direct-message channel, () for an ordinary channel."""
    if not channel.startswith(DM_PREFIX) or "+" not in channel:
        return ()
    first, _, second = channel[len(DM_PREFIX):].partition("+")
    return (first, second)



# Local sessions (a tab, the window, a relay client): how fast one person may post, once the
# node turns it on (``Hub.session_rate``). The headless peer is exempt: it is a script its owner
# runs (bots, tests pipe bursts into it), not a person on someone else's browser.
SESSION_RATE_PER_SECOND = 10.0
SESSION_BURST = 20.0
SESSION_RATE_EXEMPT_DEVICES = ("headless",)
# Channels this device lets its own people create, in all (a new channel redraws every tab's
# list; a host's tabs post without the LAN's per-origin quota of 20 a day).
MAX_LOCAL_CHANNELS = 200


class HubSession(ConvSessionMethods):
    """One person's view of the hub (a browser tab, the desktop window, the headless peer);
    replies, reactions, edits, deletes, typing and read marks: ``ConvSessionMethods``."""

    def __init__(self, hub: Hub, key: str | None = None, device: str = "browser",
                 address: str = "") -> None:
        self.hub = hub
        self.key = key or new_id()
        self.device = device
        self.address = address  # the client's IP (a tab's, a relay client's); "" on the device
        self._announced = False  # this join got a history line (``announce``): so will its leave
        self.name: str | None = None
        self.last_name: str | None = None
        # Whose messages this session may edit or delete (``authors``), from its join: a digest
        # of the browser's secret; a client without one gets a secret of its own (its messages
        # are its alone); the device's own people without one (headless) are ``DEVICE_OWNER``.
        self.owner: bytes | None = None
        self._owner_lasts = False  # the owner outlives the session (a browser's kept secret)
        # Private rooms (fletchat/rooms.py): channel -> key, kept for this session only.
        self.room_keys: dict[str, bytes] = {}
        self._leaving: asyncio.TimerHandle | None = None  # a leave waiting out its grace
        rate = getattr(hub, "session_rate", None)  # the web client's mirror hub has none
        self._bucket = (
            TokenBucket(*rate, clock=time.monotonic)
            if rate is not None and device not in SESSION_RATE_EXEMPT_DEVICES
            else None
        )

    def join(self, raw_name: str, owner_secret: str = "") -> Message:
        """Validate the name, announce the join to everyone; raises ``ValidationError``. A tab
        of the same name whose leave is still waiting out its grace (a reload made a new
        session) hands over quietly: neither its leave nor this join is announced. Past the
        node's budget for this address (``budgets.join_lines_budget``) the join is not announced
        either, nor its leave. ``owner_secret``: the browser's (``authors``), kept as a digest."""
        name = validate_name(raw_name)
        if not name_key(name):  # nothing but characters that show as nothing
            raise ValidationError("Name cannot be blank!")
        owner = self._owner_for(owner_secret)
        self.check_name_free(name, owner)
        self.owner = owner  # only once joined: a refused join changes nothing
        # a secret of its own dies with the session: its name is not held for it after
        self._owner_lasts = bool(owner_secret) or self._owner_lasts or owner == DEVICE_OWNER
        self.name = self.last_name = name
        self.hub.local_owners[self.key] = self.owner
        msg = Message.presence(KIND_JOIN, name, self.hub.peer_id)
        leaving = self.hub.leaving.get(name)
        if (leaving is not None and leaving is not self and leaving._leaving is not None
                and leaving.owner == self.owner):  # the same browser back, not just its name
            del self.hub.leaving[name]
            leaving._leaving.cancel()
            leaving._leaving = None
            leaving.name = None
            self._announced = leaving._announced  # its leave is said (or not) as its join was
            self.hub.local_owners.pop(leaving.key, None)
            self.hub.session_left(leaving.key)
            self.hub.session_joined(self.key, name, self.device)
            return msg
        self.hub.session_joined(self.key, name, self.device)
        budget = getattr(self.hub, "announcements", None)  # the node's; tests' hubs have none
        self._announced = (budget is None or self.device in SESSION_RATE_EXEMPT_DEVICES
                           or budget.allow(self.address))
        return (self.hub.post(msg) or msg) if self._announced else msg

    def _owner_for(self, secret: str) -> bytes:
        """Who this session is (``authors``) once it joins with ``secret``."""
        if secret:
            return owner_digest(secret)
        if self.owner is not None:  # joined before: the same
            return self.owner
        if self.address:  # a client that gave none: a secret of this session's own
            return owner_digest(new_owner_secret())
        return DEVICE_OWNER

    def check_name_free(self, name: str, owner: bytes | None, renaming: bool = False) -> None:
        """``ValidationError`` when ``name`` (as ``name_key`` compares) is someone else's here:
        online in another session of another owner (a second tab or a reload of the same
        browser is not another; for a rename any other session is), online on a connected
        device, or held for the browser that left under it (``owner.NAME_HOLD_SECONDS``)."""
        key, owners = name_key(name), self.hub.local_owners
        taken = any(name_key(o.name) == key and o.key != self.key
                    and (renaming or not o.local or owners.get(o.key) != owner)
                    for o in self.hub.online())
        if taken or self.hub.name_holds.held_for_other(key, owner):
            raise ValidationError(f"{name} is already someone's name here: pick another.")

    def spend(self) -> None:
        """One post's worth of the send budget (sends, replies, file messages, reactions, edits,
        deletes, new channels, renames: each a stored message every device gets): this person's,
        then this address's and the device's (``budgets.posts_budget``); ``ValidationError``
        when one is spent."""
        if self._bucket is None:  # the headless peer, a hub with no limits (tests)
            return
        if not self._bucket.ready():
            raise ValidationError("You are sending too fast. Wait a moment and try again.")
        posts = getattr(self.hub, "posts", None)
        refusal = posts.spend(self.address) if posts is not None else Refusal.NONE
        if refusal is Refusal.ADDRESS:
            raise ValidationError("Too many messages from your address (this phone or computer) "
                                  "for now. Wait and try again.")
        if refusal is Refusal.DEVICE:
            raise ValidationError("This chat's host has taken too many messages for now "
                                  "(everyone together). Wait and try again.")
        self._bucket.allow()

    def send(self, raw_text: str, channel: str = DEFAULT_CHANNEL) -> Message | None:
        """Post a chat message. ``None`` for whitespace only; ``ValidationError`` if refused."""
        if self.name is None:
            raise ValidationError("Join the chat first.")
        if not raw_text or not raw_text.strip():
            return None
        self.spend()
        msg = Message.chat(self.name, raw_text, self.hub.peer_id, validate_channel(channel))
        key = self.room_keys.get(msg.channel)
        if key is not None:  # a private room: only the sealed text leaves this session
            from .rooms import seal

            msg = replace(msg, text=seal(key, msg.channel, msg.id, msg.text))
        self.typing_ended(msg.channel)
        return self.post_own(msg)

    def set_room_passphrase(self, channel: str, passphrase: str) -> None:
        """Make ``channel`` a private room for this session: what it sends there is sealed, and
        sealed messages there open with this passphrase. ``ValidationError`` if too short."""
        from .rooms import room_key

        channel = validate_channel(channel)
        self.set_room_key(channel, room_key(channel, passphrase))

    def set_room_key(self, channel: str, key: bytes) -> None:
        """``set_room_passphrase`` with the key already derived (``room_keys.RoomKeyDeriver``:
        off the event loop)."""
        self.room_keys[validate_channel(channel)] = key

    def forget_room(self, channel: str) -> None:
        self.room_keys.pop(channel, None)

    def reveal(self, msg: Message) -> tuple[str, str]:
        """The text to show for ``msg`` and how it was sealed: ("...", "plain") for ordinary
        text, "open" (opened with this session's room key), "no_key" or "refused" (does not
        authenticate: wrong passphrase, altered, or moved from another channel or id)."""
        from .rooms import SEALED_NO_KEY, SEALED_REFUSED, RoomError, is_sealed, open_sealed

        if not is_sealed(msg.text):
            return msg.text, "plain"
        key = self.room_keys.get(msg.channel)
        if key is None:
            return SEALED_NO_KEY, "no_key"
        text_id, text = msg.id, msg.text
        if msg.kind == KIND_CHAT:  # an author's edit in the room: its text, sealed under its id
            state = self.hub.conv.row_state(msg)
            if state.edited:  # (an edit left in the clear does not open: "refused")
                text_id, text = state.text_id, state.text
        try:
            return open_sealed(key, msg.channel, text_id, text), "open"
        except RoomError:
            return SEALED_REFUSED, "refused"

    def create_channel(self, raw: str) -> str:
        """Create (or just open) ``#name``; the LAN learns it from the announcement."""
        if self.name is None:
            raise ValidationError("Join the chat first.")
        name = channel_name(raw)
        known = self.hub.channels()
        if name not in known:
            if sum(not c.startswith(DM_PREFIX) for c in known) >= MAX_LOCAL_CHANNELS:
                raise ValidationError(
                    f"This chat has {MAX_LOCAL_CHANNELS} channels already: use one of them.")
            self.spend()
            self.hub.post(Message.channel_created(self.name, self.hub.peer_id, name))
        return name

    def direct_channel(self, other: str) -> str:
        """The direct-message channel between this person and ``other``."""
        if self.name is None:
            raise ValidationError("Join the chat first.")
        if other.strip() == self.name:
            raise ValidationError("That is you.")
        return dm_channel(self.name, other[:MAX_NAME_CHARS])

    def can_see(self, channel: str) -> bool:
        """Direct-message channels are listed only for their two members."""
        members = dm_members(channel)
        return not members or (self.name is not None and self.name in members)

    def leave(self, grace: float = 0.0) -> None:
        """Announce the leave (tab closed, app exiting). Safe to call twice. With ``grace``
        (a browser tab that dropped its connection: a reload, a network blip) the leave waits
        that long and is dropped if the tab comes back (``rejoin``): no "left" then "joined"
        for a reload (issue 17)."""
        if self.name is None:
            return
        if grace > 0:
            if self._leaving is None:  # outside the tab's context; None when no loop runs
                self._leaving = later(grace, self.leave)
                if self._leaving is not None:
                    self.hub.leaving[self.name] = self
            if self._leaving is not None:
                return
        if self._leaving is not None:
            self._leaving.cancel()
            self._leaving = None
        if self.hub.leaving.get(self.name) is self:
            del self.hub.leaving[self.name]
        name, self.name = self.name, None
        self.hub.local_owners.pop(self.key, None)
        if self.owner is not None and self._owner_lasts:
            self.hub.name_holds.hold(name_key(name), self.owner)
        self.hub.session_left(self.key)
        if self._announced:
            self.hub.post(Message.presence(KIND_LEAVE, name, self.hub.peer_id))

    def rejoin(self) -> Message | None:
        """After a dropped connection comes back: join again under the same name, if any (not
        announced when the leave was still waiting out its grace: nobody saw it go)."""
        if self._leaving is not None:
            self._leaving.cancel()
            self._leaving = None
            if self.hub.leaving.get(self.name or "") is self:
                del self.hub.leaving[self.name or ""]
            return None
        if self.name is None and self.last_name is not None:
            return self.join(self.last_name)
        return None

    @property
    def joined(self) -> bool:
        return self.name is not None
