"""What the hub asks of trust (keys, blocks, message status), with a null object for a node
without an identity, so the hub has no ``trust is None`` branches.

``trust.py`` (owned by the mesh side) keeps the keys; this is the hub's narrow view of it.
"""

from __future__ import annotations

from typing import Any, Protocol

from .identity import fingerprint
from .model import Message, ValidationError


class TrustPolicy(Protocol):
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
    """A ``fletchat.trust.Trust`` seen through ``TrustPolicy``. Writes (forget, block, unblock)
    rewrite the trust file: call them off the event loop (``Hub.block_async`` etc.)."""

    def __init__(self, trust: Any, own_id: str) -> None:
        self._trust = trust
        self._own = own_id
        self.fingerprint = trust.fingerprint

    def knows(self, origin: str) -> bool:
        return origin == self._own or self._trust.store.key_of(origin) is not None

    def peer_fingerprint(self, peer_id: str) -> str:
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
