"""The baseline: the final chat of Flet's tutorial ("Creating realtime chat app in Python";
``/work/shared/seed/flet-chat-tutorial.zh.md``), ported to Flet 1.0.5 with its structure intact:
``Message``, the ``ChatMessage`` row, the "Welcome!" dialog, a ``ListView`` with ``auto_scroll``,
``page.pubsub.send_all`` and a sync ``on_message`` that appends and calls ``page.update()``.

Changes for Flet 1.0.5 only: ``ft.Colors``/``ft.Icons``, ``page.show_dialog``/``pop_dialog``,
``page.session.store``, ``ft.Button``; and ``make_main(history)`` so the bench can open it with
rows already shown (the tutorial has no history: they are appended before the first update, as
``on_message`` would have). ``python bench/tutorial_chat.py`` runs it on its own.
"""

from __future__ import annotations

import flet as ft


class Message:
    def __init__(self, user_name: str, text: str, message_type: str) -> None:
        self.user_name = user_name
        self.text = text
        self.message_type = message_type


class ChatMessage(ft.Row):
    def __init__(self, message: Message) -> None:
        super().__init__()
        self.vertical_alignment = ft.CrossAxisAlignment.START
        self.controls = [
            ft.CircleAvatar(
                content=ft.Text(self.get_initials(message.user_name)),
                color=ft.Colors.WHITE,
                bgcolor=self.get_avatar_color(message.user_name),
            ),
            ft.Column(
                [
                    ft.Text(message.user_name, weight=ft.FontWeight.BOLD),
                    ft.Text(message.text, selectable=True),
                ],
                tight=True,
                spacing=5,
            ),
        ]

    def get_initials(self, user_name: str) -> str:
        return user_name[:1].capitalize() if user_name else "Unknown"

    def get_avatar_color(self, user_name: str) -> str:
        colors_lookup = [
            ft.Colors.AMBER, ft.Colors.BLUE, ft.Colors.BROWN, ft.Colors.CYAN, ft.Colors.GREEN,
            ft.Colors.INDIGO, ft.Colors.LIME, ft.Colors.ORANGE, ft.Colors.PINK, ft.Colors.PURPLE,
            ft.Colors.RED, ft.Colors.TEAL, ft.Colors.YELLOW,
        ]
        return colors_lookup[hash(user_name) % len(colors_lookup)]


def make_main(history: list[Message] | None = None):
    async def main(page: ft.Page) -> None:
        page.horizontal_alignment = ft.CrossAxisAlignment.STRETCH
        page.title = "Flet Chat"

        def join_chat_click(e) -> None:
            if not join_user_name.value:
                join_user_name.error = "Name cannot be blank!"
                join_user_name.update()
            else:
                page.session.store.set("user_name", join_user_name.value)
                page.pop_dialog()
                new_message.prefix = ft.Text(f"{join_user_name.value}: ")
                page.pubsub.send_all(Message(
                    user_name=join_user_name.value,
                    text=f"{join_user_name.value} has joined the chat.",
                    message_type="login_message",
                ))
                page.update()

        async def send_message_click(e) -> None:
            if new_message.value != "":
                page.pubsub.send_all(Message(
                    page.session.store.get("user_name"), new_message.value, "chat_message"
                ))
                new_message.value = ""
                await new_message.focus()
                page.update()

        def on_message(message: Message) -> None:
            if message.message_type == "chat_message":
                m: ft.Control = ChatMessage(message)
            else:
                m = ft.Text(message.text, italic=True, color=ft.Colors.BLACK_45, size=12)
            chat.controls.append(m)
            page.update()

        page.pubsub.subscribe(on_message)

        join_user_name = ft.TextField(
            label="Enter your name to join the chat",
            autofocus=True,
            on_submit=join_chat_click,
        )
        page.show_dialog(ft.AlertDialog(
            modal=True,
            title=ft.Text("Welcome!"),
            content=ft.Column([join_user_name], width=300, height=70, tight=True),
            actions=[ft.Button(content="Join chat", on_click=join_chat_click)],
            actions_alignment=ft.MainAxisAlignment.END,
        ))

        chat = ft.ListView(expand=True, spacing=10, auto_scroll=True)
        for message in history or ():  # the bench's rows already shown
            chat.controls.append(ChatMessage(message))

        new_message = ft.TextField(
            hint_text="Write a message...",
            autofocus=True,
            shift_enter=True,
            min_lines=1,
            max_lines=5,
            filled=True,
            expand=True,
            on_submit=send_message_click,
        )

        page.add(
            ft.Container(
                content=chat,
                border=ft.Border.all(1, ft.Colors.OUTLINE),
                border_radius=5,
                padding=10,
                expand=True,
            ),
            ft.Row(
                [
                    new_message,
                    ft.IconButton(
                        icon=ft.Icons.SEND_ROUNDED,
                        tooltip="Send message",
                        on_click=send_message_click,
                    ),
                ]
            ),
        )

    return main


if __name__ == "__main__":
    ft.run(make_main())
