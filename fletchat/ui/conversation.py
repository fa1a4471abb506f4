"""The conversation: a message list whose cost per new message does not grow with history.

Rows live in chunks of ``CHUNK_ROWS``, chunks in sections of ``SECTION_CHUNKS``, sections in the
ListView; chunks and sections are isolated Columns. A chunk is made with all its *slots* at once
(isolated, invisible until filled): a new message fills the tail chunk's next slot and only that
slot is updated. Appending to the chunk's list instead would make Flet diff each row kept in it
(4.5 on average, about a tenth of a tab's CPU per message). A full chunk is sealed and the next
message starts a new one (one section update, shallow: chunks are isolated), a full section
likewise (one ListView update, shallow too). The chunk that takes a view's first live rows is
sized so that each view starts its new chunks on its own message of ten (``tail_capacity``).
Rows update themselves (delivery marks, highlights). The ListView is *reversed*, as chat apps do:
scroll offset 0 is the newest message, so a reader at the end sees each new row with no
``scroll_to`` round trip (and no ``auto_scroll``, whose pinning proved racy when a long list
arrives at once), and an older page added at the far end never moves what the reader is looking
at. ``list.controls`` holds the sections newest first; each section and chunk is top-to-bottom.
"""

from __future__ import annotations

import bisect
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Iterator

import flet as ft

from .rows import MessageRow
from .text import LOAD_OLDER
from .updates import Isolated, Updates, after_layout

log = logging.getLogger("fletchat.ui")

CHUNK_ROWS = 10  # rows per chunk: made with this many slots
SECTION_CHUNKS = 20  # chunks per section: a sealed chunk re-diffs at most these (shallowly)
SCROLL_ATTEMPTS = 5  # scroll_to a row after 1, 2, 4, 8 and 16 layout waits (about 4.6 s)


class Slot(Isolated, ft.Container):
    """A place made before what fills it: filling it sends only it (Flutter's Column leaves an
    invisible child out, its spacing too, and lays itself out again when the child shows)."""

    def __init__(self, content: ft.Control | None = None) -> None:
        super().__init__(content=content, visible=content is not None)

    def fill(self, content: ft.Control) -> None:
        self.content = content
        self.visible = True


class Chunk(Isolated, ft.Column):
    """Up to ``CHUNK_ROWS`` consecutive rows (more after late inserts) in slots: the filled ones
    first, then the free ones. Updated on its own (its section's update skips it); ``filled``
    mirrors what the slots hold as a plain list (reading ``content`` back through Flet's
    descriptors costs)."""

    def __init__(self, rows: list[MessageRow], capacity: int = CHUNK_ROWS) -> None:
        slots = [Slot(r) for r in rows] + [Slot() for _ in range(capacity - len(rows))]
        super().__init__(controls=slots, spacing=10, tight=True)
        self.filled: list[MessageRow] = list(rows)

    def rows(self) -> list[MessageRow]:
        return self.filled

    def is_full(self) -> bool:
        return len(self.filled) >= len(self.controls)

    def fill(self, row: MessageRow) -> Slot:
        """Put ``row`` in the first free slot (``is_full`` must be False); update that slot."""
        slot: Slot = self.controls[len(self.filled)]  # type: ignore[assignment]
        slot.fill(row)
        self.filled.append(row)
        return slot

    def insert(self, index: int, row: MessageRow) -> None:
        """A late row at ``index`` among the rows (the chunk's own update sends it)."""
        self.controls.insert(index, Slot(row))
        self.filled.insert(index, row)


class Section(Isolated, ft.Column):
    """Up to ``SECTION_CHUNKS`` chunks; the ListView holds sections, so sealing a chunk or a
    section never walks the whole history either."""

    def __init__(self, chunks: list[Chunk]) -> None:
        super().__init__(controls=list(chunks), spacing=10, tight=True)

    def chunks(self) -> list[Chunk]:
        return self.controls  # type: ignore[return-value]


