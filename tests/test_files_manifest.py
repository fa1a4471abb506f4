"""Merkle proofs (against a direct transcription of RFC 6962's definition), manifest validation of
everything a peer may send, and safe export names."""

from __future__ import annotations

import hashlib

import pytest

from fletchat.files import limits as L
from fletchat.files.manifest import FileManifest, export_name, files_from_wire, signing_element
from fletchat.files.merkle import MerkleTree, leaf_hash, verify
from fletchat.model import ValidationError


def rfc6962_mth(data: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 section 2.1 writes it (slow, for checking)."""
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < len(data):
        k *= 2
    return hashlib.sha256(b"\x01" + rfc6962_mth(data[:k]) + rfc6962_mth(data[k:])).digest()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33])
def test_every_proof_verifies_against_the_rfc_root(n):
    chunks = [f"chunk {i}".encode() for i in range(n)]
    tree = MerkleTree([leaf_hash(c) for c in chunks])
    assert tree.root == rfc6962_mth(chunks)
    for i, c in enumerate(chunks):
        proof = tree.proof(i)
        assert len(proof) <= max(1, (n - 1).bit_length())
        assert verify(tree.root, i, n, leaf_hash(c), proof)
        # the same proof does not vouch for another chunk, another index or another tree size
        assert not verify(tree.root, i, n, leaf_hash(c + b"x"), proof)
        if n > 1:
            assert not verify(tree.root, (i + 1) % n, n, leaf_hash(c), proof)
        if proof:
            bad = [bytes(32)] + proof[1:]
            assert not verify(tree.root, i, n, leaf_hash(c), bad)
            assert not verify(tree.root, i, n, leaf_hash(c), proof[:-1])
            assert not verify(tree.root, i, n, leaf_hash(c), proof + [bytes(32)])


def test_verify_rejects_out_of_range_and_malformed():
    tree = MerkleTree([leaf_hash(b"a"), leaf_hash(b"b")])
    assert not verify(tree.root, 2, 2, leaf_hash(b"a"), tree.proof(0))
    assert not verify(tree.root, -1, 2, leaf_hash(b"a"), tree.proof(0))
    assert not verify(tree.root, 0, 2, leaf_hash(b"a"), [b"short"])


H = "ab" * 32
GOOD = {"sha256": H, "size": 1000, "chunk": L.DEFAULT_CHUNK_SIZE, "root": "cd" * 32,
        "name": "holiday photo.jpg", "mime": "image/jpeg"}


def test_a_good_manifest_round_trips():
    m = FileManifest.from_wire(GOOD)
    assert (m.name, m.size, m.chunk_count, m.is_image) == ("holiday photo.jpg", 1000, 1, True)
    assert FileManifest.from_wire(m.to_wire()) == m
    thumb = dict(GOOD, size=500, mime="image/png")
    with_thumb = FileManifest.from_wire(dict(GOOD, thumb=thumb, ms=1500))
    assert with_thumb.thumb == FileManifest.from_wire(thumb) and with_thumb.ms == 1500
    assert FileManifest.from_wire(with_thumb.to_wire()) == with_thumb


def test_chunk_spans():
    m = FileManifest.from_wire(dict(GOOD, size=L.DEFAULT_CHUNK_SIZE * 2 + 5))
    assert m.chunk_count == 3
    assert m.chunk_span(2) == (L.DEFAULT_CHUNK_SIZE * 2, 5)
    assert FileManifest.from_wire(dict(GOOD, size=0)).chunk_span(0) == (0, 0)
    with pytest.raises(IndexError):
        m.chunk_span(3)


@pytest.mark.parametrize("change, says", [
    ({"sha256": "AB" * 32}, "sha256"),
    ({"sha256": "ab" * 31}, "sha256"),
    ({"root": None}, "root"),
    ({"size": -1}, "size"),
    ({"size": L.MAX_FILE_BYTES + 1}, "size"),
    ({"size": True}, "size"),
    ({"size": 1.5}, "size"),
    ({"chunk": 1000}, "chunk"),
    ({"chunk": L.MAX_CHUNK_SIZE * 2}, "chunk"),
    ({"chunk": L.MIN_CHUNK_SIZE // 2}, "chunk"),
    ({"chunk": L.MIN_CHUNK_SIZE, "size": L.MAX_CHUNKS * L.MIN_CHUNK_SIZE + 1}, "chunks"),
    ({"name": ""}, "name"),
    ({"name": "x" * (L.MAX_FILE_NAME_CHARS + 1)}, "name"),
    ({"name": "photo\u202egpj.exe"}, "control"),
    ({"name": "a\nb"}, "control"),
    ({"name": "a\x00b"}, "control"),
    ({"name": ".."}, "dots"),
    ({"name": 5}, "name"),
    ({"mime": "Image/PNG"}, "mime"),
    ({"mime": "image"}, "mime"),
    ({"mime": "image/png; charset=x"}, "mime"),
    ({"ms": -1}, "ms"),
    ({"ms": L.MAX_VOICE_MS + 1}, "ms"),
    ({"thumb": dict(GOOD, size=L.MAX_THUMB_BYTES + 1)}, "thumb"),
    ({"thumb": dict(GOOD, mime="text/plain")}, "thumb"),
    ({"thumb": dict(GOOD, thumb=GOOD)}, "thumbnail"),
    ({"sealed": "sealed:v1:AAAA"}, "sealed"),  # a sealed file with a clear name
])
def test_bad_manifests_are_refused_with_a_reason(change, says):
    with pytest.raises(ValidationError, match=says):
        FileManifest.from_wire(dict(GOOD, **change))


def test_sealed_manifest_shows_no_name():
    base = {k: GOOD[k] for k in ("sha256", "size", "chunk", "root")}
    m = FileManifest.from_wire(dict(base, sealed="sealed:v1:AAAA"))
    assert (m.name, m.mime, m.is_image) == ("", "application/octet-stream", False)
    assert "name" not in m.to_wire() and "mime" not in m.to_wire()
    for extra in ({"thumb": GOOD}, {"ms": 5}, {"sealed": "sealed:v1:" + "A" * 3000},
                  {"sealed": "plain"}):
        with pytest.raises(ValidationError):
            FileManifest.from_wire(dict(base, sealed="sealed:v1:AAAA") | extra)


def test_files_list_bounds():
    assert files_from_wire(None) == ()
    assert len(files_from_wire([GOOD] * L.MAX_FILES_PER_MESSAGE)) == L.MAX_FILES_PER_MESSAGE
    for bad in ([], [GOOD] * (L.MAX_FILES_PER_MESSAGE + 1), GOOD, ["x"]):
        with pytest.raises(ValidationError):
            files_from_wire(bad)


@pytest.mark.parametrize("name, expected", [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "_.._etc_passwd"),
    ("..\\..\\Windows\\system.ini", "_.._Windows_system.ini"),
    ("CON.txt", "_CON.txt"),
    ("  .hidden ", "hidden"),
    ("a:b*c?.txt", "a_b_c_.txt"),
    ("...", "file-abababababababab"),
])
def test_export_names_are_one_safe_component(name, expected):
    out = export_name(name, H)
    assert out == expected
    assert "/" not in out and "\\" not in out and out not in (".", "..")


def test_export_name_keeps_the_extension_of_a_long_name():
    out = export_name("x" * 300 + ".jpeg", H)
    assert len(out) <= 120 and out.endswith(".jpeg")


def test_signing_element_is_canonical():
    import json

    m = FileManifest.from_wire(dict(GOOD, thumb=dict(GOOD, size=10, mime="image/png"), ms=3))
    el = signing_element((m,))
    assert list(el[0]) == sorted(el[0]) and list(el[0]["thumb"]) == sorted(el[0]["thumb"])
    # the same file described with its keys in another order signs the same
    shuffled = FileManifest.from_wire(dict(reversed(list(m.to_wire().items()))))
    assert json.dumps(signing_element((shuffled,))) == json.dumps(el)
    renamed = FileManifest.from_wire(dict(m.to_wire(), name="other.jpg"))
    assert json.dumps(signing_element((renamed,))) != json.dumps(el)
