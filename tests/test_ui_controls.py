"""The UI's controls, built without a Flet client: structure, colours, semantics labels."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import flet as ft
import pytest

from fletchat.hub import Delivered, Hub, HubSession, Online
from fletchat.model import KIND_JOIN, KIND_LEAVE, Message, avatar_color
from fletchat.store import MARK_END, MARK_START, Store
from fletchat.ui import (
    LATE_LABEL,
    PENDING_LABEL,
    ChatMessage,
    ChatView,
    MessageRow,
    Status,
    channel_title,
    describe_for_screen_reader,
    format_time,
    highlight_spans,
    message_control,
    online_tile,
)


def walk(control: ft.Control) -> Iterator[ft.Control]:
    """Every control in a tree (content and controls children)."""
    yield control
    content = getattr(control, "content", None)
    if isinstance(content, ft.Control):
        yield from walk(content)
    for child in getattr(control, "controls", None) or []:
        yield from walk(child)


def texts(control: ft.Control) -> list[ft.Text]:
    return [c for c in walk(control) if isinstance(c, ft.Text)]


def chat(
    author: str = "Ada Lovelace", text: str = "Hello, world", ts: float | None = None
) -> Message:
    m = Message.chat(author, text, "peer-1")
    return m if ts is None else replace(m, ts=ts)


# ---------------------------------------------------------------- ChatMessage


@pytest.mark.parametrize(
    ("author", "expected"), [("Ada Lovelace", "AL"), ("bob", "B"), ("李雷", "李")]
)
def test_chat_message_avatar(author: str, expected: str) -> None:
    row = ChatMessage(chat(author))
    avatars = [c for c in walk(row) if isinstance(c, ft.CircleAvatar)]
    assert len(avatars) == 1
    avatar = avatars[0]
    assert isinstance(avatar.content, ft.Text)
    assert avatar.content.value == expected
    assert avatar.bgcolor == avatar_color(author)


def test_chat_message_name_and_text() -> None:
    m = chat("Ada Lovelace", "multi\nline text")
    row = ChatMessage(m)
    assert row.message is m
    all_texts = texts(row)
    bold = [t for t in all_texts if t.weight == ft.FontWeight.BOLD]
    assert [t.value for t in bold] == ["Ada Lovelace"]
    assert "multi\nline text" in [t.value for t in all_texts]
    assert format_time(m.ts) in [t.value for t in all_texts]


def test_different_authors_keep_their_colour() -> None:
    a1 = next(c for c in walk(ChatMessage(chat("Ada"))) if isinstance(c, ft.CircleAvatar))
    a2 = next(c for c in walk(ChatMessage(chat("Ada", "second"))) if isinstance(c, ft.CircleAvatar))
    assert a1.bgcolor == a2.bgcolor == avatar_color("Ada")


# ---------------------------------------------------------------- message_control


def test_message_control_chat_semantics() -> None:
    m = chat("Ada Lovelace", "Hello, world")
    c = message_control(m)
    assert isinstance(c, ft.Semantics)
    assert "Ada Lovelace" in c.label and "Hello, world" in c.label
    assert c.label == describe_for_screen_reader(m)
    assert c.exclude_semantics is True
    assert isinstance(c.content, ChatMessage)
    assert c.data == m.id


@pytest.mark.parametrize(
    ("kind", "sentence"),
    [(KIND_JOIN, "Bob has joined the chat."), (KIND_LEAVE, "Bob has left the chat.")],
)
def test_message_control_presence(kind: str, sentence: str) -> None:
    m = Message.presence(kind, "Bob", "peer-1")
    c = message_control(m)
    assert isinstance(c, ft.Semantics)
    assert c.label == sentence
    italic = [t for t in texts(c) if t.italic]
    assert len(italic) == 1
    assert italic[0].value == sentence
    assert italic[0].size == 12
    assert not any(isinstance(x, ft.CircleAvatar) for x in walk(c))


# ---------------------------------------------------------------- online_tile


def test_online_tile_label() -> None:
    now = time.time()
    person = Online("k", "Carol", "android", now - 5, local=False)
    tile = online_tile(person, now=now)
    assert isinstance(tile, ft.Semantics)
    assert "Carol" in tile.label and "android" in tile.label
    assert "LAN" in tile.label and "just now" in tile.label
    assert "Carol" in [t.value for t in texts(tile)]
    avatar = next(c for c in walk(tile) if isinstance(c, ft.CircleAvatar))
    assert avatar.content.value == "C" and avatar.bgcolor == avatar_color("Carol")


@pytest.mark.parametrize(
    ("age", "shown"),
    [
        (0, "just now"),
        (59, "just now"),
        (60, "1 min"),
        (59 * 60 + 59, "59 min"),
        (3 * 3600 + 5, "3 h"),
    ],
)
def test_online_tile_duration(age: float, shown: str) -> None:
    now = 1_700_000_000.0
    tile = online_tile(Online("k", "Dan", "browser", now - age, local=True), now=now)
    assert shown in tile.label
    assert "here" in tile.label and "browser" in tile.label


# ---------------------------------------------------------------- time and screen reader


def test_format_time_today() -> None:
    now = datetime.now()
    ts = now.replace(hour=12, minute=34, second=0, microsecond=0).timestamp()
    assert format_time(ts) == "12:34"


def test_format_time_other_day() -> None:
    when = (datetime.now() - timedelta(days=3)).replace(hour=8, minute=5, second=0, microsecond=0)
    assert format_time(when.timestamp()) == when.strftime("%Y-%m-%d") + " 08:05"
    old = datetime(2020, 2, 29, 23, 59)
    assert format_time(old.timestamp()) == "2020-02-29 23:59"


def test_describe_for_screen_reader() -> None:
    ts = datetime(2021, 7, 1, 9, 30).timestamp()
    m = chat("Ada", "Hi all", ts=ts)
    assert describe_for_screen_reader(m) == "Ada at 2021-07-01 09:30: Hi all"
    assert (
        describe_for_screen_reader(Message.presence(KIND_JOIN, "Ada", "p"))
        == "Ada has joined the chat."
    )
    assert (
        describe_for_screen_reader(Message.presence(KIND_LEAVE, "Ada", "p"))
        == "Ada has left the chat."
    )


# ---------------------------------------------------------------- ChatView state (no client)

class FakePage:
    """Just enough of ft.Page for ChatView's event handlers."""

    width = 1000
    updates = 0

    def update(self, *controls) -> None:
        self.updates += 1


