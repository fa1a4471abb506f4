"""The device-details view: this install's key fingerprint (for comparing screens in person)
and the LAN devices with theirs. It used to be the first line of the people panel, in every tab
of a host alike ("Your device: I5RH-EJHR-…"), before anything a person came for (issue 17)."""

from __future__ import annotations

from collections.abc import Callable

import flet as ft

from ..events import Online
from .text import OWN_DEVICE_PREFIX, OWN_DEVICE_TOOLTIP

DETAILS_BUTTON = "Device details"


def own_fingerprint_line(fingerprint: str) -> ft.Control:
    """"Your device: XXXX-XXXX-XXXX-XXXX": selectable, with a tooltip on how to compare it.
    Wrapped in Semantics because selectable Text is invisible to screen readers."""
    line = f"{OWN_DEVICE_PREFIX}{fingerprint}"
    return ft.Semantics(
        label=line,
        container=True,
        exclude_semantics=True,
        content=ft.Container(
            tooltip=OWN_DEVICE_TOOLTIP,
            content=ft.Column(
                [
                    ft.Row(
                        [
                            ft.Icon(ft.Icons.FINGERPRINT, size=14, color=ft.Colors.ON_SURFACE_VARIANT),
                            ft.Text(OWN_DEVICE_PREFIX.rstrip(": ") + ":", size=11,
                                    color=ft.Colors.ON_SURFACE_VARIANT),
                        ],
                        spacing=4,
                        tight=True,
                    ),
                    ft.Text(fingerprint, size=12, selectable=True, font_family="monospace",
                            weight=ft.FontWeight.W_500, color=ft.Colors.ON_SURFACE_VARIANT),
                ],
                spacing=2,
                tight=True,
            ),
        ),
    )


def details_dialog(fingerprint: str, devices: list[Online], on_close: Callable) -> ft.AlertDialog:
    """What a person needs to verify devices: this one's fingerprint, how to compare, and each
    LAN device's full fingerprint."""
    rows: list[ft.Control] = [
        own_fingerprint_line(fingerprint),
        ft.Text(OWN_DEVICE_TOOLTIP, size=12),
    ]
    if devices:
        rows.append(ft.Text("Other devices", weight=ft.FontWeight.BOLD, size=13))
        for d in devices:
            text = f"{d.name} ({d.device}): {d.fingerprint or 'no key yet'}"
            rows.append(ft.Semantics(label=text, container=True, exclude_semantics=True,
                                     content=ft.Text(text, size=12, selectable=True)))
    return ft.AlertDialog(
        title=ft.Text("This device"),
        content=ft.Column(rows, width=360, tight=True, spacing=8, scroll=ft.ScrollMode.AUTO),
        actions=[ft.TextButton("Close", on_click=lambda e: on_close())],
    )
