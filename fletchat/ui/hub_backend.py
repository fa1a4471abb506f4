"""``ChatBackend`` for a hub in this process: a thin adapter over ``HubSession`` (host mode's tabs,
the desktop window). Every method delegates; nothing here decides anything the hub owns."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..conversation.views import RowState
from ..events import IdentityWarning, Online
from ..files.views import FileState, FileView
from ..hub import PUBSUB_TOPIC, HubSession
from ..memstore import MemoryStore
from ..model import KIND_CHAT, FileRef, Message, ValidationError, validate_channel
from ..room_keys import DERIVER
from .backend import Capabilities, EventHandler

UNVERIFIED = "unverified"


class HubBackend:
    """One session of the hub, seen through the UI's port."""

    def __init__(self, session: HubSession, pubsub: Any = None, address: str = "") -> None:
        self.session = session
        self.address = address  # the browser's IP in host mode: bounds its share of slow work
        self.hub = session.hub
        self.pubsub = pubsub
        has_store = not isinstance(self.hub.store, MemoryStore)  # an outbox that lasts
        on = self.hub.files is not None
        self.capabilities = Capabilities(delivery=has_store, trust=self.hub.trust is not None,
                                         files=on, voice=on)

    @property
    def name(self) -> str | None:
        return self.session.name

    def join(self, raw_name: str, owner: str = "") -> None:
        self.session.join(raw_name, owner)

    async def send(self, raw_text: str, channel: str) -> Message | None:
        # Sending stores the message (SQLite): off the event loop.
        return await asyncio.to_thread(self.session.send, raw_text, channel)

    def leave(self) -> None:
        self.session.leave()

    def rejoin(self) -> None:
        self.session.rejoin()

    def channels(self) -> list[str]:
        return self.hub.channels()

    def create_channel(self, raw: str) -> str:
        return self.session.create_channel(raw)

    def direct_channel(self, other: str) -> str:
        return self.session.direct_channel(other)

    def can_see(self, channel: str) -> bool:
        return self.session.can_see(channel)

    async def history(self, channel: str, limit: int, before: str = "") -> list[Message]:
        page = await self.hub.history_async(channel, limit, before=before)
        if self.hub.files is not None:  # sealed files shown from history can then be opened
            self.hub.files.note_many(page)
        return page

    async def search(self, query: str) -> list[tuple[Message, str]]:
        found = await self.hub.search_async(query)
        shown = [(m, s) for m, s in found if self.session.can_see(m.channel)]
        if self.hub.files is not None:
            self.hub.files.note_many(m for m, _ in shown)
        return shown

    async def pending_ids(self) -> set[str]:
        return await self.hub.pending_ids_async()

    def is_own(self, msg: Message) -> bool:
        return msg.origin == self.hub.peer_id

    def reveal(self, msg: Message) -> tuple[str, str]:
        return self.session.reveal(msg)

    async def set_room_passphrase(self, channel: str, passphrase: str) -> None:
        channel = validate_channel(channel)
        key = await DERIVER.derive(self, channel, passphrase, self.address)
        self.session.set_room_key(channel, key)

    def has_room_key(self, channel: str) -> bool:
        return channel in self.session.room_keys

    def online(self) -> list[Online]:
        return self.hub.online()

    def lan_peers(self) -> list[Online]:
        return self.hub.lan_peers()

    def problems(self) -> list[str]:
        return self.hub.problems()

    async def check_network(self) -> str:
        check = self.hub.network_check
        if check is None:
            return ("This host runs without the LAN (started with --no-lan): only people who "
                    "open this page chat here, so there is no network to check.")
        diagnosis = await check()
        if diagnosis.ok:
            return "The network looks fine: multicast works and every device found answers."
        return diagnosis.text().replace("FIX ", "").replace("ok  ", "")

    @property
    def fingerprint(self) -> str:
        return self.hub.fingerprint

    def is_unverified(self, msg: Message) -> bool:
        if msg.kind != KIND_CHAT or self.hub.trust is None or self.is_own(msg):
            return False
        return self.hub.message_status(msg) == UNVERIFIED

    def identity_warnings(self) -> list[IdentityWarning]:
        return self.hub.identity_warnings()

    def forget_peer(self, peer_id: str) -> None:
        self.hub.forget_peer(peer_id)

    def block(self, peer_id: str) -> None:
        self.hub.block(peer_id)

    def unblock(self, peer_id: str) -> None:
        self.hub.unblock(peer_id)

    def blocked_peers(self) -> dict[str, str]:
        return self.hub.blocked_peers()

    # ---- files (fletchat/files/share.py does the work) ----
    def _files(self) -> Any:
        if self.hub.files is None:
            raise ValidationError("File sharing needs a data folder (it is off here).")
        return self.hub.files

    async def share_files(self, paths: list[Path], caption: str, channel: str) -> Message:
        return await self._files().share(self.session, paths, caption, channel)

    def file_view(self, ref: FileRef) -> FileView:
        if self.hub.files is None:
            return FileView(FileState.FAILED, 0, ref.size, reason="File sharing is off here.")
        return self.hub.files.view(ref, self.session.room_keys)

    async def fetch_file(self, ref: FileRef) -> None:
        await self._files().fetch_ref(ref, self.session.room_keys)

    def files_usage(self) -> tuple[int, int]:
        return (0, 0) if self.hub.files is None else self.hub.files.usage()

    def auto_download_limit(self) -> int:
        return 0 if self.hub.files is None else self.hub.files.auto_limit

    def free_files_space(self) -> int:
        return 0 if self.hub.files is None else self.hub.files.free_space()

    def scratch_dir(self) -> Path | None:
        return None if self.hub.files is None else self.hub.files.scratch()

    def set_auto_download_limit(self, n: int) -> None:
        if self.hub.files is not None:
            self.hub.files.set_auto_download_limit(n)
    # ---- the conversation (replies, reactions, edit/delete, typing, read receipts) ----
    async def reply(self, parent: Message, raw_text: str, channel: str) -> Message | None:
        return await asyncio.to_thread(self.session.reply, parent, raw_text, channel)

    async def react(self, msg: Message, emoji: str) -> None:
        await asyncio.to_thread(self.session.react, msg, emoji)

    async def edit(self, msg: Message, raw_text: str) -> None:
        await asyncio.to_thread(self.session.edit, msg, raw_text)

    async def delete(self, msg: Message) -> None:
        await asyncio.to_thread(self.session.delete, msg)

    def row_state(self, msg: Message) -> RowState:
        return self.hub.conv.row_state(msg, (self.hub.peer_id, self.session.name or ""))

    def typing(self, channel: str) -> None:
        self.session.typing(channel)

    def typing_names(self, channel: str) -> list[str]:
        return self.session.typing_names(channel)

    def mark_read(self, channel: str, upto: Message) -> None:
        self.session.mark_read(channel, upto)

    def seen_by(self, msg: Message) -> list[str]:
        return self.hub.conv.seen_by(msg)

    def reach(self, msg: Message) -> tuple[int, int]:
        return self.hub.reach(msg)

    def set_conversation_prefs(self, read_receipts: bool, typing: bool) -> None:
        self.session.send_read_receipts = read_receipts
        self.session.send_typing = typing

    async def rename(self, raw_name: str) -> None:
        self.session.rename(raw_name)

    def subscribe(self, handler: EventHandler) -> None:
        async def on_topic(topic: str, event: object) -> None:
            if self.hub.screens_off:  # queued before host mode began to stop: nobody will see it
                return
            await handler(event)

        if self.pubsub is not None:
            self.pubsub.subscribe_topic(PUBSUB_TOPIC, on_topic)
