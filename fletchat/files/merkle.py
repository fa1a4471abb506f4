"""RFC 6962 / RFC 9162 Merkle tree hashes over a file's chunks.

Why a Merkle root and not a per-chunk hash list in the manifest: a 4 GiB file has 16 384 chunks,
whose hash list (512 KiB) does not fit a signed chat message (64 KiB frames). The root is 32 bytes;
each chunk travels with its audit path (at most 14 hashes), so every chunk is verified on arrival,
from any holder, independently of the others. The construction is RFC 6962's (leaf =
SHA-256(0x00 || chunk), node = SHA-256(0x01 || left || right), split at the largest power of two
below n) so another implementation can use any CT library. About 60 lines, pure Python: it must run
on Android and in Pyodide, where no maintained pure-Python library is packaged.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

HASH_BYTES = 32


def leaf_hash(chunk: bytes) -> bytes:
    h = hashlib.sha256(b"\x00")
    h.update(chunk)  # no copy of the chunk (a 1 MiB concatenation per chunk adds up)
    return h.digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """A tree over known leaf hashes; subtree hashes are cached, so proofs cost O(log n) after the
    first one."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        self._leaves = list(leaves)
        self._cache: dict[tuple[int, int], bytes] = {}

    def _mth(self, lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return self._leaves[lo]
        hit = self._cache.get((lo, hi))
        if hit is None:
            k = _split(hi - lo)
            hit = _node(self._mth(lo, lo + k), self._mth(lo + k, hi))
            self._cache[(lo, hi)] = hit
        return hit

    @property
    def root(self) -> bytes:
        return self._mth(0, len(self._leaves))

    def proof(self, index: int) -> list[bytes]:
        """The audit path of leaf ``index``, leaf-side first (RFC 6962 PATH(m, D[n]))."""
        if not 0 <= index < len(self._leaves):
            raise IndexError(index)
        path: list[bytes] = []
        lo, hi, m = 0, len(self._leaves), index
        stack: list[bytes] = []
        while hi - lo > 1:
            k = _split(hi - lo)
            if m < k:
                stack.append(self._mth(lo + k, hi))
                hi = lo + k
            else:
                stack.append(self._mth(lo, lo + k))
                lo, m = lo + k, m - k
        path.extend(reversed(stack))
        return path


def verify(root: bytes, index: int, count: int, leaf: bytes, path: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.3.2: does ``path`` prove ``leaf`` at ``index`` of ``count`` leaves?"""
    if not 0 <= index < count or any(len(p) != HASH_BYTES for p in path):
        return False
    fn, sn, r = index, count - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


class TreeCache:
    """The Merkle trees of the last ``size`` complete files chunks were served from, so serving
    a file chunk by chunk reads its leaf hashes once (thread-safe: chunks are read in workers)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._trees: OrderedDict[str, MerkleTree] = OrderedDict()

    def get(self, sha: str, leaves_path: Path) -> MerkleTree:
        with self._lock:
            tree = self._trees.get(sha)
            if tree is not None:
                self._trees.move_to_end(sha)
                return tree
        raw = leaves_path.read_bytes()
        tree = MerkleTree([raw[i:i + HASH_BYTES] for i in range(0, len(raw), HASH_BYTES)])
        with self._lock:
            self._trees[sha] = tree
            while len(self._trees) > self.size:
                self._trees.popitem(last=False)
        return tree

    def drop(self, sha: str) -> None:
        with self._lock:
            self._trees.pop(sha, None)
