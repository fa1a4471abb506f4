"""End-to-end (issue 14): the conversation features in host mode, two people in two tabs of a real
Chromium: mentions and the tab title, join by QR code, replies, reactions, edit, delete, typing,
"seen by"."""

from __future__ import annotations

import io
import re
import time

import pytest
from playwright.async_api import expect

from fletchat.ui.text import NAME_LABEL
from tests.browser import ARTIFACTS, ChatPage, chromium_available, host_mode_server
from tests.conftest import need
from tests.test_browser_firstuse import stays_absent
from tests.timing import scaled, scaled_ms

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


def pattern(author: str, text: str, *then: str) -> re.Pattern[str]:
    rest = "".join(".*" + re.escape(part) for part in then)
    return re.compile("^" + re.escape(author) + r" at [0-9:\- ]+: " + re.escape(text) + rest)


def row(tab: ChatPage, author: str, text: str, *then: str):
    """A row whose label starts with AUTHOR at TIME: TEXT and says each of ``then`` after it,
    in that order (whatever else the row adds)."""
    return tab.page.get_by_text(pattern(author, text, *then))


async def test_a_mention_in_another_channel_counts_in_the_title(server, browser):
    alice, bob = await two(browser, server)
    # Bob creates #lunch and mentions Alice there; Alice stays in #general.
    await bob.page.get_by_role("button", name="New channel").click()
    await bob.type_in_field("lunch", label="Channel name", tag="INPUT")
    await bob.page.keyboard.press("Enter")
    await expect(bob.page.get_by_role("button", name="# lunch")).to_be_visible(timeout=TIMEOUT)
    await bob.focus_field()
    await bob.page.keyboard.type("@Ali", delay=50)
    await bob.page.get_by_role("button", name="Suggest @Alice").click()  # completes the name
    await bob.focus_field()
    await bob.expect_composer("@Alice ")
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


async def actions(tab: ChatPage, author: str, text: str) -> None:
    """Open a row's actions with its "Message actions" button, at the row's right end (inside
    the row's semantics node, so it is clicked where a person sees it)."""
    target = tab.page.get_by_role("button", name=pattern(author, text)).first
    # A closing dialog may still cover the row, and a redrawn row replaces its node: look again.
    deadline = time.monotonic() + scaled(15)
    box = None
    while box is None and time.monotonic() < deadline:
        await expect(target).to_be_visible(timeout=TIMEOUT)
        box = await target.bounding_box()
    assert box is not None
    await tab.page.mouse.click(box["x"] + box["width"] - 20, box["y"] + 20)
    await expect(tab.page.get_by_text(f"Message from {author}")).to_be_visible(timeout=TIMEOUT)


async def test_reply_react_edit_delete_typing_and_seen_by(server, browser):
    alice, bob = await two(browser, server)
    await alice.send("Pizza or sushi?")
    await expect(row(bob, "Alice", "Pizza or sushi?")).to_be_visible(timeout=TIMEOUT)

    # Reactions: Bob reacts, Alice sees who; Bob takes it back, it is gone for Alice.
    await actions(bob, "Alice", "Pizza or sushi?")
    await bob.page.get_by_role("button", name="React \U0001f44d").click()
    await expect(row(alice, "Alice", "Pizza or sushi?", "\U0001f44d 1 (Bob)")).to_be_visible(
        timeout=TIMEOUT)
    await actions(bob, "Alice", "Pizza or sushi?")
    await bob.page.get_by_role("button", name="Remove \U0001f44d").click()
    await expect(row(alice, "Alice", "Pizza or sushi?", "\U0001f44d")).to_have_count(
        0, timeout=TIMEOUT)

    # Typing: Alice types without sending; Bob sees it.
    await alice.focus_field()
    await alice.page.keyboard.type("hm", delay=50)
    await expect(bob.page.get_by_text("Alice is typing\u2026")).to_be_visible(timeout=TIMEOUT)

    # A reply: the quote travels with it.
    await actions(bob, "Alice", "Pizza or sushi?")
    await bob.page.get_by_role("button", name="Reply").click()
    await expect(bob.page.get_by_text("Replying to Alice: Pizza or sushi?")).to_be_visible(
        timeout=TIMEOUT)
    await bob.post("Sushi!")
    await expect(row(alice, "Bob", "Sushi!", "in reply to Alice: Pizza or sushi?")) \
        .to_be_visible(timeout=TIMEOUT)

    # Seen by: Bob has #general open, so Alice's message is seen by him.
    await expect(row(alice, "Alice", "Pizza or sushi?", "seen by 1: Bob")).to_be_visible(
        timeout=TIMEOUT)

    # Edit: Alice corrects her message; Bob sees the latest text, marked edited.
    await actions(alice, "Alice", "Pizza or sushi?")
    assert await alice.page.get_by_role("button", name="Edit").count() == 1
    await alice.page.get_by_role("button", name="Edit").click()
    await alice.type_in_field("Pizza or sushi tonight?", label="Edit message", replace=True)
    await alice.page.get_by_role("button", name="Save").click()
    await expect(row(bob, "Alice", "Pizza or sushi tonight?", "edited")).to_be_visible(
        timeout=TIMEOUT)
    # Bob may not edit or delete Alice's message: the actions do not offer it.
    await actions(bob, "Alice", "Pizza or sushi tonight?")
    await expect(bob.page.get_by_role("button", name="Reply")).to_be_visible(timeout=TIMEOUT)
    assert await bob.page.get_by_role("button", name="Edit").count() == 0
    assert await bob.page.get_by_role("button", name="Delete").count() == 0
    await bob.page.get_by_role("button", name="Close").click()
    await expect(bob.page.get_by_text("Message from Alice")).to_have_count(0, timeout=TIMEOUT)

    # Delete: the placeholder everywhere, and the reply's quote follows.
    await actions(alice, "Alice", "Pizza or sushi tonight?")
    await alice.page.get_by_role("button", name="Delete").click()
    await alice.page.get_by_role("button", name="Delete for everyone").click()
    await expect(row(bob, "Alice", "message deleted")).to_be_visible(timeout=TIMEOUT)
    await expect(row(bob, "Bob", "Sushi!", "in reply to Alice: message deleted")) \
        .to_be_visible(timeout=TIMEOUT)
    assert await row(bob, "Alice", "Pizza or sushi").count() == 0
    await alice.screenshot("conversation-features.png")


