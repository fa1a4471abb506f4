"""End-to-end in a real Chromium: history across restarts, channels with unread counts, search
that jumps to a message, older pages, delivery status and the store-error banner."""

from __future__ import annotations

import re

from playwright.async_api import expect

from fletchat.clock import HLC
from fletchat.model import Message
from fletchat.node import HISTORY_FILE
from fletchat.store import Store
from fletchat.ui import LOAD_OLDER, PAGE
from tests.browser import ChatPage, host_mode_server
from tests.timing import scaled_ms

TIMEOUT = scaled_ms(15_000)


async def open_tab(browser, url: str, name: str, width: int = 1200) -> ChatPage:
    ctx = await browser.new_context(viewport={"width": width, "height": 760})
    tab = await ChatPage.open(ctx, url)
    await tab.join(name)
    return tab


def channel(tab: ChatPage, label: str):
    """A channel list entry by its label ("# lunch", "# lunch, 1 unread")."""
    return tab.page.get_by_role("button", name=label, exact=True)


async def test_history_survives_a_restart_and_says_sent_without_peers(tmp_path, browser):
    data = tmp_path / "host"
    with host_mode_server(data, "--no-lan") as (url, _):
        alice = await open_tab(browser, url, "Alice")
        await alice.send("written before the restart")
        row = alice.message("Alice", "written before the restart")
        await expect(row).to_be_visible(timeout=TIMEOUT)
        # Nobody else here and no LAN (--no-lan): stored and "sent", not "waiting" for a device
        # that does not exist (issue 17).
        await expect(row).to_have_text(re.compile(", sent$"))
        await alice.page.context.close()
    with host_mode_server(data, "--no-lan") as (url, _):
        bob = await open_tab(browser, url, "Bob")
        await expect(bob.message("Alice", "written before the restart")).to_be_visible(
            timeout=TIMEOUT
        )
        await expect(bob.notice("Alice has joined the chat.")).to_be_visible(timeout=TIMEOUT)


async def test_channels_unread_counts_and_search_jump(tmp_path, browser):
    with host_mode_server(tmp_path / "host", "--no-lan") as (url, _):
        alice = await open_tab(browser, url, "Alice")
        bob = await open_tab(browser, url, "Bob")
        await alice.send("general chatter only")
        await expect(bob.message("Alice", "general chatter only")).to_be_visible(timeout=TIMEOUT)

        # Alice creates #lunch; a bad name first gets a clear error.
        await alice.page.get_by_role("button", name="New channel").click()
        await alice.page.get_by_label("Channel name").wait_for(timeout=TIMEOUT)
        await alice.page.keyboard.insert_text("no spaces allowed")
        await alice.page.keyboard.press("Enter")
        await expect(alice.page.get_by_text("Channel names are 1-32 characters")).to_be_visible(
            timeout=TIMEOUT
        )
        await alice.type_in_field("lunch", "Channel name", tag="INPUT", replace=True)
        await alice.page.keyboard.press("Enter")
        await expect(alice.page.get_by_text("# lunch", exact=True).first).to_be_visible(
            timeout=TIMEOUT
        )
        await expect(alice.notice("Alice created #lunch.")).to_be_visible(timeout=TIMEOUT)
        await expect(alice.message("Alice", "general chatter only")).to_have_count(0)

        # Bob sees the channel appear; Alice's post there counts as unread for him.
        await expect(channel(bob, "# lunch")).to_be_visible(timeout=TIMEOUT)
        await alice.post("pizza at noon?")
        await expect(alice.message("Alice", "pizza at noon?")).to_be_visible(timeout=TIMEOUT)
        await expect(channel(bob, "# lunch, 1 unread")).to_be_visible(timeout=TIMEOUT)
        await expect(bob.message("Alice", "pizza at noon?")).to_have_count(0)

        # Switching shows only #lunch's messages and clears the count.
        await channel(bob, "# lunch, 1 unread").click()
        await expect(bob.message("Alice", "pizza at noon?")).to_be_visible(timeout=TIMEOUT)
        await expect(channel(bob, "# lunch")).to_be_visible(timeout=TIMEOUT)
        await expect(bob.message("Alice", "general chatter only")).to_have_count(0)

        # Back in #general, search by a word prefix and jump to the result in its channel.
        await channel(bob, "# general").click()
        await expect(bob.message("Alice", "general chatter only")).to_be_visible(timeout=TIMEOUT)
        try:
            await alice.post("pizza with extra cheese")
        except Exception:
            await alice.screenshot("channels-alice-failure.png")
            print(await alice.labels())
            raise
        await expect(channel(bob, "# lunch, 1 unread")).to_be_visible(timeout=TIMEOUT)
        await bob.search("piz")
        result = bob.page.get_by_role("button", name=re.compile(r"^Result: Alice in # lunch"))
        await expect(result).to_have_count(2, timeout=TIMEOUT)
        await bob.page.wait_for_timeout(600)  # the dialog's opening animation, for the picture
        await bob.screenshot("channels-search.png")
        await result.last.click()  # newest first: the last one is "pizza at noon?"
        await expect(bob.message("Alice", "pizza at noon?")).to_be_visible(timeout=TIMEOUT)
        await expect(bob.message("Alice", "general chatter only")).to_have_count(0)
        await expect(channel(bob, "# lunch")).to_be_visible(timeout=TIMEOUT)  # read now
        await bob.screenshot("channels-after-jump.png")


