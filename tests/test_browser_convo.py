"""End-to-end (issue 14): the conversation features in host mode, two people in two tabs of a real
Chromium: mentions and the tab title, join by QR code, replies, reactions, edit, delete, typing,
"seen by"."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser import ChatPage, chromium_available, host_mode_server
from tests.conftest import need
from tests.timing import scaled_ms

TIMEOUT = scaled_ms(15_000)


@pytest.fixture
def server(tmp_path):
    need(*chromium_available())
    with host_mode_server(tmp_path / "host", "--no-lan") as (url, _):
        yield url


async def two(browser, url: str) -> tuple[ChatPage, ChatPage]:
    alice = await ChatPage.open(await browser.new_context(), url)
    await alice.join("Alice")
    bob = await ChatPage.open(await browser.new_context(), url)
    await bob.join("Bob")
    await expect(alice.notice("Bob has joined the chat.")).to_be_visible(timeout=TIMEOUT)
    return alice, bob


def row(tab: ChatPage, author: str, text: str, *then: str):
    """A row whose label starts with AUTHOR at TIME: TEXT and says each of ``then`` after it,
    in that order (whatever else the row adds)."""
    rest = "".join(".*" + re.escape(part) for part in then)
    return tab.page.get_by_text(re.compile("^" + re.escape(author) + r" at [0-9:\- ]+: "
                                           + re.escape(text) + rest))


async def test_a_mention_in_another_channel_counts_in_the_title(server, browser):
    alice, bob = await two(browser, server)
    # Bob creates #lunch and mentions Alice there; Alice stays in #general.
    await bob.page.get_by_label("New channel").click()
    await bob.type_in_field("lunch", label="Channel name", tag="INPUT")
    await bob.page.keyboard.press("Enter")
    await expect(bob.page.get_by_role("button", name="# lunch")).to_be_visible(timeout=TIMEOUT)
    await bob.focus_field()
    await bob.page.keyboard.type("@Ali", delay=50)
    await bob.page.get_by_role("button", name="Suggest @Alice").click()  # completes the name
    await bob.page.locator("textarea").click()
    await expect(bob.page.locator("textarea")).to_have_value("@Alice ", timeout=TIMEOUT)
    await bob.page.keyboard.press("End")
    await bob.type("noon?")
    await bob.page.keyboard.press("Enter")
    await expect(row(bob, "Bob", "@Alice noon?")).to_be_visible(timeout=TIMEOUT)

    await expect(alice.page).to_have_title("(1) Flet Chat", timeout=TIMEOUT)
    await expect(alice.page.get_by_role("button", name=re.compile(r"^# lunch, 1 unread, 1 mention"))) \
        .to_be_visible(timeout=TIMEOUT)
    await alice.page.get_by_role("button", name=re.compile(r"^# lunch, 1 unread")).click()
    await expect(row(alice, "Bob", "@Alice noon?", "mentions you")).to_be_visible(timeout=TIMEOUT)
    await expect(alice.page).to_have_title("Flet Chat", timeout=TIMEOUT)
