"""The dialogs: the tutorial's "Welcome!" name dialog, a new channel, a private room's
passphrase, and the confirmation before blocking a device. Each keeps its field so errors show
under it and the person's text stays."""

from __future__ import annotations

from collections.abc import Callable

import flet as ft

from ..model import MAX_NAME_CHARS
from .text import NAME_LABEL


def login_dialog(prefill: str, on_join: Callable) -> tuple[ft.AlertDialog, ft.TextField]:
    name = ft.TextField(label=NAME_LABEL, autofocus=True, value=prefill,
                        max_length=MAX_NAME_CHARS, on_submit=on_join)
    dialog = ft.AlertDialog(
        modal=True,
        title=ft.Text("Welcome!"),
        content=ft.Column([name], width=300, height=90, tight=True),
        actions=[ft.Button("Join chat", on_click=on_join)],
        actions_alignment=ft.MainAxisAlignment.END,
    )
    return dialog, name


def channel_dialog(field: ft.TextField, on_create: Callable, on_cancel: Callable,
                   on_dismiss: Callable) -> ft.AlertDialog:
    return ft.AlertDialog(
        title=ft.Text("New channel"),
        content=ft.Column([field], width=300, height=90, tight=True),
        actions=[ft.TextButton("Cancel", on_click=on_cancel),
                 ft.Button("Create", on_click=on_create)],
        actions_alignment=ft.MainAxisAlignment.END,
        on_dismiss=on_dismiss,  # the closed dialog gives focus back to "+" first
    )


def room_dialog(title: str, field: ft.TextField, on_open: Callable,
                on_cancel: Callable) -> ft.AlertDialog:
    return ft.AlertDialog(
        title=ft.Text(f"Private room {title}"),
        content=ft.Column(
            [
                ft.Text(
                    "Messages here are sealed end to end with a passphrase shared by the room's "
                    "members. Enter it to read and write sealed messages; it is kept only while "
                    "this page is open.",
                    size=12,
                ),
                field,
            ],
            width=340,
            tight=True,
        ),
        actions=[ft.TextButton("Cancel", on_click=on_cancel),
                 ft.Button("Open room", on_click=on_open)],
        actions_alignment=ft.MainAxisAlignment.END,
    )


def block_dialog(who: str, on_block: Callable, on_cancel: Callable) -> ft.AlertDialog:
    return ft.AlertDialog(
        title=ft.Text("Block this device?"),
        content=ft.Text(
            f"{who} will be disconnected and refused from now on, and messages it wrote are "
            "dropped even when others relay them. You can unblock it later."
        ),
        actions=[
            ft.TextButton("Cancel", on_click=on_cancel),
            ft.Button("Block", on_click=on_block, bgcolor=ft.Colors.RED_700,
                      color=ft.Colors.WHITE),
        ],
        actions_alignment=ft.MainAxisAlignment.END,
    )
