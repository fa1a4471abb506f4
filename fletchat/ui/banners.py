"""Banners above the conversation: what keeps this device from working fully (history not
saved, no multicast), and a loud one per identity warning that stays until "Trust new key"."""

from __future__ import annotations

from collections.abc import Callable

import flet as ft

from ..events import IdentityWarning
from .text import TRUST_NEW_KEY, identity_warning_text


def identity_banner(warning: IdentityWarning, on_trust: Callable) -> ft.Control:
    """The loud, persistent red banner for an ``IdentityWarning`` (stays until "Trust new key")."""
    text = identity_warning_text(
        warning.name, warning.old_fingerprint, warning.new_fingerprint
    )
    return ft.Container(
        data=warning.peer_id,
        bgcolor=ft.Colors.RED_900,
        padding=10,
        border_radius=5,
        content=ft.Row(
            [
                ft.Icon(ft.Icons.GPP_BAD, color=ft.Colors.WHITE),
                ft.Semantics(
                    label=text,
                    container=True,
                    exclude_semantics=True,
                    expand=True,
                    content=ft.Text(text, color=ft.Colors.WHITE, weight=ft.FontWeight.BOLD),
                ),
                ft.Button(
                    TRUST_NEW_KEY,
                    on_click=on_trust,
                    data=warning.peer_id,
                    tooltip=(
                        "Only after comparing the new fingerprint with the one on their screen, "
                        "in person."
                    ),
                ),
            ],
            vertical_alignment=ft.CrossAxisAlignment.CENTER,
        ),
    )
class Banners:
    def __init__(self, on_trust: Callable[[str], Callable]) -> None:
        self.on_trust = on_trust
        self.text = ft.Text("", color=ft.Colors.WHITE)
        # filled on the first problem: most tabs never show one (each mounted control costs
        # every tab's heap, issue 12)
        self.problem = ft.Container(visible=False)
        self.identity = ft.Column(spacing=4, tight=True)
        self.shown: set[tuple[str, str]] = set()

    def show_problems(self, problems: list[str]) -> None:
        self.text.value = "\n".join(problems)
        if problems and self.problem.content is None:
            p = self.problem
            p.content = ft.Row([ft.Icon(ft.Icons.WARNING_AMBER, color=ft.Colors.WHITE), self.text])
            p.bgcolor, p.padding, p.border_radius = ft.Colors.RED_700, 10, 5
        self.problem.visible = bool(problems)

    def show_warning(self, warning: IdentityWarning) -> bool:
        """One banner per (peer, new key); False when it is shown already."""
        tag = (warning.peer_id, warning.new_fingerprint)
        if tag in self.shown:
            return False
        self.shown.add(tag)
        self.identity.controls.append(identity_banner(warning, self.on_trust(warning.peer_id)))
        return True

    def clear_warnings(self, peer_id: str) -> None:
        self.identity.controls = [b for b in self.identity.controls if b.data != peer_id]
        self.shown = {t for t in self.shown if t[0] != peer_id}
