"""Issue 17 in a real Chromium: what a first-time user tripped over, each checked with two or
three people, on a desktop (1280x800) and a phone (390x844) viewport, in host mode.

The static site's share (no request leaves the host, emoji fonts included) is in
tests/test_static_build.py, which builds the site.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import expect

from fletchat.model import MAX_MESSAGE_CHARS
from fletchat.ui.text import NAME_LABEL
from tests.browser import (
    WORLD_FONTS,
    WORLD_TEXT,
    ChatPage,
    chromium_available,
    coloured_pixels,
    host_mode_server,
    message_text_png,
)
from tests.conftest import need
from tests.timing import eventually, never_within, scaled_ms

TIMEOUT = scaled_ms(15_000)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
MENU = "Channels and people"


@pytest.fixture
def server(tmp_path):
    need(*chromium_available())
    with host_mode_server(tmp_path / "host", "--no-lan") as (url, _):
        yield url


async def person(browser, url: str, name: str, viewport: dict, context=None) -> ChatPage:
    ctx = context or await browser.new_context(viewport=viewport)
    tab = await ChatPage.open(ctx, url)
    await tab.join(name)
    return tab


def online(tab: ChatPage, count: int | None = None):
    """The people panel's "Online (N)" (its own text, or the start of the panel's label when
    Flutter merges the panel's lines into one node, as in the drawer)."""
    n = str(count) if count is not None else ""
    return tab.page.get_by_text(re.compile(rf"^Online \({n or '[0-9]+'}\)")).or_(
        tab.page.locator(f"[aria-label^='Online ({n}']")).first


async def open_drawer(tab: ChatPage) -> None:
    await tab.page.get_by_label(MENU).click()
    await online(tab).wait_for(timeout=TIMEOUT)


def button(tab: ChatPage, name: str):
    return tab.page.get_by_role("button", name=name, exact=True)


def labelled(tab: ChatPage, start: str):
    """A node whose label starts with ``start`` (an aria-label, or its text: Flutter exposes a
    non-interactive label as text)."""
    return tab.page.locator(f"[aria-label^='{start}']").or_(
        tab.page.get_by_text(re.compile("^" + re.escape(start))))


async def stays_absent(locator, what: str, window: float) -> None:
    """``never_within`` for a locator: nothing matches for ``window`` seconds."""
    counts: list[int] = []

    async def poll() -> None:
        counts.append(await locator.count())

    loop = asyncio.get_running_loop()
    deadline = loop.time() + window
    while loop.time() < deadline:
        await poll()
        await never_within(lambda: counts[-1] > 0, what, 0.25)


async def shot(tab: ChatPage, name: str) -> None:
    """A picture for the README (asserts nothing): a page brought to the front draws its next
    frame only then (a background tab's last frame can be old)."""
    await tab.page.bring_to_front()
    await tab.page.wait_for_timeout(1500)
    await tab.screenshot(name)


# ---------------------------------------------------------------- 1. delivery marks


async def test_delivery_marks_mean_delivered_on_one_host(server, browser):
    """Everyone on one host (--no-lan): once the other tabs show a message, its writer sees
    "delivered", never "not delivered yet" / "waiting for a device" (there is no device to
    wait for); the others see no mark on it (the marks are the writer's)."""
    alice = await person(browser, server, "Alice", DESKTOP)
    bob = await person(browser, server, "Bob", PHONE)
    await alice.send("can you see this?")
    await expect(bob.message("Alice", "can you see this?")).to_be_visible(timeout=TIMEOUT)
    row = alice.page.get_by_text(re.compile(r"^Alice at [0-9:]+: can you see this\?"))
    await expect(row).to_have_text(re.compile(", delivered$"), timeout=TIMEOUT)
    labels = " ".join(await alice.labels())
    assert "not delivered yet" not in labels and "waiting for a device" not in labels
    in_bobs_tab = bob.page.get_by_text(re.compile(r"^Alice at [0-9:]+: can you see this\?$"))
    await expect(in_bobs_tab).to_have_count(1, timeout=TIMEOUT)
    await bob.send("yes")
    bob_row = bob.page.get_by_text(re.compile(r"^Bob at [0-9:]+: yes"))
    await expect(bob_row).to_have_text(re.compile(", delivered$"), timeout=TIMEOUT)


# ---------------------------------------------------------------- 2. the "too long" error


