"""The frames of the files lane (docs/protocol.md, "Files"), pure encode/decode with validation.

Requests and refusals are JSON text frames; chunk data is one binary frame: a 4-byte big-endian
header length, a JSON header, then the chunk's bytes. Everything decoded here is bounded before it
is parsed; a ``FrameError`` means: close the files connection (1002, or 1009 when too large).
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ..model import ValidationError
from . import limits as L
from .merkle import HASH_BYTES

VERSION = 1
MAX_TEXT_FRAME_BYTES = 1024
MAX_HEADER_BYTES = 1024
MAX_BINARY_FRAME_BYTES = 4 + MAX_HEADER_BYTES + L.MAX_CHUNK_SIZE
MAX_PROOF_HASHES = (L.MAX_CHUNKS - 1).bit_length()  # 14
REFUSE_REASONS = ("not_found", "busy")
MAX_HAVE_RANGES = 48  # [first, count] pairs per ``have`` frame (it must fit MAX_TEXT_FRAME_BYTES)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_LEN = struct.Struct(">I")


class FrameError(ValidationError):
    def __init__(self, reason: str, code: int = 1002) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class Get:
    sha256: str
    index: int
    chunk_size: int


@dataclass(frozen=True)
class Cancel:
    sha256: str
    index: int


@dataclass(frozen=True)
class NoChunk:
    sha256: str
    index: int
    reason: str


@dataclass(frozen=True)
class Query:
    """Do you hold this file? (answered with ``Holds``; ``fetching``: I fetch it, tell me your
    verified chunks with ``Have`` if you fetch it too)"""

    sha256: str
    fetching: bool = False


@dataclass(frozen=True)
class Holds:
    sha256: str
    have: bool  # the complete file


@dataclass(frozen=True)
class Have:
    """I fetch this file too, and hold these verified chunks (``(first, count)`` runs; none yet
    when empty). Announcements add up: each names chunks verified since the last."""

    sha256: str
    ranges: tuple[tuple[int, int], ...]

    def indexes(self, limit: int = L.MAX_CHUNKS) -> list[int]:
        """The chunk indexes named, below ``limit`` (the file's chunk count)."""
        return [i for first, count in self.ranges for i in range(first, min(first + count, limit))]


def runs(indexes: set[int] | list[int]) -> list[tuple[int, int]]:
    """Chunk indexes as sorted ``(first, count)`` runs."""
    out: list[tuple[int, int]] = []
    for i in sorted(indexes):
        if out and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


def haves(sha256: str, indexes: set[int] | list[int]) -> list[Have]:
    """``have`` frames announcing ``indexes`` (one, empty, when there are none)."""
    r = runs(indexes)
    return [Have(sha256, tuple(r[k:k + MAX_HAVE_RANGES])) for k in range(0, len(r), MAX_HAVE_RANGES)] \
        or [Have(sha256, ())]


@dataclass(frozen=True)
class Chunk:
    sha256: str
    index: int
    proof: tuple[bytes, ...]
    data: bytes | memoryview  # decoded: a view into the received frame (no copy of the chunk)


FilesFrame = Query | Holds | Have | Get | Cancel | NoChunk | Chunk


def _text(obj: dict) -> str:
    return json.dumps({"v": VERSION, **obj}, separators=(",", ":"))


def encode(frame: FilesFrame) -> str | bytes:
    if isinstance(frame, Query):
        extra = {"fetching": True} if frame.fetching else {}
        return _text({"type": "query", "sha256": frame.sha256, **extra})
    if isinstance(frame, Holds):
        return _text({"type": "holds", "sha256": frame.sha256, "have": frame.have})
    if isinstance(frame, Have):
        return _text({"type": "have", "sha256": frame.sha256, "ranges": [list(r) for r in frame.ranges]})
    if isinstance(frame, Get):
        return _text({"type": "get", "sha256": frame.sha256, "i": frame.index, "chunk": frame.chunk_size})
    if isinstance(frame, Cancel):
        return _text({"type": "cancel", "sha256": frame.sha256, "i": frame.index})
    if isinstance(frame, NoChunk):
        return _text({"type": "nochunk", "sha256": frame.sha256, "i": frame.index, "reason": frame.reason})
    header = json.dumps({"v": VERSION, "type": "chunk", "sha256": frame.sha256, "i": frame.index,
                         "proof": base64.b64encode(b"".join(frame.proof)).decode("ascii")},
                        separators=(",", ":")).encode("ascii")
    return _LEN.pack(len(header)) + header + frame.data


def _common(obj: object, want: tuple[str, ...], index: bool = True) -> dict:
    if not isinstance(obj, dict) or obj.get("v") != VERSION:
        raise FrameError("files frame must be an object with v = 1")
    if obj.get("type") not in want:
        raise FrameError(f"unexpected files frame type {str(obj.get('type'))[:20]!r}")
    if not isinstance(obj.get("sha256"), str) or not _HEX64.match(obj["sha256"]):
        raise FrameError("sha256 must be 64 lowercase hex digits")
    if index and (type(obj.get("i")) is not int or not 0 <= obj["i"] < L.MAX_CHUNKS):
        raise FrameError(f"i must be an integer 0-{L.MAX_CHUNKS - 1}")
    return obj


def _query(obj: dict) -> Query:
    if type(obj.get("fetching", False)) is not bool:
        raise FrameError("query.fetching must be true or false")
    return Query(obj["sha256"], obj.get("fetching", False))


def _holds(obj: dict) -> Holds:
    if type(obj.get("have")) is not bool:
        raise FrameError("holds.have must be true or false")
    return Holds(obj["sha256"], obj["have"])


def _have(obj: dict) -> Have:
    ranges = obj.get("ranges")
    if type(ranges) is not list or len(ranges) > MAX_HAVE_RANGES:
        raise FrameError(f"have.ranges must be a list of at most {MAX_HAVE_RANGES} [first, count] pairs")
    out: list[tuple[int, int]] = []
    end = 0  # runs are sorted and do not overlap: a frame names each chunk at most once
    for r in ranges:
        if (type(r) is not list or len(r) != 2 or type(r[0]) is not int or type(r[1]) is not int
                or not end <= r[0] < L.MAX_CHUNKS or not 1 <= r[1] <= L.MAX_CHUNKS - r[0]):
            raise FrameError(f"have.ranges: sorted [first, count] runs that do not overlap, "
                             f"1 <= count, first + count <= {L.MAX_CHUNKS}")
        end = r[0] + r[1]
        out.append((r[0], r[1]))
    return Have(obj["sha256"], tuple(out))


def _get(obj: dict) -> Get:
    chunk = obj.get("chunk")
    if type(chunk) is not int or not L.MIN_CHUNK_SIZE <= chunk <= L.MAX_CHUNK_SIZE or chunk & (chunk - 1):
        raise FrameError("chunk must be a power of two within the chunk size limits")
    return Get(obj["sha256"], obj["i"], chunk)


def _cancel(obj: dict) -> Cancel:
    return Cancel(obj["sha256"], obj["i"])


def _nochunk(obj: dict) -> NoChunk:
    if obj.get("reason") not in REFUSE_REASONS:
        raise FrameError(f"nochunk.reason must be one of {', '.join(REFUSE_REASONS)}")
    return NoChunk(obj["sha256"], obj["i"], obj["reason"])


# text frame type -> (does it carry a chunk index "i", decoder of the checked object)
_TEXT_DECODERS: dict[str, tuple[bool, Callable[[dict], FilesFrame]]] = {
    "query": (False, _query),
    "holds": (False, _holds),
    "have": (False, _have),
    "get": (True, _get),
    "cancel": (True, _cancel),
    "nochunk": (True, _nochunk),
}


def _decode_text(raw: str) -> FilesFrame:
    if len(raw) > MAX_TEXT_FRAME_BYTES:
        raise FrameError("text frame too large", 1009)
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as err:
        raise FrameError("invalid JSON") from err
    kind = obj.get("type") if isinstance(obj, dict) else None
    entry = _TEXT_DECODERS.get(kind) if isinstance(kind, str) else None
    if entry is None:
        _common(obj, ())  # raises: not an object, wrong version or unknown type
        raise FrameError("unexpected files frame")  # not reached: _common raised
    index, decoder = entry
    return decoder(_common(obj, (kind,), index=index))


def _proof_hashes(obj: dict) -> tuple[bytes, ...]:
    """The chunk header's ``proof``: base64 of at most MAX_PROOF_HASHES 32-byte hashes."""
    try:
        proof = base64.b64decode(obj.get("proof"), validate=True) if isinstance(obj.get("proof"), str) else None
    except ValueError as err:  # binascii.Error, or a str with non-ASCII characters
        raise FrameError("invalid chunk header") from err
    if proof is None or len(proof) % HASH_BYTES or len(proof) // HASH_BYTES > MAX_PROOF_HASHES:
        raise FrameError(f"proof must be base64 of at most {MAX_PROOF_HASHES} 32-byte hashes")
    return tuple(proof[i:i + HASH_BYTES] for i in range(0, len(proof), HASH_BYTES))


def _decode_binary(raw: bytes) -> Chunk:
    if len(raw) > MAX_BINARY_FRAME_BYTES:
        raise FrameError("binary frame too large", 1009)
    if len(raw) < _LEN.size:
        raise FrameError("binary frame too short")
    (n,) = _LEN.unpack_from(raw)
    if not 2 <= n <= MAX_HEADER_BYTES or _LEN.size + n > len(raw):
        raise FrameError("bad chunk header length")
    try:
        obj = _common(json.loads(raw[_LEN.size:_LEN.size + n].decode("ascii")), ("chunk",))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise FrameError("invalid chunk header") from err
    hashes = _proof_hashes(obj)
    data = memoryview(raw)[_LEN.size + n:]
    if len(data) > L.MAX_CHUNK_SIZE:
        raise FrameError("chunk too large", 1009)
    return Chunk(obj["sha256"], obj["i"], hashes, data)


def decode(raw: str | bytes) -> FilesFrame:
    """One frame as received on the files lane."""
    if isinstance(raw, str):
        return _decode_text(raw)
    return _decode_binary(raw)
