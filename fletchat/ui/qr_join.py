"""Join by QR code, in the app: host mode's header has a button that shows its LAN address as a
QR code (``fletchat.qr``) for a phone's camera, with the address written under it."""

from __future__ import annotations

import flet as ft

from .row_menu import action

QR_TOOLTIP = "Join from a phone"
QR_IMAGE_LABEL = "QR code to join"


class QrJoin:
    def __init__(self, page: ft.Page, url: str) -> None:
        self.page = page
        self.url = url
        self.button = action(QR_TOOLTIP, ft.IconButton(
            ft.Icons.QR_CODE_2, tooltip=QR_TOOLTIP, on_click=self.open), self.open)
        self.button.visible = bool(url)

    def dialog(self) -> ft.AlertDialog:
        from ..qr import png  # qrcode: host mode only (the static client never hosts)

        image = ft.Image(src=png(self.url, box=6), width=240, height=240,
                         filter_quality=ft.FilterQuality.NONE)
        return ft.AlertDialog(
            title=ft.Text(QR_TOOLTIP, size=16),
            content=ft.Column(
                [
                    ft.Semantics(label=f"{QR_IMAGE_LABEL}: {self.url}", image=True,
                                 content=ft.Container(image, bgcolor=ft.Colors.WHITE,
                                                      padding=0)),
                    ft.Text("Point the phone's camera here, or open:", size=12),
                    ft.Text(self.url, weight=ft.FontWeight.BOLD),  # read aloud (not selectable)
                ],
                tight=True,
                horizontal_alignment=ft.CrossAxisAlignment.CENTER,
            ),
            actions=[ft.TextButton("Close", on_click=lambda e: self.page.pop_dialog())],
        )

    async def open(self, e: ft.Event | None = None) -> None:
        self.page.show_dialog(self.dialog())