async def test_too_long_error_clears_when_the_text_fits_and_a_counter_shows(server, browser):
    alice = await person(browser, server, "Alice", DESKTOP)
    bob = await person(browser, server, "Bob", PHONE)
    for tab in (alice, bob):
        await tab.send("x" * (MAX_MESSAGE_CHARS + 1))
        error = tab.page.get_by_text("Message is too long", exact=False)
        if tab is alice:  # (on the phone Flutter keeps the error out of the semantics tree)
            await expect(error).to_be_visible(timeout=TIMEOUT)
        await expect(tab.page.get_by_text(f"{MAX_MESSAGE_CHARS + 1} / {MAX_MESSAGE_CHARS}")
                     ).to_be_visible(timeout=TIMEOUT)
        # One character less fits: the error goes at once, the counter stays near the limit.
        await tab.page.keyboard.press("End")
        await tab.page.keyboard.press("Backspace")
        await expect(error).to_have_count(0, timeout=TIMEOUT)
        await expect(tab.page.get_by_text(f"{MAX_MESSAGE_CHARS} / {MAX_MESSAGE_CHARS}")
                     ).to_be_visible(timeout=TIMEOUT)
        # Emptied: no counter either.
        await tab.page.keyboard.press("Control+a")
        await tab.page.keyboard.press("Backspace")
        await expect(tab.page.get_by_text(f"/ {MAX_MESSAGE_CHARS}")).to_have_count(
            0, timeout=TIMEOUT)
    # A refusal does not follow the person to another channel.
    await alice.send("y" * (MAX_MESSAGE_CHARS + 5))
    error = alice.page.get_by_text("Message is too long", exact=False)
    await expect(error).to_be_visible(timeout=TIMEOUT)
    await alice.page.get_by_role("button", name="New channel").click()
    await alice.type_in_field("elsewhere", "Channel name", tag="INPUT")
    await alice.page.keyboard.press("Enter")
    await expect(alice.notice("Alice created #elsewhere.")).to_be_visible(timeout=TIMEOUT)
    await expect(error).to_have_count(0, timeout=TIMEOUT)


# ---------------------------------------------------------------- 3 and 7. private rooms


async def test_private_room_actions_confirm_mark_and_keep_what_is_typed_next(server, browser):
    alice = await person(browser, server, "Alice", DESKTOP)
    bob = await person(browser, server, "Bob", PHONE)
    await alice.page.get_by_role("button", name="New channel").click()
    await alice.type_in_field("secret", "Channel name", tag="INPUT")
    await alice.page.keyboard.press("Enter")
    await expect(alice.notice("Alice created #secret.")).to_be_visible(timeout=TIMEOUT)
    # Nothing sealed here yet: the lock offers to make the channel private, and says how.
    await alice.page.get_by_label(re.compile("^Private room")).click()
    await expect(alice.page.get_by_text("Make # secret private")).to_be_visible(timeout=TIMEOUT)
    await alice.type_in_field("short", "Passphrase", tag="INPUT")
    await alice.page.keyboard.press("Enter")
    await expect(alice.page.get_by_text("A room passphrase needs at least 8 characters.",
                                        exact=True)).to_be_visible(timeout=TIMEOUT)
    await alice.type_in_field("correct horse battery", "Passphrase", tag="INPUT", replace=True)
    await alice.page.keyboard.press("Enter")
    # Typed straight after the dialog, without a click: nothing may be lost.
    await expect(alice.page.get_by_label("Passphrase", exact=True)).to_have_count(
        0, timeout=TIMEOUT)
    await expect(alice.page.get_by_text(re.compile("is private for you now")).first
                 ).to_be_visible(timeout=TIMEOUT)
    await alice.post("written after the dialog")
    await expect(alice.message("Alice", "written after the dialog")).to_be_visible(
        timeout=TIMEOUT)
    await expect(button(alice, "# secret, private")).to_be_visible(timeout=TIMEOUT)
    # Bob (phone) opens it from the drawer: sealed messages, so the lock offers to unlock.
    await open_drawer(bob)
    await button(bob, "# secret, 1 unread").click()
    await expect(bob.page.get_by_text("Unlock private room # secret")).to_be_visible(
        timeout=TIMEOUT)
    await bob.type_in_field("correct horse battery", "Passphrase", tag="INPUT")
    await bob.page.keyboard.press("Enter")
    await expect(bob.page.get_by_text(re.compile("unlocked: its sealed messages open")).first
                 ).to_be_visible(timeout=TIMEOUT)
    await expect(bob.message("Alice", "written after the dialog")).to_be_visible(
        timeout=TIMEOUT)
    # A reload never brings the dialog (or the passphrase) back.
    await alice.page.reload()
    await alice.page.locator("flt-semantics-placeholder").dispatch_event("click")
    await alice.page.get_by_label("Write a message...").or_(
        alice.page.get_by_label(NAME_LABEL)).first.wait_for(timeout=TIMEOUT)
    await expect(alice.page.get_by_label("Passphrase", exact=True)).to_have_count(0)