async def test_load_older_messages_and_store_error_banner(tmp_path, browser):
    data = tmp_path / "host"
    total = PAGE + 5
    clock = HLC("seed-peer")
    with Store.open(data / HISTORY_FILE) as store:
        for i in range(total):
            msg = Message.chat("Olga", f"old message {i}", "seed-peer")
            store.add(msg, clock.now(), seq=i + 1)
    with host_mode_server(data, "--no-lan") as (url, _):
        tab = await open_tab(browser, url, "Pat")
        await expect(tab.message("Olga", f"old message {total - 1}")).to_be_visible(
            timeout=TIMEOUT
        )
        await expect(tab.message("Olga", "old message 4")).to_have_count(0)
        await tab.page.get_by_role("button", name=LOAD_OLDER).click()
        # The older page is above what the reader was looking at: scroll up to it.
        await expect(tab.page.get_by_role("button", name=LOAD_OLDER)).to_have_count(0)
        await tab.page.wait_for_timeout(1000)  # the load settles (a wheel mid-update is lost)
        await tab.page.mouse.move(600, 400)  # over the conversation
        for _ in range(10):
            await tab.page.mouse.wheel(0, -3000)
        await expect(tab.message("Olga", "old message 0")).to_be_visible(timeout=TIMEOUT)
        await expect(tab.message("Olga", "old message 4")).to_be_visible(timeout=TIMEOUT)

    # A history file that is not ours: the app runs, and says plainly that history isn't saved.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / HISTORY_FILE).write_bytes(b"this is not a database" * 100)
    with host_mode_server(bad, "--no-lan") as (url, _):
        tab = await open_tab(browser, url, "Quinn")
        await expect(tab.page.get_by_text(re.compile("^History is not being saved"))).to_be_visible(
            timeout=TIMEOUT
        )


async def test_own_device_fingerprint_is_shown_in_device_details(tmp_path, browser):
    data = tmp_path / "host"
    with host_mode_server(data, "--no-lan") as (url, _):
        alice = await open_tab(browser, url, "Alice")
        await alice.page.get_by_role("button", name="Device details").click()
        line = alice.page.get_by_text(
            re.compile(r"^Your device: [A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$")
        )
        await expect(line).to_be_visible(timeout=TIMEOUT)
        shown = (await line.inner_text()).strip()
    from fletchat.identity import Identity

    assert shown == f"Your device: {Identity.load_or_create(data).fingerprint}"