def sections_of(rows: list[MessageRow], phase: int = 0) -> list[Section]:
    """``rows`` in chunks of ``CHUNK_ROWS``; the last one has room for new rows up to the
    next one that fills ``phase`` (mod ``CHUNK_ROWS``), see ``tail_capacity``."""
    groups = [rows[i : i + CHUNK_ROWS] for i in range(0, len(rows), CHUNK_ROWS)]
    chunks = [Chunk(g) for g in groups[:-1]]
    if groups:
        chunks.append(Chunk(groups[-1], tail_capacity(len(groups[-1]), phase)))
    return [Section(chunks[i : i + SECTION_CHUNKS])
            for i in range(0, len(chunks), SECTION_CHUNKS)]


def tail_capacity(rows: int, phase: int) -> int:
    """Slots for the chunk that takes the next live rows, holding ``rows`` now: full once it
    holds ``phase`` (mod ``CHUNK_ROWS``) rows, so it has ``rows`` to ``rows + CHUNK_ROWS - 1``.

    Why: a new chunk costs its section's update (Flet walks every chunk's list of slots in it):
    about twice a row's cost for that tab. Tabs that opened on the same history would all
    start their chunks on the same message, and every tenth message would cost every tab that
    at once (figure 5 at 100 x 1,000: about 1.5x the p50, 2x in a loaded run); a phase drawn per
    view spreads those updates over the ten messages."""
    return rows + (phase - rows) % CHUNK_ROWS


def draw_phase() -> int:
    """A view's phase for ``tail_capacity``: random, so tabs opened together spread out."""
    return random.randrange(CHUNK_ROWS)