async def test_text_typed_after_the_passphrase_dialog_lands_in_the_composer(server, browser):
    """Typed straight after the dialog, without a click: the composer has it. (Flet 1.0.5's
    ``TextField.focus()`` missed a field with ``shift_enter``; fletchat/ui/composer.py.)"""
    alice = await person(browser, server, "Alice", DESKTOP)
    for attempt, close in enumerate(("Enter", "Cancel", "Escape")):
        await alice.page.get_by_label(re.compile("^Private room")).click()

        async def passphrase() -> None:
            await alice.type_in_field("correct horse battery", "Passphrase", tag="INPUT",
                                      replace=True)

        async def close_it(close: str = close) -> None:
            if close == "Cancel":
                await button(alice, "Cancel").click()
            else:
                await alice.page.keyboard.press(close)

        await passphrase()
        # A CI run: the dialog stayed after Enter (the passphrase had not reached the app yet)
        await alice.press_until(close_it, alice.page.get_by_label("Passphrase", exact=True),
                                passphrase, gone=True)
        typed = f"typed right after the dialog {attempt}"
        # The composer takes the focus by itself (no click here); keys pressed in the frame or
        # two before Flutter web moves the browser's focus to its <textarea> are dropped (a
        # third of the runs lost "ty" or "typed " after Cancel, a click), so type once it has it.
        await alice.page.wait_for_function(
            "() => document.activeElement?.tagName === 'TEXTAREA'", timeout=TIMEOUT)
        await alice.page.keyboard.type(typed)
        await alice.expect_composer(typed, ending=True)
        await alice.page.keyboard.press("Enter")
        await expect(alice.message("Alice", typed)).to_be_visible(timeout=TIMEOUT)


# ---------------------------------------------------------------- 4. the phone (and issue 14)


async def test_phone_reaches_people_new_channel_and_direct_messages(server, browser):
    alice = await person(browser, server, "Alice", DESKTOP)
    bob = await person(browser, server, "Bob", PHONE)
    carol = await person(browser, server, "Carol", PHONE)
    # The conversation has the whole width; the panels are behind the menu.
    await expect(online(bob)).to_have_count(0)
    await open_drawer(bob)
    await expect(online(bob, 3)).to_be_visible(timeout=TIMEOUT)
    await expect(button(bob, "New channel")).to_be_visible()
    await expect(bob.page.get_by_text("Direct messages", exact=True)).to_be_visible()
    await bob.page.get_by_label("Message Alice directly").click()
    await expect(bob.page.get_by_text("@ Alice", exact=True)).to_be_visible(timeout=TIMEOUT)
    await expect(bob.page.get_by_text(re.compile("direct conversation with Alice"))
                 ).to_be_visible(timeout=TIMEOUT)
    await shot(bob, "phone-dm.png")
    await bob.post("just between us")
    await expect(button(alice, "@ Bob, 1 unread")).to_be_visible(timeout=TIMEOUT)
    # Carol makes a channel from her phone.
    await open_drawer(carol)
    await button(carol, "New channel").click()
    await carol.type_in_field("phones", "Channel name", tag="INPUT")
    await carol.page.keyboard.press("Enter")
    await expect(carol.notice("Carol created #phones.")).to_be_visible(timeout=TIMEOUT)
    await expect(button(alice, "# phones")).to_be_visible(timeout=TIMEOUT)
    # The on-screen keyboard takes half the screen: the composer stays above it.
    await carol.page.set_viewport_size({"width": 390, "height": 420})
    await carol.focus_field()
    box = await carol.page.get_by_label("Write a message...").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 420, box
    await carol.page.keyboard.insert_text("still typing above the keyboard")
    await carol.page.keyboard.press("Enter")
    await expect(alice.page.get_by_role("button", name=re.compile(r"^# phones, \d+ unread$"))
                 ).to_be_visible(timeout=TIMEOUT)
    await carol.page.set_viewport_size(PHONE)
    await open_drawer(bob)
    await shot(bob, "phone-drawer.png")


