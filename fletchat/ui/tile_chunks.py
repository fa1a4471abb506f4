"""A long list of tiles kept in isolated chunks of a Column, so that a change diffs the chunk it
is in, not every tile (issue 12: the people panel of every tab was diffed in full on every join,
N tiles in each of N tabs, so opening N tabs cost O(N^3)).

``ChunkedTiles.show(keys, build)`` puts one tile per key on screen in that order: a key shown
before keeps its tile and its chunk, a new key's tile goes into the chunk of the key before it,
and only what changed is returned for updating: the chunks whose tiles changed, or the Column
itself when chunks were added or dropped (a chunk that grew past ``MAX_TILES`` is replaced by
smaller ones, an emptied one goes, in that one update of the Column). What a person sees and
reads is the same as one Column of tiles: the chunks have the Column's spacing and no semantics.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import flet as ft

from .updates import Isolated

TILES = 10  # tiles per chunk when chunks are made
MAX_TILES = 2 * TILES  # a chunk that grows past this is split


class TileChunk(Isolated, ft.Column):
    """Consecutive tiles, updated on its own (the Column's update stops at it)."""


def arrange(old: Sequence[Sequence[Hashable]], keys: Sequence[Hashable]
            ) -> list[tuple[int | None, list[Hashable]]] | None:
    """``keys`` in chunks: each ``(i, keys)`` continues old chunk ``i``, ``(None, keys)`` is a new
    chunk. A key kept stays in its chunk; new keys between two kept ones of a chunk go into it;
    new keys between chunks (or at an end) join the chunk before or after if it has fewer than
    ``TILES``, else make a chunk of their own (appending never moves a tile). A chunk past
    ``MAX_TILES`` is cut (``pieces``): its first piece stays it, the rest are new chunks; old
    chunks left with no key are dropped. None when kept keys changed order across chunks."""
    where = {k: i for i, chunk in enumerate(old) for k in chunk}
    out: list[tuple[int | None, list[Hashable]]] = []
    run: list[Hashable] = []  # new keys since the last kept one

    def place(before: int | None) -> None:
        """The run of new keys, before old chunk ``before`` (None: at the end)."""
        if not run:
            return
        if out and (out[-1][0] == before or len(out[-1][1]) < TILES):
            out[-1][1].extend(run)  # inside that chunk, or room at the end of the one before
        elif before is not None and len(old[before]) < TILES:
            out.append((before, list(run)))  # room at the start of the next
        else:
            out.append((None, list(run)))
        run.clear()

    for k in keys:
        i = where.get(k)
        if i is None:
            run.append(k)
            continue
        last = next((j for j, _ in reversed(out) if j is not None), -1)
        if i < last:
            return None
        place(i)
        if not out or out[-1][0] != i:
            out.append((i, []))
        out[-1][1].append(k)
    place(None)
    cut: list[tuple[int | None, list[Hashable]]] = []
    for i, chunk in out:
        first, *rest = pieces(chunk)
        cut.append((i, first))
        cut.extend((None, piece) for piece in rest)
    return cut


def pieces(keys: list[Hashable]) -> list[list[Hashable]]:
    """A chunk's keys cut into chunks of about ``TILES`` (one chunk up to ``MAX_TILES``)."""
    if len(keys) <= MAX_TILES:
        return [keys]
    count = len(keys) // TILES
    size, extra = divmod(len(keys), count)
    out, start = [], 0
    for i in range(count):
        end = start + size + (i < extra)
        out.append(keys[start:end])
        start = end
    return out


class ChunkedTiles:
    """The tiles of ``column`` (its ``controls`` are chunks), by key."""

    def __init__(self, column: ft.Column, spacing: float) -> None:
        self.column = column
        self.spacing = spacing
        self._chunks: list[TileChunk] = []
        self._keys: list[list[Hashable]] = []
        self._tiles: dict[Hashable, ft.Control] = {}

    def tiles(self) -> list[ft.Control]:
        """Every tile shown, in order."""
        return [t for chunk in self._chunks for t in chunk.controls]

    def show(self, keys: Sequence[Hashable], build: Callable[[Hashable], ft.Control]
             ) -> list[ft.Control]:
        """One tile per key, in this order (``build`` makes a tile for a key not shown yet);
        returns the controls to update."""
        groups = arrange(self._keys, keys)
        if groups is None:
            groups = [(None, piece) for piece in pieces(list(keys))]
        known = self._tiles
        tiles: dict[Hashable, ft.Control] = {}
        changed: list[ft.Control] = []
        chunks: list[TileChunk] = []
        for i, group in groups:
            if i is None:
                # a new chunk gets new tiles: a tile taken from another chunk would be removed
                # there and added here by two patches, which Flet must see in that order
                made = [build(k) for k in group]
                chunk = TileChunk(controls=made, spacing=self.spacing, tight=True)
            else:
                made = [known[k] if k in known else build(k) for k in group]
                chunk = self._chunks[i]
                if group != self._keys[i]:
                    chunk.controls = made
                    changed.append(chunk)
            tiles.update(zip(group, made, strict=True))
            chunks.append(chunk)
        same = len(chunks) == len(self._chunks) and all(
            a is b for a, b in zip(chunks, self._chunks, strict=True))
        if not same:
            self.column.controls = list(chunks)
            changed.append(self.column)
        self._chunks, self._keys, self._tiles = chunks, [g for _, g in groups], tiles
        return changed
