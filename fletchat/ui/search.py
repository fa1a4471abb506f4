"""Search: the header's field, and a dialog of results (matches in bold); a result jumps to its
message in its channel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import flet as ft

from ..model import Message, avatar_color, initials
from .text import (
    SEARCH_HINT,
    SEARCH_HINT_SHORT,
    channel_title,
    format_time,
    plain_snippet,
    snippet_parts,
)

Jump = Callable[[Message], Awaitable[None]]


def highlight_spans(snippet: str) -> list[ft.TextSpan]:
    """A search snippet with MARK_START/MARK_END around matches, as spans (matches in bold)."""
    bold = ft.TextStyle(weight=ft.FontWeight.BOLD, bgcolor=ft.Colors.AMBER_100)
    return [ft.TextSpan(text, style=bold if match else None)
            for text, match in snippet_parts(snippet)]


def result_tile(msg: Message, snippet: str, me: str | None, go: Callable) -> ft.Control:
    where = channel_title(msg.channel, me)
    head = f"{msg.author} in {where} at {format_time(msg.ts)}"
    return ft.Semantics(
        label=f"Result: {head}: {plain_snippet(snippet)}",
        button=True,
        container=True,
        exclude_semantics=True,
        on_tap=go,
        content=ft.Container(
            on_click=go,
            border_radius=5,
            padding=6,
            bgcolor=ft.Colors.SURFACE_CONTAINER_HIGHEST,
            content=ft.Column(
                [
                    ft.Row(
                        [
                            ft.CircleAvatar(content=ft.Text(initials(msg.author), size=10),
                                            color=ft.Colors.WHITE,
                                            bgcolor=avatar_color(msg.author), radius=11),
                            ft.Text(msg.author, weight=ft.FontWeight.BOLD, size=13),
                            ft.Text(where, size=12, color=ft.Colors.BLUE_700),
                            ft.Text(format_time(msg.ts), size=11, color=ft.Colors.ON_SURFACE_VARIANT),
                        ],
                        spacing=6,
                    ),
                    ft.Text(spans=highlight_spans(snippet), size=13, max_lines=3),
                ],
                spacing=2,
                tight=True,
            ),
        ),
    )


class Search:
    """The field; ``results_dialog`` builds what a query found."""

    def __init__(self, on_submit: Callable, enabled: bool) -> None:
        self.field = ft.TextField(hint_text=SEARCH_HINT, prefix_icon=ft.Icons.SEARCH, dense=True,
                                  width=260, on_submit=on_submit, visible=enabled)

    @property
    def query(self) -> str:
        return (self.field.value or "").strip()

    def fit(self, wide: bool) -> ft.TextField:
        """Phones: a narrower field whose hint fits it ("Search m…" was cut, issue 17); returns
        the field, to be updated."""
        self.field.width = 260 if wide else 130
        self.field.hint_text = SEARCH_HINT if wide else SEARCH_HINT_SHORT
        return self.field

    def results_dialog(self, query: str, results: list[tuple[Message, str]], me: str | None,
                       on_jump: Jump, on_close: Callable) -> ft.AlertDialog:
        def goer(msg: Message) -> Callable:
            async def go(e: ft.Event | None = None) -> None:
                on_close()
                await on_jump(msg)

            return go

        tiles = [result_tile(m, s, me, goer(m)) for m, s in results]
        body: ft.Control = (
            ft.ListView(tiles, spacing=4, height=min(420, 70 * len(tiles) + 10), width=460)
            if tiles
            else ft.Text(f'Nothing found for "{query}".')
        )
        return ft.AlertDialog(
            title=ft.Text(f'Search: "{query}" ({len(results)} found)'),
            content=body,
            actions=[ft.TextButton("Close", on_click=lambda e: on_close())],
        )
