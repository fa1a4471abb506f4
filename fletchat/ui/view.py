"""``ChatView``: one session's page, coordinating the components. It holds no state the hub owns:
what it shows comes from the ``ChatBackend``; what belongs to this screen is in ``ChatState``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

import flet as ft

from ..events import (
    ChannelsChanged,
    Delivered,
    IdentityWarning,
    MessageRefused,
    RoomsUnlocked,
    RosterChanged,
    StoreFailed,
)
from ..files.views import FileChanged
from ..model import KIND_CHAT, Message, ValidationError
from .backend import ChatBackend, written_by_me
from .banners import Banners
from .channels import ChannelsPanel
from .composer import Composer
from .conversation import Conversation
from .convo import Convo
from .counter import LengthCounter
from .drawer import NARROW_WIDTH, Drawer
from .empty_state import EmptyState
from .feed import Feed
from .files_ui import FilesUI
from .login import Login
from .navigation import Navigation
from .network_check import NetworkCheck
from .people import PeoplePanel
from .rooms import RoomControls
from .search import Search
from .settings import PrefsStore
from .state import ChatState
from .text import APP_TITLE, channel_title
from .trust_actions import TrustActions
from .updates import Updates

__all__ = ["NARROW_WIDTH", "ChatView"]


class ChatView:
    def __init__(self, page: ft.Page, backend: ChatBackend, prefill_name: str = "",
                 uploads: object = None, prefs_store: PrefsStore | None = None,
                 join_url: str = "") -> None:
        self.page, self.backend = page, backend
        caps = backend.capabilities
        self.state = ChatState()
        self.updates = Updates(page)
        self.nav = nav = Navigation(self)  # channels, DMs, older pages, search results
        self.conversation = Conversation(self.updates, nav.on_scroll, nav.load_older_click)
        self.composer = Composer(self.send_click)
        self.convo = Convo(self, prefs_store, join_url)
        self.feed = Feed(backend, self.state, self.conversation, self.convo)
        self.composer.field.on_change = self.convo.on_change
        self.counter = LengthCounter(self.composer)  # chains the conversation's on_change
        self.empty = EmptyState()
        self.search = Search(nav.search_submit, caps.search)
        self.channels = ChannelsPanel(page, backend, nav.switch_channel, nav.focus_composer)
        self.banners = Banners(lambda peer_id: self.trust.truster(peer_id))
        self.network = NetworkCheck(page, backend, self.banners, self.updates)
        self.people = PeoplePanel(
            backend.fingerprint if caps.trust else "",
            nav.dm_opener if caps.channels else None,
            (lambda d: self.trust.asker(d)) if caps.trust else None,
            lambda peer_id: self.trust.unblocker(peer_id),
            nav.details_click,
            self.network.click if caps.network_check else None,
            mark=self.updates.mark,
        )
        self.trust = TrustActions(page, backend, self.updates, self.banners, self.people)
        self.title = ft.Text(channel_title(self.state.channel), size=18,
                             weight=ft.FontWeight.BOLD, expand=True)
        self.rooms = RoomControls(page, backend, self.reopen, self.composer.focus, self.feed.shows_sealed)
        self.login = Login(page, backend, prefill_name, self.joined)
        chat_box = ft.Container(
            content=ft.Column([self.empty.control, self.conversation.control], expand=True,
                              spacing=0, horizontal_alignment=ft.CrossAxisAlignment.STRETCH),
            expand=True, padding=10, border=ft.Border.all(1, ft.Colors.OUTLINE), border_radius=5)
        self.drawer = Drawer(page, self.channels.panel, self.people.panel, chat_box)
        self.files = FilesUI(self, uploads)  # attach, voice notes, file tiles in rows
        self.feed.decorate = self.files.decorate
        self.composer.control.controls[:0] = self.files.composer_controls

    # ---- building ----
    async def mount(self, dialog_first: Callable[[], Awaitable[None]] | None = None) -> None:
        """Put the view on the page and ask for a name. With ``dialog_first`` (the static web
        client, one process draws and builds) the login goes out alone, usable sooner, and the
        view follows while the person types (never taking their keys: no autofocus)."""
        page = self.page
        page.title = APP_TITLE
        page.horizontal_alignment = ft.CrossAxisAlignment.STRETCH
        if dialog_first is not None:
            self.composer.field.autofocus = False
            self.login.ask_first()
            await dialog_first()
        self.network.reread()
        if self.backend.capabilities.trust:
            for warning in self.backend.identity_warnings():
                self.banners.show_warning(warning)
            self.people.render_blocked(self.backend.blocked_peers())
        page.add(
            self.banners.problem,
            self.banners.identity,
            ft.Row([self.drawer.button, self.title, self.rooms.button, *self.convo.header(),
                    self.search.field], vertical_alignment=ft.CrossAxisAlignment.CENTER),
            self.rooms.note,
            self.drawer.body,
            self.convo.around_composer(self.composer.control),
            self.files.status,
        )
        await self.convo.mount()
        await self.show_channel(self.state.channel)
        self.people.render(self.backend.online(), self.backend.lan_peers())
        page.on_resize = self.on_resize
        self.fit_width(page.width, page.height)
        self.backend.subscribe(self.on_event)
        self.login.built()
        self.updates.mark(page)
        self.updates.flush()
        self.network.start()

    def close(self) -> None:
        """The tab closed: nothing more goes out, no timer keeps the view (and page) alive."""
        self.convo.close()
        self.updates.close()
        self.network.stop()

    def fit_width(self, width: float | None, height: float | None = None) -> None:
        """Phones get the whole width: under ``NARROW_WIDTH`` the panels are in the drawer."""
        self.updates.mark(*self.drawer.fit(width, height))
        self.updates.mark(self.search.fit(self.drawer.wide is not False))

    def on_resize(self, e: ft.Event) -> None:
        self.fit_width(self.page.width, self.page.height)
        self.updates.mark(self.page)

    # ---- channels ----
    async def show_channel(self, channel: str) -> None:
        """Make ``channel`` current: its latest page, its unread count cleared."""
        unread = self.state.unread.get(channel, 0)
        self.state.open(channel)
        self.convo.opening(channel)
        self.title.value = channel_title(channel, self.backend.name)
        self.render_channels()
        await self.feed.show(unread)
        self.convo.opened(channel)
        self.updates.mark(self.title, *self.rooms.show_for(channel), *self.counter.clear_error())
        self.show_empty()

    def show_empty(self) -> None:
        """The empty-state line when the channel has no chat message (issue 17)."""
        empty = not any(r.message.kind == KIND_CHAT for r in self.conversation.rows.values())
        if empty or self.empty.control.visible:
            self.updates.mark(self.empty.show(self.state.channel, self.backend.name, empty))

    async def reopen(self) -> None:
        await self.show_channel(self.state.channel)
        self.updates.flush()

    def render_channels(self) -> None:
        known = self.backend.channels() if self.backend.capabilities.channels else []
        names = self.state.visible_channels(known, self.backend.can_see)
        private = frozenset(c for c in names if self.backend.has_room_key(c))
        self.updates.mark(*self.channels.render(names, self.state.channel, self.state.unread,
                                                self.backend.name, private,
                                                self.convo.mentions(), self.convo.prefs.muted),
                          self.drawer.set_unread(sum(self.state.unread.values())))

    # ---- hub events (on the page's loop) ----
    async def on_event(self, event: object) -> None:
        if await self.convo.on_event(event) or self.login.on_event(event):
            return
        if isinstance(event, Message):
            self.on_message(event)
        elif isinstance(event, RosterChanged):
            self.updates.mark(*self.people.render(list(event.online), list(event.devices)))
        elif isinstance(event, Delivered):
            self.feed.delivered(event.ids, event.at)
        elif isinstance(event, ChannelsChanged | RoomsUnlocked):
            self.render_channels()  # (the locks in the list)
            await self.rooms.on_event(event)
        elif isinstance(event, IdentityWarning) and self.banners.show_warning(event):
            self.updates.mark(self.banners.identity)
        elif isinstance(event, MessageRefused):
            self.feed.refused(event.refusals, event.peer_id)
        elif isinstance(event, FileChanged):
            self.files.changed(event)
        elif isinstance(event, StoreFailed):
            self.banners.show_problems([event.reason])
            self.updates.mark(self.banners.problem)
            self.feed.not_saved(event.not_saved)

    def on_message(self, msg: Message) -> None:
        backend = self.backend
        if not backend.capabilities.channels:
            msg = replace(msg, channel=self.state.channel)  # one conversation only
        mine = written_by_me(backend, msg)
        shown = self.state.on_message(msg, mine, backend.can_see(msg.channel))
        self.convo.on_message(msg, shown)  # mentions counted before the list is drawn
        if shown:
            self.feed.place(msg)
            if self.empty.control.visible:
                self.show_empty()
        elif msg.channel in self.state.unread:
            self.render_channels()

    # ---- the person's actions ----
    async def joined(self) -> None:
        """The login took a name: what shows it (the name is saved by the login after)."""
        self.people.me = self.backend.name
        self.convo.joined()  # rows shown behind the login that are this person's
        self.render_channels()  # direct messages for this name become visible
        self.updates.mark(*self.people.render(self.backend.online(), self.backend.lan_peers()))
        self.updates.flush()
        await self.composer.focus()

    async def send_click(self, e: ft.Event | None = None) -> None:
        text = self.composer.text
        if not text.strip():
            return  # nothing to send; never clear what the browser may still be syncing
        # Cleared before the send, which runs on a thread while the other tabs get the message:
        # cleared after it, the next line typed at once went onto this one (and out with it).
        self.composer.sent()
        self.updates.mark(self.composer.field)
        self.updates.flush()
        try:
            await self.convo.send(text, self.state.channel)
        except Exception as err:  # refused (said why) or failed: every character typed comes back
            self.composer.restore(text)
            self.composer.refused(str(err) if isinstance(err, ValidationError) else "Not sent.")
            self.updates.mark(self.composer.field)
            self.updates.flush()
            if not isinstance(err, ValidationError):
                raise
            return
        if not self.state.following:  # one's own message brings the reader back to the end
            self.state.follow()
            await self.conversation.back_to_end()
        self.updates.flush()
        await self.composer.focus()
