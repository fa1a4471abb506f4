"""The tutorial's chat UI, grown up: login dialog, ChatMessage rows, composer, who-is-online panel.

Views hold controls, not state: everything they show comes from the hub through a ``HubSession``
(messages and roster changes arrive as pubsub events on the page's loop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

import flet as ft

from .hub import PUBSUB_TOPIC, HubSession, Online, RosterChanged
from .model import (
    KIND_CHAT,
    MAX_NAME_CHARS,
    Message,
    ValidationError,
    avatar_color,
    initials,
)

log = logging.getLogger("fletchat.ui")

APP_TITLE = "Flet Chat"
NAME_LABEL = "Enter your name to join the chat"
MESSAGE_HINT = "Write a message..."
NARROW_WIDTH = 640


def format_time(ts: float) -> str:
    """Short local time for a message row; the date too when it is not today."""
    when = datetime.fromtimestamp(ts)
    if when.date() == datetime.now().date():
        return when.strftime("%H:%M")
    return when.strftime("%Y-%m-%d %H:%M")


def describe_for_screen_reader(msg: Message) -> str:
    """What assistive tech (and the browser tests) read for a row: who, when, what."""
    if msg.kind == KIND_CHAT:
        return f"{msg.author} at {format_time(msg.ts)}: {msg.text}"
    return msg.display_text


class ChatMessage(ft.Row):
    """The tutorial's message row: initials avatar (stable colour), bold name, time, the text."""

    def __init__(self, message: Message) -> None:
        super().__init__()
        self.message = message
        self.vertical_alignment = ft.CrossAxisAlignment.START
        self.controls = [
            ft.CircleAvatar(
                content=ft.Text(initials(message.author)),
                color=ft.Colors.WHITE,
                bgcolor=avatar_color(message.author),
            ),
            ft.Column(
                [
                    ft.Row(
                        [
                            ft.Text(message.author, weight=ft.FontWeight.BOLD),
                            ft.Text(format_time(message.ts), size=11, color=ft.Colors.GREY_600),
                        ],
                        spacing=8,
                    ),
                    ft.Text(message.text, selectable=True),
                ],
                tight=True,
                spacing=5,
                expand=True,
            ),
        ]


def message_control(msg: Message) -> ft.Control:
    """A row for the list. Wrapped in Semantics because selectable Text is invisible to readers."""
    if msg.kind == KIND_CHAT:
        row: ft.Control = ChatMessage(msg)
    else:
        row = ft.Text(msg.display_text, italic=True, color=ft.Colors.BLACK_45, size=12)
    return ft.Semantics(
        content=row,
        label=describe_for_screen_reader(msg),
        container=True,
        exclude_semantics=True,
        data=msg.id,
    )


