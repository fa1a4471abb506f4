"""The UI's controls, built without a Flet client: structure, colours, semantics labels."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import flet as ft
import pytest
from flet.controls.base_control import BaseControl

from fletchat.events import MessageRefused, StoreFailed
from fletchat.hub import Delivered, Hub, HubSession, IdentityWarning, Online, RosterChanged
from fletchat.model import KIND_JOIN, KIND_LEAVE, Message, Peer, avatar_color
from fletchat.store import MARK_END, MARK_START, Store
from fletchat.trust import Trust
from fletchat.ui import (
    BLOCK_TOOLTIP,
    CHUNK_ROWS,
    LATE_LABEL,
    OWN_DEVICE_PREFIX,
    TRUST_NEW_KEY,
    UNVERIFIED_LABEL,
    ChatMessage,
    ChatView,
    MessageRow,
    Slot,
    Status,
    channel_title,
    describe_for_screen_reader,
    format_time,
    highlight_spans,
    message_control,
    online_tile,
)
from fletchat.ui.device_details import details_dialog
from fletchat.ui.hub_backend import HubBackend


def walk(control: ft.Control) -> Iterator[ft.Control]:
    """Every control in a tree (content and controls children)."""
    yield control
    content = getattr(control, "content", None)
    if isinstance(content, ft.Control):
        yield from walk(content)
    for child in getattr(control, "controls", None) or []:
        yield from walk(child)


def controls_in(control: BaseControl, seen: set[int] | None = None) -> Iterator[BaseControl]:
    """Every control Flet tracks under ``control`` (itself included), whatever field holds it
    (content, controls, spans and their spans, a dialog's title, the page's dialogs and
    services...). Each is built, indexed, diffed and kept with its snapshots in every tab."""
    seen = set() if seen is None else seen
    if id(control) in seen:
        return
    seen.add(id(control))
    yield control
    for f in dataclasses.fields(control):  # type: ignore[arg-type]
        if f.name == "parent":
            continue
        value = getattr(control, f.name, None)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, BaseControl):
                yield from controls_in(v, seen)


def count_controls(control: BaseControl) -> int:
    return sum(1 for _ in controls_in(control))


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
    assert avatar.content == expected  # the initials are the avatar's own text: one control
    assert avatar.bgcolor == avatar_color(author)


def test_chat_message_name_and_text() -> None:
    m = chat("Ada Lovelace", "multi\nline text")
    row = ChatMessage(m)
    assert row.message is m
    # one Text: the bold name, the time and, after a line break, the message (issue 12)
    [text] = texts(row)
    assert text.value == "Ada Lovelace" and text.weight == ft.FontWeight.BOLD
    assert text.selectable
    time_span, body = text.spans
    assert time_span.text.strip() == format_time(m.ts)
    assert body.text == "\nmulti\nline text"
    assert body.style.weight == ft.FontWeight.NORMAL  # the message is not bold


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
    assert "on another device" in tile.label and "just now" in tile.label
    assert "Carol" in [t.value for t in texts(tile)]
    avatar = next(c for c in walk(tile) if isinstance(c, ft.CircleAvatar))
    assert avatar.content == "C" and avatar.bgcolor == avatar_color("Carol")
    [name] = [t for t in texts(tile) if t.value == "Carol"]
    assert name.spans[0].text.endswith("on another device · just now")  # the line under it


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
    assert "on this host" in tile.label and "browser" in tile.label


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
    height = 700
    updates = 0

    def run_task(self, handler, *args) -> None:
        """Background loops (the problem watcher) are not started in these tests."""

    def __init__(self) -> None:
        self.dialogs: list[ft.Control] = []

    def update(self, *controls) -> None:
        self.updates += 1

    def show_dialog(self, dialog: ft.Control) -> None:
        dialog.open = True  # as Flet's page does
        self.dialogs.append(dialog)

    def pop_dialog(self) -> None:
        if self.dialogs:
            self.dialogs.pop().open = False


class MountPage(FakePage):
    """FakePage plus what ``ChatView.mount`` sets and adds."""

    title = ""
    horizontal_alignment = None
    on_resize = None

    def __init__(self) -> None:
        super().__init__()
        self.added: list[ft.Control] = []
        self.pubsub = type("P", (), {"subscribe_topic": lambda *a: None})()

    def add(self, *controls) -> None:
        self.added.extend(controls)


async def make_view(tmp_path) -> tuple[ChatView, HubSession]:
    hub = Hub("here", store=Store.open(tmp_path / "history.db"))
    session = HubSession(hub)
    session.join("Ada")
    view = ChatView(FakePage(), HubBackend(session))  # type: ignore[arg-type]
    await view.show_channel("general")
    return view, session


def shown(view: ChatView) -> list[str]:
    return [r.message.text or r.message.kind for r in view.conversation.shown()]


def rows(view: ChatView) -> dict[str, MessageRow]:
    return view.conversation.rows


async def test_own_message_sent_alone_then_delivered(tmp_path) -> None:
    view, session = await make_view(tmp_path)
    sent = session.send("hello")
    assert sent is not None
    await view.on_event(sent)
    row = rows(view)[sent.id]
    # Nobody else here and no LAN device: "sent", never "waiting" for nobody (issue 17).
    assert row.status == Status("sent")
    assert row.label.endswith("hello, sent")
    at = datetime(2021, 7, 1, 9, 30).timestamp()
    await view.on_event(Delivered((sent.id,), at))
    assert row.status == Status("delivered", at)
    assert row.label.endswith("hello, delivered 2021-07-01 09:30")
    icons = [c.icon for c in walk(row) if isinstance(c, ft.Icon)]
    assert icons == [ft.Icons.DONE]


async def test_another_tabs_message_on_this_host_carries_no_delivery_mark(tmp_path) -> None:
    """The marks are the writer's: Bob's message (another tab of this host) shows none in
    Ada's tab, live or from history, while Bob's own tab shows it."""
    view, session = await make_view(tmp_path)
    bob = HubSession(session.hub)
    bob.join("Bob")
    bobs_view = ChatView(FakePage(), HubBackend(bob))  # type: ignore[arg-type]
    await bobs_view.show_channel("general")
    msg = bob.send("from Bob")
    await view.on_event(msg)
    await bobs_view.on_event(msg)
    row = rows(view)[msg.id]
    assert row.status is None and row.label.endswith(": from Bob")
    assert not [c for c in walk(row) if isinstance(c, ft.Icon)]
    assert rows(bobs_view)[msg.id].status == Status("delivered")  # Ada's tab is here
    await view.show_channel("general")  # from history
    assert rows(view)[msg.id].status is None


async def test_a_refused_message_says_who_refused_it_and_why(tmp_path) -> None:
    view, session = await make_view(tmp_path)
    sent = session.send("hello")
    assert sent is not None
    await view.on_event(sent)
    view.backend.hub.peer_up(Peer("peer-b", "Bob's laptop"))
    await view.on_event(MessageRefused("peer-b", ((sent.id, "quota: too many"),), 1.0))
    row = rows(view)[sent.id]
    assert row.label.endswith("hello, not accepted by Bob's laptop: quota: too many")
    icons = [c.icon for c in walk(row) if isinstance(c, ft.Icon)]
    assert ft.Icons.ERROR_OUTLINE in icons and ft.Icons.SCHEDULE not in icons


async def test_a_storage_fault_shows_the_banner(tmp_path) -> None:
    view, _ = await make_view(tmp_path)
    assert not view.banners.problem.visible
    await view.on_event(StoreFailed("History is read-only: disk is full.", 1.0))
    assert view.banners.problem.visible and "disk is full" in view.banners.text.value


async def test_a_message_whose_insert_failed_says_it_was_not_saved_here(tmp_path) -> None:
    view, session = await make_view(tmp_path)
    sent = session.send("hello")  # went out; its insert then failed (disk full)
    kept = session.send("kept")
    await view.on_event(sent)
    await view.on_event(kept)
    await view.on_event(StoreFailed("History is read-only: disk is full.", 1.0, (sent.id,)))
    assert view.banners.problem.visible and "disk is full" in view.banners.text.value
    assert rows(view)[sent.id].label.endswith("hello, not saved on this device")
    assert rows(view)[kept.id].label.endswith("kept, sent")


async def test_messages_from_elsewhere_have_no_status(tmp_path) -> None:
    view, _ = await make_view(tmp_path)
    theirs = replace(Message.chat("Bob", "hi", "other-peer"), hlc="7fffffffffff.0000.other-peer")
    await view.on_event(theirs)
    assert rows(view)[theirs.id].status is None
    assert rows(view)[theirs.id].label.endswith(": hi")


async def test_late_message_is_placed_in_order_and_marked(tmp_path) -> None:
    view, session = await make_view(tmp_path)
    first = session.send("first")
    second = session.send("second")
    for m in (first, second):
        await view.on_event(m)
    assert first is not None and second is not None
    # A catch-up whose clock stamp falls between the two: inserted there, marked late.
    between = replace(
        Message.chat("Bob", "written offline", "other-peer"),
        hlc=first.hlc[:18] + "zz",  # same instant as "first", a later node id
    )
    assert first.hlc < between.hlc < second.hlc
    await view.on_event(between)
    assert shown(view)[-3:] == ["first", "written offline", "second"]
    late = rows(view)[between.id]
    assert late.late and late.label.endswith(LATE_LABEL)
    assert LATE_LABEL in [t.value for t in texts(late)]
    # A newer one just goes at the end, unmarked.
    third = session.send("third")
    await view.on_event(third)
    assert shown(view)[-1] == "third" and not rows(view)[third.id].late


async def test_other_channels_count_as_unread_not_shown(tmp_path) -> None:
    view, session = await make_view(tmp_path)
    bob = HubSession(session.hub)
    bob.join("Bob")
    name = bob.create_channel("lunch")
    msg = bob.send("pizza?", name)
    await view.on_event(msg)
    assert "pizza?" not in shown(view)
    assert view.state.unread == {"lunch": 1}
    labels = [c.label for c in view.channels.list.controls]
    assert labels == ["# general", "# lunch, 1 unread"]
    await view.show_channel("lunch")
    assert view.state.unread == {} and "pizza?" in shown(view)
    assert view.title.value == "# lunch"
    # A DM between two others is not listed; one with Ada is.
    dm = bob.direct_channel("Ada")
    assert channel_title(dm, "Ada") == "@ Bob"
    bob.send("psst", dm)
    bob.send("secret", bob.direct_channel("Eve"))
    view.render_channels()
    titles = [c.label for c in view.channels.list.controls]
    assert titles == ["# general", "# lunch"]
    # Direct messages have their own section (issue 17).
    assert [c.label for c in view.channels.dms.controls] == ["@ Bob"]
    assert not view.channels.no_dms.visible


def test_highlight_spans_bold_matches() -> None:
    spans = highlight_spans(f"say {MARK_START}pizza{MARK_END} at {MARK_START}noon{MARK_END}!")
    assert [s.text for s in spans] == ["say ", "pizza", " at ", "noon", "!"]
    bold = [s.text for s in spans if s.style is not None and s.style.weight == ft.FontWeight.BOLD]
    assert bold == ["pizza", "noon"]
    assert [s.text for s in highlight_spans("no marks")] == ["no marks"]


# ---------------------------------------------------------------- trust hooks (docs/security.md)


def make_trusted_view(tmp_path, warnings: int = 0) -> tuple[ChatView, Hub]:
    """A view on a hub with an identity (as every node has), not mounted (no client)."""
    trust = Trust.open(tmp_path / "data", "here")
    hub = Hub("here", store=Store.open(tmp_path / "history.db"), trust=trust)
    for i in range(warnings):
        hub.identity_warning(f"peer-{i}", "Alex", "AAAA-AAAA-AAAA-AAAA", "BBBB-BBBB-BBBB-BBBB")
    session = HubSession(hub)
    session.join("Ada")
    view = ChatView(FakePage(), HubBackend(session))  # type: ignore[arg-type]
    return view, hub


def find_semantics(control: ft.Control, label_start: str) -> list[ft.Semantics]:
    return [
        c for c in walk(control)
        if isinstance(c, ft.Semantics) and (c.label or "").startswith(label_start)
    ]


def test_own_fingerprint_line_is_selectable_and_explained(tmp_path) -> None:
    """In the device-details view (issue 17: no longer the people panel's first line)."""
    view, hub = make_trusted_view(tmp_path)
    assert hub.fingerprint
    assert find_semantics(view.people.panel, OWN_DEVICE_PREFIX) == []
    assert view.people.details_button.visible
    [line] = find_semantics(details_dialog(hub.fingerprint, [], lambda: None), OWN_DEVICE_PREFIX)
    assert line.label == f"Your device: {hub.fingerprint}"
    [text] = [t for t in texts(line) if t.value == hub.fingerprint]  # the whole key, one line
    assert text.selectable
    [tip] = [c.tooltip for c in walk(line) if getattr(c, "tooltip", None)]
    assert "friend" in tip and "must match" in tip


async def test_no_device_details_without_an_identity(tmp_path) -> None:
    view, _ = await make_view(tmp_path)
    assert not view.people.details_button.visible


def test_lan_devices_show_their_fingerprint_and_a_block_button(tmp_path) -> None:
    view, _ = make_trusted_view(tmp_path)
    now = time.time()
    alex1 = Online("p1", "Alex", "desktop", now, local=False, fingerprint="CTWQ-H5KK-XSMH-XBSA")
    alex2 = Online("p2", "Alex", "android", now, local=False, fingerprint="Q7RM-2LPA-ZZ3K-MN4D")
    view.people.render([], [alex1, alex2])
    labels = [s.label for s in find_semantics(view.people.devices, "Alex")]
    assert labels == [
        "Alex (desktop) on the LAN, key CTWQ-H5KK",
        "Alex (android) on the LAN, key Q7RM-2LPA",
    ]
    shown_lines = [t.value for t in texts(view.people.devices)]
    assert "Alex (desktop) · CTWQ-H5KK" in shown_lines
    buttons = [c for c in walk(view.people.devices) if isinstance(c, ft.IconButton)]
    assert [b.tooltip for b in buttons] == [BLOCK_TOOLTIP, BLOCK_TOOLTIP]
    assert [b.data for b in buttons] == ["p1", "p2"]


async def test_block_asks_first_then_blocks_and_unblock_lists(tmp_path) -> None:
    view, hub = make_trusted_view(tmp_path)
    alex = Online("p2", "Alex", "android", time.time(), local=False, fingerprint="Q7RM-2LPA-ZZ3K-MN4D")
    await view.on_event(RosterChanged((), (alex,)))
    assert not view.people.blocked_panel.visible
    button = next(c for c in walk(view.people.devices) if isinstance(c, ft.IconButton))
    await button.on_click(None)
    dialog = view.page.dialogs[-1]
    assert isinstance(dialog, ft.AlertDialog)
    assert "Q7RM-2LPA" in dialog.content.value
    assert hub.blocked_peers() == {}  # nothing happens before the confirmation
    _cancel, block = dialog.actions
    await block.on_click(None)
    assert view.page.dialogs == []
    assert "p2" in hub.blocked_peers()
    assert view.people.blocked_panel.visible
    [row] = view.people.blocked_list.controls
    unblock = next(c for c in walk(row) if isinstance(c, ft.TextButton))
    assert unblock.content == "Unblock"
    await unblock.on_click(None)
    assert hub.blocked_peers() == {}
    assert not view.people.blocked_panel.visible and view.people.blocked_list.controls == []


async def test_identity_warning_banner_persists_until_the_new_key_is_trusted(tmp_path) -> None:
    view, hub = make_trusted_view(tmp_path)
    hub.trust.store.check("peer-x", b"k" * 32, "Alex")  # met once: a key is remembered
    assert hub.peer_fingerprint("peer-x")
    hub.identity_warning("peer-x", "Alex", "AAAA-AAAA-AAAA-AAAA", "BBBB-BBBB-BBBB-BBBB")
    [warning] = hub.identity_warnings()
    await view.on_event(warning)
    await view.on_event(warning)  # the same warning twice shows once
    [banner] = view.banners.identity.controls
    assert banner.bgcolor == ft.Colors.RED_900
    expected = (
        "Warning: Alex's device key changed (was AAAA-AAAA-AAAA-AAAA, now BBBB-BBBB-BBBB-BBBB). "
        "Someone may be impersonating it. Messages from it are refused until you verify and reset."
    )
    assert [s.label for s in walk(banner) if isinstance(s, ft.Semantics)] == [expected]
    # Other events do not clear it.
    await view.on_event(RosterChanged((), ()))
    assert len(view.banners.identity.controls) == 1
    trust = next(c for c in walk(banner) if isinstance(c, ft.Button))
    assert trust.content == TRUST_NEW_KEY
    await trust.on_click(None)
    assert view.banners.identity.controls == []
    assert hub.identity_warnings() == [] and hub.peer_fingerprint("peer-x") == ""


async def test_identity_warnings_present_at_mount_are_shown(tmp_path) -> None:
    view, hub = make_trusted_view(tmp_path, warnings=2)

    view.page = MountPage()  # type: ignore[assignment]
    hub.lan_warning = "Could not get the multicast lock. Other devices may not find this one."
    await view.mount()
    assert len(view.banners.identity.controls) == 2
    assert view.banners.identity in view.page.added
    assert view.banners.problem.visible and "multicast lock" in view.banners.text.value


async def test_unverified_messages_get_a_chip_and_say_so(tmp_path) -> None:
    view, hub = make_trusted_view(tmp_path)
    await view.show_channel("general")
    relayed = replace(Message.chat("Bob", "hi there", "never-met"), hlc="7fffffffffff.0000.never-met")
    assert hub.message_status(relayed) == "unverified"
    await view.on_event(relayed)
    row = rows(view)[relayed.id]
    assert row.label.endswith(f": hi there, {UNVERIFIED_LABEL}")
    assert UNVERIFIED_LABEL in [t.value for t in texts(row)]
    own = view.backend.session.send("mine")
    await view.on_event(own)
    assert UNVERIFIED_LABEL not in rows(view)[own.id].label
    assert UNVERIFIED_LABEL not in [t.value for t in texts(rows(view)[own.id])]


def test_describe_unverified_only_for_chat() -> None:
    m = chat("Ada", "Hi")
    assert describe_for_screen_reader(m, unverified=True).endswith(", unverified")
    join = Message.presence(KIND_JOIN, "Ada", "p")
    assert describe_for_screen_reader(join, unverified=True) == "Ada has joined the chat."
    assert IdentityWarning  # the event type the view listens for


# ---------------------------------------------------------------- private rooms


async def test_a_room_dialog_that_went_while_its_key_was_derived_pops_no_other_dialog(
        tmp_path) -> None:
    """The key is derived on a worker thread: Escape (or another dialog) can come first. The
    answer then closes nothing (it popped whatever dialog was on top before) and says its
    result under the header, for the room it was asked for."""
    view, session = await make_view(tmp_path)
    room = session.create_channel("plans")
    await view.show_channel(room)
    view.rooms.ask()
    asked = asyncio.create_task(view.rooms.set_passphrase("correct horse battery"))
    await asyncio.sleep(0)  # the derivation runs on its thread
    view.page.pop_dialog()
    await view.rooms.dismissed()  # Escape
    other = ft.AlertDialog(title=ft.Text("Profile and settings"))
    view.page.show_dialog(other)
    assert await asked
    assert view.page.dialogs == [other] and other.open
    assert view.rooms.note.visible and "plans" in (view.rooms.note.value or "")
    assert view.backend.has_room_key(room)


async def test_private_room_rows_open_with_the_passphrase(tmp_path) -> None:
    view, session = await make_view(tmp_path)
    bob = HubSession(session.hub)
    bob.join("Bob")
    room = bob.create_channel("secret")
    bob.set_room_passphrase(room, "correct horse battery")
    sealed = bob.send("the plan", room)
    assert sealed is not None and sealed.text.startswith("sealed:v1:")
    await view.show_channel(room)
    row = rows(view)[sealed.id]
    assert row.room == "no_key" and view.feed.needs_room_key()
    assert "the plan" not in row.label and row.label.endswith(": sealed (no key)")
    dialog = view.rooms.ask()
    assert isinstance(dialog, ft.AlertDialog) and view.rooms.passphrase.password
    assert not await view.rooms.set_passphrase("short")  # refused, says why, dialog stays
    assert view.rooms.passphrase.error
    assert await view.rooms.set_passphrase("a wrong passphrase")
    await view.rooms.dismissed()
    assert rows(view)[sealed.id].room == "refused"
    assert not view.feed.needs_room_key()  # (opening the channel does not ask again) ...
    view.rooms.ask()
    assert view.rooms.unlock  # ... but the lock offers to unlock it, not to make it private
    assert await view.rooms.set_passphrase("correct horse battery")
    await view.rooms.dismissed()  # the confirmation stays on the page (no SnackBar: issue 17)
    assert view.rooms.note.visible and "unlocked" in (view.rooms.note.value or "")
    assert not [d for d in view.page.dialogs if isinstance(d, ft.SnackBar)]
    row = rows(view)[sealed.id]
    assert row.room == "open" and row.label.endswith(": the plan")
    assert "private" in [t.value for t in texts(row)]
    assert not view.feed.needs_room_key()
    # What Ada now writes there is sealed too; Bob reads it.
    mine = session.send("count me in", room)
    assert mine is not None and mine.text.startswith("sealed:v1:")
    assert bob.reveal(mine) == ("count me in", "open")


async def test_a_room_lost_on_a_reconnect_is_said_and_its_rows_redrawn(tmp_path) -> None:
    """The static client's rooms are unlocked again on each new connection: one the host
    refused is said under the header; the open channel, once unlocked again, is drawn again."""
    from fletchat.events import RoomsUnlocked

    view, session = await make_view(tmp_path)
    room = session.create_channel("plans")
    await view.show_channel(room)
    drawn = []
    view.rooms.on_opened = lambda: _note(drawn)
    await view.on_event(RoomsUnlocked((), ((room, "Too many passphrases are being checked."),)))
    assert view.rooms.note.visible
    assert "could not unlock # plans again: Too many passphrases" in (view.rooms.note.value or "")
    assert drawn == []
    await view.on_event(RoomsUnlocked(("elsewhere",)))
    await view.on_event(RoomsUnlocked((room,)))
    assert drawn == [1]  # the open channel unlocked again: its rows redrawn


async def _note(drawn: list) -> None:
    drawn.append(1)


def test_headless_prints_identity_warnings_as_their_own_event() -> None:
    from fletchat.headless import event_line

    warning = IdentityWarning("peer-x", "Alex", "AAAA-AAAA-AAAA-AAAA", "BBBB-BBBB-BBBB-BBBB", 5.0)
    assert event_line(warning) == {
        "event": "identity_warning",
        "peer_id": "peer-x",
        "name": "Alex",
        "old_fingerprint": "AAAA-AAAA-AAAA-AAAA",
        "new_fingerprint": "BBBB-BBBB-BBBB-BBBB",
        "at": 5.0,
    }
    assert event_line(RosterChanged(())) == {"event": "online", "people": [], "peers": []}
    assert event_line(Delivered(("x",), 1.0)) is None


# ---------------------------------------------------------------- ChatState (pure)


def test_chat_state_counts_unread_only_for_others_chat_elsewhere() -> None:
    from fletchat.ui import ChatState

    state = ChatState()
    bob = replace(Message.chat("Bob", "hi", "p"), channel="lunch")
    assert not state.on_message(bob, mine=False, visible=True)
    assert not state.on_message(bob, mine=True, visible=True)  # one's own: not unread
    assert not state.on_message(replace(bob, channel="@Bob+Eve"), mine=False, visible=False)
    join = Message.presence(KIND_JOIN, "Bob", "p")
    assert state.on_message(join, mine=False, visible=True)  # #general is open
    assert state.unread == {"lunch": 1} and state.total_unread == 1
    state.stop_following()
    state.open("lunch")
    assert state.unread == {} and state.channel == "lunch" and state.following


def test_chat_state_visible_channels_and_following() -> None:
    from fletchat.ui import ChatState

    state = ChatState()
    state.open_direct("@Ada+Bob")
    names = state.visible_channels(["zoo", "general", "@Bob+Eve", "lunch"],
                                   can_see=lambda c: c != "@Bob+Eve")
    assert names == ["general", "lunch", "zoo", "@Ada+Bob"]
    assert state.on_scroll(900)  # scrolled up, 900 px from the newest: stops following
    assert not state.following
    assert not state.on_scroll(800)  # still up: no change
    assert state.on_scroll(30) and state.following  # back near the end


# ---------------------------------------------------------------- the message list's cost


async def test_new_messages_fill_the_tail_chunks_next_slot_and_only_it_is_updated(tmp_path) -> None:
    view, session = await make_view(tmp_path)
    hub = session.hub
    bob = HubSession(hub)
    bob.join("Bob")
    for i in range(3 * CHUNK_ROWS):
        await view.on_event(bob.send(f"m{i}"))
    chunks = view.conversation.chunks
    assert all(len(c.rows()) <= CHUNK_ROWS for c in chunks) and len(chunks) >= 3
    assert shown(view)[-1] == f"m{3 * CHUNK_ROWS - 1}"
    updated: list[tuple] = []
    view.page.update = lambda *controls: updated.append(controls)  # type: ignore[method-assign]
    for n in range(CHUNK_ROWS + 1):  # through a full chunk: the next row starts a new one
        view.updates.flush()
        updated.clear()
        msg = bob.send(f"one more {n}")
        await view.on_event(msg)
        view.updates.flush()
        row = rows(view)[msg.id]
        tail = view.conversation.chunks[-1]
        section = view.conversation.list.controls[0]  # newest first (the list is reversed)
        assert tail.rows()[-1] is row and tail in section.chunks()
        # one update: of the slot the row went into (or, when the tail chunk was full, of what
        # holds the new chunk)
        (sent,) = updated
        assert len(sent) == 1
        if isinstance(sent[0], Slot):
            assert sent[0] in tail.controls and sent[0].content is row and sent[0].visible
        else:
            assert tail.rows() == [row] and sent[0] in (section, view.conversation.list)
        assert tail.is_isolated() and row.is_isolated() and sent[0].is_isolated()
    # the slots still free stay out of the layout (invisible, so no spacing either)
    free = [s for s in view.conversation.chunks[-1].controls if s.content is None]
    assert free and not any(s.visible for s in free)
    assert shown(view)[-1] == f"one more {CHUNK_ROWS}"


async def test_a_burst_is_one_update_per_session(tmp_path) -> None:
    import asyncio

    view, session = await make_view(tmp_path)
    bob = HubSession(session.hub)
    bob.join("Bob")
    view.updates.flush()
    calls: list[tuple] = []
    view.page.update = lambda *controls: calls.append(controls)  # type: ignore[method-assign]
    for i in range(20):
        await view.on_event(bob.send(f"burst {i}"))
    assert calls == []  # nothing sent while the burst is being handled
    await asyncio.sleep(0)
    assert len(calls) == 1
    assert shown(view)[-20:] == [f"burst {i}" for i in range(20)]


async def test_delivered_updates_only_its_row(tmp_path) -> None:
    view, session = await make_view(tmp_path)
    sent = session.send("hello")
    await view.on_event(sent)
    view.updates.flush()
    calls: list[tuple] = []
    view.page.update = lambda *controls: calls.append(controls)  # type: ignore[method-assign]
    await view.on_event(Delivered((sent.id,), time.time()))
    view.updates.flush()
    assert calls == [(rows(view)[sent.id],)]


async def test_older_pages_prepend_in_order(tmp_path) -> None:
    from fletchat.ui import PAGE

    view, session = await make_view(tmp_path)
    for i in range(2 * PAGE + 3):
        session.send(f"old {i}")
    await view.show_channel("general")
    assert view.conversation.load_older_button.visible
    assert shown(view)[-1] == f"old {2 * PAGE + 2}" and len(shown(view)) == PAGE
    assert await view.feed.older_page() == PAGE
    assert await view.feed.older_page() == 4  # 3 messages and the join
    texts_now = shown(view)
    assert texts_now[0] == "join" and texts_now[1:] == [f"old {i}" for i in range(2 * PAGE + 3)]
    assert not view.conversation.load_older_button.visible


async def test_a_search_jump_loads_pages_until_the_message_is_shown(tmp_path) -> None:
    from fletchat.ui import feed

    view, session = await make_view(tmp_path)
    bob = HubSession(session.hub, device="headless")
    bob.join("Bob")
    needle = bob.send("needle")
    for i in range(4 * feed.PAGE):
        bob.send(f"hay {i}")
    await view.show_channel("general")
    assert needle.id not in rows(view)
    feed.HIGHLIGHT_SECONDS, saved = 0, feed.HIGHLIGHT_SECONDS
    try:
        await view.nav.jump_to(needle)
    finally:
        feed.HIGHLIGHT_SECONDS = saved
    assert needle.id in rows(view)
    assert shown(view)[-1] == f"hay {4 * feed.PAGE - 1}" and not view.state.following


async def test_the_login_can_go_out_before_the_view_and_a_quick_join_waits_for_it(tmp_path) -> None:
    """The static client's second visit: the login is sent alone, the view is built once the
    page says it drew the dialog, and a name given meanwhile joins once the view is there; the
    composer does not autofocus (it would take the keys typed into the name)."""
    hub = Hub("here", store=Store.open(tmp_path / "history.db"))
    view = ChatView(FakePage(), HubBackend(HubSession(hub)))  # type: ignore[arg-type]

    page = view.page = view.login.page = MountPage()  # type: ignore[assignment]
    seen: list[tuple[list, list]] = []
    drawn = asyncio.Event()

    async def dialog_first() -> None:
        seen.append((list(page.dialogs), list(page.added)))
        await drawn.wait()

    mounting = asyncio.create_task(view.mount(dialog_first=dialog_first))
    await asyncio.sleep(0)
    assert seen == [([view.login.dialog], [])]  # the login alone, nothing of the view yet
    view.login.name.value = "Grace"
    joining = asyncio.create_task(view.login.join_click())
    await asyncio.sleep(0.05)
    assert not joining.done() and view.backend.name is None  # waits for the view
    drawn.set()
    await mounting
    await asyncio.wait_for(joining, 5)
    assert view.backend.name == "Grace" and page.dialogs == []
    assert page.added and view.composer.field.autofocus is False
    assert page.dialogs.count(view.login.dialog) == 0  # shown once, closed by the join


def test_a_join_builds_only_the_newcomers_tile_and_the_panel_does_not_walk_the_others() -> None:
    """Every tab redraws its people panel on every join: with N tabs that was N tiles built
    and diffed per tab per join (40 tabs took 44 s to open). Tiles are kept by what they
    show, isolated, in isolated chunks: a join builds one tile and updates its chunk (and the
    title), never the panel or every tile."""
    from fletchat.events import Online
    from fletchat.ui.people import PeoplePanel
    from fletchat.ui.tile_chunks import TileChunk

    panel = PeoplePanel("", None, None, lambda _p: None)
    now = time.time()
    ann = Online("k1", "Ann", "browser", now, True)
    bob = Online("k2", "Bob", "browser", now, True)
    lan = Online("p1", "Cy", "desktop", now, False, "f" * 64)
    panel.render([ann], [lan])
    [first], device = panel.tiles(), panel.devices.controls[0]
    changed = panel.render([ann, bob], [lan])
    assert panel.tiles()[0] is first and panel.devices.controls[0] is device
    assert len(panel.tiles()) == 2 and panel.tiles()[1] is not first
    assert all(tile.is_isolated() for tile in [*panel.tiles(), device])
    [chunk] = panel.people.controls
    assert isinstance(chunk, TileChunk) and chunk.is_isolated()
    assert changed == [panel.title, chunk]  # not the panel, not the devices (unchanged)
    panel.me = "Ann"  # what a tile shows changed: that tile is built again
    changed = panel.render([ann, bob], [])
    assert panel.tiles()[0] is not first and panel.devices.controls == []
    assert "Ann (you) online" in panel.tiles()[0].label
    assert panel.devices in changed and panel.panel not in changed


def test_no_background_task_is_made_for_a_tab_whose_session_flet_destroyed(tmp_path) -> None:
    """A tab closed while it opened: its session has no connection, or ``page.session`` raises,
    and ``page.run_task`` would make the coroutine (the remembered name's offer) and then fail,
    leaving it never awaited (a warning, and work for a tab that is gone). A live page's task
    still starts."""

    class Session:
        connection: object = object()

    class Page(FakePage):
        destroyed = False

        def __init__(self) -> None:
            super().__init__()
            self.started: list[object] = []
            self.live = Session()

        @property
        def session(self) -> object:
            if self.destroyed:
                raise RuntimeError("An attempt to fetch destroyed session.")
            return self.live

        def run_task(self, handler, *args) -> None:
            self.started.append(handler)

    hub = Hub("here", store=Store.open(tmp_path / "history.db"))
    page = Page()
    view = ChatView(page, HubBackend(HubSession(hub)))  # type: ignore[arg-type]
    view.login.ask()
    assert page.started == [view.login.memory.offer]
    page.live.connection = None  # disconnected (Flet's session drops its connection)
    view.login.ask()
    assert page.started == [view.login.memory.offer]
    page.destroyed = True
    view.login.ask()
    assert page.started == [view.login.memory.offer]
    hub.close()


def test_the_chunk_taking_new_rows_is_sized_by_the_views_phase() -> None:
    from fletchat.ui.conversation import tail_capacity

    for rows in range(1, CHUNK_ROWS + 1):
        for phase in range(CHUNK_ROWS):
            cap = tail_capacity(rows, phase)
            assert rows <= cap < rows + CHUNK_ROWS and cap % CHUNK_ROWS == phase
    assert [tail_capacity(CHUNK_ROWS, p) for p in range(3)] == [10, 11, 12]


def test_each_view_draws_its_own_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the app the phase is random per view (conftest pins it to 0 for the other tests)."""
    from fletchat.ui import conversation

    monkeypatch.undo()  # conftest's pin
    drawn = {conversation.draw_phase() for _ in range(300)}
    assert drawn <= set(range(CHUNK_ROWS)) and len(drawn) > 1


async def test_views_with_other_phases_start_new_chunks_on_other_messages(tmp_path) -> None:
    """Tabs open on the same history; without a phase each would update a section on the same
    message of every ten (the costly one), all at once."""
    view, session = await make_view(tmp_path)
    other = ChatView(FakePage(), HubBackend(HubSession(session.hub)))  # type: ignore[arg-type]
    starts: dict[int, list[int]] = {}
    bob = HubSession(session.hub)
    bob.join("Bob")
    for phase, v in ((2, view), (7, other)):
        v.conversation.phase = phase
        await v.show_channel("general")
    for i in range(2 * CHUNK_ROWS):
        msg = bob.send(f"m{i}")
        for v in (view, other):
            before = len(v.conversation.chunks)
            await v.on_event(msg)
            if len(v.conversation.chunks) > before:
                starts.setdefault(v.conversation.phase, []).append(i)
    assert len(starts[2]) == len(starts[7]) == 2
    assert all((a - b) % CHUNK_ROWS == 5 for a, b in zip(starts[2], starts[7], strict=True))


async def test_one_search_at_a_time_per_tab(tmp_path) -> None:
    """Every Enter on the search field ran a store query on the shared pool, each waiting for
    pending writes under the store's lock: a script's flood of submits queued everyone's
    sends. A tab runs one search at a time; Enter again while it runs changes nothing."""
    view, _session = await make_view(tmp_path)
    calls: list[str] = []
    release = asyncio.Event()

    async def slow_search(query: str):
        calls.append(query)
        await release.wait()
        return []

    view.backend.search = slow_search  # type: ignore[method-assign]
    view.search.field.value = "lunch"
    first = asyncio.create_task(view.nav.search_submit())
    await asyncio.sleep(0)
    await asyncio.gather(*(view.nav.search_submit() for _ in range(50)))
    release.set()
    await first
    assert calls == ["lunch"] and len(view.page.dialogs) == 1
    await view.nav.search_submit()  # done: the next Enter searches again
    assert calls == ["lunch", "lunch"]
