"""Live signals: typing, read receipts, per-message reach, and per-person flood limits.

Pure: every method takes ``now`` (seconds, any monotonic clock) instead of reading a clock, so
tests drive time. Typing is never stored; read marks keep only the latest position per reader.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

TYPING_INTERVAL = 3.0  # a sender says "typing" at most once per this many seconds
TYPING_TIMEOUT = 6.0  # "X is typing…" disappears this long after the last signal
MAX_TYPING_SHOWN = 3  # "Ada, Bob and 4 others are typing…"
MAX_TRACKED = 256  # people tracked per structure (see ``OwnedBook`` for who goes first)
MAX_TYPING_PER_OWNER = 64  # people one address may show typing (= MAX_PRESENCE_PER_PEER)
MAX_MARKS_PER_OWNER = 1024  # read positions, (channel, reader), one address may hold

K = TypeVar("K")
V = TypeVar("V")


class OwnedBook(Generic[K, V]):
    """A bounded map whose entries belong to an *owner* (the IP address that sent them; this
    device for its own people). Throw-away identities and made-up names are free, addresses are
    not: an owner over its share replaces its own oldest entry, and when the book is full the
    oldest entry of the biggest owner goes, so a flood from one address never pushes out anyone
    else's. Iterates oldest first (``put`` moves an entry to the end)."""

    def __init__(self, max_total: int, per_owner: int) -> None:
        self._max, self._per_owner = max_total, per_owner
        self._items: dict[K, tuple[str, V]] = {}
        self._owned: dict[str, OrderedDict[K, None]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        return found[1] if found is not None else None

    def items(self) -> Iterator[tuple[K, V]]:
        return ((k, v) for k, (_, v) in list(self._items.items()))

    def put(self, key: K, owner: str, value: V) -> None:
        self.pop(key)
        keys = self._owned.setdefault(owner, OrderedDict())
        if len(keys) >= self._per_owner:
            self.pop(next(iter(keys)))
        elif len(self._items) >= self._max:
            biggest = max(self._owned, key=lambda o: len(self._owned[o]))
            self.pop(next(iter(self._owned[biggest])))
        self._items[key] = (owner, value)
        self._owned.setdefault(owner, OrderedDict())[key] = None

    def pop(self, key: K) -> None:
        found = self._items.pop(key, None)
        if found is None:
            return
        keys = self._owned[found[0]]
        del keys[key]
        if not keys:
            del self._owned[found[0]]


def person_key(origin: str, name: str) -> str:
    """Who typed or read: a device id alone is not a person (a host serves many browser tabs,
    each under its own name), a name alone is not an identity; the pair is."""
    return f"{origin}/{name}"


class TypingThrottle:
    """The sender's side: ``should_send(now)`` is true at most once per ``TYPING_INTERVAL``
    while the person keeps typing; ``sent_message()`` resets it (the message ends the typing)."""

    def __init__(self, interval: float = TYPING_INTERVAL) -> None:
        self._interval = interval
        self._last: float | None = None

    def should_send(self, now: float) -> bool:
        if self._last is not None and now - self._last < self._interval:
            return False
        self._last = now
        return True

    def sent_message(self) -> None:
        self._last = None


class TypingBoard:
    """The receiver's side: who is typing in which channel, expiring after ``TYPING_TIMEOUT``.

    A person is ``person_key(origin, name)``. Signals more frequent than the
    throttle allows (half the interval, for jitter) are dropped: ``note`` returns False."""

    def __init__(self, timeout: float = TYPING_TIMEOUT, interval: float = TYPING_INTERVAL,
                 max_tracked: int = MAX_TRACKED, per_owner: int = MAX_TYPING_PER_OWNER) -> None:
        self._timeout = timeout
        self._min_gap = interval / 2
        self._at: OwnedBook[tuple[str, str], tuple[float, str]] = OwnedBook(max_tracked, per_owner)

    def note(self, channel: str, person: str, name: str, now: float, owner: str = "") -> bool:
        """``owner``: the address the signal came from (``OwnedBook``)."""
        key = (channel, person)
        prev = self._at.get(key)
        if prev is not None and now - prev[0] < self._min_gap:
            return False
        self._at.put(key, owner, (now, name))
        return True

    def active(self) -> bool:
        return bool(len(self._at))

    def has(self, channel: str, person: str) -> bool:
        return (channel, person) in self._at

    def stopped(self, channel: str, person: str) -> None:
        """Their message arrived (or they left): they are no longer typing."""
        self._at.pop((channel, person))

    def typing(self, channel: str, now: float, me: str = "") -> list[str]:
        """Names typing in ``channel`` now, earliest first, never the viewer (``me``: a person key)."""
        for key, (at, _) in self._at.items():
            if now - at >= self._timeout:
                self._at.pop(key)
        return [name for (ch, o), (_, name) in self._at.items() if ch == channel and o != me]


def typing_line(names: list[str]) -> str:
    """ "Ada is typing…", "Ada and Bob are typing…", "Ada, Bob and 3 others are typing…"."""
    if not names:
        return ""
    if len(names) == 1:
        return f"{names[0]} is typing\u2026"
    if len(names) <= MAX_TYPING_SHOWN:
        return f"{', '.join(names[:-1])} and {names[-1]} are typing\u2026"
    shown = ", ".join(names[:2])
    return f"{shown} and {len(names) - 2} others are typing\u2026"


@dataclass(frozen=True)
class ReadMark:
    reader: str  # person_key(origin, name) of the reader
    name: str
    channel: str
    upto: str  # HLC stamp of the newest message read in that channel


class ReadMarks:
    """Per (channel, reader) the last-read position; only moves forward (stamps compare as
    strings). A reader who turned receipts off sends none; ``forget`` drops what we held."""

    def __init__(self, max_tracked: int = MAX_TRACKED * 16,
                 per_owner: int = MAX_MARKS_PER_OWNER) -> None:
        self._marks: OwnedBook[tuple[str, str], ReadMark] = OwnedBook(max_tracked, per_owner)

    def update(self, mark: ReadMark, owner: str = "") -> bool:
        """True if this moved the reader's position forward (worth a redraw). ``owner``: the
        address the mark came from (``OwnedBook``)."""
        key = (mark.channel, mark.reader)
        old = self._marks.get(key)
        if old is not None and mark.upto <= old.upto:
            return False
        self._marks.put(key, owner, mark)
        return True

    def forget(self, reader: str) -> None:
        for key in [k for k, _ in self._marks.items() if k[1] == reader]:
            self._marks.pop(key)

    def in_channel(self, channel: str) -> list[ReadMark]:
        return [m for (ch, _), m in self._marks.items() if ch == channel]

    def position(self, channel: str, reader: str) -> str:
        mark = self._marks.get((channel, reader))
        return mark.upto if mark else ""

    def seen_by(self, channel: str, hlc: str, author: str) -> tuple[str, ...]:
        """Names of readers whose position reached the message stamped ``hlc``, the author
        (a person key) excluded; sorted, for the tooltip. ``len()`` of it is "seen by N"."""
        return tuple(sorted(
            m.name for (ch, reader), m in self._marks.items()
            if ch == channel and reader != author and m.upto >= hlc
        ))


def seen_line(names: tuple[str, ...]) -> str:
    return f"seen by {len(names)}" if names else ""


def reach_line(acked: set[str], devices: set[str]) -> str:
    """ "on 4 of 5 devices": how many of the devices in the channel hold the message (the
    writer's own included). ``acked`` ids outside ``devices`` (gone since) are not counted."""
    if not devices:
        return ""
    return f"on {len(acked & devices)} of {len(devices)} devices"


class FloodLimit:
    """A sliding-window limit per key (an origin, an origin+kind): at most ``count`` events per
    ``window`` seconds. Bounded memory: the least recently seen key is dropped first, which only
    ever lets an evicted key start afresh (fails open for that key, never blocks others)."""

    def __init__(self, count: int, window: float, max_keys: int = 4096) -> None:
        self._count = count
        self._window = window
        self._max = max_keys
        self._hits: OrderedDict[str, list[float]] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        hits = [t for t in self._hits.get(key, []) if now - t < self._window]
        if len(hits) >= self._count:
            self._hits[key] = hits
            self._hits.move_to_end(key)
            return False
        hits.append(now)
        self._hits[key] = hits
        self._hits.move_to_end(key)
        while len(self._hits) > self._max:
            self._hits.popitem(last=False)
        return True


# The limits docs/conversation.md states (per origin, on top of the connection's frame limit).
REACTION_LIMIT = (20, 10.0)  # 20 reactions per 10 s
EDIT_LIMIT = (10, 10.0)  # edits + deletes
TYPING_LIMIT = (1, TYPING_INTERVAL / 2)  # per channel
READ_LIMIT = (10, 10.0)  # read marks per channel