def online_tile(person: Online, now: float | None = None) -> ft.Control:
    """One line of the peer list: avatar, name, device kind and how long online."""
    minutes = int(((now or time.time()) - person.since) // 60)
    duration = "just now" if minutes < 1 else f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"
    where = "here" if person.local else "LAN"
    detail = f"{person.device} · {where} · {duration}"
    return ft.Semantics(
        label=f"{person.name} online, {detail}",
        container=True,
        content=ft.Row(
            [
                ft.CircleAvatar(
                    content=ft.Text(initials(person.name), size=11),
                    color=ft.Colors.WHITE,
                    bgcolor=avatar_color(person.name),
                    radius=14,
                ),
                ft.Column(
                    [
                        ft.Text(person.name, weight=ft.FontWeight.W_500, size=13),
                        ft.Text(detail, size=11, color=ft.Colors.GREY_600),
                    ],
                    spacing=0,
                    tight=True,
                ),
            ],
            spacing=8,
        ),
    )


class ChatView:
    """Builds one session's page and keeps it in step with the hub."""

    def __init__(self, page: ft.Page, session: HubSession, prefill_name: str = "") -> None:
        self.page = page
        self.session = session
        self.chat = ft.ListView(expand=True, spacing=10, auto_scroll=True)
        self.new_message = ft.TextField(
            hint_text=MESSAGE_HINT,
            autofocus=True,
            shift_enter=True,
            min_lines=1,
            max_lines=5,
            filled=True,
            expand=True,
            on_submit=self.send_click,
        )
        self.send_button = ft.IconButton(
            icon=ft.Icons.SEND_ROUNDED, tooltip="Send message", on_click=self.send_click
        )
        self.people = ft.Column(spacing=8, scroll=ft.ScrollMode.AUTO, expand=True)
        self.people_title = ft.Text("Online", weight=ft.FontWeight.BOLD)
        self.devices_line = ft.Text("", size=11, color=ft.Colors.GREY_600)
        self.people_panel = ft.Container(
            content=ft.Column(
                [self.people_title, self.devices_line, self.people], spacing=8, expand=True
            ),
            width=220,
            padding=10,
            border=ft.Border.all(1, ft.Colors.OUTLINE),
            border_radius=5,
        )
        self.join_name = ft.TextField(
            label=NAME_LABEL,
            autofocus=True,
            value=prefill_name,
            max_length=MAX_NAME_CHARS,
            on_submit=self.join_click,
        )
        self.login = ft.AlertDialog(
            modal=True,
            title=ft.Text("Welcome!"),
            content=ft.Column([self.join_name], width=300, height=90, tight=True),
            actions=[ft.Button("Join chat", on_click=self.join_click)],
            actions_alignment=ft.MainAxisAlignment.END,
        )

    # ---- building ----
    def mount(self) -> None:
        page = self.page
        page.title = APP_TITLE
        page.horizontal_alignment = ft.CrossAxisAlignment.STRETCH
        page.add(
            ft.Row(
                [
                    ft.Container(
                        content=self.chat,
                        border=ft.Border.all(1, ft.Colors.OUTLINE),
                        border_radius=5,
                        padding=10,
                        expand=True,
                    ),
                    self.people_panel,
                ],
                expand=True,
                vertical_alignment=ft.CrossAxisAlignment.STRETCH,
            ),
            ft.Row([self.new_message, self.send_button]),
        )
        for msg in self.session.hub.history():
            self.chat.controls.append(message_control(msg))
        self.render_people(self.session.hub.online(), self.session.hub.lan_peers())
        page.on_resize = self.on_resize
        self.fit_width(page.width)
        page.pubsub.subscribe_topic(PUBSUB_TOPIC, self.on_event)
        page.show_dialog(self.login)
        page.update()

    def fit_width(self, width: float | None) -> None:
        """Phones get the whole width for the conversation; the peer list shows from 640 px."""
        self.people_panel.visible = width is None or width >= NARROW_WIDTH

    def on_resize(self, e: ft.Event) -> None:
        self.fit_width(self.page.width)
        self.page.update()

    # ---- hub events (pubsub runs async handlers on the page's loop) ----
    async def on_event(self, topic: str, event: object) -> None:
        if isinstance(event, Message):
            self.chat.controls.append(message_control(event))
        elif isinstance(event, RosterChanged):
            self.render_people(list(event.online), list(event.devices))
        else:
            return
        try:
            self.page.update()
        except RuntimeError:  # the session went away while the event was in flight
            log.debug("dropping event for a closed session")

    def render_people(self, online: list[Online], devices: list[Online]) -> None:
        self.people_title.value = f"Online ({len(online)})"
        count = len(devices)
        self.devices_line.value = (
            "no other devices found on the LAN"
            if count == 0
            else f"{count} other device{'s' if count != 1 else ''} on the LAN: "
            + ", ".join(f"{d.name} ({d.device})" for d in devices)
        )
        self.people.controls = [online_tile(p) for p in online]

    # ---- user actions ----
    async def join_click(self, e: ft.Event | None = None) -> None:
        try:
            self.session.join(self.join_name.value or "")
        except ValidationError as err:
            self.join_name.error = str(err)
            self.join_name.update()
            return
        self.page.pop_dialog()
        self.page.update()
        await self.new_message.focus()

    async def send_click(self, e: ft.Event | None = None) -> None:
        text = self.new_message.value or ""
        try:
            sent = self.session.send(text)
        except ValidationError as err:
            # Refused: say why, and keep every character the person typed.
            self.new_message.error = str(err)
            self.new_message.update()
            return
        self.new_message.error = None
        if sent is not None or not text.strip():
            self.new_message.value = ""
        self.new_message.update()
        await self.new_message.focus()


def make_session_main(
    hub_factory: Callable[[], object],
    device: str,
    prefill_name: str = "",
) -> Callable[[ft.Page], object]:
    """The per-session Flet ``main``: one ``HubSession`` and one ``ChatView`` per page."""
    from .hub import Hub

    async def session_main(page: ft.Page) -> None:
        hub = hub_factory()
        assert isinstance(hub, Hub)
        hub.use_pubsub(page.pubsub)
        session = HubSession(hub, device=device)
        view = ChatView(page, session, prefill_name)

        def on_disconnect(e: ft.Event) -> None:
            session.leave()

        def on_connect(e: ft.Event) -> None:
            session.rejoin()  # the tab came back (network blip, laptop lid): same name again

        page.on_disconnect = on_disconnect
        page.on_close = on_disconnect
        page.on_connect = on_connect
        view.mount()

    return session_main

