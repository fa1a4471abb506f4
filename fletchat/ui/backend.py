"""The one port between the UI and whatever keeps the conversation: ``ChatBackend``.

Host mode, the desktop window and the headless peer reach the hub in this process
(``HubBackend``, a thin adapter over ``HubSession``); the static web client reaches the host's hub
over ``/relay`` (``webclient/main.py``'s ``RelayBackend``). The UI never asks a backend what it can
do by probing attributes: each says so in ``capabilities``, and implements every method (one that
a capability turns off may answer with nothing, but is never missing). Pure: no flet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..events import IdentityWarning, Online
from ..model import Message

EventHandler = Callable[[object], Awaitable[None]]


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers; the UI hides what is off (never by probing the backend)."""

    channels: bool = True  # channels, direct messages, unread counts
    search: bool = True
    rooms: bool = True  # private rooms (a passphrase per channel, sealed in this session)
    older: bool = True  # older pages of history
    delivery: bool = True  # "not delivered yet" / "delivered" on messages written here
    trust: bool = True  # own fingerprint, block/unblock, identity warnings, "unverified"
    network_check: bool = True  # "Check network": the network doctor, run where the hub is


@runtime_checkable
class ChatBackend(Protocol):
    """One person's conversation, as the UI needs it."""

    capabilities: Capabilities

    @property
    def name(self) -> str | None:
        """The name joined under, None before joining."""

    # ---- the person ----
    def join(self, raw_name: str) -> None:
        """Validate and join; ``ValidationError`` says what is wrong with the name."""

    async def send(self, raw_text: str, channel: str) -> Message | None:
        """Post; None for whitespace only; ``ValidationError`` if refused (the text is kept)."""

    def leave(self) -> None: ...

    def rejoin(self) -> None: ...

    # ---- channels ----
    def channels(self) -> list[str]: ...

    def create_channel(self, raw: str) -> str: ...

    def direct_channel(self, other: str) -> str: ...

    def can_see(self, channel: str) -> bool: ...

    # ---- history ----
    async def history(self, channel: str, limit: int, before: str = "") -> list[Message]:
        """A page, oldest first; ``before`` is the first shown message's ``hlc``."""

    async def search(self, query: str) -> list[tuple[Message, str]]:
        """(message, snippet with MARK_START/MARK_END), newest first, only from channels
        this person can see."""

    def pending_ids(self) -> set[str]:
        """Messages written here that no peer has confirmed yet."""

    def is_own(self, msg: Message) -> bool:
        """Written on this install (so it has a delivery status)."""

    # ---- private rooms ----
    def reveal(self, msg: Message) -> tuple[str, str]:
        """(text to show, "plain" | "open" | "no_key" | "refused")."""

    def set_room_passphrase(self, channel: str, passphrase: str) -> None: ...

    def has_room_key(self, channel: str) -> bool: ...

    # ---- people and trust ----
    def online(self) -> list[Online]: ...

    def lan_peers(self) -> list[Online]: ...

    def problems(self) -> list[str]:
        """Why history is not kept, why others may not find this device ("" items left out)."""

    async def check_network(self) -> str:
        """Run the network doctor where the hub is; its findings in plain words."""

    @property
    def fingerprint(self) -> str: ...

    def is_unverified(self, msg: Message) -> bool: ...

    def identity_warnings(self) -> list[IdentityWarning]: ...

    def forget_peer(self, peer_id: str) -> None: ...

    def block(self, peer_id: str) -> None: ...

    def unblock(self, peer_id: str) -> None: ...

    def blocked_peers(self) -> dict[str, str]: ...

    # ---- events ----
    def subscribe(self, handler: EventHandler) -> None:
        """Call ``handler`` on the page's loop with every hub event (Message, RosterChanged,
        Delivered, ChannelsChanged, IdentityWarning)."""