def make_view(tmp_path) -> tuple[ChatView, HubSession]:
    hub = Hub("here", store=Store.open(tmp_path / "history.db"))
    session = HubSession(hub)
    session.join("Ada")
    view = ChatView(FakePage(), session)  # type: ignore[arg-type]
    view.following = False  # no client to scroll
    view.show_channel("general")
    return view, session


def shown(view: ChatView) -> list[str]:
    return [r.message.text or r.message.kind for r in view.chat.controls if isinstance(r, MessageRow)]


async def test_own_message_pending_then_delivered(tmp_path) -> None:
    view, session = make_view(tmp_path)
    sent = session.send("hello")
    assert sent is not None
    await view.on_event("t", sent)
    row = view.rows[sent.id]
    assert row.status == Status("pending")
    assert row.label.endswith(f"hello, {PENDING_LABEL}")
    at = datetime(2021, 7, 1, 9, 30).timestamp()
    await view.on_event("t", Delivered((sent.id,), at))
    assert row.status == Status("delivered", at)
    assert row.label.endswith("hello, delivered 2021-07-01 09:30")
    icons = [c.icon for c in walk(row) if isinstance(c, ft.Icon)]
    assert icons == [ft.Icons.DONE]


async def test_messages_from_elsewhere_have_no_status(tmp_path) -> None:
    view, _ = make_view(tmp_path)
    theirs = replace(Message.chat("Bob", "hi", "other-peer"), hlc="7fffffffffff.0000.other-peer")
    await view.on_event("t", theirs)
    assert view.rows[theirs.id].status is None
    assert view.rows[theirs.id].label.endswith(": hi")


async def test_late_message_is_placed_in_order_and_marked(tmp_path) -> None:
    view, session = make_view(tmp_path)
    first = session.send("first")
    second = session.send("second")
    for m in (first, second):
        await view.on_event("t", m)
    assert first is not None and second is not None
    # A catch-up whose clock stamp falls between the two: inserted there, marked late.
    between = replace(
        Message.chat("Bob", "written offline", "other-peer"),
        hlc=first.hlc[:18] + "zz",  # same instant as "first", a later node id
    )
    assert first.hlc < between.hlc < second.hlc
    await view.on_event("t", between)
    assert shown(view)[-3:] == ["first", "written offline", "second"]
    late = view.rows[between.id]
    assert late.late and late.label.endswith(LATE_LABEL)
    assert LATE_LABEL in [t.value for t in texts(late)]
    # A newer one just goes at the end, unmarked.
    third = session.send("third")
    await view.on_event("t", third)
    assert shown(view)[-1] == "third" and not view.rows[third.id].late


async def test_other_channels_count_as_unread_not_shown(tmp_path) -> None:
    view, session = make_view(tmp_path)
    bob = HubSession(session.hub)
    bob.join("Bob")
    name = bob.create_channel("lunch")
    msg = bob.send("pizza?", name)
    await view.on_event("t", msg)
    assert "pizza?" not in shown(view)
    assert view.unread == {"lunch": 1}
    labels = [c.label for c in view.channel_list.controls]
    assert labels == ["# general", "# lunch, 1 unread"]
    view.show_channel("lunch")
    assert view.unread == {} and "pizza?" in shown(view)
    assert view.title.value == "# lunch"
    # A DM between two others is not listed; one with Ada is.
    dm = bob.direct_channel("Ada")
    assert channel_title(dm, "Ada") == "@ Bob"
    bob.send("psst", dm)
    bob.send("secret", bob.direct_channel("Eve"))
    view.render_channels()
    titles = [c.label for c in view.channel_list.controls]
    assert titles == ["# general", "# lunch", "@ Bob"]


def test_highlight_spans_bold_matches() -> None:
    spans = highlight_spans(f"say {MARK_START}pizza{MARK_END} at {MARK_START}noon{MARK_END}!")
    assert [s.text for s in spans] == ["say ", "pizza", " at ", "noon", "!"]
    bold = [s.text for s in spans if s.style is not None and s.style.weight == ft.FontWeight.BOLD]
    assert bold == ["pizza", "noon"]
    assert [s.text for s in highlight_spans("no marks")] == ["no marks"]
