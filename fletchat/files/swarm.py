"""Partial holders (docs/protocol.md, "Files", ``have``): while a file is being fetched, the chunks
already verified and written are served to the other peers that fetch it too, and announced to
them, so four receivers of one file do not all take every byte from the origin's upload.

Sans-I/O bookkeeping for ``FilesService``, one entry per file being fetched:

- which chunks are servable: verified against the signed Merkle root, written to disk, with the
  audit path they came with (kept in memory: a partial holder cannot compute a proof for a chunk
  whose siblings it lacks). Chunks on disk from before a restart are not servable (no proof).
- which peers fetch it too (they sent ``query`` or ``have`` for it): each is told, once, every
  servable chunk so far, then the new ones in batches (``flush``).

Nothing here reads a disk or a socket; the service does, and a chunk is only ever read back
from the partial file if the blob store has it journaled as verified.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from . import frames as F
from .manifest import FileManifest, chunk_count

MAX_HAVE_FRAMES = 16  # per announcement to one peer (16 x 48 runs): more runs are not offered


@dataclass
class _File:
    manifest: FileManifest
    proofs: dict[int, tuple[bytes, ...]] = field(default_factory=dict)  # servable chunks
    peers: set[str] = field(default_factory=set)  # fetch it too: told what we have
    new: set[int] = field(default_factory=set)  # servable, not announced yet
    askers: set[str] = field(default_factory=set)  # sent a query: told when we hold it all


class Swarm:
    def __init__(self, rng: random.Random) -> None:
        self._files: dict[str, _File] = {}
        self._rng = rng
        self._due = False  # a flush is scheduled

    def offset(self, manifest: FileManifest) -> int:
        """Where this fetcher starts asking (``Fetch.spread``): a random chunk."""
        return self._rng.randrange(manifest.chunk_count)

    def schedule(self) -> bool:
        """Whether the caller should schedule a ``flush`` (none is pending yet)."""
        due, self._due = self._due, True
        return not due

    def begin(self, manifest: FileManifest) -> None:
        self._files.setdefault(manifest.sha256, _File(manifest))

    def end(self, sha256: str) -> set[str]:
        """The fetch ended (the file is complete, or given up): the peers that were told, and
        those that asked for it (``asked``)."""
        f = self._files.pop(sha256, None)
        return f.peers | f.askers if f else set()

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self._files

    def written(self, sha256: str, index: int, proof: tuple[bytes, ...]) -> None:
        """Chunk ``index`` is verified and on disk: servable from now on."""
        f = self._files.get(sha256)
        if f is not None and 0 <= index < f.manifest.chunk_count:
            f.proofs[index] = proof
            f.new.add(index)

    def asked(self, sha256: str, peer: str) -> None:
        """``peer`` sent a ``query`` for this file (answered ``holds`` false): it is told
        ``holds`` true if the fetch completes, even one that came during the final hash check."""
        f = self._files.get(sha256)
        if f is not None:
            f.askers.add(peer)

    def span(self, sha256: str, index: int, chunk_size: int) -> tuple[int, int] | None:
        """(offset, length) of a servable chunk asked with ``chunk_size``, else None."""
        f = self._files.get(sha256)
        m = f.manifest if f else None
        if (m is None or index not in f.proofs or chunk_size != m.chunk_size  # type: ignore[union-attr]
                or chunk_count(m.size, chunk_size) != m.chunk_count):
            return None
        return m.chunk_span(index)

    def proof(self, sha256: str, index: int) -> tuple[bytes, ...] | None:
        f = self._files.get(sha256)
        return f.proofs.get(index) if f else None

    def fellows(self, sha256: str) -> set[str]:
        """The peers known to fetch this file too (connected: ``forget`` drops the others)."""
        f = self._files.get(sha256)
        return set(f.peers) if f else set()

    def interested(self, sha256: str, peer: str) -> list[F.Have]:
        """``peer`` fetches this file too: the frames telling it everything servable so far
        (an empty ``have`` if nothing yet), the first time only."""
        f = self._files.get(sha256)
        if f is None or peer in f.peers:
            return []
        f.peers.add(peer)
        return F.haves(sha256, set(f.proofs))[:MAX_HAVE_FRAMES]

    def flush(self) -> list[tuple[str, F.Have]]:
        """Chunks that became servable since the last flush, for every interested peer."""
        self._due = False
        out: list[tuple[str, F.Have]] = []
        for sha, f in self._files.items():
            if f.new and f.peers:
                frames = F.haves(sha, f.new)[:MAX_HAVE_FRAMES]
                out += [(peer, frame) for peer in sorted(f.peers) for frame in frames]
            f.new.clear()
        return out

    def forget(self, peer: str) -> None:
        """The peer's files connection closed."""
        for f in self._files.values():
            f.peers.discard(peer)
            f.askers.discard(peer)
