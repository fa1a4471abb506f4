"""A browser's owner secret (``authors``): made and kept by the browser (client storage), given
to the host when it joins, kept there only as a digest. Pure: the static web client makes its own
with the same rules (its build has no ``sqlite3`` for ``authors``)."""

from __future__ import annotations

import hashlib
import re
import secrets

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
