"""flet_encode: the same bytes and diff snapshots as Flet's own encoder, for every Flet control
and for the app's own rows and pages."""

from __future__ import annotations

import datetime
from typing import Any

import flet as ft
import msgpack
import pytest
from flet.controls.base_control import BaseControl
from flet.messaging.protocol import configure_encode_object_for_msgpack

from fletchat.hub import HubSession
from fletchat.ui import flet_encode, flet_speedup
from tests.test_flet_init import _all_control_classes
from tests.test_ui_controls import make_view


class Recording:
    """An encoder that notes every object it was asked about."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seen: list[Any] = []

    def __call__(self, obj: Any) -> Any:
        self.seen.append(obj)
        return self.inner(obj)


def _snapshots(objs: list[Any]) -> list[tuple]:
    return [(type(o).__name__, getattr(o, "__prev_lists", None), getattr(o, "__prev_dicts", None),
             getattr(o, "__prev_classes", None)) for o in objs]


def assert_same_encoding(tree: Any) -> int:
    """Pack ``tree`` with Flet's encoder, then with ours: equal bytes, equal snapshots."""
    stock = Recording(configure_encode_object_for_msgpack(BaseControl))
    body = msgpack.packb([2, tree], default=stock)
    after_stock = _snapshots(stock.seen)
    fast = Recording(flet_encode.Encoder(BaseControl, configure_encode_object_for_msgpack(
        BaseControl)))
    assert msgpack.packb([2, tree], default=fast) == body
    assert [id(o) for o in fast.seen] == [id(o) for o in stock.seen]
    assert _snapshots(fast.seen) == after_stock
    return len(stock.seen)


def test_every_flet_control_packs_the_same() -> None:
    packed = objects = 0
    for cls in _all_control_classes():
        try:
            control = cls()
        except Exception:  # noqa: BLE001, S112 - needs arguments (covered by the pages below)
            continue
        objects += assert_same_encoding(control)
        packed += 1
    assert packed > 100 and objects > packed, (packed, objects)


def test_values_of_every_kind_pack_the_same() -> None:
    tree = ft.Column([
        ft.Container(ft.Text("a", weight=ft.FontWeight.BOLD, spans=[ft.TextSpan("b")]),
                     padding=ft.Padding.symmetric(horizontal=4), bgcolor=ft.Colors.RED_400,
                     border_radius=4, animate=ft.Duration(milliseconds=300),
                     on_click=lambda e: None, data={"k": [1, 2]}),
        ft.Row([ft.Icon(ft.Icons.DONE, size=13), ft.IconButton(ft.Icons.MORE_HORIZ)],
               wrap=True),
        ft.CupertinoDatePicker(value=datetime.datetime(2026, 12, 3, 9, 30)),
        ft.TimePicker(value=datetime.time(9, 30)),
    ], key=ft.ScrollKey("k"), spacing=4)
    assert assert_same_encoding(tree) > 10


async def test_the_apps_pages_and_rows_pack_the_same(tmp_path) -> None:
    was = flet_speedup.installed()
    flet_speedup.install()  # the rows as host mode builds them
    try:
        view, session = await make_view(tmp_path)
        bob = HubSession(session.hub)
        bob.join("Bob")
        for text in ("hello", "**bold** and a link https://example.org", "@Ada look"):
            await view.on_event(bob.send(text))
            await view.on_event(session.send(text))
        assert assert_same_encoding(view.conversation.control) > 50
        assert assert_same_encoding(view.people.panel) > 5
    finally:
        if not was:
            flet_speedup.uninstall()


def test_install_swaps_host_modes_encoder_and_refuses_a_changed_flet(monkeypatch) -> None:
    from flet_web.fastapi import flet_app

    was = flet_speedup.installed()
    flet_speedup.uninstall()
    stock = flet_app.configure_encode_object_for_msgpack
    try:
        flet_speedup.install()
        assert flet_encode.installed()
        enc = flet_app.configure_encode_object_for_msgpack(BaseControl)
        assert isinstance(enc, flet_encode.Encoder)
        assert flet_app.configure_encode_object_for_msgpack(BaseControl) is enc  # plans kept
        flet_speedup.uninstall()
        assert flet_app.configure_encode_object_for_msgpack is stock
        monkeypatch.setattr(flet_encode, "CONFIGURE_SHA256", "0" * 64)
        with pytest.raises(flet_speedup.FletChanged):  # what host mode catches: none installed
            flet_speedup.install()
        assert not flet_encode.installed() and not flet_speedup.installed()
    finally:
        monkeypatch.undo()
        if was:
            flet_speedup.install()
