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
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..conversation.views import RowState
from ..events import IdentityWarning, Online
from ..files.views import FileView
from ..model import FileRef, Message

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
    files: bool = True  # attach files, images inline, downloads (docs/protocol.md "Files")
    voice: bool = True  # voice notes (record and send an audio file)
    conversation: bool = True  # replies, reactions, edit/delete, typing, read receipts, reach
    network_check: bool = True  # "Check network": the network doctor, run where the hub is


@runtime_checkable
class ChatBackend(Protocol):
    """One person's conversation, as the UI needs it."""

    capabilities: Capabilities

    @property
    def name(self) -> str | None:
        """The name joined under, None before joining."""

    # ---- the person ----
    def join(self, raw_name: str, owner: str = "") -> None:
        """Validate and join; ``ValidationError`` says what is wrong with the name. ``owner``:
        the browser's owner secret (``fletchat.owner``): what it writes only it edits."""

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

    async def pending_ids(self) -> set[str]:
        """Messages written here that no peer has confirmed yet (never read on the loop)."""

    def is_own(self, msg: Message) -> bool:
        """Written on this install (``written_by_me`` adds: by this person)."""

    # ---- private rooms ----
    def reveal(self, msg: Message) -> tuple[str, str]:
        """(text to show, "plain" | "open" | "no_key" | "refused")."""

    async def set_room_passphrase(self, channel: str, passphrase: str) -> None:
        """Derive the room key (slow: off the event loop) and keep it for this session;
        ``ValidationError`` says why not."""

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

    # ---- files ----
    async def share_files(self, paths: list[Path], caption: str, channel: str) -> Message:
        """Post ``paths`` (local files this process may read; copied into the blob store) with an
        optional caption; ``ValidationError`` with a clear text if refused (size, quota, count)."""

    def file_view(self, ref: FileRef) -> FileView:
        """This device's view of an attached file (state, progress, local path, thumbnail)."""

    async def fetch_file(self, ref: FileRef) -> None:
        """Download it now (the person's click); ``FileChanged`` events report progress."""

    def files_usage(self) -> tuple[int, int]:
        """(bytes used by files here, quota)."""

    def auto_download_limit(self) -> int:
        """Files up to this many bytes download here by themselves (``set_auto_download_limit``)."""

    def free_files_space(self) -> int:
        """Remove the files kept on this device over ``MAX_THUMB_BYTES`` (thumbnails stay; the
        rest can be downloaded again from whoever has them); the bytes freed."""

    def scratch_dir(self) -> Path | None:
        """Where a file made here before it is shared goes (a pasted image, a recorded voice
        note): a folder under this device's data dir; None where files are not kept here."""

    def set_auto_download_limit(self, n: int) -> None:
        """Files up to ``n`` bytes download by themselves (images and voice notes up to
        ``AUTO_MEDIA_BYTES`` even when ``n`` is lower: ``share.auto_wanted``)."""
    # ---- the conversation (replies, reactions, edit/delete, typing, read receipts) ----
    async def reply(self, parent: Message, raw_text: str, channel: str) -> Message | None:
        """Post an answer to ``parent`` (its quote travels with it); None for whitespace only;
        ``ValidationError`` if refused."""

    async def react(self, msg: Message, emoji: str) -> None:
        """Toggle this person's ``emoji`` on ``msg``; ``ValidationError`` for an unknown emoji
        or too many reactions."""

    async def edit(self, msg: Message, raw_text: str) -> None:
        """Replace the text of this person's own ``msg``; ``ValidationError`` when not allowed
        (not the author, too long, empty, deleted)."""

    async def delete(self, msg: Message) -> None:
        """Delete this person's own ``msg`` everywhere (a "message deleted" placeholder stays);
        ``ValidationError`` when not the author."""

    def row_state(self, msg: Message) -> RowState:
        """What ``msg``'s row shows: latest text, edited, deleted, reactions with who, reply."""

    def typing(self, channel: str) -> None:
        """The composer calls it on every keystroke; the backend throttles what it sends."""

    def typing_names(self, channel: str) -> list[str]:
        """Who is typing in ``channel`` now (never this person), earliest first."""

    def mark_read(self, channel: str, upto: Message) -> None:
        """This person has seen ``channel`` up to ``upto`` (sent only if receipts are on)."""

    def seen_by(self, msg: Message) -> list[str]:
        """Names of people whose read position reached ``msg`` (its author left out)."""

    def reach(self, msg: Message) -> tuple[int, int] | None:
        """(devices that hold ``msg``, devices known in the conversation), this one included;
        None when this backend cannot know it (the row then says nothing about devices)."""

    def set_conversation_prefs(self, read_receipts: bool, typing: bool) -> None:
        """This person's choices (``conversation.prefs.Prefs``): send read receipts / typing."""

    async def rename(self, raw_name: str) -> None:
        """Change this person's display name; others get a notice. ``ValidationError`` if bad
        or refused (a static client waits for the host's answer)."""

    # ---- events ----
    def subscribe(self, handler: EventHandler) -> None:
        """Call ``handler`` on the page's loop with every hub event (Message, RosterChanged,
        Delivered, ChannelsChanged, IdentityWarning; files.views.FileChanged; conversation:
        RowChanged, TypingChanged, ReadChanged from ``fletchat.conversation.views``)."""


def written_by_me(backend: ChatBackend, msg: Message) -> bool:
    """Written by this person on this install (its delivery marks are theirs to see; on a host,
    another tab's person wrote on this install too)."""
    return msg.author == backend.name and backend.is_own(msg)
