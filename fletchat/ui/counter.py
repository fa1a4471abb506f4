"""The composer's length guard: a live "3950 / 4000" counter near the limit, and a refusal's
error ("Message is too long") that clears as soon as the text fits again or the channel
changes (issue 17: it used to stay, red, over an empty field). Kept beside the composer, not in
it, so updating the counter never touches the field a person is typing in."""

from __future__ import annotations

import flet as ft

from ..model import MAX_MESSAGE_CHARS
from .composer import Composer

NEAR = 500  # the counter appears this close to the limit


def counter_text(length: int, limit: int = MAX_MESSAGE_CHARS) -> str:
    """"" far from the limit; "3950 / 4000" near it (and over it)."""
    return f"{length} / {limit}" if length >= limit - NEAR else ""


class LengthCounter:
    """Watches the composer's field (chaining any ``on_change`` already set)."""

    def __init__(self, composer: Composer) -> None:
        self.composer = composer
        self.text = ft.Text("", size=11, color=ft.Colors.ON_SURFACE_VARIANT, visible=False)
        composer.control.controls.insert(1, self.text)
        composer.field.error_max_lines = 3  # "Message is too long: …" whole, also on phones
        self._chained = composer.field.on_change
        composer.field.on_change = self.on_change

    def refresh(self) -> list[ft.Control]:
        """Bring the counter and the error in line with the text; the controls that changed."""
        field = self.composer.field
        length = len(field.value or "")
        changed: list[ft.Control] = []
        label = counter_text(length)
        if label != (self.text.value or "") or self.text.visible != bool(label):
            self.text.value, self.text.visible = label, bool(label)
            self.text.color = ft.Colors.RED_700 if length > MAX_MESSAGE_CHARS else ft.Colors.ON_SURFACE_VARIANT
            changed.append(self.text)
        if field.error and length <= MAX_MESSAGE_CHARS:
            field.error = None
            changed.append(field)
        return changed

    def clear_error(self) -> list[ft.Control]:
        """Another channel: yesterday's refusal does not belong to it."""
        changed = self.refresh()
        if self.composer.field.error:
            self.composer.field.error = None
            changed.append(self.composer.field)
        return changed

    async def on_change(self, e: ft.Event | None = None) -> None:
        for control in self.refresh():
            control.update()
        if self._chained is not None:
            result = self._chained(e)
            if hasattr(result, "__await__"):
                await result
