"""``fletchat.ui.flet_speedup`` against Flet's own walk: the same patches on the wire, the same
controls mounted in the same order, the same state left on every control; and it refuses a Flet
it was not checked against."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import flet as ft
import msgpack
import pytest
from flet.controls.base_control import BaseControl
from flet.controls.object_patch import DiffBuilder
from flet.messaging.connection import Connection
from flet.messaging.protocol import Message as FletMessage
from flet.messaging.protocol import (
    MessageAction,
    RegisterClientResponseBody,
    configure_encode_object_for_msgpack,
)
from flet.messaging.session import Session
from flet.pubsub.pubsub_hub import PubSubHub

from fletchat.model import Message
from fletchat.ui import flet_speedup
from fletchat.ui.convo_row import ConvoRow, RowHandlers
from fletchat.ui.convo_text import Quote, RowDecor
from fletchat.ui.rows import message_control
from fletchat.ui.text import Status

ENCODE = configure_encode_object_for_msgpack(BaseControl)


class Recorder(Connection):
    """flet-web's send path up to the socket (msgpack), keeping every message."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.get_running_loop()
        self.executor = None
        self.pubsubhub = PubSubHub(loop=self.loop)
        self.page_url = "http://127.0.0.1/"
        self.sent: list[Any] = []

    def send_message(self, message) -> None:
        body = msgpack.packb([message.action, message.body], default=ENCODE)
        self.sent.append(msgpack.unpackb(body, strict_map_key=False))


def open_session(conn: Connection | None = None) -> tuple[Any, Session]:
    """A session as flet-web opens one for a tab (on ``conn``, a ``Recorder`` by default): page
    size, then the register response that mounts the page; the page is the current one (what
    Flet's own handlers set)."""
    from flet.controls.context import _context_page

    conn = conn if conn is not None else Recorder()
    session = Session(conn)
    session.apply_page_patch({"width": 1280, "height": 800, "web": True})
    conn.send_message(FletMessage(MessageAction.REGISTER_CLIENT, RegisterClientResponseBody(
        session_id=session.id, page_patch=session.get_page_patch(), error="")))
    _context_page.set(session.page)
    return conn, session


async def open_tab(hub: Any, name: str, conn: Connection | None = None) -> tuple[Any, Session, Any]:
    """A tab as flet-web opens one (bench/fanout.py does the same): ``open_session``, then the
    app's ChatView over the hub, joined as ``name``."""
    from fletchat.hub import HubSession
    from fletchat.ui import ChatView
    from fletchat.ui.hub_backend import HubBackend

    conn, session = open_session(conn)
    hub.use_pubsub(session.page.pubsub)
    me = HubSession(hub, device="browser")
    view = ChatView(session.page, HubBackend(me, session.page.pubsub))
    await view.mount()
    me.join(name)
    view.updates.flush()
    return conn, session, view