# ---------------------------------------------------------------- 5. people in plain words


async def test_people_panel_marks_you_and_keeps_internals_in_device_details(server, browser):
    alice = await person(browser, server, "Alice", DESKTOP)
    bob = await person(browser, server, "Bob", PHONE)
    await expect(online(alice, 2)).to_be_visible(timeout=TIMEOUT)
    await open_drawer(bob)
    for tab, me, other in ((alice, "Alice", "Bob"), (bob, "Bob", "Alice")):
        await expect(labelled(tab, f"{me} (you) online")).to_have_count(1, timeout=TIMEOUT)
        await expect(tab.page.get_by_label(f"Message {me} directly")).to_have_count(0)
        await expect(tab.page.get_by_label(f"Message {other} directly")).to_have_count(1)
        labels = " | ".join(await tab.labels())
        assert "Your device" not in labels, labels
        assert "no other devices found on the LAN" not in labels, labels
        assert " · here · " not in labels, labels
        assert "Everyone is on this host" in labels + " ".join(
            await tab.page.locator("flt-semantics").all_inner_texts())
    await alice.page.get_by_role("button", name="Device details").click()
    await expect(labelled(alice, "Your device: ")).to_have_count(1, timeout=TIMEOUT)
    await shot(alice, "device-details.png")


# ---------------------------------------------------------------- 6. names and reloads


async def test_name_is_remembered_and_a_reload_is_not_a_leave(server, browser):
    ctx = await browser.new_context(viewport=DESKTOP)
    alice = await person(browser, server, "Alice", DESKTOP, context=ctx)
    bob = await person(browser, server, "Bob", PHONE)
    await expect(bob.notice("Alice has joined the chat.")).to_have_count(1, timeout=TIMEOUT)
    # A reload: no "left" and no second "joined" for the others.
    await alice.page.reload()
    await alice.page.locator("flt-semantics-placeholder").dispatch_event("click")
    # Flet keeps the session over a reload (if it made a new one, the remembered name would be
    # offered and Enter would take over quietly: tests/test_ui_firstuse.py).
    await alice.page.get_by_label("Write a message...").or_(
        alice.page.get_by_label(NAME_LABEL)).first.wait_for(timeout=TIMEOUT)
    if await alice.page.get_by_label(NAME_LABEL).count():
        await expect(alice.page.get_by_label(NAME_LABEL)).to_have_value("Alice")
        await alice.page.keyboard.press("Enter")
    await alice.page.get_by_label("Write a message...").wait_for(timeout=TIMEOUT)
    await alice.send("back after the reload")
    await expect(bob.message("Alice", "back after the reload")).to_be_visible(timeout=TIMEOUT)

    await stays_absent(bob.notice("Alice has left the chat."), "a leave for a reload", 12)
    await expect(bob.notice("Alice has joined the chat.")).to_have_count(1)
    # A new session in the same browser offers the name it remembered.
    await alice.page.close()
    second = await ChatPage.open(ctx, server)
    name_field = second.page.get_by_label(NAME_LABEL)
    try:
        await expect(name_field).to_have_value("Alice", timeout=TIMEOUT / 3)
    except AssertionError:
        # Under load Flutter web draws the name the server put into the focused field (seen in
        # screenshots of this failure: "Alice", 5/32) while the DOM input Playwright reads keeps
        # "" (focusing the field again does not change that). Enter below still has to join as
        # Alice, which only the offered name can do: an empty name is refused.
        pass
    await second.page.keyboard.press("Enter")
    await second.page.get_by_label("Write a message...").wait_for(timeout=TIMEOUT)
    await expect(labelled(second, "Alice (you) online")).to_have_count(1, timeout=TIMEOUT)
    # A late joiner's history has one line per person for that run of joins and leaves.
    carol = await person(browser, server, "Carol", PHONE)
    await expect(carol.message("Alice", "back after the reload")).to_be_visible(timeout=TIMEOUT)
    await expect(carol.notice("Alice has joined the chat.")).to_have_count(1, timeout=TIMEOUT)


# ---------------------------------------------------------------- 8. emoji and scripts


