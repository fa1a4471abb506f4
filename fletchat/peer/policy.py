"""The trust questions a peer connection asks, as one typed port (``TrustPolicy``).

``fletchat.trust.Trust`` answers them with keys, TLS and signatures; ``NoTrust`` is the null object
for plain meshes (tests of the framing, benchmarks of the bare protocol): no keys, no TLS, every
message unverified, blocks kept in memory. The connection never branches on "is there trust".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from fletchat.model import Message

if TYPE_CHECKING:
    import ssl


class KeyStatus(StrEnum):
    """What ``check_key`` found for a peer id and the key it proved."""

    NEW = "new"  # first contact: the key is remembered (trust on first use)
    KNOWN = "known"  # the key we know for this id
    CHANGED = "changed"  # another key for a known id: refused until the user resets it
    LIMITED = "limited"  # too many first contacts (from this address, or lately): try later


class Verdict(StrEnum):
    """What ``check_message`` found for one message and its signature."""

    VERIFIED = "verified"  # signed by its origin's known key
    UNVERIFIED = "unverified"  # origin never met (no key to check with), or no trust at all
    REFUSED = "refused"  # claims an origin whose key we know, without its valid signature
    BLOCKED = "blocked"  # written by a peer the user blocked


@dataclass(frozen=True)
class Sender:
    """The peer at the other end of an open connection: its id and the key it proved in the
    handshake (TLS 1.3, then ``auth`` signed over the session's transcript). A message whose
    origin is that id, read from that connection, was written by that key's holder: the
    connection itself authenticates it (docs/security.md, "Signed messages")."""

    peer_id: str
    key: bytes


@dataclass(frozen=True)
class KeyCheck:
    """The outcome of ``TrustPolicy.check_key``."""

    status: KeyStatus
    old_fingerprint: str = ""


class TrustPolicy(Protocol):
    """Everything a connection and the mesh need to decide whom to believe."""

    @property
    def secured(self) -> bool:
        """True: TLS 1.3 + key proof in the handshake, and signed messages."""
        ...

    @property
    def key_text(self) -> str:
        """Our public key, base64 ("" when not secured)."""
        ...

    @property
    def cert_sha256(self) -> str:
        """Hex SHA-256 of our TLS certificate (DER), "" when not secured."""
        ...

    def server_context(self) -> ssl.SSLContext | None: ...

    def client_context(self) -> ssl.SSLContext | None: ...

    def sign(self, data: bytes) -> bytes: ...

    def verify(self, key: bytes, sig: bytes, data: bytes) -> bool: ...

    def fingerprint_of(self, key: bytes) -> str: ...

    def check_key(self, peer_id: str, key: bytes, name: str, address: str, now: float) -> KeyCheck:
        """Trust on first use, bounded: never forgets a known key to make room for a new one."""
        ...

    def is_blocked(self, peer_id: str) -> bool: ...

    def block(self, peer_id: str, name: str = "") -> None: ...

    def unblock(self, peer_id: str) -> None: ...

    def check_message(self, msg: Message, sig: str) -> Verdict: ...

    def check_messages(self, pairs: Sequence[tuple[Message, str]],
                       sender: Sender | None = None) -> list[Verdict]:
        """``check_message`` of each (message, signature) pair, in order (a catch-up page).
        ``sender``: the connection they came on; a signed message of the sender's own origin is
        VERIFIED by that connection, without checking its signature, while the key the sender
        proved is still the one trusted for it (a third party checks the signature)."""
        ...

    def sig_for(self, msg: Message) -> str:
        """The signature ``msg`` travels with (base64, "" for none)."""
        ...

    def sigs_for(self, msgs: list[Message]) -> list[str]:
        """``sig_for`` of each message, looked up together (may read a database: off the loop)."""
        ...


@dataclass
class NoTrust:
    """The null trust policy: plain WebSockets, nobody authenticated, blocks in memory only."""

    blocked: set[str] = field(default_factory=set)

    secured = False
    key_text = ""
    cert_sha256 = ""

    def server_context(self) -> ssl.SSLContext | None:
        return None

    def client_context(self) -> ssl.SSLContext | None:
        return None

    def sign(self, data: bytes) -> bytes:
        raise RuntimeError("no identity: a plain mesh never signs")

    def verify(self, key: bytes, sig: bytes, data: bytes) -> bool:
        return False

    def fingerprint_of(self, key: bytes) -> str:
        return ""

    def check_key(self, peer_id: str, key: bytes, name: str, address: str, now: float) -> KeyCheck:
        return KeyCheck(KeyStatus.NEW)

    def is_blocked(self, peer_id: str) -> bool:
        return peer_id in self.blocked

    def block(self, peer_id: str, name: str = "") -> None:
        self.blocked.add(peer_id)

    def unblock(self, peer_id: str) -> None:
        self.blocked.discard(peer_id)

    def check_message(self, msg: Message, sig: str) -> Verdict:
        return Verdict.BLOCKED if msg.origin in self.blocked else Verdict.UNVERIFIED

    def check_messages(self, pairs: Sequence[tuple[Message, str]],
                       sender: Sender | None = None) -> list[Verdict]:
        return [self.check_message(msg, sig) for msg, sig in pairs]  # nobody is authenticated

    def sig_for(self, msg: Message) -> str:
        return ""

    def sigs_for(self, msgs: list[Message]) -> list[str]:
        return [""] * len(msgs)
