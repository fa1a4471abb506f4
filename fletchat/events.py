"""What the hub tells everyone else: value types and events, pure (no flet, sockets or sqlite).

The UI, the relay (host mode's static clients), the headless peer and the mesh import these from
here, so none of them needs the hub (and its store) to understand what the hub says.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .model import Message


@dataclass(frozen=True)
class Online:
    """One entry of the "who is online" list: a person in a local session or a LAN peer."""

    key: str
    name: str
    device: str
    since: float
    local: bool
    fingerprint: str = ""  # LAN devices: their key's fingerprint (tells two "Alex" apart)


@dataclass(frozen=True)
class RosterChanged:
    """Published when someone comes or goes, so every view can redraw its peer list."""

    online: tuple[Online, ...]
    devices: tuple[Online, ...] = ()


@dataclass(frozen=True)
class Delivered:
    """Peers confirmed they hold these messages written here (the sender's "delivered" tick)."""

    ids: tuple[str, ...]
    at: float


@dataclass(frozen=True)
class RoomsUnlocked:
    """The static client unlocked its rooms again on a new connection to the host: those in
    ``channels`` open again; ``lost`` are (channel, the host's sentence) it could not unlock."""

    channels: tuple[str, ...]
    lost: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NameRefused:
    """The host refused the name a static client joined under (someone online there has it):
    ``reason`` is the host's sentence; the login asks again."""

    reason: str


@dataclass(frozen=True)
class ChannelsChanged:
    """A channel appeared (created here or learned from the LAN)."""

    channels: tuple[str, ...]


@dataclass(frozen=True)
class IdentityWarning:
    """A known peer id came back with a different key: refused, possibly an impersonator.

    Show it loudly; ``Hub.forget_peer(peer_id)`` accepts the new key (after the two people
    compared ``new_fingerprint`` in person)."""

    peer_id: str
    name: str
    old_fingerprint: str
    new_fingerprint: str
    at: float


class Outcome(StrEnum):
    """What the hub's one acceptance pipeline did with a message."""

    ACCEPTED = "accepted"  # new, valid, stored (or kept in memory when there is no store)
    DUPLICATE = "duplicate"  # this exact message is already here: stored, so an ack is honest
    REFUSED = "refused"  # not stored; ``Acceptance.reason`` says why, and the sender is told


@dataclass(frozen=True)
class Acceptance:
    """The verdict on one message. Only ACCEPTED and DUPLICATE may be acknowledged to a peer."""

    outcome: Outcome
    reason: str = ""
    message: Message | None = None

    @property
    def stored(self) -> bool:
        return self.outcome is not Outcome.REFUSED


@dataclass(frozen=True)
class Presence:
    """One person on a connected peer right now, as that peer says (``presence`` frame).

    Presence comes only from live connections: a peer's list replaces its previous one, is bounded
    per peer, and is gone when that peer's connection is. Old join lines replayed by catch-up never
    make anyone "online"."""

    name: str
    device: str
    since: float


@dataclass(frozen=True)
class MessageRefused:
    """A peer refused messages written here (``refused`` frame): the writer's row says why."""

    peer_id: str
    refusals: tuple[tuple[str, str], ...]  # (message id, reason)
    at: float


@dataclass(frozen=True)
class StoreFailed:
    """The history cannot be written any more (disk full, read-only data directory): show
    ``reason`` (banner / headless ``error`` line). What is stored stays readable; sending is
    refused with that reason until the problem is fixed and the app restarted. ``not_saved``:
    messages written here whose insert failed after they went out (their rows say so)."""

    reason: str
    at: float
    not_saved: tuple[str, ...] = ()


HubEvent = (
    Message | RosterChanged | Delivered | ChannelsChanged | IdentityWarning | MessageRefused
    | StoreFailed
)
