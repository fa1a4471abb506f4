"""``Convo``: the conversation features in one ChatView (replies, reactions, edit/delete, mentions,
typing, read receipts, unread and mention counts, the tab title, alerts, settings, join by QR).

ChatView calls a few hooks (``make``/``layouts`` through the Feed, ``on_event``, ``on_message``,
``opened``, ``send``); everything else lives in the component modules this one wires together.
A row's state change (reaction, edit, delete, read receipt) redraws that row only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import flet as ft

from ..aio import later
from ..conversation.emoji import replace_shortcodes
from ..conversation.kinds import make_snippet
from ..conversation.prefs import Prefs
from ..conversation.views import (
    ConversationRefused,
    NameChanged,
    ReadChanged,
    RowChanged,
    TypingChanged,
)
from ..events import Delivered
from ..model import KIND_CHAT, KIND_DELETE, Message
from .attention import Attention, wants_alert
from .composer_extras import (
    EmojiButton,
    ReplyBar,
    Suggestions,
    TypingLine,
    apply_suggestion,
    suggestions_for,
)
from .convo_row import ConvoRow, RowHandlers
from .decorate import Dresser, Layout, layouts
from .notifier import Notifier
from .qr_join import QrJoin
from .row_menu import RowActions
from .settings import PrefsStore, Settings
from .text import Status
from .title import TitleKeeper
from .updates import after_layout

if TYPE_CHECKING:
    from .view import ChatView

READ_DELAY = 1.0  # read marks wait this long after the last message shown (one per burst)
# Read marks are up to the newest chat message shown: only chat rows show who has seen them, and
# a join or leave line is no news to mark (issue 12: with N tabs open, every join line made every
# tab send a mark that went to every tab, N x N events per join)


class Convo:
    def __init__(self, view: ChatView, prefs_store: PrefsStore | None = None,
                 join_url: str = "") -> None:
        self.view = view
        self.page, self.backend = view.page, view.backend
        self.enabled = self.backend.capabilities.conversation
        self.dresser = Dresser(self.backend, lambda: self.backend.name)
        self.actions = RowActions(self.page, self.backend, self.start_reply, self.go_to_original)
        self.reply_bar = ReplyBar(self.cancel_reply)
        self.typing_line = TypingLine(lambda: self.backend.typing_names(view.state.channel),
                                      view.updates.mark)
        self.suggestions = Suggestions(self.pick_suggestion)
        self.emoji = EmojiButton(self.page, self.insert)
        self.settings = Settings(self.page, prefs_store or PrefsStore(), self.backend.rename,
                                 lambda: self.backend.name, self.prefs_changed, self.backend)
        self.notifier = Notifier(self.page)
        self.attention = Attention()
        self.titles = TitleKeeper()
        self.qr = QrJoin(self.page, join_url)
        self._read_timer: asyncio.TimerHandle | None = None
        self._marked: dict[tuple[str, str], str] = {}  # (channel, name) -> stamp marked read
        self._mine: dict[str, ConvoRow] = {}  # rows drawn as this person's (read marks: these)
        self.handlers = RowHandlers(self.actions.reactor, self.actions.opener, self.quote_click)

    @property
    def prefs(self) -> Prefs:
        return self.settings.prefs

    # ---- layout hooks ----
    def header(self) -> list[ft.Control]:
        qr = [self.qr.button] if self.qr.url else []  # never shown without an address
        return [self.settings.mute_button, *qr, self.settings.button]

    def around_composer(self, composer: ft.Row) -> ft.Control:
        if self.enabled:
            composer.controls.insert(0, self.emoji.control)
        return ft.Column([self.typing_line.control, self.suggestions.control,
                          self.reply_bar.control, composer], spacing=4, tight=True)

    async def mount(self) -> None:
        prefs = await self.settings.load()
        self.backend.set_conversation_prefs(prefs.send_read_receipts, prefs.send_typing)
        self.page.on_app_lifecycle_state_change = self.on_lifecycle
        self.view.updates.mark(self.page)

    # ---- rows (the Feed's RowMaker) ----
    def make(self, msg: Message, status: Status | None, late: bool, unverified: bool,
             room: str, shown_text: str | None, layout: Layout, live: bool) -> ConvoRow:
        decor = self.dresser.decor(msg, layout, shown_text, live)
        row = ConvoRow(msg, decor, status, late, unverified, room,
                       self.handlers if self.enabled else None)
        if decor.mine:
            self._mine[msg.id] = row
        return row

    def layouts(self, msgs: list[Message], unread: int) -> list[Layout]:
        return layouts(msgs, unread, self.dresser.mine)

    def redraw(self, row: ConvoRow) -> None:
        """Ask the backend again what ``row`` shows; update it alone when that changed."""
        d = row.decor
        shown = self.backend.reveal(row.original)[0] if row.room else None  # edits open too
        decor = self.dresser.decor(row.original, Layout(d.grouped, d.above), shown)
        if decor.mine:
            self._mine[row.original.id] = row
        if decor != d:
            row.redecorate(decor)
            self.view.conversation.update_row(row)

    def joined(self) -> None:
        """Rows drawn before the login took a name (the history behind the dialog): this
        person's own are redrawn as theirs (edit, delete, delivery marks)."""
        for row in self.convo_rows():
            if self.dresser.mine(row.original):
                self.redraw(row)

    def own_rows(self) -> list[ConvoRow]:
        """This person's rows still shown: a read mark changes only their "seen by" (every
        reader's mark reaches every tab: scanning the whole history for each was the cost)."""
        rows = self.view.conversation.rows
        self._mine = {i: r for i, r in self._mine.items() if rows.get(i) is r}
        return list(self._mine.values())

    def convo_rows(self) -> list[ConvoRow]:
        return [r for r in self.view.conversation.rows.values() if isinstance(r, ConvoRow)]

    # ---- events ----
    async def on_event(self, event: object) -> bool:
        """True when the event was the conversation's (ChatView handles the rest)."""
        if isinstance(event, RowChanged):
            self.row_changed(event)
        elif isinstance(event, TypingChanged):
            if event.channel == self.view.state.channel:
                self.typing_line.show([n for n in event.names if n != self.backend.name])
        elif isinstance(event, ReadChanged):
            if event.channel == self.view.state.channel:
                for row in self.own_rows():
                    self.redraw(row)
        elif isinstance(event, ConversationRefused):
            self.actions.say(f"Not accepted: {event.reason}")
        elif isinstance(event, NameChanged):
            self.view.render_channels()
        elif isinstance(event, Delivered):
            self.delivered(event.ids)
            return False  # the Feed marks the rows delivered too
        else:
            return False
        return True

    def row_changed(self, event: RowChanged) -> None:
        row = self.view.conversation.rows.get(event.message_id)
        if isinstance(row, ConvoRow):
            self.redraw(row)
        deleted = event.row.deleted if event.row is not None else (
            event.cause is not None and event.cause.kind == KIND_DELETE)
        if deleted:
            self.parent_deleted(event.message_id)

    def delivered(self, ids: tuple[str, ...]) -> None:
        """More devices hold these: "on N of M devices" under one's own rows."""
        for msg_id in ids:
            row = self.view.conversation.rows.get(msg_id)
            if isinstance(row, ConvoRow) and row.decor.mine:
                self.redraw(row)

    def parent_deleted(self, parent_id: str) -> None:
        """Replies quoting a deleted message show the placeholder as their quote."""
        for row in self.convo_rows():
            q = row.decor.quote
            if q is not None and q.parent_id == parent_id:
                self.redraw(row)

    def on_message(self, msg: Message, shown: bool) -> None:
        """A live message (after ChatState counted it): mentions, title, alert, read mark."""
        me = self.backend.name or ""
        mine = self.dresser.mine(msg)
        focused = self.notifier.focused
        if shown:
            self.typing_line.show([n for n in self.backend.typing_names(msg.channel)
                                   if n != msg.author])
            if focused and msg.kind == KIND_CHAT:
                self.schedule_read()
        changed = self.attention.note(msg, me, mine, shown, focused)
        if not shown or changed:
            self.refresh_title()
        if self.enabled and wants_alert(msg, me, mine, self.prefs, shown and focused):
            where = f"#{msg.channel}" if not msg.channel.startswith("@") else "direct message"
            self.notifier.alert(f"{msg.author} ({where})", make_snippet(msg.text, 100))

    def refresh_title(self) -> None:
        state = self.view.state
        unread = self.attention.unread_with_background(state.unread, state.channel)
        title = self.titles.next_title(unread, self.attention.mentions, self.prefs.muted)
        if title is not None:
            self.page.title = title
            self.view.updates.mark(self.page)

    async def on_lifecycle(self, e: ft.Event) -> None:
        self.notifier.on_lifecycle(getattr(e, "state", ""))
        if self.notifier.focused and self.attention.focused(self.view.state.channel):
            self.refresh_title()
            self.schedule_read()
        self.view.updates.flush()

    # ---- channels ----
    def opening(self, channel: str) -> None:
        """``channel`` is being made current: its mentions are read."""
        self.attention.opened(channel)
        self.refresh_title()

    def opened(self, channel: str) -> None:
        """``channel`` is shown: its typing line and bell, a read mark for what is shown."""
        self.typing_line.show(self.backend.typing_names(channel) if self.enabled else [])
        self.view.updates.mark(self.settings.show_mute(channel, self.toggle_mute))
        self.cancel_reply_now()
        self.schedule_read(0)

    def mentions(self) -> dict[str, int]:
        return self.attention.mentions

    async def toggle_mute(self, e: ft.Event | None = None) -> None:
        await self.settings.change(self.prefs.toggle_mute(self.view.state.channel))
        self.view.updates.mark(self.settings.show_mute(self.view.state.channel,
                                                       self.toggle_mute))
        self.view.updates.flush()

    async def prefs_changed(self, prefs: Prefs) -> None:
        self.backend.set_conversation_prefs(prefs.send_read_receipts, prefs.send_typing)
        self.refresh_title()
        self.view.render_channels()
        self.view.updates.mark(self.page)
        self.view.updates.flush()

    # ---- read receipts ----
    def schedule_read(self, delay: float = READ_DELAY) -> None:
        if not self.enabled or not self.prefs.send_read_receipts or self.view.updates.closed:
            return
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = later(delay, self.mark_read)

    def close(self) -> None:
        """The tab closed: its timers go, so none keeps the view alive until it fires."""
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        self.typing_line.close()

    def mark_read(self) -> None:
        """Tell the others this person has read up to the newest chat message shown (once per
        message: a mark already sent for it is not sent again)."""
        self._read_timer = None
        last = self.view.conversation.newest_row(KIND_CHAT)
        name = self.backend.name
        if last is None or not name or not last.message.hlc:
            return
        msg = last.original if isinstance(last, ConvoRow) else last.message
        channel = self.view.state.channel
        if self._marked.get((channel, name)) == msg.hlc:
            return
        self._marked[(channel, name)] = msg.hlc
        self.backend.mark_read(channel, msg)

    # ---- replies, jumps ----
    async def start_reply(self, parent: Message) -> None:
        self.reply_bar.start(parent, make_snippet(self.backend.row_state(parent).shown_text, 80))
        self.view.updates.mark(self.reply_bar.control)
        self.view.updates.flush()
        await self.view.composer.focus()

    def cancel_reply_now(self) -> None:
        if self.reply_bar.parent is not None:
            self.reply_bar.clear()
            self.view.updates.mark(self.reply_bar.control)

    async def cancel_reply(self, e: ft.Event | None = None) -> None:
        self.cancel_reply_now()
        self.view.updates.flush()

    def quote_click(self, row: ConvoRow) -> Callable:
        async def click(e: ft.Event | None = None) -> None:
            await self.go_to_original(row)

        return click

    async def go_to_original(self, row: ConvoRow) -> None:
        """The message a reply answers: older pages are loaded until it is shown."""
        quote = row.decor.quote
        if quote is None:
            return
        await self.view.feed.jump_to(replace(row.original, id=quote.parent_id))
        if quote.parent_id not in self.view.conversation.rows:
            self.actions.say("The original message is not on this device.")
        self.view.updates.flush()

    # ---- the composer ----
    async def send(self, text: str, channel: str) -> Message | None:
        text = replace_shortcodes(text) if self.enabled else text
        parent = self.reply_bar.parent
        if parent is None or parent.channel != channel:
            sent = await self.backend.send(text, channel)
        else:
            sent = await self.backend.reply(parent, text, channel)
        self.cancel_reply_now()
        if self.suggestions.show([]):
            self.view.updates.mark(self.suggestions.control)
        return sent

    async def on_change(self, e: ft.Event | None = None) -> None:
        if not self.enabled:
            return
        text = self.view.composer.text
        if text and self.prefs.send_typing:
            self.backend.typing(self.view.state.channel)
        names = [p.name for p in self.backend.online()]
        if self.suggestions.show(suggestions_for(text, names, self.backend.name or "")):
            self.view.updates.mark(self.suggestions.control)
            self.view.updates.flush()

    async def pick_suggestion(self, label: str, value: str) -> None:
        field = self.view.composer.field
        field.value = apply_suggestion(field.value or "", label, value)
        self.suggestions.show([])
        self.view.updates.mark(field, self.suggestions.control)
        self.view.updates.flush()
        await after_layout()  # the chip that had the focus is gone: then back to the field
        await self.view.composer.focus()

    async def insert(self, emoji: str) -> None:
        field = self.view.composer.field
        field.value = (field.value or "") + emoji
        self.view.updates.mark(field)
        self.view.updates.flush()
        await self.view.composer.focus()
