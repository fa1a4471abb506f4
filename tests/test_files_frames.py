"""The files-lane frame codec: round trips and the refusal of everything malformed or oversized."""

from __future__ import annotations

import json
import struct

import pytest

from fletchat.files import limits as L
from fletchat.files.frames import (
    MAX_BINARY_FRAME_BYTES,
    Cancel,
    Chunk,
    FrameError,
    Get,
    Holds,
    NoChunk,
    Query,
    decode,
    encode,
)

H = "ab" * 32


@pytest.mark.parametrize("frame", [
    Get(H, 0, L.DEFAULT_CHUNK_SIZE),
    Query(H),
    Holds(H, True),
    Holds(H, False),
    Cancel(H, 7),
    NoChunk(H, 3, "not_found"),
    NoChunk(H, 3, "busy"),
    Chunk(H, 5, (b"\x01" * 32, b"\x02" * 32), b"data" * 10),
    Chunk(H, 0, (), b""),
    Chunk(H, L.MAX_CHUNKS - 1, tuple(bytes([i]) * 32 for i in range(14)), b"\xff" * L.MAX_CHUNK_SIZE),
])
def test_round_trip(frame):
    raw = encode(frame)
    assert isinstance(raw, bytes) == isinstance(frame, Chunk)
    assert decode(raw) == frame
    assert len(raw) <= MAX_BINARY_FRAME_BYTES


def text(**fields) -> str:
    return json.dumps({"v": 1, "type": "get", "sha256": H, "i": 0, "chunk": L.DEFAULT_CHUNK_SIZE} | fields)


def binary(header: dict | bytes, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(
        {"v": 1, "type": "chunk", "sha256": H, "i": 0, "proof": ""} | header).encode()
    return struct.pack(">I", len(raw)) + raw + data


@pytest.mark.parametrize("raw, says", [
    ("x" * 2000, "too large"),
    ("{", "invalid JSON"),
    ("[]", "object"),
    (text(v=2), "v = 1"),
    (text(type="chunk"), "type"),
    (text(sha256="AB" * 32), "sha256"),
    (text(i=-1), "i must"),
    (text(i=L.MAX_CHUNKS), "i must"),
    (text(i=True), "i must"),
    (text(chunk=1000), "power of two"),
    (text(chunk=L.MAX_CHUNK_SIZE * 2), "power of two"),
    (text(type="nochunk", reason="because"), "reason"),
    (text(type="holds", have=1), "have"),
    (text(type="query", sha256="x"), "sha256"),
    (text(type="hello"), "type"),
    (b"\x00\x00", "too short"),
    (b"\x00\x00\x10\x00{}", "header length"),
    (binary(b"\xff\xfe"), "invalid chunk header"),
    (binary({"proof": "***"}), "invalid chunk header"),
    (binary({"proof": "\u00e9AAA"}), "invalid chunk header"),  # base64 refuses non-ASCII with ValueError
    (binary({"proof": "AAAA"}), "proof"),  # 3 bytes: not whole hashes
    (binary({"proof": "A" * 4 * 200}), "at most 14"),
    (binary({"proof": "A" * 4 * 300}), "header length"),
    (binary({"type": "get"}), "type"),
    (binary({}, b"x" * (L.MAX_CHUNK_SIZE + 1)), "too large"),
])
def test_malformed_frames_are_refused(raw, says):
    with pytest.raises(FrameError, match=says):
        decode(raw)


def test_too_many_proof_hashes():
    import base64

    proof = base64.b64encode(bytes(32 * 15)).decode()
    with pytest.raises(FrameError, match="at most 14"):
        decode(binary({"proof": proof}))


def test_oversized_frames_close_with_1009():
    with pytest.raises(FrameError) as err:
        decode(b"\x00" * (MAX_BINARY_FRAME_BYTES + 1))
    assert err.value.code == 1009
