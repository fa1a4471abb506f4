"""What a message says about an attached file, and the validation of every such field from the
network.

A file is content-addressed: ``sha256`` of its bytes plus ``size``; ``root`` is the RFC 6962
Merkle root of its chunks (see ``merkle``), against which each chunk is checked on arrival. The
``name`` and ``mime`` are for display only: nothing uses them as a path (``export_name`` makes a
safe file name when a person saves a copy). Sealed files (private rooms) carry no name or type in
the clear, only ``sealed`` (see ``sealed``).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from ..model import JOINERS, OCTET_STREAM, FileRef, ValidationError, chunk_count
from . import limits as L

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$")
_SEALED = re.compile(r"^sealed:v1:[A-Za-z0-9+/]+={0,2}$")
MAX_SEALED_META_CHARS = 2200  # sealed.META_PAD bytes sealed and base64-encoded
_FIELDS = {"sha256", "size", "chunk", "root", "name", "mime", "sealed", "thumb", "ms"}


# The value type lives in ``model`` (``Message.files``); this module validates it.
FileManifest = FileRef
__all__ = ["OCTET_STREAM", "FileManifest", "chunk_count", "export_name", "files_from_wire", "manifest_from_wire",
           "signing_element", "validate_file_name", "validate_mime"]


def _check_chunk_size(value: object) -> int:
    if (
        type(value) is not int
        or not L.MIN_CHUNK_SIZE <= value <= L.MAX_CHUNK_SIZE
        or value & (value - 1)
    ):
        raise ValidationError(
            f"file.chunk must be a power of two from {L.MIN_CHUNK_SIZE} to {L.MAX_CHUNK_SIZE}."
        )
    return value


def validate_file_name(raw: object) -> str:
    """A display name: 1-255 characters, no control or format characters (bidi overrides would let
    ``photo\u202egpj.exe`` pose as a picture), not only dots or spaces."""
    if not isinstance(raw, str):
        raise ValidationError("file.name must be text.")
    name = unicodedata.normalize("NFC", raw)
    if not 1 <= len(name) <= L.MAX_FILE_NAME_CHARS:
        raise ValidationError(f"file.name must have 1-{L.MAX_FILE_NAME_CHARS} characters.")
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co") and ch not in JOINERS:
            raise ValidationError("file.name contains a control or formatting character.")
    if not name.strip(". "):
        raise ValidationError("file.name cannot be only dots or spaces.")
    return name


def validate_mime(raw: object) -> str:
    if not isinstance(raw, str) or len(raw) > L.MAX_MIME_CHARS or not _MIME.match(raw):
        raise ValidationError("file.mime must be a lowercase type/subtype, e.g. image/png.")
    return raw


def manifest_from_wire(obj: object, *, nested: bool = False) -> FileManifest:
    """Validate one entry of a message's ``files`` list; ``ValidationError`` says what is wrong."""
    if not isinstance(obj, dict):
        raise ValidationError("file must be an object.")
    size, chunk = _check_layout(obj)
    sealed, name, mime = _check_description(obj)
    thumb = None
    if obj.get("thumb") is not None:
        if nested:
            raise ValidationError("A thumbnail cannot have a thumbnail.")
        thumb = _check_thumb(manifest_from_wire(obj["thumb"], nested=True))
    return FileManifest(obj["sha256"], size, chunk, obj["root"], name, mime, sealed, thumb, _check_ms(obj))


def _check_layout(obj: dict) -> tuple[int, int]:
    """``sha256``, ``root``, ``size`` and ``chunk``; returns (size, chunk size)."""
    for key in ("sha256", "root"):
        if not isinstance(obj.get(key), str) or not _HEX64.match(obj[key]):
            raise ValidationError(f"file.{key} must be 64 lowercase hex digits.")
    size = obj.get("size")
    if type(size) is not int or not 0 <= size <= L.MAX_FILE_BYTES:
        raise ValidationError(f"file.size must be an integer 0-{L.MAX_FILE_BYTES}.")
    chunk = _check_chunk_size(obj.get("chunk"))
    if chunk_count(size, chunk) > L.MAX_CHUNKS:
        raise ValidationError(f"file has more than {L.MAX_CHUNKS} chunks.")
    return size, chunk


def _check_description(obj: dict) -> tuple[str | None, str, str]:
    """(sealed, name, mime): a sealed file shows nothing else in the clear."""
    sealed = obj.get("sealed")
    if sealed is None:
        return None, validate_file_name(obj.get("name")), validate_mime(obj.get("mime"))
    if "name" in obj or "mime" in obj:
        raise ValidationError("A sealed file has no name or mime in the clear.")
    if not isinstance(sealed, str) or len(sealed) > MAX_SEALED_META_CHARS or not _SEALED.match(sealed):
        raise ValidationError("file.sealed is malformed.")
    if obj.get("thumb") is not None or obj.get("ms") is not None:
        raise ValidationError("A sealed file has no thumbnail or duration in the clear.")
    return sealed, "", OCTET_STREAM


def _check_thumb(thumb: FileManifest) -> FileManifest:
    if thumb.size > L.MAX_THUMB_BYTES or not thumb.mime.startswith("image/"):
        raise ValidationError(f"file.thumb must be an image of at most {L.MAX_THUMB_BYTES} bytes.")
    return thumb


def _check_ms(obj: dict) -> int | None:
    ms = obj.get("ms")
    if ms is not None and (type(ms) is not int or not 0 <= ms <= L.MAX_VOICE_MS):
        raise ValidationError(f"file.ms must be an integer 0-{L.MAX_VOICE_MS}.")
    return ms


def files_from_wire(raw: object) -> tuple[FileManifest, ...]:
    """A message's ``files`` field (absent = no files)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not 1 <= len(raw) <= L.MAX_FILES_PER_MESSAGE:
        raise ValidationError(f"files must be a list of 1-{L.MAX_FILES_PER_MESSAGE} files.")
    return tuple(FileManifest.from_wire(item) for item in raw)


def _sorted(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: (_sorted(v) if isinstance(v, dict) else v) for k, v in sorted(obj.items())}


def signing_element(files: tuple[FileManifest, ...]) -> list[dict[str, Any]]:
    """What ``message_signing_bytes`` appends (as an 11th element) for a message with files: the
    wire objects with keys in lexicographic order, nested ``thumb`` too (docs/protocol.md, "Files")."""
    return [_sorted(f.to_wire()) for f in files]


_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_UNSAFE = re.compile(r'[\x00-\x1f<>:"/\\|?*\x7f]')


def export_name(name: str, sha256: str) -> str:
    """A file name that is safe to create in a folder the person chose: a single component, no
    separators or reserved names, at most 120 characters; falls back to the hash."""
    safe = _UNSAFE.sub("_", name).strip(" .")
    if _WINDOWS_RESERVED.match(safe):
        safe = "_" + safe
    if len(safe) > 120:
        stem, dot, ext = safe.rpartition(".")
        safe = (stem[: 110] + dot + ext[:9]) if dot and len(ext) <= 9 else safe[:120]
    return safe or f"file-{sha256[:16]}"
