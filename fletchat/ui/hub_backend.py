"""``ChatBackend`` for a hub in this process: a thin adapter over ``HubSession`` (host mode's tabs,
the desktop window). Every method delegates; nothing here decides anything the hub owns."""

from __future__ import annotations

import asyncio
from typing import Any

from ..events import IdentityWarning, Online
from ..hub import PUBSUB_TOPIC, HubSession
from ..memstore import MemoryStore
from ..model import KIND_CHAT, Message
from .backend import Capabilities, EventHandler

UNVERIFIED = "unverified"


class HubBackend:
    """One session of the hub, seen through the UI's port."""

    def __init__(self, session: HubSession, pubsub: Any = None) -> None:
        self.session = session
        self.hub = session.hub
        self.pubsub = pubsub
        has_store = not isinstance(self.hub.store, MemoryStore)  # an outbox that lasts
        self.capabilities = Capabilities(delivery=has_store, trust=self.hub.trust is not None)

    @property
    def name(self) -> str | None:
        return self.session.name

    def join(self, raw_name: str) -> None:
        self.session.join(raw_name)

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
        return await self.hub.history_async(channel, limit, before=before)

    async def search(self, query: str) -> list[tuple[Message, str]]:
        found = await self.hub.search_async(query)
        return [(m, s) for m, s in found if self.session.can_see(m.channel)]

    def pending_ids(self) -> set[str]:
        return self.hub.pending_ids()

    def is_own(self, msg: Message) -> bool:
        return msg.origin == self.hub.peer_id

    def reveal(self, msg: Message) -> tuple[str, str]:
        return self.session.reveal(msg)

    def set_room_passphrase(self, channel: str, passphrase: str) -> None:
        self.session.set_room_passphrase(channel, passphrase)

    def has_room_key(self, channel: str) -> bool:
        return channel in self.session.room_keys

    def online(self) -> list[Online]:
        return self.hub.online()

    def lan_peers(self) -> list[Online]:
        return self.hub.lan_peers()

    def problems(self) -> list[str]:
        return [p for p in (self.hub.store_error, self.hub.lan_warning) if p]

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

    def subscribe(self, handler: EventHandler) -> None:
        async def on_topic(topic: str, event: object) -> None:
            await handler(event)

        if self.pubsub is not None:
            self.pubsub.subscribe_topic(PUBSUB_TOPIC, on_topic)