async def test_emoji_and_other_scripts_come_from_the_host(server, browser):
    origin = server.rstrip("/")
    seen: list[tuple[str, int]] = []
    tabs = []
    for name, viewport in (("Alice", DESKTOP), ("Bob", PHONE)):
        ctx = await browser.new_context(viewport=viewport)
        requests: list[str] = []
        ctx.on("request", lambda r, into=requests: into.append(r.url))
        ctx.on("response", lambda r: seen.append((r.url, r.status)))
        tab = await person(browser, server, name, viewport, context=ctx)
        tab.requests = requests  # type: ignore[attr-defined]
        tabs.append(tab)
    alice, bob = tabs
    await alice.send("Hey Bob 😀🎉 مرحبا ສະບາຍດີ")
    await expect(bob.message("Alice", "Hey Bob 😀🎉 مرحبا ສະບາຍດີ")).to_be_visible(
        timeout=TIMEOUT)
    await alice.send(WORLD_TEXT)
    await expect(bob.message("Alice", WORLD_TEXT)).to_be_visible(timeout=TIMEOUT)

    def fonts_served(family: str, suffix: str = ".ttf") -> bool:
        return any(url == f"{origin}/fallback-fonts/{family}{suffix}" and status == 200
                   for url, status in seen)

    # Colour emoji, Chinese (and kana), Korean, Arabic, Lao: each from the host.
    for family, suffix in (*WORLD_FONTS.items(), ("notosansarabic", ".ttf"),
                           ("notosanslao", ".ttf")):
        await eventually(lambda f=family, x=suffix: fonts_served(f, x), f"{family} from the host",
                         60)
    # And drawn: the emoji in colour (a monochrome one or a box has no coloured pixel).
    colours = [0]

    async def drawn_in_colour() -> bool:
        colours[0] = coloured_pixels(await message_text_png(bob, "Alice", WORLD_TEXT))
        return colours[0] > 40

    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled_ms(30_000) / 1000
    while not await drawn_in_colour():
        assert loop.time() < deadline, f"the emoji is not drawn in colour ({colours[0]} px)"
        await asyncio.sleep(0.5)
    for tab in tabs:
        outside = [u for u in tab.requests if not u.startswith((origin + "/", "data:", "blob:"))]
        assert outside == [], outside
    await shot(bob, "phone-emoji.png")


# ---------------------------------------------------------------- 9. direct messages


async def test_direct_messages_have_their_own_section_and_an_empty_state(server, browser):
    alice = await person(browser, server, "Alice", DESKTOP)
    bob = await person(browser, server, "Bob", PHONE)
    heading = alice.page.get_by_text("Direct messages", exact=True)
    await expect(heading).to_be_visible(timeout=TIMEOUT)
    await expect(alice.page.get_by_text(re.compile("^None yet"))).to_be_visible()
    await alice.page.get_by_label("Message Bob directly").click()
    await expect(alice.page.get_by_text(re.compile("direct conversation with Bob"))
                 ).to_be_visible(timeout=TIMEOUT)
    dm = button(alice, "@ Bob")
    await expect(dm).to_be_visible(timeout=TIMEOUT)
    # The DM is listed under its heading, below the channels.
    general = await button(alice, "# general").bounding_box()
    head = await heading.bounding_box()
    entry = await dm.bounding_box()
    assert general and head and entry and general["y"] < head["y"] < entry["y"]
    # Bob writes from his phone; Alice's list counts it, and the conversation has no
    # empty-state line once it has a message.
    await open_drawer(bob)
    await bob.page.get_by_label("Message Alice directly").click()
    await bob.post("a word in private")
    await expect(bob.message("Bob", "a word in private")).to_be_visible(timeout=TIMEOUT)
    await expect(alice.message("Bob", "a word in private")).to_be_visible(timeout=TIMEOUT)
    await expect(alice.page.get_by_text(re.compile("direct conversation with Bob"))
                 ).to_have_count(0, timeout=TIMEOUT)
    await shot(alice, "desktop-dm.png")


# ---------------------------------------------------------------- 10. smaller things