class Conversation:
    """The ListView of chunks, the rows by message id, and the "Load older messages" button."""

    def __init__(
        self,
        updates: Updates,
        on_scroll: Callable[[ft.OnScrollEvent], Awaitable[None]],
        on_load_older: Callable[[ft.Event], Awaitable[None]],
    ) -> None:
        self.updates = updates
        self.phase = draw_phase()  # tail_capacity
        self.rows: dict[str, MessageRow] = {}
        self.list = ft.ListView(
            expand=True,
            spacing=10,
            reverse=True,  # offset 0 is the newest message
            build_controls_on_demand=False,  # scroll_to(scroll_key=...) needs every row built
            on_scroll=on_scroll,
            scroll_interval=150,
        )
        self.load_older_button = ft.TextButton(
            LOAD_OLDER, icon=ft.Icons.HISTORY, on_click=on_load_older, visible=False
        )
        self.control = ft.Column(
            [self.load_older_button, self.list],  # centred by the Column (no Row around it)
            horizontal_alignment=ft.CrossAxisAlignment.CENTER,
            spacing=0,
            expand=True,
        )

    @property
    def sections(self) -> list[Section]:
        """Oldest first (``list.controls`` is newest first)."""
        return list(reversed(self.list.controls))  # type: ignore[arg-type]

    @property
    def chunks(self) -> list[Chunk]:
        return [c for section in self.sections for c in section.chunks()]

    def shown(self) -> Iterable[MessageRow]:
        for section in self.sections:
            for chunk in section.chunks():
                yield from chunk.rows()

    def reset(self, rows: list[MessageRow], has_older: bool) -> None:
        """Show ``rows`` (oldest first) instead of what was there; follow the end."""
        self.rows = {r.message.id: r for r in rows}
        self.list.controls = list(reversed(sections_of(rows, self.phase)))
        self.set_has_older(has_older)
        self.updates.mark(self.control)

    def set_has_older(self, has_older: bool) -> None:
        if self.load_older_button.visible != has_older:
            self.load_older_button.visible = has_older
            self.updates.mark(self.load_older_button)

    def first_hlc(self) -> str:
        return next((r.message.hlc for r in self.shown() if r.message.hlc), "")

    def _newest_first(self) -> Iterator[tuple[Slot, MessageRow]]:
        """Every row with its slot, newest first."""
        for section in self.list.controls:
            for chunk in reversed(section.chunks()):  # type: ignore[attr-defined]
                rows = chunk.rows()
                for at in range(len(rows) - 1, -1, -1):
                    yield chunk.controls[at], rows[at]  # type: ignore[misc]

    def newest_row(self, kind: str = "") -> MessageRow | None:
        """The last row shown (a live message groups with it, or starts a new day); with
        ``kind``, the last row of a message of that kind."""
        return next((row for _, row in self._newest_first()
                     if not kind or row.message.kind == kind), None)

    def trailing(self, kinds: tuple[str, ...]) -> Iterator[tuple[Slot, MessageRow]]:
        """The rows at the end whose messages are of ``kinds`` with their slots, newest first
        (the run that a live message of those kinds joins; a hidden row's slot is not
        ``visible``)."""
        for slot, row in self._newest_first():
            if row.message.kind not in kinds:
                return
            yield slot, row

    def hide(self, slot: Slot) -> None:
        """Take a row off the screen where it stands (its slot hides, spacing and all)."""
        if slot.visible:
            slot.visible = False
            self.updates.mark(slot)

    def newest_hlc(self) -> str:
        return next((row.message.hlc for _, row in self._newest_first() if row.message.hlc), "")

    def append(self, row: MessageRow) -> None:
        """At the end: into the tail chunk's next free slot (only that slot is updated), or a new
        chunk (its section is updated), or a new section (the list is updated)."""
        self.rows[row.message.id] = row
        sections = self.list.controls
        tail_section: Section | None = sections[0] if sections else None  # type: ignore
        tail = tail_section.chunks()[-1] if tail_section and tail_section.controls else None
        if tail is not None and not tail.is_full():
            self.updates.mark(tail.fill(row))
        elif tail_section is not None and len(tail_section.controls) < SECTION_CHUNKS:
            tail_section.controls.append(Chunk([row]))
            self.updates.mark(tail_section)
        else:
            first = tail_section is None  # an empty list: the first chunk takes the phase
            sections.insert(0, Section([Chunk([row], tail_capacity(1, self.phase)
                                              if first else CHUNK_ROWS)]))
            self.updates.mark(self.list)

    def insert_in_order(self, row: MessageRow) -> None:
        """A late message (older clock stamp than the newest shown): at its place in the order."""
        self.rows[row.message.id] = row
        hlc = row.message.hlc
        for chunk in reversed(self.chunks):
            stamps = [r.message.hlc or "" for r in chunk.rows()]
            if stamps and stamps[0] <= hlc:
                chunk.insert(bisect.bisect_right(stamps, hlc), row)
                self.updates.mark(chunk)
                return
        if self.chunks:
            self.chunks[0].insert(0, row)
            self.updates.mark(self.chunks[0])
        else:
            self.append(row)

    def prepend(self, rows: list[MessageRow]) -> int:
        """An older page above the first row (rows already shown are skipped)."""
        fresh = [r for r in rows if r.message.id not in self.rows]
        for r in fresh:
            self.rows[r.message.id] = r
        new = sections_of(fresh)
        self.list.controls.extend(reversed(new))  # the far end: the reader's view stays put
        if new:
            self.updates.mark(self.list)
        return len(fresh)

    async def scroll_to(self, msg_id: str, duration: int = 0) -> None:
        """Bring a row into view (a search jump). The rows just sent must be laid out before
        the browser can find the row (a jump may send a thousand): asked again as layout
        goes on (a row already in view stays put)."""
        self.updates.flush()
        for attempt in range(SCROLL_ATTEMPTS):
            await after_layout(2**attempt)
            try:
                await self.list.scroll_to(scroll_key=ft.ScrollKey(msg_id), duration=duration)
            except (RuntimeError, AssertionError, TimeoutError) as err:  # the session went away
                log.debug("could not scroll: %s", err)
                return

    async def back_to_end(self) -> None:
        """Back to the newest message (offset 0 of the reversed list) after looking back."""
        self.updates.flush()
        try:
            await self.list.scroll_to(offset=0, duration=150)
        except (RuntimeError, AssertionError, TimeoutError) as err:
            log.debug("could not scroll: %s", err)

    def update_row(self, row: MessageRow) -> None:
        self.updates.mark(row)
