"""Between the backend and the conversation list: which rows a channel shows, with their
delivery marks, private-room state and "unverified" cue; older pages; jumps to search results."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Protocol

from ..model import KIND_CHAT, ROW_KINDS, Message
from .backend import ChatBackend, written_by_me
from .conversation import Conversation
from .decorate import Layout, layout_after
from .delivery import live_status
from .presence_runs import (
    PRESENCE_KINDS,
    RUN_LINES,
    collapse_presence,
    fold_presence,
    folded_others,
)
from .rows import MessageRow
from .state import ChatState
from .text import NOT_SAVED_LABEL, STATUS_DELIVERED, STATUS_REFUSED, Status

PAGE = 50  # messages per history page
JUMP_PAGES = 40  # how far back a search result may be fetched (pages)
HIGHLIGHT_SECONDS = 2.5
SEALED_PREFIX = "sealed:v1:"  # rooms.SEALED_PREFIX (rooms.py needs cryptography; this does not)


class RowMaker(Protocol):
    """Builds conversation rows (``convo.Convo``): a ``MessageRow`` dressed with replies,
    reactions, grouping and date lines."""

    def make(self, msg: Message, status: Status | None, late: bool, unverified: bool,
             room: str, shown_text: str | None, layout: Layout, live: bool) -> MessageRow: ...

    def layouts(self, msgs: list[Message], unread: int) -> list[Layout]: ...


def shown_kinds(msgs: list[Message]) -> list[Message]:
    """Only messages a row shows (reactions, edits and deletes change rows; they are none),
    each run of join/leave lines keeping one per person (their latest)."""
    return collapse_presence([m for m in msgs if m.kind in ROW_KINDS])


class Feed:
    def __init__(self, backend: ChatBackend, state: ChatState, conversation: Conversation,
                 maker: RowMaker | None = None) -> None:
        self.backend = backend
        self.state = state
        self.conversation = conversation
        self.loading_older = False
        self.decorate = None  # files_ui.FilesUI.decorate: a message's files in its row
        self.maker = maker
        self._showing: asyncio.Future[None] | None = None  # the one ``show`` reading
        self._show_again: int | None = None  # the unread count of a show asked meanwhile
        self._live: list[Message] = []  # live messages placed while a show reads

    # ---- rows ----
    def status_for(self, msg: Message, pending: set[str] | None) -> Status | None:
        """Delivery of a chat message this person wrote (on this install; in host mode not
        another tab's person's: their marks are theirs to see); ``pending`` None for a live one
        (just written: nobody has confirmed it yet)."""
        if (msg.kind != KIND_CHAT or not self.backend.capabilities.delivery
                or not written_by_me(self.backend, msg)):
            return None
        backend = self.backend
        return live_status(pending is None or msg.id in pending, backend.lan_peers(),
                           backend.online(), backend.name)

    def row_for(self, msg: Message, status: Status | None, late: bool = False,
                layout: Layout | None = None, live: bool = False) -> MessageRow:
        room = ""
        shown = msg
        if msg.kind == KIND_CHAT and msg.text.startswith(SEALED_PREFIX):
            text, room = self.backend.reveal(msg)
            shown = replace(msg, text=text)
        unverified = self.backend.is_unverified(msg)
        if self.maker is not None:
            row = self.maker.make(msg, status, late, unverified, room,
                                  shown.text if room else None, layout or Layout(), live)
        else:
            row = MessageRow(shown, status, late, unverified, room)
        if self.decorate is not None:
            self.decorate(row, msg)
        return row

    async def pending(self) -> set[str]:
        """This install's messages no peer has confirmed yet (read off the loop: the outbox's
        worker answers, behind whatever it has queued)."""
        return await self.backend.pending_ids() if self.backend.capabilities.delivery else set()

    def rows_for(self, msgs: list[Message], pending: set[str],
                 unread: int = 0) -> list[MessageRow]:
        """Rows for ``msgs`` (``shown_kinds``), each long run of join/leave lines folded;
        ``pending`` as ``pending()`` gives it."""
        msgs, folds = fold_presence(msgs)
        lays = self.maker.layouts(msgs, unread) if self.maker is not None else [None] * len(msgs)
        rows = [self.row_for(m, self.status_for(m, pending), layout=lay)
                for m, lay in zip(msgs, lays, strict=True)]
        for row in rows:
            if row.message.id in folds:
                row.fold(row.message, folds[row.message.id])
        return rows

    async def fetch(self, before: str = "") -> list[Message]:
        return await self.backend.history(self.state.channel, PAGE, before)

    # ---- what the list shows ----
    async def show(self, unread: int = 0) -> None:
        """The open channel's latest page (``unread``: how many were new, for the line). One
        read at a time per view: a show asked for while one reads is done by that one, once,
        for the channel open by then (a script switching channels in a loop queued a history
        read, and an outbox question, for each switch)."""
        self._show_again = unread
        if self._showing is None or self._showing.done():
            self._showing = asyncio.ensure_future(self._show_latest())
        await asyncio.shield(self._showing)

    async def _show_latest(self) -> None:
        try:
            while self._show_again is not None:
                await self._show_once()
        finally:
            self._showing = None  # in the step that saw nothing more asked: none is left out

    async def _show_once(self) -> None:
        unread, self._show_again = self._show_again or 0, None
        channel = self.state.channel
        self._live = []
        fetched = await self.fetch()
        pending = await self.pending()  # after the page: one of ours in it is in here if unconfirmed
        if channel == self.state.channel and self._show_again is None:  # else: read again
            msgs = shown_kinds(sorted(fetched, key=lambda m: (not m.hlc, m.hlc)))
            older = self.backend.capabilities.older and len(fetched) >= PAGE
            self.conversation.reset(self.rows_for(msgs, pending, unread), older)
            live, self._live = self._live, []
            for msg in live:  # shown while the page was read: not lost with the old list
                if msg.channel == channel:
                    self.place(msg)

    def place(self, msg: Message) -> None:
        """A live message of the open channel: at the end, or (an older clock stamp than the
        newest shown: a late catch-up) at its place in the order, marked late."""
        if msg.id in self.conversation.rows or msg.kind not in ROW_KINDS:
            return
        if self._showing is not None:
            self._live.append(msg)  # the page being read may not have it (``_show_latest``)
        newest = self.conversation.newest_hlc()
        if not msg.hlc or not newest or msg.hlc >= newest:
            if msg.kind in PRESENCE_KINDS and self._fold_in(msg):
                return
            last = self.conversation.newest_row() if self.maker is not None else None
            layout = layout_after(last.message if last is not None else None, msg)
            self.conversation.append(self.row_for(msg, self.status_for(msg, None),
                                                  layout=layout, live=True))
        else:
            self.conversation.insert_in_order(self.row_for(msg, self.status_for(msg, None), True,
                                                           live=True))

    def _fold_in(self, msg: Message) -> bool:
        """A live join/leave at the end of a run of them: the same person's earlier line in
        the run goes; once the run shows ``RUN_LINES``, its last line takes this one in
        (``fold``, updated in place) and True is returned: no new row."""
        conversation = self.conversation
        shown = []  # the run's lines on screen, newest first
        for slot, row in conversation.trailing(PRESENCE_KINDS):
            if not slot.visible:
                continue
            if row.message.author == msg.author and not row.folded:
                conversation.hide(slot)
            else:
                shown.append(row)
        if not shown or (len(shown) < RUN_LINES and not shown[0].folded):
            return False
        last = shown[0]
        last.fold(msg, folded_others(last.folded, last.message.author, msg.author))
        conversation.rows[msg.id] = last
        conversation.update_row(last)
        return True

    def delivered(self, ids: tuple[str, ...], at: float) -> None:
        for msg_id in ids:
            row = self.conversation.rows.get(msg_id)
            if row is not None and row.status is not None:
                row.set_status(Status(STATUS_DELIVERED, at))
                self.conversation.update_row(row)

    def refused(self, refusals: tuple[tuple[str, str], ...], peer_id: str) -> None:
        """A peer did not store these messages written here: each row says who and why."""
        who = next((d.name for d in self.backend.lan_peers() if d.key == peer_id), peer_id)
        for msg_id, reason in refusals:
            row = self.conversation.rows.get(msg_id)
            if row is not None and row.status is not None:
                row.set_status(Status(STATUS_REFUSED, note=f"not accepted by {who}: {reason}"))
                self.conversation.update_row(row)

    def not_saved(self, ids: tuple[str, ...]) -> None:
        """Messages written here whose insert failed after they went out: each row says so."""
        for msg_id in ids:
            row = self.conversation.rows.get(msg_id)
            if row is not None and row.status is not None:
                row.set_status(Status(STATUS_REFUSED, note=NOT_SAVED_LABEL))
                self.conversation.update_row(row)

    def needs_room_key(self) -> bool:
        return any(r.room == "no_key" for r in self.conversation.rows.values())

    def shows_sealed(self) -> bool:
        """Rows here are sealed and not open: none has a key, or the one given was wrong (the
        lock then offers to unlock again, not to make the channel private)."""
        return any(r.room in ("no_key", "refused") for r in self.conversation.rows.values())

    # ---- looking back ----
    async def older_page(self) -> int:
        """Fetch and prepend the page before the first row; how many rows were added."""
        first, channel = self.conversation.first_hlc(), self.state.channel
        if not first:
            return 0
        older = await self.fetch(before=first)
        pending = await self.pending()
        if channel != self.state.channel or first != self.conversation.first_hlc():
            return 0  # another channel (or its latest page) is shown meanwhile
        added = self.conversation.prepend(self.rows_for(shown_kinds(older), pending))
        self.conversation.set_has_older(len(older) >= PAGE)
        return added

    async def load_older(self) -> int:
        """Add the page before the first message shown, at the far end of the reversed list:
        what the reader looks at stays where it is."""
        if self.loading_older or not self.backend.capabilities.older:
            return 0
        self.loading_older = True
        try:
            added = await self.older_page()
            self.state.stop_following()
            return added
        finally:
            self.loading_older = False

    async def jump_to(self, msg: Message) -> None:
        """A search result, in the open channel: enough history to include it, scrolled to and
        highlighted for a moment."""
        for _ in range(JUMP_PAGES):
            if msg.id in self.conversation.rows or not self.conversation.load_older_button.visible:
                break
            if not await self.older_page():
                break
            await asyncio.sleep(0)  # let other sessions and this one's sends run between pages
        row = self.conversation.rows.get(msg.id)
        self.state.stop_following()
        if row is None:
            return
        row.set_highlight(True)
        self.conversation.update_row(row)
        await self.conversation.scroll_to(msg.id, duration=300)
        await asyncio.sleep(HIGHLIGHT_SECONDS)
        row.set_highlight(False)
        self.conversation.update_row(row)