async def test_phone_search_hint_fits_links_and_no_stale_tooltip(server, browser):
    alice = await person(browser, server, "Alice", DESKTOP)
    bob = await person(browser, server, "Bob", PHONE)
    await expect(bob.page.get_by_label("Search", exact=True)).to_have_count(1, timeout=TIMEOUT)
    await expect(alice.page.get_by_label("Search messages", exact=True)).to_have_count(1)
    # A URL in a message is a link (its spans: tests/test_ui_firstuse.py; on screen: the README's
    # screenshots). Selectable text is not in Flutter's semantics tree, and a click at a computed
    # spot did not open it reliably here, so the click itself is not driven.
    # Creating a channel leaves no "New channel" tooltip behind.
    await alice.page.get_by_role("button", name="New channel").click()
    await alice.type_in_field("tooltips", "Channel name", tag="INPUT")
    await alice.page.keyboard.press("Enter")
    await expect(alice.notice("Alice created #tooltips.")).to_be_visible(timeout=TIMEOUT)
    labels = await alice.labels()
    texts = await alice.page.locator("flt-semantics").all_inner_texts()
    assert sum(1 for x in [*labels, *texts] if x.strip() == "New channel") <= 1


# ---------------------------------------------------------------- issue 15 leftover: the doctor


async def test_check_network_says_what_it_found(server, browser):
    alice = await person(browser, server, "Alice", DESKTOP)
    bob = await person(browser, server, "Bob", PHONE)
    await alice.page.get_by_role("button", name="Check network").click()
    await expect(alice.page.get_by_text(re.compile("runs without the LAN"))).to_be_visible(
        timeout=TIMEOUT)
    await open_drawer(bob)
    await bob.page.get_by_role("button", name="Check network").click()
    await expect(bob.page.get_by_text(re.compile("runs without the LAN"))).to_be_visible(
        timeout=TIMEOUT)


# ---------------------------------------------------------------- screenshots for the README


async def test_readme_screenshots(server, browser):
    alice = await person(browser, server, "Alice", DESKTOP)
    bob = await person(browser, server, "Bob", PHONE)
    await person(browser, server, "Carol", DESKTOP)
    await alice.send("Lunch at noon? 🍕 The menu: https://example.org/menu")
    await expect(bob.message("Alice", "Lunch at noon? 🍕 The menu: https://example.org/menu")
                 ).to_be_visible(timeout=TIMEOUT)
    await bob.send("Sure 👍 see you there")
    await expect(alice.message("Bob", "Sure 👍 see you there")).to_be_visible(timeout=TIMEOUT)
    await bob.page.wait_for_timeout(1500)  # the fallback fonts are drawn once fetched
    await shot(alice, "desktop.png")
    await shot(bob, "phone.png")
    await open_drawer(bob)
    await shot(bob, "phone-menu.png")


async def test_past_the_cap_find_someone_shows_who_matches(server, browser):
    """More people online than a tab shows (PEOPLE_SHOWN, here static web clients on /relay):
    the panel lists the first ones by name with "and N more", "Find someone" finds the others
    as the name is typed, and a click on a match opens the direct message."""
    import socket

    from websockets.asyncio.client import connect

    from fletchat.relay_protocol import encode_client_hello
    from fletchat.ui.people import FIND_HINT, PEOPLE_SHOWN

    relay = server.replace("http://", "ws://").rstrip("/") + "/relay"
    names = [f"Member{i:02}" for i in range(PEOPLE_SHOWN + 3)]
    clients = []
    try:
        for i, name in enumerate(names):  # 10 per loopback address (the host's limit is 16)
            ws = await connect(relay, family=socket.AF_INET, local_addr=(f"127.0.0.{2 + i // 10}", 0))
            clients.append(ws)
            await ws.send(encode_client_hello(name))
        alice = await person(browser, server, "Alice", DESKTOP)
        await expect(online(alice, len(names) + 1)).to_be_visible(timeout=TIMEOUT)
        # Alice and Member00-28 are shown (30), Member29-32 are not
        await expect(alice.page.get_by_text("and 4 more: find them by name above")).to_be_visible(
            timeout=TIMEOUT)
        await expect(alice.page.get_by_label("Message Member28 directly")).to_be_visible()
        await expect(alice.page.get_by_label("Message Member32 directly")).to_have_count(0)
        await alice.type_in_field("member32", FIND_HINT, tag="INPUT")
        found = alice.page.get_by_label("Message Member32 directly")
        await expect(found).to_be_visible(timeout=TIMEOUT)
        await expect(alice.page.get_by_label("Message Member28 directly")).to_have_count(0)
        await shot(alice, "people-find.png")
        await found.click()
        # the title and the direct-messages list both say it
        await expect(alice.page.get_by_text("@ Member32", exact=True)).to_have_count(
            2, timeout=TIMEOUT)
    finally:
        for ws in clients:
            await ws.close()
