"""End-to-end (issue 14): the conversation features between two host-mode hosts in two network
namespaces, one Chromium tab on each, the hosts finding each other over real mDNS: mentions and
the tab title, typing, reactions, a reply, "seen by", edit, delete, and a late joiner (a third
host started after the delete, once the author's host is gone) that catches the delete up.

One long test: each host and browser costs CI time (tests/test_browser_convo.py covers the same
features between two tabs of one host)."""

from __future__ import annotations

import re
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.browser import CHROMIUM_ARGS, ChatPage, chromium_available, host_mode_server
from tests.conftest import need
from tests.lan import Host, lan_available, virtual_lan
from tests.test_browser_convo import TIMEOUT, actions, row
from tests.test_browser_lan import chromium_in, wait_port_in
from tests.test_lan_conversation_ns import text_on_disk
from tests.timing import scaled_ms

PORT = 8550  # every host is alone in its namespace
LAN_TIMEOUT = scaled_ms(40_000)  # what crosses the LAN: discovery, dial, catch-up


@pytest.fixture
def lan3():
    need(*chromium_available())
    need(*lan_available())
    with virtual_lan(3) as lan:
        yield lan


def start_host(stack: ExitStack, host: Host, data_dir: Path) -> str:
    """``main.py --web`` inside ``host``'s namespace (no --peer: mDNS finds the others)."""
    stack.enter_context(host_mode_server(data_dir, port=PORT, prefix=host.cmd([])))
    wait_port_in(host, PORT)
    return f"http://{host.ip}:{PORT}/"


async def mention_in_a_new_channel(alice: ChatPage, bob: ChatPage) -> None:
    """Bob (host two) creates #lunch and names Alice (host one), picked from the suggestions of
    people online across the LAN; Alice, in #general, gets the count in her tab's title."""
    await bob.page.get_by_role("button", name="New channel").click()
    await bob.type_in_field("lunch", label="Channel name", tag="INPUT")
    await bob.page.keyboard.press("Enter")
    await expect(bob.page.get_by_role("button", name="# lunch")).to_be_visible(timeout=TIMEOUT)
    await bob.focus_field()
    await bob.page.keyboard.type("@Ali", delay=50)
    await bob.page.get_by_role("button", name="Suggest @Alice").click()
    await bob.focus_field()
    await bob.expect_composer("@Alice ")
    await bob.page.keyboard.press("End")
    await bob.type("noon?")
    await bob.page.keyboard.press("Enter")
    await expect(row(bob, "Bob", "@Alice noon?")).to_be_visible(timeout=TIMEOUT)

    await expect(alice.page).to_have_title("(1) Flet Chat", timeout=LAN_TIMEOUT)
    lunch = alice.page.get_by_role("button", name=re.compile(r"^# lunch, 1 unread, 1 mention"))
    await expect(lunch).to_be_visible(timeout=TIMEOUT)
    await lunch.click()
    await expect(row(alice, "Bob", "@Alice noon?", "mentions you")).to_be_visible(timeout=TIMEOUT)
    await expect(alice.page).to_have_title("Flet Chat", timeout=TIMEOUT)
    for tab in (alice, bob):  # back where the rest happens
        await tab.page.get_by_role("button", name=re.compile(r"^# general")).click()
        await expect(row(tab, "Bob", "@Alice noon?")).to_have_count(0, timeout=TIMEOUT)


