"""The acceptance rules for a message from a peer: stored, duplicate, or refused and why.

Pure: no I/O, no clock of its own. The hub passes what it already holds for the message's id and
its (origin, seq) slot, and the time; it gets back what to do and the sentence to tell the sender.
Every rule and limit is in docs/protocol.md ("Acceptance") and docs/security.md.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from .clock import MAX_DRIFT_MS, MAX_FUTURE_MS, MAX_LIVE_AGE_MS, MIN_STAMP_MS, Stamp
from .model import (
    KIND_CHANNEL,
    MAX_NEW_ORIGINS_PER_PEER_MINUTE,
    MAX_ORIGIN_BYTES_PER_MINUTE,
    MAX_ORIGIN_CHANNELS_PER_DAY,
    MAX_ORIGIN_MESSAGES_PER_DAY,
    MAX_ORIGIN_MESSAGES_PER_MINUTE,
    MAX_UNVERIFIED_PER_PEER_MINUTE,
    QUOTA_ORIGINS_TRACKED,
    Message,
    ValidationError,
)

MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS


# The reason given for a message from a peer that claims this device as its origin.
OWN_ORIGIN = "claims to come from this device, which never wrote it"


class Action(StrEnum):
    """What to do with a message, given what is already held for its id and slot."""

    STORE = "store"  # new: store, show, relay
    REPLACE = "replace"  # verified, and takes the place of an unverified row: store, show
    UPGRADE = "upgrade"  # the same message, now verified: store the proof, show nothing
    DUPLICATE = "duplicate"  # already held, as well proven
    REFUSE = "refuse"


@dataclass(frozen=True)
class Held:
    """A message this node already holds (stored or queued for the store)."""

    msg: Message
    verified: bool


def same_message(a: Message, b: Message) -> bool:
    """Equal in every field a signature covers (plus the stamp and seq)."""
    return (a.id, a.kind, a.author, a.origin, a.text, a.ts, a.channel, a.hlc, a.seq) == (
        b.id, b.kind, b.author, b.origin, b.text, b.ts, b.channel, b.hlc, b.seq)


def judge_slot(
    msg: Message, verified: bool, by_id: Held | None, in_slot: Held | None
) -> tuple[Action, str]:
    """Verified beats unverified, for the same id and for the same (origin, seq) slot; otherwise
    the first one stays and a different message claiming its id or slot is refused."""
    if by_id is not None:
        if same_message(by_id.msg, msg):
            return (Action.UPGRADE, "") if verified and not by_id.verified else (
                Action.DUPLICATE, "")
        if not verified or by_id.verified:
            return Action.REFUSE, f"id {msg.id} is already another message here"
        if in_slot is None or in_slot.msg.id == msg.id or not in_slot.verified:
            return Action.REPLACE, ""
        # Its slot holds another verified message: the store would drop the unverified row and
        # keep neither (an accepted message never stored), so it is refused for the slot.
    if in_slot is not None and in_slot.msg.id != msg.id:
        if not verified or in_slot.verified:
            return Action.REFUSE, (
                f"{msg.origin} seq {msg.seq} is already another message here")
        return Action.REPLACE, ""
    return Action.STORE, ""


def check_stamp(msg: Message, now_ms: int, live: bool) -> str:
    """Why ``msg``'s clock fields are refused ("" if they are fine). ``live``: a ``msg`` frame
    (relayed to everyone), not catch-up history."""
    return stamp_checked(msg, now_ms, live)[0]


def stamp_checked(msg: Message, now_ms: int, live: bool) -> tuple[str, Stamp | None]:
    """``check_stamp``'s reason, and ``msg``'s parsed stamp when there is no reason (a page's
    rules need it again: parsed once)."""
    if not msg.hlc or msg.seq <= 0:
        return ("no clock stamp or sequence number: hlc and seq are required "
                "(a signed message is never restamped)"), None
    try:
        stamp = Stamp.decode(msg.hlc)
    except ValidationError:
        return "invalid clock stamp", None
    reason = stamp_refusal(stamp.wall_ms, int(msg.ts * 1000), now_ms, live)
    return (reason, None) if reason else ("", stamp)


def stamp_refusal(wall: int, ts_ms: int, now_ms: int, live: bool) -> str:
    """The clock rules in order, for a stamp's wall part and ``ts`` in ms ("" if they hold);
    each reason is worded only when it is the answer."""
    if wall < MIN_STAMP_MS or ts_ms < MIN_STAMP_MS:
        return "stamped before 2020: the writer's date is wrong"
    if ts_ms - now_ms > MAX_FUTURE_MS:
        return (f"written {(ts_ms - now_ms) // 1000} s in the future by our clock (at most "
                f"{MAX_FUTURE_MS // 1000} s): check the writer's date and time")
    if wall - now_ms > MAX_DRIFT_MS:
        return (f"clock stamp {(wall - now_ms) // 1000} s ahead of ours (at most "
                f"{MAX_DRIFT_MS // 1000} s)")
    if live and now_ms - wall > MAX_LIVE_AGE_MS:
        return (f"a live message stamped {(now_ms - wall) // 1000} s ago (at most "
                f"{MAX_LIVE_AGE_MS // 1000} s; older history travels by catch-up)")
    return ""


@dataclass(frozen=True)
class Arrival:
    """A message about to be accepted, with what the budgets need to know about it."""

    msg: Message
    from_peer: str
    verified: bool
    now_ms: int
    new_origin: bool = False  # no message of its origin was seen here before
    new_channel: bool = False  # names a channel this device does not have


@dataclass(frozen=True)
class QuotaLimits:
    """The budgets ``Quotas`` enforces (defaults: the constants in model.py)."""

    per_minute: int = MAX_ORIGIN_MESSAGES_PER_MINUTE
    bytes_per_minute: int = MAX_ORIGIN_BYTES_PER_MINUTE
    per_day: int = MAX_ORIGIN_MESSAGES_PER_DAY
    channels_per_day: int = MAX_ORIGIN_CHANNELS_PER_DAY
    new_origins_per_peer_minute: int = MAX_NEW_ORIGINS_PER_PEER_MINUTE
    unverified_per_peer_minute: int = MAX_UNVERIFIED_PER_PEER_MINUTE

    @classmethod
    def lifted(cls) -> QuotaLimits:
        """No practical budget: for benchmarks that measure the mesh's own capacity (as they lift
        the connection's flood limits). Never used by the app."""
        big = 10**12
        return cls(big, big, big, big, big, big)