def _normalise(value: Any, ids: dict[int, int]) -> Any:
    """Control ids are one process-wide counter: number them by first appearance."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("_i", "id") and isinstance(v, int):  # a control id, or a patch's target
                out[k] = ids.setdefault(v, len(ids))
            elif k in ("session_id", "uid"):  # random per session
                out[k] = "?"
            else:
                out[k] = _normalise(v, ids)
        return out
    if isinstance(value, list):
        return [_normalise(v, ids) for v in value]
    return value


def _state(c: Any, ids: dict[int, int]) -> tuple:
    """What the walk leaves on a control."""
    parent = c._parent() if getattr(c, "_parent", None) else None
    return (type(c).__name__, ids.setdefault(c._i, len(ids)),
            type(parent).__name__ if parent is not None else None,
            getattr(c, "_initialized", None), getattr(c, "_frozen", None),
            dict(getattr(c, "_dirty", {}) or {}))


def _chat(text: str, author: str = "Ada", origin: str = "o1") -> Message:
    """Deterministic id and time: both runs must draw the same rows."""
    return dataclasses.replace(Message.chat(author, text, origin), id=f"id-{text}",
                               ts=1_700_000_000.0)


def _scenario(page: ft.Page, added: list[Any]) -> None:
    """Many kinds of control, value object and change: the app's rows, dialogs, styled
    containers, spans, lists of lists, a removal and a replacement."""
    rows = ft.Column([message_control(_chat(f"hello {i}")) for i in range(3)])
    styled = ft.Container(
        ft.Text("styled", style=ft.TextStyle(size=14, weight=ft.FontWeight.BOLD),
                spans=[ft.TextSpan("a", style=ft.TextStyle(italic=True)), ft.TextSpan("b")]),
        padding=ft.Padding.symmetric(horizontal=4), border_radius=4,
        border=ft.Border.all(1, ft.Colors.RED_400), bgcolor=ft.Colors.AMBER_50,
        on_click=lambda e: None, tooltip="tip")
    page.add(rows, styled, ft.Row([ft.IconButton(ft.Icons.ADD, on_click=lambda e: None),
                                   ft.TextField(label="x", on_submit=lambda e: None)]))
    decor = RowDecor("**bold** and a [link](http://example.com)", edited=True,
                     quote=Quote("p1", "Bob", "earlier"), mentioned=True, seen=("Bob",),
                     above=("Today", "New messages"))
    convo = ConvoRow(_chat("**bold**"), decor, Status("delivered", 1.0),
                     handlers=RowHandlers(on_react=lambda m, e: None,
                                          on_actions=lambda r: (lambda e: None),
                                          on_quote=lambda r: (lambda e: None)))
    rows.controls.append(convo)
    rows.controls.append(message_control(_chat("late one", "Bob", "o2"), late=True,
                                         unverified=True, room="open"))
    rows.controls.pop(0)
    styled.content = ft.Column([ft.Text("new"), ft.Dropdown(options=[
        ft.dropdown.Option("a"), ft.dropdown.Option("b")])])
    page.update()
    page.show_dialog(ft.AlertDialog(title=ft.Text("t"), content=ft.Column([ft.Text("c")]),
                                    actions=[ft.TextButton("ok", on_click=lambda e: None)]))
    rows.controls[0].set_status(Status("pending"))
    page.update(rows)


def _run(speedup: bool, scenario: Callable[[ft.Page, list[Any]], None]) -> tuple[list, list]:
    if speedup:
        flet_speedup.install()
    else:
        flet_speedup.uninstall()
    added: list[Any] = []
    original = DiffBuilder.get_added_controls

    def spy(self):
        for c in original(self):
            added.append(c)
            yield c

    DiffBuilder.get_added_controls = spy  # type: ignore[method-assign]
    try:
        conn, session = open_session()
        scenario(session.page, added)
    finally:
        DiffBuilder.get_added_controls = original  # type: ignore[method-assign]
        flet_speedup.uninstall()
    ids: dict[int, int] = {}
    sent = _normalise(conn.sent, ids)
    return sent, [_state(c, ids) for c in added]


def test_installed_flet_is_the_checked_one() -> None:
    flet_speedup.check()  # fails loudly when Flet changes: re-check the walk, then the digest


def test_install_refuses_a_changed_flet(monkeypatch: pytest.MonkeyPatch) -> None:
    # an earlier test on this worker (a host-mode app) may have installed it: install() is
    # then a no-op, and would refuse nothing
    was = flet_speedup.installed()
    flet_speedup.uninstall()
    try:
        for digest in ("ORIGINAL_SHA256", "VALIDATE_SHA256"):
            monkeypatch.setattr(flet_speedup, digest, "0" * 64)
            with pytest.raises(flet_speedup.FletChanged):
                flet_speedup.install()
            assert not flet_speedup.installed()
            monkeypatch.undo()
        monkeypatch.setattr(flet_speedup, "FLET_VERSION", "0.0.1")
        with pytest.raises(flet_speedup.FletChanged):
            flet_speedup.check()
    finally:
        monkeypatch.undo()
        if was:
            flet_speedup.install()


def test_install_and_uninstall() -> None:
    from flet.controls import base_control
    from flet.utils import validation

    flet_speedup.install()
    flet_speedup.install()  # idempotent
    assert flet_speedup.installed()
    assert base_control.validate is flet_speedup.validate
    flet_speedup.uninstall()
    assert not flet_speedup.installed()
    assert base_control.validate is validation.validate


async def test_same_patches_and_controls_as_flets_own_walk() -> None:
    stock_sent, stock_added = _run(False, _scenario)
    fast_sent, fast_added = _run(True, _scenario)
    assert len(stock_added) > 40  # the scenario adds many controls, and they were seen
    assert any(t[0] == "ConvoRow" for t in stock_added)
    assert fast_added == stock_added
    assert fast_sent == stock_sent


async def test_value_objects_holding_controls_are_walked() -> None:
    """A control inside a plain value object, a dict or a list still gets configured (the
    walker does not care what a field is declared as, only what it holds)."""

    @dataclasses.dataclass
    class Holder:
        inner: Any = None

    def scenario(page: ft.Page, added: list[Any]) -> None:
        c = ft.Container()
        page.add(c)
        c.tooltip = Holder(ft.Text("inside"))
        c.content = ft.Column([ft.Text("x")], tooltip={"k": [Holder(ft.Text("deep"))]})
        page.update()

    stock = _run(False, scenario)
    fast = _run(True, scenario)
    assert [t[0] for t in stock[1]].count("Text") == 3
    assert fast == stock


def _outcomes(check: Callable[..., None]) -> list[str]:
    """A control that fails, fails again (suppressed), passes, then fails again."""
    slider = ft.Slider(min=0, max=10, value=5)
    out = []
    for value in (50, 50, 60, 5, 50):
        slider.value = value
        try:
            check(slider, suppress_repeated_errors=True)
            out.append("ok")
        except ValueError as err:
            out.append(str(err))
    try:
        check(slider)  # not suppressed: every failure is raised
        out.append("ok")
    except ValueError as err:
        out.append(f"raised {err}")
    return out


def test_validate_reports_errors_as_flets_own() -> None:
    from flet.utils import validation

    stock = _outcomes(validation.validate)
    assert stock[0].startswith("value (50)") and stock[1] == "ok" and stock[3] == "ok"
    assert _outcomes(flet_speedup.validate) == stock


def test_validate_keeps_no_error_set_on_a_control_that_never_failed() -> None:
    from flet.utils import validation

    text = ft.Text("fine")
    flet_speedup.validate(text, suppress_repeated_errors=True)
    assert not hasattr(text, validation._REPORTED_VALIDATION_ERRORS_KEY)
    validation.validate(text, suppress_repeated_errors=True)
    assert hasattr(text, validation._REPORTED_VALIDATION_ERRORS_KEY)  # what it saves
