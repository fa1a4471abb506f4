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
        title="Welcome!",  # (a string: the dialog makes the Text; one control fewer per tab)
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


def room_dialog(title: str, field: ft.TextField, on_open: Callable, on_cancel: Callable,
                unlock: bool = False, on_dismiss: Callable | None = None) -> ft.AlertDialog:
    """``unlock``: the room has sealed messages (enter the passphrase you were given); otherwise
    the channel becomes private for this person (choose one and share it)."""
    if unlock:
        heading = f"Unlock private room {title}"
        body = ("Messages here are sealed with a passphrase shared by the room's members. Enter "
                "the one you were given to read them; what you send here is sealed too.")
        action = "Unlock"
    else:
        heading = f"Make {title} private"
        body = ("Choose a passphrase (8 characters or more) and give it to the others in person. "
                "From now on what you send here is sealed: only people who enter the same "
                "passphrase can read it. Others see \"sealed\" until they do.")
        action = "Make private"
    return ft.AlertDialog(
        title=ft.Text(heading),
        content=ft.Column(
            [
                ft.Text(body + " The passphrase is kept only while this page is open.", size=12),
                field,
            ],
            width=340,
            tight=True,
        ),
        actions=[ft.TextButton("Cancel", on_click=on_cancel),
                 ft.Button(action, on_click=on_open)],
        actions_alignment=ft.MainAxisAlignment.END,
        on_dismiss=on_dismiss,  # focus back to the composer once it is gone
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