async def test_private_room_is_sealed_until_the_passphrase_is_entered(tmp_path, browser):
    with host_mode_server(tmp_path / "host", "--no-lan") as (url, _):
        alice = await open_tab(browser, url, "Alice")
        bob = await open_tab(browser, url, "Bob")
        await alice.page.get_by_role("button", name="New channel").click()
        await alice.page.get_by_label("Channel name").wait_for(timeout=TIMEOUT)
        await alice.page.keyboard.insert_text("secret")
        await alice.page.keyboard.press("Enter")
        await expect(alice.notice("Alice created #secret.")).to_be_visible(timeout=TIMEOUT)
        # Alice makes it private: the lock button asks for the passphrase.
        await alice.page.get_by_label(re.compile("^Private room")).click()
        await alice.page.get_by_label("Passphrase", exact=True).click(timeout=TIMEOUT)
        await alice.page.keyboard.insert_text("correct horse battery")
        await alice.page.keyboard.press("Enter")
        # The modal dialog must be gone before the message field can take the click.
        await expect(alice.page.get_by_label("Passphrase", exact=True)).to_have_count(
            0, timeout=TIMEOUT
        )
        await alice.post("the plan")
        try:
            await expect(alice.message("Alice", "the plan")).to_be_visible(timeout=TIMEOUT)
        except AssertionError:
            await alice.screenshot("private-room-failure.png")
            raise
        # Bob opens the room: sealed rows, and the passphrase is asked for.
        await channel(bob, "# secret, 1 unread").click()
        await bob.page.get_by_label("Passphrase", exact=True).wait_for(timeout=TIMEOUT)
        await bob.page.get_by_role("button", name="Cancel").click()
        await expect(bob.message("Alice", "sealed (no key)")).to_be_visible(timeout=TIMEOUT)
        await expect(bob.message("Alice", "the plan")).to_have_count(0)
        await bob.page.get_by_label(re.compile("^Private room")).click()
        await bob.page.get_by_label("Passphrase", exact=True).click(timeout=TIMEOUT)
        await bob.page.keyboard.insert_text("correct horse battery")
        await bob.page.keyboard.press("Enter")
        await expect(bob.message("Alice", "the plan")).to_be_visible(timeout=TIMEOUT)


async def test_a_channel_with_a_thousand_messages_stays_usable(tmp_path, browser):
    """1200 messages in #general: new ones still arrive, older pages load, a search result four
    pages back is jumped to, and one's own message brings the list back down."""
    data = tmp_path / "host"
    total = 1200
    clock = HLC("seed-peer")
    with Store.open(data / HISTORY_FILE) as store:
        for i in range(total):
            # the needle is four pages back: the jump must load older pages to reach it
            text = "needle in the haystack" if i == total - 4 * PAGE else f"bulk message {i}"
            store.add(Message.chat("Olga", text, "seed-peer"), clock.now(), seq=i + 1)
    with host_mode_server(data, "--no-lan") as (url, _):
        reader = await open_tab(browser, url, "Pat")
        writer = await open_tab(browser, url, "Quinn")
        await expect(reader.message("Olga", f"bulk message {total - 1}")).to_be_visible(
            timeout=TIMEOUT
        )
        # new messages arrive and are shown at the end
        await writer.send("fresh news")
        await expect(reader.message("Quinn", "fresh news")).to_be_visible(timeout=TIMEOUT)
        # an older page: the reading position stays, scrolling up shows it
        await reader.page.get_by_role("button", name=LOAD_OLDER).click(timeout=4 * TIMEOUT)
        await reader.page.wait_for_timeout(1000)  # the load settles (a wheel mid-update is lost)
        await reader.page.mouse.move(600, 400)
        for _ in range(15):
            await reader.page.mouse.wheel(0, -3000)
        # at the top of what is loaded (reaching the top loads more): messages older than the
        # first page (which began at about 1150) are on screen
        older_rows = reader.page.get_by_text(
            re.compile(r"^Olga at [0-9:\- ]+: bulk message (1[01][0-4][0-9]|10[0-9][0-9]|[0-9]{1,3})"
                       r"(, unverified)?$"))
        await expect(older_rows.first).to_be_visible(timeout=TIMEOUT)
        # a search result four pages back: fetched, scrolled to, shown
        await reader.search("needle")
        result = reader.page.get_by_role("button", name=re.compile(r"^Result: Olga in # general"))
        await expect(result).to_have_count(1, timeout=TIMEOUT)
        await reader.page.wait_for_timeout(600)  # the dialog's opening animation
        await result.click()
        # pages are fetched and sent before the scroll: give host and browser time
        await expect(result).to_have_count(0, timeout=4 * TIMEOUT)
        # The jump loads the pages down to the needle (tests/test_ui_controls.py checks that the
        # row is there and highlighted). Bringing it into view is Flet's ListView.scroll_to, which
        # in Chromium does not reliably reach a row four pages up (known since issue 5), so this
        # test does not assert the needle on screen; the README says so.
        await reader.screenshot("thousand-messages-jump.png")
        # still live while looking back; one's own message brings the list to the end
        await writer.send("while you were reading")
        await reader.post("back to the present")
        await expect(reader.message("Pat", "back to the present")).to_be_visible(timeout=TIMEOUT)
        await expect(reader.message("Quinn", "while you were reading")).to_be_visible(
            timeout=TIMEOUT
        )
