"""What one can do with a message: react (the quick set, or any from the picker), reply, go to
the original of a reply, and, for one's own message, edit or delete it. One dialog built when
asked (rows carry no menus: a row stays as light as the tutorial's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import flet as ft

from ..conversation.emoji import PICKER, QUICK_REACTIONS
from ..model import Message, ValidationError
from .backend import ChatBackend

if TYPE_CHECKING:
    from .convo_row import ConvoRow

Click = Callable[[ft.Event | None], Awaitable[None]]
EDIT_LABEL = "Edit message"
DELETE_QUESTION = "Delete this message for everyone?"


def action(label: str, content: ft.Control, on_click: Click) -> ft.Control:
    """A button screen readers (and the browser tests) find by ``label``."""
    return ft.Semantics(label=label, button=True, container=True, exclude_semantics=True,
                        on_tap=on_click, content=content)


def emoji_button(emoji: str, label: str, on_click: Click, mine: bool = False) -> ft.Control:
    return action(label, ft.Container(
        content=ft.Text(emoji, size=22),
        padding=6,
        border_radius=8,
        bgcolor=ft.Colors.PRIMARY_CONTAINER if mine else None,
        on_click=on_click,
    ), on_click)


def emoji_grid(on_pick: Callable[[str], Click], label: Callable[[str], str],
               chosen: frozenset[str] = frozenset()) -> ft.Control:
    """Every emoji of the picker (the reaction set) in a wrapping grid."""
    return ft.Row([emoji_button(e, label(e), on_pick(e), e in chosen) for e in PICKER],
                  wrap=True, spacing=2, run_spacing=2, width=330, scroll=ft.ScrollMode.AUTO)


class RowActions:
    """The actions dialog of a row, and its edit and delete dialogs."""

    def __init__(self, page: ft.Page, backend: ChatBackend,
                 start_reply: Callable[[Message], Awaitable[None]],
                 go_to_original: Callable[[ConvoRow], Awaitable[None]]) -> None:
        self.page = page
        self.backend = backend
        self.start_reply = start_reply
        self.go_to_original = go_to_original
        self._edit_field: ft.TextField | None = None

    @property
    def edit_field(self) -> ft.TextField:
        """Built on the first edit: most tabs never edit, and every tab pays for what it holds."""
        if self._edit_field is None:
            self._edit_field = ft.TextField(label=EDIT_LABEL, multiline=True, shift_enter=True,
                                            min_lines=1, max_lines=6, autofocus=True)
        return self._edit_field

    def opener(self, row: ConvoRow) -> Click:
        async def open_actions(e: ft.Event | None = None) -> None:
            self.page.show_dialog(self.dialog(row))

        return open_actions

    def reactor(self, msg: Message, emoji: str, close: bool = False) -> Click:
        async def react(e: ft.Event | None = None) -> None:
            if close:
                self.page.pop_dialog()
            try:
                await self.backend.react(msg, emoji)
            except ValidationError as err:
                self.say(str(err))

        return react

    def say(self, text: str) -> None:
        self.page.show_dialog(ft.SnackBar(ft.Text(text)))

    def dialog(self, row: ConvoRow) -> ft.AlertDialog:
        msg, d = row.original, row.decor
        mine_emoji = frozenset(r.emoji for r in d.reactions if r.mine)

        def label(e: str) -> str:
            return f"Remove {e}" if e in mine_emoji else f"React {e}"

        quick = [emoji_button(e, label(e), self.reactor(msg, e, close=True), e in mine_emoji)
                 for e in QUICK_REACTIONS]
        quick.append(action("More reactions", ft.IconButton(
            ft.Icons.ADD_REACTION_OUTLINED, tooltip="More reactions",
            on_click=self.picker_opener(msg, mine_emoji)), self.picker_opener(msg, mine_emoji)))
        items: list[ft.Control] = [ft.Row(quick, wrap=True, spacing=2)]
        if not d.deleted:
            items.append(self.item("Reply", ft.Icons.REPLY, self._reply(msg)))
        if d.quote is not None:
            items.append(self.item("Go to the original message", ft.Icons.ARROW_UPWARD,
                                   self._original(row)))
        if d.mine and not d.deleted:
            items.append(self.item("Edit", ft.Icons.EDIT, self._edit(row)))
            items.append(self.item("Delete", ft.Icons.DELETE_OUTLINE, self._delete(msg)))
        return ft.AlertDialog(
            title=ft.Text(f"Message from {msg.author}", size=16),
            content=ft.Column(items, tight=True, spacing=4, width=340),
            actions=[ft.TextButton("Close", on_click=lambda e: self.page.pop_dialog())],
        )

    def item(self, label: str, icon: str, on_click: Click) -> ft.Control:
        return action(label, ft.TextButton(label, icon=icon, on_click=on_click), on_click)

    def picker_opener(self, msg: Message, mine: frozenset[str]) -> Click:
        async def open_picker(e: ft.Event | None = None) -> None:
            self.page.pop_dialog()

            def pick(emoji: str) -> Click:
                return self.reactor(msg, emoji, close=True)

            self.page.show_dialog(ft.AlertDialog(
                title=ft.Text("React", size=16),
                content=emoji_grid(pick, lambda e: f"Remove {e}" if e in mine else f"React {e}",
                                   mine),
            ))

        return open_picker

    def _reply(self, msg: Message) -> Click:
        async def reply(e: ft.Event | None = None) -> None:
            self.page.pop_dialog()
            await self.start_reply(msg)

        return reply

    def _original(self, row: ConvoRow) -> Click:
        async def original(e: ft.Event | None = None) -> None:
            self.page.pop_dialog()
            await self.go_to_original(row)

        return original

    def _edit(self, row: ConvoRow) -> Click:
        async def edit(e: ft.Event | None = None) -> None:
            self.page.pop_dialog()
            self.edit_field.value, self.edit_field.error = row.decor.text, None
            save = self._save(row.original)
            self.edit_field.on_submit = save
            self.page.show_dialog(ft.AlertDialog(
                title=ft.Text(EDIT_LABEL, size=16),
                content=ft.Container(self.edit_field, width=420),
                actions=[ft.TextButton("Cancel", on_click=lambda e: self.page.pop_dialog()),
                         ft.FilledButton("Save", on_click=save)],
            ))

        return edit

    def _save(self, msg: Message) -> Click:
        async def save(e: ft.Event | None = None) -> None:
            try:
                await self.backend.edit(msg, self.edit_field.value or "")
            except ValidationError as err:
                self.edit_field.error = str(err)  # say why; keep what was typed
                self.edit_field.update()
                return
            self.page.pop_dialog()

        return save

    def _delete(self, msg: Message) -> Click:
        async def ask(e: ft.Event | None = None) -> None:
            self.page.pop_dialog()

            async def confirm(e: ft.Event | None = None) -> None:
                self.page.pop_dialog()
                try:
                    await self.backend.delete(msg)
                except ValidationError as err:
                    self.say(str(err))

            self.page.show_dialog(ft.AlertDialog(
                title=ft.Text(DELETE_QUESTION, size=16),
                content=ft.Text("Everyone will see \u201cmessage deleted\u201d instead."),
                actions=[ft.TextButton("Cancel", on_click=lambda e: self.page.pop_dialog()),
                         action("Delete for everyone",
                                ft.FilledButton("Delete for everyone", on_click=confirm),
                                confirm)],
            ))

        return ask
