"""The line an empty conversation shows instead of a blank pane (issue 17): a direct message
says who it is with; a channel invites the first message."""

from __future__ import annotations

import flet as ft

from .text import channel_title


def empty_text(channel: str, me: str | None) -> str:
    title = channel_title(channel, me)
    if channel.startswith("@"):
        return f"This is your direct conversation with {title[2:]}. Only the two of you see it."
    return f"No messages in {title} yet. Say hello!"


class EmptyState:
    def __init__(self) -> None:
        # one Text (its margin for the Container's padding; the conversation's Column
        # stretches it, so it is centred): every control costs each tab's heap (issue 12)
        self.text = ft.Text("", size=13, italic=True, color=ft.Colors.ON_SURFACE_VARIANT,
                            text_align=ft.TextAlign.CENTER, margin=16, visible=False)
        self.control = self.text

    def show(self, channel: str, me: str | None, empty: bool) -> ft.Control:
        self.control.visible = empty
        self.text.value = empty_text(channel, me) if empty else ""
        return self.control
