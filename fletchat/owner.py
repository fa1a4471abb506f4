"""A browser's owner secret (``authors``): made and kept by the browser (client storage), given
to the host when it joins, kept there only as a digest. Pure: the static web client makes its own
with the same rules (its build has no ``sqlite3`` for ``authors``)."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from .model import ValidationError

OWNER_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{22,64}")  # ``new_owner_secret``: 22; others may be longer
_DIGEST_BYTES = 16
# The owner of what the device's own people write without a browser: the headless peer (its
# owner's script). No secret digests to it (a digest of 16 zero bytes is a 2**-128 chance).
DEVICE_OWNER = bytes(_DIGEST_BYTES)
_DOMAIN = b"fletchat.owner\x00"


def new_owner_secret() -> str:
    """A fresh secret for a browser or a session (128 bits, URL-safe)."""
    return secrets.token_urlsafe(16)


def validate_owner_secret(raw: object) -> str:
    """``raw`` when it is a well-formed owner secret; ``ValidationError`` otherwise."""
    if not isinstance(raw, str) or not OWNER_SECRET_RE.fullmatch(raw):
        raise ValidationError("An owner secret is 22 to 64 letters, digits, '-' or '_'.")
    return raw


def owner_digest(secret: str) -> bytes:
    """What the device keeps of a secret: enough to compare, useless to join with."""
    return hashlib.sha256(_DOMAIN + validate_owner_secret(secret).encode()).digest()[:_DIGEST_BYTES]


NAME_HOLD_SECONDS = 600.0  # a name stays its browser's this long after it left (a dropped
#                            connection, a tab gone past its reload grace, a host restarted)
MAX_NAME_HOLDS = 4096  # names held at once; when all are live, a new one is not held (none goes)


class NameHolds:
    """Names whose browser left, held for it a while: another browser taking the name meanwhile
    would lock its person out of it (and of what needs it: their direct messages, editing what
    they wrote). Keys are ``model.name_key``; pure, and safe from any thread."""

    def __init__(self, seconds: float = NAME_HOLD_SECONDS, limit: int = MAX_NAME_HOLDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.limit, self._clock = seconds, limit, clock
        self._held: OrderedDict[str, tuple[bytes, float]] = OrderedDict()  # in expiry order
        self._lock = threading.Lock()

    def hold(self, key: str, owner: bytes) -> None:
        with self._lock:
            now = self._expire()
            if key in self._held:
                del self._held[key]  # held anew: to the end of the expiry order
            elif len(self._held) >= self.limit:  # live holds only: a flood of names cannot
                return  # push out someone's hold, at worst it is not held itself
            self._held[key] = (owner, now + self.seconds)

    def held_for_other(self, key: str, owner: bytes | None) -> bool:
        """``key`` is held for a browser other than ``owner``."""
        with self._lock:
            self._expire()
            held = self._held.get(key)
            return held is not None and held[0] != owner

    def _expire(self) -> float:
        now = self._clock()
        while self._held:
            key, (_, until) = next(iter(self._held.items()))
            if until > now:
                break
            del self._held[key]
        return now