class Quotas:
    """Per-origin and per-connection budgets (docs/security.md). Origin budgets count on the
    message's own stamp (minute and day), so catch-up, which carries the original stamps, cannot
    get round them; connection budgets count on our clock. Only accepted messages are charged.
    Counters live in memory, bounded (least recently used dropped)."""

    def __init__(
        self, limits: QuotaLimits | None = None, tracked: int = QUOTA_ORIGINS_TRACKED * 4
    ) -> None:
        self.limits = limits or QuotaLimits()
        self._counts: OrderedDict[tuple[object, ...], int] = OrderedDict()
        self._limit = tracked

    def check(self, arrival: Arrival) -> str:
        """Why the message is over a budget ("" if it fits); charges it when it fits."""
        return self.charge(arrival.msg, Stamp.decode(arrival.msg.hlc).wall_ms, arrival.from_peer,
                           arrival.now_ms, flags=(arrival.verified, arrival.new_origin,
                                                  arrival.new_channel))

    def charge(self, msg: Message, stamp_ms: int, from_peer: str, now_ms: int,
               flags: tuple[bool, bool, bool]) -> str:
        """``check`` of a message whose stamp's wall part is ``stamp_ms``; ``flags`` are its
        arrival's (verified, new_origin, new_channel)."""
        verified, new_origin, new_channel = flags
        origin, text = msg.origin, msg.text
        minute, day = stamp_ms // MINUTE_MS, stamp_ms // DAY_MS
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        q, counts = self.limits, self._counts
        if verified and not (new_origin or new_channel or msg.kind == KIND_CHANNEL):
            return self._charge_plain(origin, minute, day, size)
        # (counter, amount, cap, what is over): reasons are worded only for a refusal
        charges: list[tuple[tuple[object, ...], int, int, str]] = [
            (("m", origin, minute), 1, q.per_minute, "m"),
            (("b", origin, minute), size, q.bytes_per_minute, "b"),
            (("d", origin, day), 1, q.per_day, "d"),
        ]
        if new_channel or msg.kind == KIND_CHANNEL:
            charges.append((("c", origin, day), 1, q.channels_per_day, "c"))
        if new_origin:
            charges.append((("o", from_peer, now_ms // MINUTE_MS), 1,
                            q.new_origins_per_peer_minute, "o"))
        if not verified:
            charges.append((("u", from_peer, now_ms // MINUTE_MS), 1,
                            q.unverified_per_peer_minute, "u"))
        for key, amount, cap, what in charges:
            if counts.get(key, 0) + amount > cap:
                return "quota: " + self._reason(what, origin)
        for key, amount, _, _ in charges:
            counts[key] = counts.get(key, 0) + amount
            counts.move_to_end(key)
        self._trim()
        return ""

    def _charge_plain(self, origin: str, minute: int, day: int, size: int) -> str:
        """``charge``'s three origin budgets alone (a verified message of a known origin in a
        known channel: nearly every one of a catch-up page), with the same checks, updates and
        least-recently-used order, without building the list of charges."""
        q, counts = self.limits, self._counts
        km, kb, kd = ("m", origin, minute), ("b", origin, minute), ("d", origin, day)
        m, b, d = counts.get(km, 0) + 1, counts.get(kb, 0) + size, counts.get(kd, 0) + 1
        if m > q.per_minute or b > q.bytes_per_minute or d > q.per_day:
            what = "m" if m > q.per_minute else "b" if b > q.bytes_per_minute else "d"
            return "quota: " + self._reason(what, origin)
        counts[km] = m
        counts.move_to_end(km)
        counts[kb] = b
        counts.move_to_end(kb)
        counts[kd] = d
        counts.move_to_end(kd)
        self._trim()
        return ""

    def _trim(self) -> None:
        """Drop the least recently charged counters beyond the bound."""
        counts = self._counts
        while len(counts) > self._limit:
            counts.popitem(last=False)

    def _reason(self, what: str, origin: str) -> str:
        q = self.limits
        return {
            "m": f"{origin} is over {q.per_minute} messages a minute",
            "b": f"{origin} is over {q.bytes_per_minute} bytes of text a minute",
            "d": f"{origin} is over {q.per_day} messages a day",
            "c": f"{origin} is over {q.channels_per_day} new channels a day",
            "o": (f"over {q.new_origins_per_peer_minute} new origins a minute "
                  "from one connection"),
            "u": (f"over {q.unverified_per_peer_minute} unverified messages "
                  "a minute from one connection"),
        }[what]
