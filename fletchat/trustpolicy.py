"""What the hub asks of trust (keys, blocks, message status), with a null object for a node
without an identity, so the hub has no ``trust is None`` branches.

``trust.py`` (owned by the mesh side) keeps the keys; this is the hub's narrow view of it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from .events import IdentityWarning
from .model import Message, ValidationError


class HubTrust(Protocol):
    """The hub's narrow view of trust (keys known, blocks, a message's status). Not the mesh's
    ``fletchat.peer.policy.TrustPolicy`` (TLS, key proofs, signatures): ``trust.Trust`` serves
    both, the hub through ``KeyTrust`` below."""

    fingerprint: str

    def knows(self, origin: str) -> bool:
        """Whether ``origin``'s messages can be verified here (its key is known)."""

    def peer_fingerprint(self, peer_id: str) -> str: ...
    def forget(self, peer_id: str) -> bool: ...
    def block(self, peer_id: str, name: str) -> None: ...
    def unblock(self, peer_id: str) -> bool: ...
    def is_blocked(self, peer_id: str) -> bool: ...
    def blocked(self) -> dict[str, str]: ...
    def message_status(self, msg: Message) -> str: ...


class NoTrust:
    """No identity here: nothing is verified, no key is known, blocking needs the LAN."""

    fingerprint = ""

    def knows(self, origin: str) -> bool:
        return False

    def peer_fingerprint(self, peer_id: str) -> str:
        return ""

    def forget(self, peer_id: str) -> bool:
        return False

    def block(self, peer_id: str, name: str) -> None:
        raise ValidationError("Blocking needs the LAN (this copy runs without it).")

    def unblock(self, peer_id: str) -> bool:
        return False

    def is_blocked(self, peer_id: str) -> bool:
        return False

    def blocked(self) -> dict[str, str]:
        return {}

    def message_status(self, msg: Message) -> str:
        return "unverified"


class KeyTrust:
    """A ``fletchat.trust.Trust`` seen through ``HubTrust``. Writes (forget, block, unblock)
    rewrite the trust file: call them off the event loop (``Hub.block_async`` etc.)."""

    def __init__(self, trust: Any, own_id: str) -> None:
        self._trust = trust
        self._own = own_id
        self.fingerprint = trust.fingerprint

    def knows(self, origin: str) -> bool:
        return origin == self._own or self._trust.store.key_of(origin) is not None

    def peer_fingerprint(self, peer_id: str) -> str:
        from .identity import fingerprint  # lazily: the web client ships without ssl

        key = self._trust.store.key_of(peer_id)
        return fingerprint(key) if key is not None else ""

    def forget(self, peer_id: str) -> bool:
        return bool(self._trust.store.forget(peer_id))

    def block(self, peer_id: str, name: str) -> None:
        self._trust.store.block(peer_id, name)

    def unblock(self, peer_id: str) -> bool:
        return bool(self._trust.store.unblock(peer_id))

    def is_blocked(self, peer_id: str) -> bool:
        return bool(self._trust.store.is_blocked(peer_id))

    def blocked(self) -> dict[str, str]:
        return dict(self._trust.store.blocked())

    def message_status(self, msg: Message) -> str:
        return str(self._trust.message_status(msg))


class TrustMethods:
    """Mixed into ``Hub``: keys, identity warnings and blocks (docs/security.md). Writes rewrite
    the trust file: the UI calls the ``*_async`` forms."""

    _policy: Any
    _lock: threading.RLock
    _identity_warnings: list[IdentityWarning]
    roster: Any
    transport: Any
    trust: Any

    _seen_verified: Callable[[str], bool | None]  # StoredMessages' (an annotation, not a stub)

    def _publish(self, event: Any) -> None: ...

    @property
    def fingerprint(self) -> str:
        """This install's key fingerprint ("" without an identity), to compare in person."""
        return self._policy.fingerprint

    def peer_fingerprint(self, peer_id: str) -> str:
        return self._policy.peer_fingerprint(peer_id)

    def identity_warning(self, peer_id: str, name: str, old_fp: str, new_fp: str) -> None:
        """Called by the mesh when a known peer id presents another key (it was refused)."""
        warning = IdentityWarning(peer_id, name, old_fp, new_fp, time.time())
        with self._lock:
            self._identity_warnings.append(warning)
        self._publish(warning)

    def identity_warnings(self) -> list[IdentityWarning]:
        with self._lock:
            return list(self._identity_warnings)

    def forget_peer(self, peer_id: str) -> bool:
        """Reset the key known for ``peer_id`` (rewrites the trust file: prefer the async form)."""
        with self._lock:
            self._identity_warnings = [w for w in self._identity_warnings if w.peer_id != peer_id]
        return self._policy.forget(peer_id)

    def block(self, peer_id: str) -> None:
        """Block a LAN peer: dropped, refused from now on (persisted), its messages dropped."""
        known = self.roster.device(peer_id)
        self.transport.block(peer_id, known.name if known is not None else "")

    def unblock(self, peer_id: str) -> None:
        self.transport.unblock(peer_id)

    async def forget_peer_async(self, peer_id: str) -> bool:
        return await asyncio.to_thread(self.forget_peer, peer_id)

    async def block_async(self, peer_id: str) -> None:
        await asyncio.to_thread(self.block, peer_id)

    async def unblock_async(self, peer_id: str) -> None:
        await asyncio.to_thread(self.unblock, peer_id)

    def blocked_peers(self) -> dict[str, str]:
        return self._policy.blocked()

    def message_status(self, msg: Message) -> str:
        """"verified", "unverified" (origin never met, or no identity here) or "refused".
        A message this hub took as verified lately (by its signature, or on its writer's own
        connection, which vouches for it: docs/security.md) is "verified" without checking its
        signature again; older rows are checked through the signature book."""
        if self.trust is not None and self._seen_verified(msg.id):
            return "verified"
        return self._policy.message_status(msg)
