"""Private rooms: a channel whose chat text is sealed end to end with a shared passphrase.

key = scrypt(passphrase, salt derived from the channel name, n=2**14, r=8, p=1) (memory-hard, so
guessing passphrases offline is slow), then ChaCha20-Poly1305 (AEAD) over the text with the
channel name and the message id as associated data: a sealed text only opens in its own channel,
under its own message id, with the right key. On the wire ``Message.text`` is
``sealed:v1:<base64(nonce + ciphertext)>`` (a plain string, so peers, relays and the store carry
it unchanged; ``model.validate_text`` accepts it).

What it protects is the content, nothing else (docs/security.md: names, membership, timing stay
visible). ``cryptography`` is imported lazily: the static web client (Pyodide) can import this
module for ``is_sealed`` without it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os

from .model import MAX_MESSAGE_CHARS, ValidationError

SEALED_PREFIX = "sealed:v1:"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_CONTEXT = b"fletchat-room-v1\x00"
AD_CONTEXT = "fletchat-room-v1"
MIN_PASSPHRASE_CHARS = 8
# The longest text (UTF-8 bytes) whose sealed form still fits MAX_MESSAGE_CHARS.
MAX_SEALED_PLAINTEXT_BYTES = (MAX_MESSAGE_CHARS - len(SEALED_PREFIX)) // 4 * 3 - NONCE_BYTES - TAG_BYTES

SEALED_NO_KEY = "sealed (no key)"
SEALED_REFUSED = "sealed: refused (wrong passphrase, or forged)"


class RoomError(ValidationError):
    """A sealed text that does not open: wrong key, altered, another channel or message id."""


def is_sealed(text: str) -> bool:
    return isinstance(text, str) and text.startswith(SEALED_PREFIX)


def check_passphrase(passphrase: str) -> None:
    """``ValidationError`` for a passphrase too short to be a room's."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise ValidationError(
            f"A room passphrase needs at least {MIN_PASSPHRASE_CHARS} characters."
        )


def room_key(channel: str, passphrase: str) -> bytes:
    """The 32-byte room key of ``channel`` for ``passphrase`` (same on every install)."""
    check_passphrase(passphrase)
    salt = SALT_CONTEXT + hashlib.sha256(channel.encode("utf-8")).digest()
    return hashlib.scrypt(
        passphrase.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=KEY_BYTES
    )


def _ad(channel: str, msg_id: str) -> bytes:
    return json.dumps([AD_CONTEXT, channel, msg_id], separators=(",", ":")).encode("utf-8")


def seal(key: bytes, channel: str, msg_id: str, text: str) -> str:
    """``text`` sealed for ``channel`` and message ``msg_id``."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    data = text.encode("utf-8")
    if len(data) > MAX_SEALED_PLAINTEXT_BYTES:
        raise ValidationError(
            f"Message is too long for a private room: {len(data)} bytes "
            f"(at most {MAX_SEALED_PLAINTEXT_BYTES})."
        )
    nonce = os.urandom(NONCE_BYTES)
    box = ChaCha20Poly1305(key).encrypt(nonce, data, _ad(channel, msg_id))
    return SEALED_PREFIX + base64.b64encode(nonce + box).decode("ascii")


def open_sealed(key: bytes, channel: str, msg_id: str, sealed: str) -> str:
    """The text inside ``sealed``; ``RoomError`` if it does not authenticate."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    if not is_sealed(sealed):
        raise RoomError("Not a sealed message.")
    try:
        raw = base64.b64decode(sealed[len(SEALED_PREFIX):], validate=True)
    except (binascii.Error, ValueError) as err:
        raise RoomError("Sealed message is malformed.") from err
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise RoomError("Sealed message is malformed.")
    try:
        data = ChaCha20Poly1305(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _ad(channel, msg_id))
    except InvalidTag as err:
        raise RoomError("Sealed message does not open with this key (or was altered).") from err
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:  # pragma: no cover - authenticated, so written that way
        raise RoomError("Sealed message is not text.") from err
