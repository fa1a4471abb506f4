"""The conversation UI (issue 14) without a Flet client: row decor and labels, grouping and date
lines, suggestions, alerts and the title, preferences, and that a row's state change (reaction,
edit, delete, seen-by) updates that row alone."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import weakref
from dataclasses import replace

import flet as ft
import pytest

from fletchat.conversation.prefs import Alerts, Prefs, Theme
from fletchat.conversation.reducer import ReactionSummary
from fletchat.conversation.views import RowChanged
from fletchat.hub import HubSession
from fletchat.model import Message, ValidationError
from fletchat.ui.attention import Attention, wants_alert
from fletchat.ui.composer_extras import apply_suggestion, suggestions_for
from fletchat.ui.convo_row import ConvoRow, RowHandlers, is_plain
from fletchat.ui.convo_text import NEW_MESSAGES, Quote, RowDecor, reach_text, unread_start
from fletchat.ui.decorate import layout_after, layouts
from fletchat.ui.settings import PrefsStore
from fletchat.ui.title import title_for
from tests.test_ui_controls import count_controls, make_view, walk

THUMBS = "\U0001f44d"


def chat(author: str, text: str, ts: float, origin: str = "o1") -> Message:
    return replace(Message.chat(author, text, origin), ts=ts)


# ---------------------------------------------------------------- labels (pure)


def test_decor_suffix_says_quote_edit_mention_reactions_seen_and_reach() -> None:
    d = RowDecor(
        "hi", edited=True, quote=Quote("p1", "Bob", "lunch?"), mentioned=True,
        reactions=(ReactionSummary(THUMBS, 2, ("Ada", "Cy"), False),),
        seen=("Bob", "Cy"), reach=(3, 4),
    )
    assert d.suffix() == (f", in reply to Bob: lunch?, edited, mentions you, {THUMBS} 2 (Ada, Cy)"
                          ", seen by 2: Bob, Cy, on 3 of 4 devices")
    assert d.footer == "seen by 2 \u00b7 on 3 of 4 devices"
    deleted = replace(d, deleted=True)
    assert deleted.shown_text == "message deleted" and ", edited" not in deleted.suffix()


def test_reach_is_said_only_when_other_devices_are_known() -> None:
    assert reach_text((1, 1)) == "" and reach_text(None) == ""
    assert reach_text((1, 3)) == "on 1 of 3 devices"


def test_new_messages_line_goes_above_the_first_unread_from_others() -> None:
    rows = [chat("Ada", "a", 1), chat("Bob", "b", 2), chat("Ada", "c", 3), chat("Bob", "d", 4)]
    mine = lambda m: m.author == "Ada"
    assert unread_start(rows, 2, mine) == 1  # Bob's two messages; Ada's own do not count
    assert unread_start(rows, 1, mine) == 3
    assert unread_start(rows, 0, mine) is None
    assert unread_start(rows, 9, mine) == 0


def test_layouts_group_consecutive_rows_and_mark_days_and_the_unread_line() -> None:
    day1 = dt.datetime(2026, 3, 2, 10, 0).timestamp()
    day2 = dt.datetime(2026, 3, 3, 10, 0).timestamp()
    rows = [chat("Ada", "a", day1), chat("Ada", "b", day1 + 60), chat("Ada", "c", day1 + 3600),
            chat("Ada", "d", day2), chat("Bob", "e", day2 + 10), chat("Bob", "f", day2 + 20)]
    lays = layouts(rows, 1, lambda m: m.author == "Ada", today=dt.date(2026, 3, 3))
    assert lays[0].above == ("Yesterday",)
    lays = layouts(rows, 1, lambda m: m.author == "Ada", today=dt.date(2026, 3, 10))
    assert [x.grouped for x in lays] == [False, True, False, False, False, False]
    assert lays[0].above == ("Monday, 2 March",) and lays[3].above == ("Tuesday, 3 March",)
    assert lays[5].above == (NEW_MESSAGES,)  # the unread line also breaks Bob's group
    after = layout_after(rows[-1], chat("Bob", "g", day2 + 30), today=dt.date(2026, 3, 3))
    assert after.grouped and after.above == ()
    other = layout_after(rows[-1], chat("Bob", "g", day2 + 30, origin="o2"))
    assert not other.grouped  # same name, another device: another person
    assert layout_after(None, rows[0], today=dt.date(2026, 3, 2)).above == ("Today",)


def test_suggestions_complete_names_online_and_shortcodes() -> None:
    online = ["Ada Lovelace", "Bob", "Bobby", "me"]
    assert suggestions_for("hi @bo", online, "me") == [("@Bob", "Bob"), ("@Bobby", "Bobby")]
    assert suggestions_for("hi @m", online, "me") == []  # never oneself
    assert apply_suggestion("hi @bo", "@Bobby", "Bobby") == "hi @Bobby "
    codes = suggestions_for("great :tad", online, "me")
    assert codes and codes[0][1] == "\U0001f389"
    assert apply_suggestion("great :tad", *codes[0]) == "great \U0001f389 "
    assert suggestions_for("at 10:30", online, "me") == []  # a time is no shortcode


def test_alerts_follow_prefs_mute_and_what_is_looked_at() -> None:
    mention = replace(Message.chat("Bob", "@Ada look", "o"), channel="lunch")
    plain = replace(Message.chat("Bob", "hello", "o"), channel="lunch")
    dm = replace(Message.chat("Bob", "psst", "o"), channel="@Ada+Bob")
    p = Prefs()
    assert wants_alert(mention, "Ada", False, p, looking=False)
    assert not wants_alert(mention, "Ada", False, p, looking=True)
    assert not wants_alert(mention, "Ada", True, p, looking=False)
    assert wants_alert(dm, "Ada", False, p, looking=False)
    assert not wants_alert(plain, "Ada", False, p, looking=False)
    every = replace(p, alerts=Alerts.ALL)
    assert wants_alert(plain, "Ada", False, every, looking=False)
    muted = every.toggle_mute("lunch")
    assert not wants_alert(plain, "Ada", False, muted, looking=False)
    assert wants_alert(mention, "Ada", False, muted, looking=False)  # a mention still alerts
    assert not wants_alert(mention, "Ada", False, replace(p, alerts=Alerts.NONE), looking=False)


def test_title_counts_unread_and_a_muted_channel_only_its_mentions() -> None:
    assert title_for({}, {}) == "Flet Chat"
    assert title_for({"lunch": 2, "dev": 1}, {}) == "(3) Flet Chat"
    assert title_for({"lunch": 2, "dev": 1}, {"lunch": 1}, muted={"lunch"}) == "(2) Flet Chat"
    att = Attention()
    msg = replace(Message.chat("Bob", "@Ada hi", "o"), channel="general")
    assert att.note(msg, "Ada", False, shown=True, focused=False)  # open but in the background
    assert att.unread_with_background({}, "general") == {"general": 1}
    assert att.mentions == {"general": 1}
    assert att.focused("general") and att.background == 0 and att.mentions == {}


async def test_prefs_are_remembered_in_the_data_dir(tmp_path) -> None:
    store = PrefsStore(tmp_path / "prefs.json")
    assert await store.load() == Prefs()  # nothing yet: defaults
    prefs = replace(Prefs(), theme=Theme.DARK, send_read_receipts=False).toggle_mute("lunch")
    await store.save(prefs)
    assert await PrefsStore(tmp_path / "prefs.json").load() == prefs
    (tmp_path / "prefs.json").write_text("{not json")
    assert await store.load() == Prefs()  # damaged: defaults, never a crash


# ---------------------------------------------------------------- rows


def test_plain_text_keeps_one_text_and_markdown_is_rendered_safely() -> None:
    assert is_plain("just words") and not is_plain("**bold**")
    msg = Message.chat("Ada", "see [docs](javascript:alert(1)) and **this** <b>x</b>", "o")
    row = ConvoRow(msg, RowDecor(msg.text))
    spans = [s for c in walk(row) if isinstance(c, ft.Text) for s in (c.spans or [])]
    assert not any(s.url for s in spans)  # javascript: is never a link
    assert any(s.style and s.style.weight == ft.FontWeight.BOLD and s.text == "this"
               for s in spans)
    assert any("<b>x</b>" in s.text for s in spans)  # HTML is shown as typed
    link = Message.chat("Ada", "[home](https://example.org/x)", "o")
    shown = [s for c in walk(ConvoRow(link, RowDecor(link.text))) if isinstance(c, ft.Text)
             for s in (c.spans or [])]
    assert [s.url.url for s in shown if s.url] == ["https://example.org/x"]
    assert any(s.text == " (https://example.org/x)" for s in shown)  # the real target shows


def test_a_grouped_row_has_no_avatar_and_its_label_still_says_who() -> None:
    msg = Message.chat("Ada", "second", "o")
    row = ConvoRow(msg, RowDecor("second", grouped=True))
    assert not any(isinstance(c, ft.CircleAvatar) for c in walk(row))
    assert row.label.startswith("Ada at ") and row.label.endswith(": second")


def test_an_ordinary_row_stays_within_its_control_budget() -> None:
    """Every control of a new row (its spans too: Flet tracks each) is built, diffed and sent
    in every open tab (issue 12): an ordinary row is one Text beside its avatar, the name,
    time and delivery words its spans; the avatar's initials are its own text; the delivery
    tick is the one Icon; only a row with more to show gets a Column."""
    from fletchat.ui.text import Status

    def on_actions(row: ConvoRow):
        async def noop(e=None) -> None: ...
        return noop

    handlers = RowHandlers(on_actions=on_actions)
    msg = Message.chat("Ada", "second", "o")
    grouped = ConvoRow(msg, RowDecor("second", grouped=True), handlers=handlers)
    # Semantics, Row, the text, the actions button (the tutorial's row is 6)
    assert count_controls(grouped) == 4
    delivered = ConvoRow(msg, RowDecor("second", grouped=True), Status("delivered", 1.0),
                         handlers=handlers)
    assert count_controls(delivered) == 6  # + the tick and the delivery words' span
    [text] = [t for t in walk(delivered) if isinstance(t, ft.Text)]
    assert text.value == "second"  # the message first, then the words
    assert [s.text.strip() for s in text.spans] == [Status("delivered", 1.0).label]
    assert [i.icon for i in walk(delivered) if isinstance(i, ft.Icon)] == [ft.Icons.DONE]
    first = ConvoRow(msg, RowDecor("second"), handlers=handlers)
    # Semantics, Row, avatar, the text (its time span and the message's), actions
    assert count_controls(first) == 7
    delivered.set_status(Status("pending"))
    assert [i.icon for i in walk(delivered) if isinstance(i, ft.Icon)] == [ft.Icons.SCHEDULE]
    assert count_controls(delivered) == 6
    # more to show than one text: the name line and the parts in a Column, as before
    replied = ConvoRow(msg, RowDecor("second", quote=Quote("p", "Bob", "lunch?")),
                       handlers=handlers)
    assert replied.chat is not None and replied.chat.column in replied.chat.controls
    assert [t.value for t in walk(replied) if isinstance(t, ft.Text)][:2] == ["Ada", "Bob"]


def test_a_row_goes_back_to_one_text_when_its_extras_go() -> None:
    """A reaction makes the row a Column (the chips under the text); removing it makes the row
    one Text again, and a highlight still tints the message."""
    msg = Message.chat("Ada", "lunch?", "o")
    row = ConvoRow(msg, RowDecor("lunch?"))
    assert row.chat is not None and row.chat.compact
    thumbs = ReactionSummary(THUMBS, 1, ("Bob",), False)
    row.redecorate(RowDecor("lunch?", reactions=(thumbs,)))
    assert not row.chat.compact and row.chat.column in row.chat.controls
    assert [t.value for t in walk(row.chat.column) if isinstance(t, ft.Text)][:2] == \
        ["Ada", "lunch?"]
    row.redecorate(RowDecor("lunch?"))
    assert row.chat.compact and row.chat.column not in row.chat.controls
    row.set_highlight(True)
    assert row.chat.plain.bgcolor is not None


async def test_reactions_edits_and_deletes_update_only_their_row(tmp_path) -> None:
    view, ada = await make_view(tmp_path)
    bob = HubSession(ada.hub)
    bob.join("Bob")
    first = bob.send("lunch?")
    for m in (first, *(bob.send(f"filler {i}") for i in range(15))):
        await view.on_event(m)
    view.updates.flush()
    calls: list[tuple] = []
    view.page.update = lambda *controls: calls.append(controls)  # type: ignore[method-assign]
    row = view.conversation.rows[first.id]

    ada.react(first, THUMBS)
    await view.on_event(RowChanged(first.id, first.channel))
    view.updates.flush()
    assert calls == [(row,)]
    assert f"{THUMBS} 1 (Ada)" in row.label

    calls.clear()
    bob.edit(first, "lunch at noon?")
    await view.on_event(RowChanged(first.id, first.channel))
    view.updates.flush()
    assert calls == [(row,)]
    assert ": lunch at noon?" in row.label and ", edited" in row.label

    calls.clear()
    bob.delete(first)
    await view.on_event(RowChanged(first.id, first.channel))
    view.updates.flush()
    assert calls == [(row,)]
    assert ": message deleted" in row.label and "lunch" not in row.label

    calls.clear()
    await view.on_event(RowChanged(first.id, first.channel))  # nothing new: nothing sent
    view.updates.flush()
    assert calls == []


async def test_a_reply_shows_its_quote_and_mentions_are_highlighted(tmp_path) -> None:
    view, ada = await make_view(tmp_path)
    bob = HubSession(ada.hub)
    bob.join("Bob")
    parent = ada.send("who brings cake?")
    await view.on_event(parent)
    answer = bob.reply(parent, "@Ada I do", "general")
    assert answer is not None
    await view.on_event(answer)
    row = view.conversation.rows[answer.id]
    assert isinstance(row, ConvoRow)
    assert row.decor.quote == Quote(parent.id, "Ada", "who brings cake?")
    assert ", in reply to Ada: who brings cake?" in row.label and ", mentions you" in row.label
    await view.convo.go_to_original(row)  # the original is shown: no "not on this device"
    assert not [d for d in view.page.dialogs if isinstance(d, ft.SnackBar)]


async def test_the_composer_replies_and_replaces_shortcodes(tmp_path) -> None:
    view, ada = await make_view(tmp_path)
    bob = HubSession(ada.hub)
    bob.join("Bob")
    parent = bob.send("ship it?")
    await view.on_event(parent)

    async def no_focus() -> None:  # no client to move the keyboard focus in
        return None

    view.composer.focus = no_focus  # type: ignore[method-assign]
    await view.convo.start_reply(parent)
    assert view.convo.reply_bar.control.visible
    view.composer.field.value = "yes :tada:"
    await view.send_click()
    assert not view.convo.reply_bar.control.visible
    last = ada.hub.history("general", 5)[-1]
    assert last.text == "yes \U0001f389"
    assert ada.hub.conv.row_state(last, (ada.hub.peer_id, "Ada")).reply.parent_id == parent.id


async def test_the_field_is_cleared_before_the_message_goes_out_and_a_refusal_gives_it_back(
        tmp_path) -> None:
    """The send runs on a thread while the other tabs get the message: the field is cleared (and
    that update sent) first, so a line typed at once is not typed onto the one going out (it went
    out with it, under CI load); a refused message comes back, before what was typed since."""
    view, ada = await make_view(tmp_path)

    async def no_focus() -> None:
        return None

    view.composer.focus = no_focus  # type: ignore[method-assign]
    seen_while_sending: list[str] = []
    sending = view.convo.backend.send

    async def send(text: str, channel: str):
        seen_while_sending.append(view.composer.field.value or "")
        return await sending(text, channel)

    view.convo.backend.send = send  # type: ignore[method-assign]
    view.composer.field.value = "first line"
    await view.send_click()
    assert seen_while_sending == [""]
    assert ada.hub.history("general", 5)[-1].text == "first line"

    async def refuse(text: str, channel: str):
        view.composer.field.value = "typed meanwhile"  # what the browser sent while it went
        raise ValidationError("You are sending too fast. Wait a moment and try again.")

    view.convo.backend.send = refuse  # type: ignore[method-assign]
    view.composer.field.value = "second line "
    await view.send_click()
    assert view.composer.field.value == "second line typed meanwhile"
    assert view.composer.field.error == "You are sending too fast. Wait a moment and try again."

    async def fail(text: str, channel: str):  # not a refusal: a failure (the store, a bug)
        raise OSError("disk I/O error")

    view.convo.backend.send = fail  # type: ignore[method-assign]
    view.composer.field.value = "third line"
    with pytest.raises(OSError):
        await view.send_click()
    assert view.composer.field.value == "third line" and view.composer.field.error == "Not sent."


async def test_opening_a_channel_with_unread_draws_the_new_messages_line(tmp_path) -> None:
    view, ada = await make_view(tmp_path)
    bob = HubSession(ada.hub)
    bob.join("Bob")
    ada.create_channel("lunch")
    await view.on_event(ada.send("before", "lunch"))  # read: written here
    for text in ("pizza?", "sushi?"):
        await view.on_event(bob.send(text, "lunch"))  # #general is open: counted as unread
    assert view.state.unread == {"lunch": 2}
    assert view.convo.titles.title == "(2) Flet Chat"
    await view.show_channel("lunch")
    above = {r.message.text: r.decor.above for r in view.conversation.rows.values()
             if isinstance(r, ConvoRow)}
    assert NEW_MESSAGES in above["pizza?"] and NEW_MESSAGES not in above["sushi?"]
    assert NEW_MESSAGES not in above["before"]
    assert view.convo.titles.title == "Flet Chat"


async def test_an_edit_in_a_private_room_shows_its_opened_text(tmp_path) -> None:
    view, ada = await make_view(tmp_path)
    bob = HubSession(ada.hub)
    bob.join("Bob")
    for s in (ada, bob):
        s.set_room_passphrase("general", "correct horse battery")
    first = bob.send("the plan")
    assert first is not None
    await view.on_event(first)
    row = view.conversation.rows[first.id]
    assert ": the plan" in row.label
    bob.edit(first, "the new plan")
    await view.on_event(RowChanged(first.id, first.channel))
    view.updates.flush()
    assert ": the new plan" in row.label and ", edited" in row.label
    assert "sealed" not in row.label


async def test_a_closed_view_leaves_no_timer_or_task_that_keeps_its_page_alive(tmp_path) -> None:
    """A closed tab's read mark (1 s), typing line (its look-again), problem-banner watcher
    (5 s) and coalesced update were left on the loop, and a timer keeps the context it was
    made in (Flet's page variable) until its deadline, even once cancelled: the tab stayed
    alive past Flet's release, and the pacer's full collection just after missed it (a CI
    failure of the pacer's released-tab test)."""
    from flet.controls.context import _context_page

    view, _session = await make_view(tmp_path)
    token = _context_page.set(view.page)  # as Flet runs a tab's handlers
    view.convo.schedule_read()
    view.convo.typing_line.show(["Bob"])
    view.network.start()
    view.updates.mark(view.title)
    _context_page.reset(token)
    loop = asyncio.get_running_loop()
    pending = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    assert len(pending) == 2, pending  # the read mark and the typing line's look-again
    sent = view.updates.sent
    view.close()
    view.updates.mark(view.title)  # a late event after the close: nothing goes out
    for _ in range(3):
        await asyncio.sleep(0)  # the watcher's cancellation runs
    assert view.updates.sent == sent and view.updates.closed
    page = weakref.ref(view.page)
    del view
    gc.collect()
    assert page() is None


async def test_a_rename_in_settings_says_it_was_done_or_why_not(tmp_path, monkeypatch) -> None:
    """The settings dialog confirms a new name under the field (before, nothing changed on
    screen: a person could not tell a rename from a click that did nothing)."""
    view, session = await make_view(tmp_path)
    settings = view.convo.settings
    monkeypatch.setattr(type(settings.name), "update", lambda self: None)  # not on a page here
    settings.dialog()
    settings.name.value = "Ada"
    await settings.save_name()
    assert settings.name.error == "That is already your name." and settings.name.helper is None
    settings.name.value = "Adele"
    await settings.save_name()
    assert session.name == "Adele" and settings.name.error is None
    assert settings.name.helper == "Done: the others now see you as Adele."
    settings.dialog()  # opened again: no old confirmation
    assert settings.name.helper is None and settings.name.value == "Adele"


async def test_opening_a_channel_waits_for_the_outbox_off_the_loop(tmp_path) -> None:
    """Which of this install's messages are still unconfirmed is the outbox worker's answer,
    behind whatever it has queued (a peer's flood of ``have`` frames queues work there): a tab
    that opened a channel once waited for it on the loop, stalling every tab and link."""
    import threading

    view, ada = await make_view(tmp_path)
    ada.create_channel("lunch")
    mine = ada.send("mine, not yet confirmed", "lunch")
    assert mine is not None
    release = threading.Event()
    busy = ada.hub._bg.submit(release.wait, 5.0)  # the outbox worker, busy for a while
    loop = asyncio.get_running_loop()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.01)

    tick = asyncio.create_task(ticker())
    opening = asyncio.create_task(view.show_channel("lunch"))
    try:
        await asyncio.sleep(0.3)
        assert not opening.done(), "the channel opened without the outbox's answer"
        assert len(ticks) >= 5, "the loop stood still while the channel waited for the outbox"
        release.set()
        await asyncio.wait_for(opening, 5.0)
    finally:
        release.set()
        tick.cancel()
        busy.result(5.0)
    row = view.conversation.rows[mine.id]
    assert row.status is not None and row.status.state != "delivered"
    assert [r.message.text for r in view.conversation.shown()][-1] == "mine, not yet confirmed"


async def test_a_flood_of_channel_switches_reads_once_per_page_read(tmp_path) -> None:
    """A script clicking channels in a loop queued a history read (and an outbox question)
    per click on the host's shared lanes. Now a view reads one page at a time, and what is
    asked meanwhile is read once, for the channel open by then."""
    import threading
    import time

    view, ada = await make_view(tmp_path)
    for name in ("lunch", "news"):
        ada.create_channel(name)
        ada.send(f"in {name}", name)
    hub, reads, lock = ada.hub, [], threading.Lock()
    real = hub.history

    def slow_history(*args, **kwargs):
        with lock:
            reads.append(args)
        time.sleep(0.1)
        return real(*args, **kwargs)

    hub.history = slow_history
    switches = []
    started = time.monotonic()
    for i in range(21):  # a click every 20 ms: five of them while each page is read
        switches.append(asyncio.create_task(view.show_channel(("lunch", "news")[i % 2])))
        await asyncio.sleep(0.02)
    clicking = time.monotonic() - started
    await asyncio.wait_for(asyncio.gather(*switches), 10.0)
    # one read at a time, 0.1 s each, and one more only for what was asked meanwhile: at most
    # one per 0.1 s of clicking, plus the first and the last (about 6 on an idle machine; a
    # slow one stretches the clicking, and so the bound)
    assert len(reads) <= min(3 + clicking / 0.1, 20), (
        f"{len(reads)} history reads for 21 switches in {clicking:.2f} s")
    assert view.state.channel == "lunch"
    assert [r.message.text for r in view.conversation.shown()
            if r.message.kind == "chat"] == ["in lunch"]


async def test_a_message_that_arrives_while_a_channel_opens_is_not_lost(tmp_path) -> None:
    """The page is read first; a live message placed while it is read (not in it) went with
    the old list when the page replaced it."""
    import threading

    view, ada = await make_view(tmp_path)
    bob = HubSession(ada.hub)
    bob.join("Bob")
    ada.create_channel("lunch")
    read, release = threading.Event(), threading.Event()
    real = ada.hub.history

    def read_then_wait(*args, **kwargs):
        page = real(*args, **kwargs)
        read.set()
        release.wait(5.0)
        return page

    ada.hub.history = read_then_wait
    opening = asyncio.create_task(view.show_channel("lunch"))
    while not read.is_set():
        await asyncio.sleep(0.01)
    late = bob.send("just now", "lunch")
    assert late is not None
    await view.on_event(late)  # the live event: #lunch is the open channel already
    release.set()
    await asyncio.wait_for(opening, 5.0)
    assert late.id in view.conversation.rows
    assert [r.message.text for r in view.conversation.shown()][-1] == "just now"
