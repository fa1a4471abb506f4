"""Sealed files for private rooms: what a peer without the passphrase sees is that a file exists and
its size class, nothing else.

The sender picks a random 256-bit file key. The plaintext is padded with zeros to a size class
(Padmé: at most ~12 % more, leaking O(log log n) bits of the size; at least ``MIN_SEALED_BYTES``)
and cut into pieces of ``chunk_size - 16`` bytes; piece i is sealed with ChaCha20-Poly1305 under
the file key, nonce = i as 12 big-endian bytes (unique: one key per file), associated data
``"fletchat-file-v1"``. The sealed pieces (each exactly one chunk, the last one shorter) form the
blob that is content-addressed, transferred and stored, so holders without the key still verify and
serve it. The name, type, real size, plaintext SHA-256, duration and file key go in the manifest's
``sealed`` field, sealed with ``rooms.seal`` under the room key for (channel, message id), padded to
``META_PAD`` bytes first so the name's length does not show.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import BinaryIO

from .. import rooms
from ..model import ValidationError
from . import limits as L
from .manifest import FileManifest, validate_file_name, validate_mime

KEY_BYTES = 32
TAG_BYTES = 16
FILE_AD = b"fletchat-file-v1"
META_PAD = 1536
MIN_SEALED_BYTES = 16 * L.KIB


def padme(length: int) -> int:
    """The Padmé size class of ``length`` (Nikitin et al., PURBs, 2019)."""
    if length < 2:
        return length
    e = length.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (length + mask) & ~mask


def padded_size(size: int) -> int:
    return max(padme(size), MIN_SEALED_BYTES)


def sealed_size(size: int, chunk_size: int) -> int:
    """Bytes of the sealed blob for a ``size``-byte file."""
    piece = chunk_size - TAG_BYTES
    padded = padded_size(size)
    return padded + TAG_BYTES * max(1, -(-padded // piece))


@dataclass(frozen=True)
class SealedMeta:
    name: str
    mime: str
    size: int  # the real (plaintext) size
    sha256: str  # of the plaintext
    key: bytes
    ms: int | None = None


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


@dataclass(frozen=True)
class RoomMessage:
    """Where a sealed description belongs: it is sealed under the room key for this channel and
    message id, so it cannot be replayed into another message."""

    room_key: bytes
    channel: str
    msg_id: str


def seal_stream(dst: BinaryIO, src: BinaryIO, size: int, room: RoomMessage, name: str, mime: str,
                chunk_size: int = L.DEFAULT_CHUNK_SIZE, ms: int | None = None) -> str:
    """Write the sealed blob of ``src`` (``size`` bytes) to ``dst``; returns the ``sealed`` field."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    validate_file_name(name)
    validate_mime(mime)
    if sealed_size(size, chunk_size) > L.MAX_FILE_BYTES:
        raise ValidationError(f"File is too large to seal (at most about {L.MAX_FILE_BYTES} bytes).")
    key = os.urandom(KEY_BYTES)
    aead = ChaCha20Poly1305(key)
    piece = chunk_size - TAG_BYTES
    remaining_pad = padded_size(size) - size
    left, index, whole = size, 0, hashlib.sha256()
    while True:
        data = src.read(min(piece, left)) if left else b""
        if left and not data:
            raise ValidationError("The file got shorter while it was being sealed.")
        left -= len(data)
        whole.update(data)
        if len(data) < piece and remaining_pad:
            pad = min(piece - len(data), remaining_pad)
            data += bytes(pad)
            remaining_pad -= pad
        dst.write(aead.encrypt(_nonce(index), data, FILE_AD))
        index += 1
        if not left and not remaining_pad:
            break
    meta = {"n": name, "t": mime, "s": size, "h": whole.hexdigest(),
            "k": base64.b64encode(key).decode("ascii")}
    if ms is not None:
        meta["ms"] = ms
    text = json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
    text += " " * (META_PAD - len(text.encode("utf-8")))
    return rooms.seal(room.room_key, room.channel, room.msg_id, text)


def open_meta(room_key: bytes, channel: str, msg_id: str, manifest: FileManifest) -> SealedMeta:
    """The sealed name/type/key of ``manifest``; ``rooms.RoomError`` if this key does not open it."""
    if manifest.sealed is None:
        raise rooms.RoomError("Not a sealed file.")
    text = rooms.open_sealed(room_key, channel, msg_id, manifest.sealed)
    try:
        meta = json.loads(text)
        key = base64.b64decode(meta["k"], validate=True)
        size, sha, ms = meta["s"], meta["h"], meta.get("ms")
        if (len(key) != KEY_BYTES or type(size) is not int or not isinstance(sha, str)
                or sealed_size(size, manifest.chunk_size) != manifest.size):
            raise ValueError("inconsistent")
        return SealedMeta(validate_file_name(meta["n"]), validate_mime(meta["t"]), size, sha, key,
                          ms if type(ms) is int else None)
    except (ValueError, KeyError, TypeError) as err:
        raise rooms.RoomError("The sealed file description is malformed.") from err


def open_chunk(meta: SealedMeta, index: int, sealed: bytes) -> bytes:
    """One sealed chunk's plaintext (with any padding); ``RoomError`` if it does not authenticate."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    try:
        return ChaCha20Poly1305(meta.key).decrypt(_nonce(index), sealed, FILE_AD)
    except InvalidTag as err:
        raise rooms.RoomError(f"Sealed chunk {index} does not open (altered).") from err


def unseal_stream(dst: BinaryIO, src: BinaryIO, meta: SealedMeta, chunk_size: int) -> None:
    """Write the plaintext of the sealed blob ``src`` to ``dst``, checking its SHA-256."""
    left, index, whole = meta.size, 0, hashlib.sha256()
    while sealed := src.read(chunk_size):
        data = open_chunk(meta, index, sealed)[:left]
        left -= len(data)
        whole.update(data)
        dst.write(data)
        index += 1
    if left or whole.hexdigest() != meta.sha256:
        raise rooms.RoomError("The sealed file does not match its description.")