async def reply_react_edit_delete(alice: ChatPage, bob: ChatPage) -> None:
    """Typing, a reaction taken back, a reply, "seen by", an edit and a delete by Alice (host
    one), each seen by Bob on host two or the other way round."""
    await alice.type_in_field("Pizza or sushi?")
    await alice.page.keyboard.press("Enter")
    await expect(row(bob, "Alice", "Pizza or sushi?")).to_be_visible(timeout=LAN_TIMEOUT)

    # Typing crosses the LAN (live only).
    await alice.focus_field()
    await alice.page.keyboard.type("hm", delay=50)
    await expect(bob.page.get_by_text("Alice is typing\u2026")).to_be_visible(timeout=TIMEOUT)
    await alice.page.keyboard.press("Control+a")
    await alice.page.keyboard.press("Delete")

    # A reaction, who gave it, and taking it back.
    await actions(bob, "Alice", "Pizza or sushi?")
    await bob.page.get_by_role("button", name="React \U0001f44d").click()
    await expect(row(alice, "Alice", "Pizza or sushi?", "\U0001f44d 1 (Bob)")) \
        .to_be_visible(timeout=TIMEOUT)
    await actions(bob, "Alice", "Pizza or sushi?")
    await bob.page.get_by_role("button", name="Remove \U0001f44d").click()
    await expect(row(alice, "Alice", "Pizza or sushi?", "\U0001f44d")) \
        .to_have_count(0, timeout=TIMEOUT)

    # A reply on host two, its quote shown on host one.
    await actions(bob, "Alice", "Pizza or sushi?")
    await bob.page.get_by_role("button", name="Reply").click()
    await expect(bob.page.get_by_text("Replying to Alice: Pizza or sushi?")) \
        .to_be_visible(timeout=TIMEOUT)
    await bob.post("Sushi!")
    await expect(row(alice, "Bob", "Sushi!", "in reply to Alice: Pizza or sushi?")) \
        .to_be_visible(timeout=TIMEOUT)

    # Seen by: Bob has #general open on the other host.
    await expect(row(alice, "Alice", "Pizza or sushi?", "seen by 1: Bob")) \
        .to_be_visible(timeout=TIMEOUT)

    # Edit by the author; the other host shows the latest text, marked edited, and
    # offers Bob neither edit nor delete of Alice's message.
    await actions(alice, "Alice", "Pizza or sushi?")
    await alice.page.get_by_role("button", name="Edit").click()
    await alice.type_in_field("Pizza or sushi tonight?", label="Edit message", replace=True)
    await alice.page.get_by_role("button", name="Save").click()
    await expect(row(bob, "Alice", "Pizza or sushi tonight?", "edited")) \
        .to_be_visible(timeout=TIMEOUT)
    await actions(bob, "Alice", "Pizza or sushi tonight?")
    await expect(bob.page.get_by_role("button", name="Reply")).to_be_visible(timeout=TIMEOUT)
    assert await bob.page.get_by_role("button", name="Edit").count() == 0
    assert await bob.page.get_by_role("button", name="Delete").count() == 0
    await bob.page.get_by_role("button", name="Close").click()
    await expect(bob.page.get_by_text("Message from Alice")).to_have_count(
        0, timeout=TIMEOUT)

    # Delete: the placeholder on the other host, the reply's quote follows.
    await actions(alice, "Alice", "Pizza or sushi tonight?")
    await alice.page.get_by_role("button", name="Delete").click()
    await alice.page.get_by_role("button", name="Delete for everyone").click()
    await expect(row(bob, "Alice", "message deleted")).to_be_visible(timeout=TIMEOUT)
    await expect(row(bob, "Bob", "Sushi!", "in reply to Alice: message deleted")) \
        .to_be_visible(timeout=TIMEOUT)
    assert await row(bob, "Alice", "Pizza").count() == 0


async def test_two_namespaced_hosts_hold_one_conversation(lan3, tmp_path, chromium_turn):
    h1, h2, h3 = lan3
    expect.set_options(timeout=scaled_ms(5_000))
    with ExitStack() as hosts, ExitStack() as author_host:
        url_a = start_host(author_host, h1, tmp_path / "one")
        url_b = start_host(hosts, h2, tmp_path / "two")
        async with async_playwright() as p:
            # The browser runs on the third host: all its traffic stays on the test LAN.
            browser = await p.chromium.launch(executable_path=chromium_in(h3, tmp_path),
                                              args=CHROMIUM_ARGS)
            try:
                alice = await ChatPage.open(await browser.new_context(), url_a)
                await alice.join("Alice")
                bob = await ChatPage.open(await browser.new_context(), url_b)
                await bob.join("Bob")
                await expect(alice.notice("Bob has joined the chat.")).to_be_visible(
                    timeout=LAN_TIMEOUT)

                await mention_in_a_new_channel(alice, bob)

                await reply_react_edit_delete(alice, bob)

                # The author's host goes; a third host starts after the delete and only meets
                # host two, whose catch-up carries the delete (a stub without the text).
                author_host.close()
                url_c = start_host(hosts, h3, tmp_path / "three")
                cy = await ChatPage.open(await browser.new_context(), url_c)
                await cy.join("Cy")
                await expect(bob.notice("Cy has joined the chat.")).to_be_visible(
                    timeout=LAN_TIMEOUT)
                await expect(row(cy, "Bob", "Sushi!", "in reply to Alice: message deleted")) \
                    .to_be_visible(timeout=LAN_TIMEOUT)
                await expect(row(cy, "Alice", "message deleted")).to_be_visible(timeout=TIMEOUT)
                assert await row(cy, "Alice", "Pizza").count() == 0
                await cy.screenshot("conversation-late-joiner.png")
            finally:
                await browser.close()
        for name in ("one", "two", "three"):  # the text is gone from every history file
            assert text_on_disk(tmp_path / name, "Pizza") == 0, name