async def test_the_join_qr_code_decodes_to_the_host_address(tmp_path, browser):
    import zxingcpp
    from PIL import Image

    from fletchat.qr import join_url

    need(*chromium_available())
    with host_mode_server(tmp_path / "host", "--no-lan") as (url, _):
        tab = await ChatPage.open(await browser.new_context(), url)
        await tab.join("Quinn")
        log = (tmp_path / "host-server.log").read_text()
        served = re.findall(r"^  (http\S+)$", log, re.MULTILINE)
        assert served, log
        expected = join_url(served)
        await tab.page.get_by_role("button", name="Join from a phone").click()
        image = tab.page.get_by_role("img", name=f"QR code to join: {expected}")
        await expect(image).to_be_visible(timeout=TIMEOUT)
        await expect(tab.page.get_by_text(expected, exact=True)).to_be_visible(timeout=TIMEOUT)
        # The dialog fades in after its semantics appear: look until the camera can read it.
        deadline = time.monotonic() + scaled(15)
        codes: list = []
        while not codes and time.monotonic() < deadline:
            shot = await image.screenshot()
            codes = zxingcpp.read_barcodes(Image.open(io.BytesIO(shot)))
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "join-qr.png").write_bytes(shot)  # what the camera saw last
        assert [c.text for c in codes] == [expected]


async def test_a_name_is_held_by_the_browser_that_joined_under_it(server, browser):
    """A name is not a person on a host (fletchat/authors.py): another browser may not join
    under a name someone online has; the same browser may, in a new session (its owner secret
    is kept in the browser's storage beside the name), and there its earlier messages are its
    own to delete."""
    own = await browser.new_context()
    alice = await ChatPage.open(own, server)
    await alice.join("Alice")
    await alice.send("Pizza at noon")
    mallory = await ChatPage.open(await browser.new_context(), server)
    await mallory.page.keyboard.type("Alice")
    await mallory.page.keyboard.press("Enter")
    await expect(mallory.page.get_by_text("Alice is already someone's name here: pick another.")
                 .first).to_be_visible(timeout=TIMEOUT)
    # not joined: Alice's people list still has her alone
    await expect(alice.page.get_by_text("Online (1)")).to_be_visible(timeout=TIMEOUT)
    await stays_absent(alice.page.get_by_text("Online (2)"), "a second Alice", 1.5)

    await alice.page.close()
    again = await ChatPage.open(own, server)  # a new session of Alice's browser
    await again.type_in_field("Alice", label=NAME_LABEL, tag="INPUT", replace=True)
    await again.page.keyboard.press("Enter")
    await again.page.get_by_label("Write a message...").wait_for(timeout=TIMEOUT)
    await actions(again, "Alice", "Pizza at noon")
    await again.page.get_by_role("button", name="Delete").click()
    await again.page.get_by_role("button", name="Delete for everyone").click()
    await expect(row(again, "Alice", "message deleted")).to_be_visible(timeout=TIMEOUT)
