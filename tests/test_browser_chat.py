"""End-to-end: host mode in a real Chromium, two people chatting as in the tutorial's GIF."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from fletchat.model import MAX_MESSAGE_CHARS
from tests.browser import ChatPage, chromium_available, host_mode_server
from tests.conftest import need
from tests.timing import scaled_ms

TIMEOUT = scaled_ms(15_000)


@pytest.fixture
def server(tmp_path):
    need(*chromium_available())
    with host_mode_server(tmp_path / "host", "--no-lan") as (url, _):
        yield url


async def test_two_sessions_chat_both_ways(server, browser):
    alice = await ChatPage.open(await browser.new_context(), server)
    await alice.join("Alice")
    bob = await ChatPage.open(await browser.new_context(), server)
    await bob.join("Bob Smith")

    await expect(alice.notice("Bob Smith has joined the chat.")).to_be_visible(timeout=TIMEOUT)
    await alice.send("Hi Bob, lunch at noon?")
    await expect(bob.message("Alice", "Hi Bob, lunch at noon?")).to_be_visible(timeout=TIMEOUT)
    await bob.send("Sure, see you there")
    await expect(alice.message("Bob Smith", "Sure, see you there")).to_be_visible(timeout=TIMEOUT)
    await expect(bob.message("Bob Smith", "Sure, see you there")).to_be_visible(timeout=TIMEOUT)
    # Both are listed as online on both sides.
    await expect(alice.page.get_by_text("Online (2)")).to_be_visible(timeout=TIMEOUT)
    # Focus is back in the message field: typing straight away sends again.
    await alice.send("typed without clicking")
    await expect(bob.message("Alice", "typed without clicking")).to_be_visible(timeout=TIMEOUT)
    await bob.screenshot("conversation.png")


async def test_blank_name_is_refused(server, browser):
    tab = await ChatPage.open(await browser.new_context(), server)
    await tab.page.keyboard.type("   ")
    await tab.page.keyboard.press("Enter")
    await expect(tab.page.get_by_text("Name cannot be blank!")).to_be_visible(timeout=TIMEOUT)
    # Still in the dialog; a real name then works.
    await expect(tab.page.get_by_label("Write a message...")).to_have_count(0)
    await tab.page.get_by_role("button", name="Join chat").click()
    await expect(tab.page.get_by_text("Name cannot be blank!")).to_be_visible(timeout=TIMEOUT)
    await tab.page.get_by_label("Enter your name to join the chat").click()
    await tab.page.keyboard.press("Control+a")
    await tab.join("Carol")
    await expect(tab.notice("Carol has joined the chat.")).to_be_visible(timeout=TIMEOUT)


async def test_shift_enter_makes_a_multiline_message(server, browser):
    tab = await ChatPage.open(await browser.new_context(), server)
    await tab.join("Dana")
    await tab.type("first line")
    await tab.newline()
    await tab.type("second line")
    await tab.page.keyboard.press("Enter")
    await expect(tab.message("Dana", "first line\nsecond line")).to_be_visible(timeout=TIMEOUT)


async def test_overlong_message_is_refused_and_kept(server, browser):
    tab = await ChatPage.open(await browser.new_context(), server)
    await tab.join("Eve")
    text = "x" * (MAX_MESSAGE_CHARS + 1)
    await tab.send(text)
    await expect(tab.page.get_by_text("Message is too long", exact=False)).to_be_visible(
        timeout=TIMEOUT
    )
    assert await tab.page.get_by_text(re.compile("^Eve at ")).count() == 0
    # Nothing typed was lost: one Backspace brings it to the limit, and then it sends.
    await tab.page.keyboard.press("End")
    await tab.page.keyboard.press("Backspace")
    await tab.page.keyboard.press("Enter")
    await expect(tab.message("Eve", "x" * MAX_MESSAGE_CHARS)).to_be_visible(timeout=TIMEOUT)
    await expect(tab.page.get_by_text("Message is too long", exact=False)).to_have_count(0)


async def test_late_joiner_sees_earlier_messages(server, browser):
    first = await ChatPage.open(await browser.new_context(), server)
    await first.join("Frank")
    await first.send("anyone here?")
    await expect(first.message("Frank", "anyone here?")).to_be_visible(timeout=TIMEOUT)
    late = await ChatPage.open(await browser.new_context(), server)
    # The history is there behind the login dialog already, and after joining.
    await late.join("Grace")
    await expect(late.message("Frank", "anyone here?")).to_be_visible(timeout=TIMEOUT)
    await expect(late.notice("Frank has joined the chat.")).to_be_visible(timeout=TIMEOUT)


async def test_closing_a_tab_shows_the_leave_message(server, browser):
    stay = await ChatPage.open(await browser.new_context(), server)
    await stay.join("Heidi")
    ctx = await browser.new_context()
    going = await ChatPage.open(ctx, server)
    await going.join("Ivan")
    await expect(stay.notice("Ivan has joined the chat.")).to_be_visible(timeout=TIMEOUT)
    await going.page.close()
    await expect(stay.notice("Ivan has left the chat.")).to_be_visible(timeout=TIMEOUT)
