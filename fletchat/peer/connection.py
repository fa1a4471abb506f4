"""One peer connection as a sans-I/O state machine (the pattern of ``websockets``' Protocol).

``PeerConnection`` never touches a socket, a clock or a random source: the mesh feeds it each text
frame with ``receive_text(frame, now)`` and gets back events; whatever it wants to send waits in
``data_to_send()``. It owns the handshake transcript (hello, then auth on secured meshes), the
flood limits (frames, and messages, also those inside ``sync`` frames), and the verdict on every
message's signature, which it asks of an injected ``TrustPolicy``.

    AWAIT_HELLO --hello--> AWAIT_AUTH --auth--> OPEN --bye / error / close_request--> CLOSED
               (plain mesh: hello goes straight to OPEN)

Any frame out of order, malformed or over a limit moves it to CLOSED with a close code and a
reason fit for the close frame (``Closed`` event); the mesh then closes the socket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fletchat import __version__
from fletchat.conversation.fields import vouched
from fletchat.model import Message, Peer
from fletchat.peer.policy import KeyStatus, Sender, TrustPolicy, Verdict
from fletchat.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED_DATA,
    MESSAGE_BURST,
    MESSAGES_PER_SECOND,
    RATE_BURST,
    RATE_FRAMES_PER_SECOND,
    REASON_SELF,
    AckFrame,
    Auth,
    Bye,
    ConnKey,
    HaveFrame,
    Hello,
    MsgFrame,
    PeerAddress,
    PeersFrame,
    Ping,
    Pong,
    PresenceEntry,
    PresenceFrame,
    ProtocolError,
    ReadFrame,
    RefusedFrame,
    SyncFrame,
    TokenBucket,
    TypingFrame,
    auth_transcript,
    decode_b64,
    decode_frame,
    encode_auth,
    encode_bye,
    encode_hello,
    encode_pong,
)

CLOSE_TRY_AGAIN = 1013
REASON_BLOCKED = "blocked"
REASON_KEY_CHANGED = "identity key changed"
MAX_OUTBOX_FRAMES = 1024  # frames waiting for a slow peer before it is dropped as too slow

ROLE_CLIENT = "client"  # the side that dialed (the TLS client)
ROLE_SERVER = "server"  # the side that accepted (the TLS server)


class State(StrEnum):
    AWAIT_HELLO = "await-hello"
    AWAIT_AUTH = "await-auth"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Limits:
    """Flood limits of one connection (docs/protocol.md, "Limits")."""

    frames_per_second: float = RATE_FRAMES_PER_SECOND
    frame_burst: float = RATE_BURST
    messages_per_second: float = MESSAGES_PER_SECOND
    message_burst: float = MESSAGE_BURST
    max_outbox: int = MAX_OUTBOX_FRAMES


@dataclass(frozen=True)
class Local:
    """What this side says about itself in ``hello``."""

    me: Peer
    port: int  # where we accept connections
    session: str  # random per process start
    dial: int = 0  # our dial counter for an outgoing connection; 0 when accepting


@dataclass(frozen=True)
class TlsFacts:
    """What the TLS layer established, which the key proof binds to (secured meshes only).

    ``server_cert_sha256`` is the hex SHA-256 of the certificate the *server* presented (ours when
    accepting); ``server_cert_key`` the Ed25519 key in it (dialing side only)."""

    server_cert_sha256: str = ""
    server_cert_key: bytes | None = None


# ---- events ----


@dataclass(frozen=True)
class Opened:
    """The handshake succeeded: the mesh registers ``peer`` (one connection per peer)."""

    peer: Peer
    key: ConnKey
    first_contact: bool = False


@dataclass(frozen=True)
class IdentityChanged:
    """A known peer id proved another key: refused (a ``Closed`` follows)."""

    peer_id: str
    name: str
    old_fingerprint: str
    new_fingerprint: str


@dataclass(frozen=True)
class Received:
    """One message that passed the signature check (``verified``: signed by its origin's known
    key; False: origin never met or unsigned)."""

    message: Message
    sig: str
    verified: bool


@dataclass(frozen=True)
class Messages:
    """Messages from a ``msg`` (``live``) or ``sync`` frame (catch-up: not relayed) frame.

    ``refused`` are (id, reason) pairs the connection dropped itself (forged signatures, signed
    messages without their clock stamp); the mesh tells the sender. ``unchecked`` are (message,
    signature) pairs of a ``sync`` page whose signatures are still to be checked: the mesh runs
    ``check_signatures`` on a worker thread (a page of up to 100 verifications, which release the
    GIL, off the event loop in one hop); a live message is checked here, at once."""

    items: tuple[Received, ...]
    live: bool
    refused: tuple[tuple[str, str], ...] = ()
    unchecked: tuple[tuple[Message, str], ...] = ()


def check_signatures(trust: TrustPolicy, event: Messages, sender: Sender | None = None
                     ) -> Messages:
    """``event`` with every ``unchecked`` pair verified: kept (verified or not) or refused as
    forged; blocked origins dropped. ``sender``: the peer of the connection they came on (its
    own messages are verified by that connection: ``TrustPolicy.check_messages``). Pure apart
    from ``trust`` (safe on a worker thread)."""
    if not event.unchecked:
        return event
    items = list(event.items)
    refused = list(event.refused)
    proofs = [_proof(msg, sig) for msg, sig in event.unchecked]
    verdicts = trust.check_messages(proofs, sender)
    for (msg, sig), verdict in zip(event.unchecked, verdicts, strict=True):
        if verdict is Verdict.REFUSED:
            refused.append((msg.id, _FORGED))
        elif verdict is not Verdict.BLOCKED:
            items.append(Received(msg, sig, verdict is Verdict.VERIFIED))
    return Messages(tuple(items), event.live, tuple(refused))


def _proof(msg: Message, sig: str) -> tuple[Message, str]:
    """What a message's signature is checked on: a redacted slot (vouched for by the connection)
    is checked as the delete that names it."""
    if msg.conv is not None and msg.conv.redacted is not None:
        return msg.conv.redacted.delete, msg.conv.redacted.sig
    return msg, sig


@dataclass(frozen=True)
class Have:
    summary: dict[str, int]


@dataclass(frozen=True)
class Acked:
    ids: tuple[str, ...]


@dataclass(frozen=True)
class RefusedByPeer:
    refusals: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PresenceReport:
    people: tuple[PresenceEntry, ...]


@dataclass(frozen=True)
class Gossip:
    addresses: tuple[PeerAddress, ...]


@dataclass(frozen=True)
class Live:
    """A live conversation signal (``typing`` or ``read``) from the connected peer itself."""

    frame: TypingFrame | ReadFrame


@dataclass(frozen=True)
class Closed:
    """The connection is over: close the socket with ``code`` and ``reason``. ``down_reason`` is
    what the app is told (e.g. "left: shutting down" after the peer's bye)."""

    code: int
    reason: str
    down_reason: str


Event = (
    Opened | IdentityChanged | Messages | Have | Acked | RefusedByPeer | PresenceReport | Gossip
    | Live | Closed
)

# Frames that only report something to the mesh, once the connection is open.
_REPORTS: dict[type, Callable[[Any], Event]] = {
    HaveFrame: lambda f: Have(f.summary),
    AckFrame: lambda f: Acked(f.ids),
    RefusedFrame: lambda f: RefusedByPeer(f.refusals),
    PresenceFrame: lambda f: PresenceReport(f.people),
    PeersFrame: lambda f: Gossip(f.peers),
    TypingFrame: Live,
    ReadFrame: Live,
}

_FORGED = "signature does not match the origin's key"
_UNSTAMPED = "signed messages need their hlc and seq"
_UNVOUCHED = "a redacted message must come with the author's delete that names it"


@dataclass(eq=False)
class PeerConnection:
    """One connection's protocol state. See the module docstring."""

    local: Local
    outgoing: bool
    remote_ip: str
    trust: TrustPolicy
    nonce: str  # 32 hex digits from the caller's random source: our challenge
    now: float  # wall-clock seconds when the socket opened
    tls: TlsFacts = TlsFacts()
    limits: Limits = Limits()
    state: State = field(init=False, default=State.AWAIT_HELLO)
    hello: Hello | None = field(init=False, default=None)
    peer: Peer | None = field(init=False, default=None)
    # once OPEN on a secured mesh: the peer's id and the key it proved (its own messages are
    # authenticated by this connection); None before, and on a plain mesh
    sender: Sender | None = field(init=False, default=None)
    last_rx: float = field(init=False)
    close_code: int | None = field(init=False, default=None)
    close_reason: str = field(init=False, default="")
    _out: list[str] = field(init=False, default_factory=list)
    _expected_auth: bytes = field(init=False, default=b"")
    _key: bytes = field(init=False, default=b"")
    _frames: TokenBucket = field(init=False)
    _messages: TokenBucket = field(init=False)

    def __post_init__(self) -> None:
        self.last_rx = self.now
        lim = self.limits
        self._frames = TokenBucket(lim.frames_per_second, lim.frame_burst, clock=self._clock)
        self._messages = TokenBucket(lim.messages_per_second, lim.message_burst, clock=self._clock)
        me = self.local.me
        self._out.append(encode_hello(Hello(
            me.id, me.name, me.device, self.local.port, __version__, self.local.session,
            self.local.dial if self.outgoing else 0,
            self.trust.key_text if self.trust.secured else "",
            self.nonce if self.trust.secured else "",
        )))

    def _clock(self) -> float:
        return self.now

    # ---- the I/O side calls these ----

    def receive_text(self, frame: str | bytes, now: float) -> list[Event]:
        """Feed one frame from the socket; return what it means."""
        if self.state is State.CLOSED:
            return []
        self.now = self.last_rx = now
        if not self._frames.allow():
            return self._fail(
                CLOSE_POLICY, f"rate limit exceeded ({self.limits.frames_per_second:g} frames/s)"
            )
        if not isinstance(frame, str):
            return self._fail(CLOSE_UNSUPPORTED_DATA, "binary frames are not supported")
        try:
            decoded = decode_frame(frame)
        except ProtocolError as err:
            return self._fail(err.code, err.reason)
        if self.state is State.AWAIT_HELLO:
            return self._on_hello(decoded)
        if self.state is State.AWAIT_AUTH:
            return self._on_auth(decoded)
        return self._on_open(decoded)

    def data_to_send(self) -> list[str]:
        """Frames to write, in order (and forget)."""
        out, self._out = self._out, []
        return out

    def send(self, frame: str) -> bool:
        """Queue an encoded frame for an OPEN connection. False (and CLOSED, "too slow") when the
        peer has let ``max_outbox`` frames pile up; False when not open."""
        if self.state is not State.OPEN:
            return False
        if len(self._out) >= self.limits.max_outbox:
            self._close(CLOSE_POLICY, "too slow: send queue full", "too slow")
            return False
        self._out.append(frame)
        return True

    def backlog(self) -> int:
        return len(self._out)

    def close_request(self, reason: str = "shutting down", code: int = CLOSE_GOING_AWAY) -> None:
        """We are leaving (or dropping the peer): say ``bye`` if open, then close."""
        if self.state is State.CLOSED:
            return
        if self.state is State.OPEN:
            self._out.append(encode_bye(reason))
        self._close(code, reason, "this peer stopped" if code == CLOSE_GOING_AWAY else reason)

    def idle_for(self, now: float) -> float:
        return now - self.last_rx

    @property
    def fingerprint(self) -> str:
        return self.peer.fingerprint if self.peer is not None else ""

    # ---- handshake ----

    def _on_hello(self, frame: object) -> list[Event]:
        if not isinstance(frame, Hello):
            return self._fail(CLOSE_PROTOCOL_ERROR, "expected hello first")
        self.hello = frame
        if frame.peer_id == self.local.me.id:
            return self._fail(CLOSE_NORMAL, REASON_SELF)
        if self.trust.is_blocked(frame.peer_id):
            return self._fail(CLOSE_POLICY, REASON_BLOCKED)
        if not self.trust.secured:
            return self._open(frame, "", first_contact=False)
        if not frame.key:
            return self._fail(CLOSE_POLICY, "hello without a key: this peer requires one")
        self._key = decode_b64(frame.key)
        if self.outgoing and self.tls.server_cert_key != self._key:
            return self._fail(CLOSE_POLICY, "TLS certificate does not match hello key")
        mine, theirs = (ROLE_CLIENT, ROLE_SERVER) if self.outgoing else (ROLE_SERVER, ROLE_CLIENT)
        client_nonce, server_nonce = (
            (self.nonce, frame.nonce) if self.outgoing else (frame.nonce, self.nonce)
        )
        common = {
            "server_cert_sha256": self.tls.server_cert_sha256,
            "client_nonce": client_nonce,
            "server_nonce": server_nonce,
        }
        proof = auth_transcript(
            role=mine, signer_id=self.local.me.id, signer_key=self.trust.key_text,
            other_id=frame.peer_id, **common,
        )
        self._expected_auth = auth_transcript(
            role=theirs, signer_id=frame.peer_id, signer_key=frame.key,
            other_id=self.local.me.id, **common,
        )
        self._out.append(encode_auth(self.trust.sign(proof)))
        self.state = State.AWAIT_AUTH
        return []

    def _on_auth(self, frame: object) -> list[Event]:
        if not isinstance(frame, Auth):
            return self._fail(CLOSE_PROTOCOL_ERROR, "expected auth after hello")
        hello = self.hello
        assert hello is not None
        if not self.trust.verify(self._key, decode_b64(frame.sig), self._expected_auth):
            return self._fail(CLOSE_POLICY, "authentication failed: bad signature")
        check = self.trust.check_key(hello.peer_id, self._key, hello.name, self.remote_ip, self.now)
        new_fp = self.trust.fingerprint_of(self._key)
        if check.status is KeyStatus.CHANGED:
            warning = IdentityChanged(hello.peer_id, hello.name, check.old_fingerprint, new_fp)
            return [warning, *self._fail(CLOSE_POLICY, REASON_KEY_CHANGED)]
        if check.status is KeyStatus.LIMITED:
            return self._fail(CLOSE_TRY_AGAIN, "too many new peers right now; try again later")
        return self._open(hello, new_fp, first_contact=check.status is KeyStatus.NEW)

    def _open(self, hello: Hello, fp: str, *, first_contact: bool) -> list[Event]:
        self.state = State.OPEN
        if self._key:  # proved in ``auth`` and trusted by ``check_key`` (NEW or KNOWN)
            self.sender = Sender(hello.peer_id, self._key)
        self.peer = Peer(
            hello.peer_id, hello.name, hello.device, self.remote_ip, hello.port, self.now, fp
        )
        key = ConnKey(
            initiator=self.local.me.id if self.outgoing else hello.peer_id,
            session=hello.session,
            dial=self.local.dial if self.outgoing else hello.dial,
        )
        return [Opened(self.peer, key, first_contact)]

    # ---- an open connection ----

    def _on_open(self, frame: object) -> list[Event]:
        report = _REPORTS.get(type(frame))
        if report is not None:
            return [report(frame)]
        match frame:
            case MsgFrame(message=msg, sig=sig):
                return self._messages_in(((msg, sig),), live=True)
            case SyncFrame(messages=msgs, sigs=sigs):
                return self._messages_in(
                    tuple(zip(msgs, sigs or ("",) * len(msgs), strict=True)), live=False
                )
            case Ping():
                self._out.append(encode_pong())
                return []
            case Pong():
                return []
            case Bye(reason=reason):
                return self._close(CLOSE_NORMAL, "bye", f"left: {reason}" if reason else "left")
            case Hello():
                return self._fail(CLOSE_PROTOCOL_ERROR, "unexpected second hello")
        return self._fail(CLOSE_PROTOCOL_ERROR, "unexpected auth")

    def _messages_in(
        self, pairs: tuple[tuple[Message, str], ...], *, live: bool
    ) -> list[Event]:
        if not pairs:
            return []
        if not self._messages.allow(len(pairs)):
            return self._fail(
                CLOSE_POLICY,
                f"rate limit exceeded ({self.limits.messages_per_second:g} messages/s)",
            )
        pending: list[tuple[Message, str]] = []
        refused: list[tuple[str, str]] = []
        for msg, sig in pairs:
            if sig and (not msg.hlc or msg.seq <= 0):
                refused.append((msg.id, _UNSTAMPED))  # it would be restamped, then fail later
                continue
            if msg.conv is not None and msg.conv.redacted is not None and not vouched(msg):
                refused.append((msg.id, _UNVOUCHED))  # a deleted slot travels with its delete
                continue
            pending.append((msg, sig))
        event = Messages((), live, tuple(refused), tuple(pending))
        return [check_signatures(self.trust, event, self.sender) if live else event]

    # ---- closing ----

    def _fail(self, code: int, reason: str) -> list[Event]:
        return self._close(code, reason, reason)

    def _close(self, code: int, reason: str, down_reason: str) -> list[Event]:
        self.state = State.CLOSED
        self.close_code, self.close_reason = code, reason
        return [Closed(code, reason, down_reason)]
