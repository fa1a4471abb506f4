"""End-to-end in Chromium, host mode: files, images and voice notes between two tabs.

Alice attaches files with the picker (Chromium's file chooser, filled by Playwright); the host
receives them through upload tickets; Bob sees the image inline (the thumbnail fetched from the
host's file route), opens it full size, and saves the other file (the browser downloads the same
bytes). A voice note is recorded with Chromium's fake microphone and arrives as a playable row.
"""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from playwright.async_api import expect

from tests.browser import ROOT, ChatPage, chromium_available, host_mode_server
from tests.conftest import need
from tests.timing import eventually, scaled_ms

TIMEOUT = scaled_ms(20_000)
ENTRY = (str(ROOT / "main.py"), "--web", "--no-lan")


@pytest.fixture
def server(tmp_path):
    need(*chromium_available())
    with host_mode_server(tmp_path / "host", entry=ENTRY) as (url, _):
        yield url


def png(path, colour=(200, 30, 30), size=(640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    path.write_bytes(out.getvalue())
    return out.getvalue()


def served(page) -> list[str]:
    """URLs of stored files the tab fetched from the host (status 200)."""
    urls: list[str] = []
    page.on("response", lambda r: urls.append(r.url) if "/files/blob/" in r.url
            and r.status == 200 else None)
    return urls


async def attach(tab: ChatPage, *paths) -> None:
    async with tab.page.expect_file_chooser(timeout=TIMEOUT) as chooser:
        await tab.page.get_by_label("Attach files").click()
    await (await chooser.value).set_files([str(p) for p in paths])


async def test_files_between_two_tabs(server, browser, tmp_path):
    picture = tmp_path / "red square.png"
    png(picture)
    notes = tmp_path / "minutes.txt"
    notes.write_bytes(b"1. files work\n2. so do images\n" * 100)

    alice = await ChatPage.open(await browser.new_context(), server)
    await alice.join("Alice")
    bob_context = await browser.new_context(accept_downloads=True)
    bob = await ChatPage.open(bob_context, server)
    fetched = served(bob.page)
    await bob.join("Bob")

    await alice.type_in_field("the plan")
    await attach(alice, picture, notes)
    row = re.compile(r"^Alice at [0-9:\- ]+: the plan.*image red square\.png.*file minutes\.txt")
    await expect(bob.page.get_by_label(row)).to_be_visible(timeout=TIMEOUT)
    await expect(alice.page.get_by_label(row)).to_be_visible(timeout=TIMEOUT)

    # The image is inline: Bob's browser fetched its thumbnail from the host.
    image = bob.page.get_by_role("button", name="Image red square.png, open full size")
    await expect(image).to_be_visible(timeout=TIMEOUT)
    await eventually(lambda: fetched, "the thumbnail fetched from the host", 20)
    thumbs = set(fetched)
    # A click opens it full size (the whole image, a different file than the thumbnail).
    await image.click()
    await expect(bob.page.get_by_role("button", name="Close")).to_be_visible(timeout=TIMEOUT)
    await eventually(lambda: set(fetched) - thumbs, "the full-size image fetched", 20)
    await bob.screenshot("files-image-full-size.png")
    await bob.page.get_by_role("button", name="Close").click()

    # The other file: Bob saves it and gets the same bytes.
    # The button opens the host's file URL in a new tab, which the browser turns into a download
    # (Playwright reports it on the tab that opened it).
    async with bob.page.expect_download(timeout=TIMEOUT) as download_info:
        await bob.page.get_by_label("Save minutes.txt").click()
    download = await download_info.value
    assert download.suggested_filename == "minutes.txt"
    saved = tmp_path / "saved.txt"
    await download.save_as(saved)
    assert saved.read_bytes() == notes.read_bytes()
    await bob.screenshot("files-in-the-conversation.png")




async def make_private(tab: ChatPage, name: str, channel: str, passphrase: str) -> None:
    await tab.page.get_by_role("button", name="New channel").click()
    await tab.type_in_field(channel, "Channel name", tag="INPUT")
    await tab.page.keyboard.press("Enter")
    await expect(tab.notice(f"{name} created #{channel}.")).to_be_visible(timeout=TIMEOUT)
    await tab.page.get_by_label(re.compile("^Private room")).click()
    await tab.type_in_field(passphrase, "Passphrase", tag="INPUT")
    await tab.page.keyboard.press("Enter")
    await expect(tab.page.get_by_text(re.compile("is private for you now")).first
                 ).to_be_visible(timeout=TIMEOUT)


async def test_a_private_rooms_files_open_in_a_tab_with_the_passphrase(server, browser, tmp_path):
    """A room's files are sealed; a tab whose session has the passphrase shows the image inline
    and saves the file, through links made for that session (never the blob route, which serves
    anyone the sealed bytes by hash)."""
    picture = tmp_path / "plan.png"
    picture_bytes = png(picture, (20, 120, 220), (320, 200))
    notes = tmp_path / "secret minutes.txt"
    notes.write_bytes(b"only for the room\n" * 50)

    alice = await ChatPage.open(await browser.new_context(), server)
    await alice.join("Alice")
    bob = await ChatPage.open(await browser.new_context(accept_downloads=True), server)
    opened: list[str] = []
    bob.page.on("response", lambda r: opened.append(r.url)
                if "/files/opened/" in r.url and r.status == 200 else None)
    await bob.join("Bob")
    await make_private(alice, "Alice", "vault", "correct horse battery")
    await alice.type_in_field("the plan")  # the caption is sealed too: Bob is asked to unlock
    await attach(alice, picture, notes)
    row = re.compile(r"^Alice at [0-9:\- ]+: the plan.*image plan\.png.*file secret minutes\.txt")
    await expect(alice.page.get_by_label(row)).to_be_visible(timeout=TIMEOUT)

    await bob.page.get_by_role("button", name=re.compile(r"^# vault")).click()
    await expect(bob.page.get_by_text("Unlock private room # vault")).to_be_visible(timeout=TIMEOUT)
    await bob.type_in_field("correct horse battery", "Passphrase", tag="INPUT")
    await bob.page.keyboard.press("Enter")
    await expect(bob.page.get_by_label(row)).to_be_visible(timeout=TIMEOUT)
    image = bob.page.get_by_role("button", name="Image plan.png, open full size")
    await expect(image).to_be_visible(timeout=TIMEOUT)
    await eventually(lambda: opened, "the opened image loaded through Bob's own link", 20)
    async with bob.page.expect_download(timeout=TIMEOUT) as download_info:
        await bob.page.get_by_label("Save secret minutes.txt").click()
    download = await download_info.value
    saved = tmp_path / "saved.txt"
    await download.save_as(saved)
    assert saved.read_bytes() == notes.read_bytes()
    response = await bob.page.request.get(opened[0])  # the image Bob was shown: the plaintext
    assert await response.body() == picture_bytes
    await bob.screenshot("files-private-room.png")

async def test_a_voice_note_with_the_fake_microphone(server, browser):
    alice = await ChatPage.open(await browser.new_context(), server)
    await alice.join("Alice")
    bob = await ChatPage.open(await browser.new_context(), server)
    await bob.join("Bob")

    await alice.page.get_by_label("Record a voice note", exact=True).click()
    stop = alice.page.get_by_label("Stop and send the voice note")
    await expect(stop).to_be_visible(timeout=TIMEOUT)
    await alice.page.wait_for_timeout(2000)  # two seconds of Chromium's fake microphone (a beep)
    await stop.click()

    # The host reads the browser's rate from what arrived in the time recorded (Chromium sends
    # 44.1 kHz stereo, not the 16 kHz mono asked for): about two seconds, not twelve.
    row = re.compile(r"^Alice at [0-9:\- ]+: .*voice note 0:0[1-3]")
    await expect(bob.page.get_by_label(row)).to_be_visible(timeout=TIMEOUT)
    play = bob.page.get_by_label(re.compile(r"^Play Voice note 0:0[1-3]"))
    await expect(play).to_be_visible(timeout=TIMEOUT)
    # (Pressing Play in headless Chromium starts no media request here: playback is not checked.)
    await bob.screenshot("files-voice-note.png")


async def test_files_across_two_namespaced_hosts(tmp_path, chromium_turn):
    """Alice's tab on host one attaches an image and a file; host two gets them over the mesh's
    files connection, and Bob's tab there shows the image inline and saves the same bytes. The
    browser runs on a third namespaced host, so every byte crosses the test LAN."""
    import subprocess
    import sys

    from playwright.async_api import async_playwright

    from tests.browser import CHROMIUM_ARGS
    from tests.lan import lan_available, virtual_lan
    from tests.test_browser_lan import chromium_in, wait_port_in

    need(*chromium_available())
    need(*lan_available())
    picture = tmp_path / "lan square.png"
    png(picture, colour=(30, 160, 60))
    notes = tmp_path / "lan notes.txt"
    notes.write_bytes(b"crossed the LAN\n" * 20_000)  # 320 KB: two chunks
    main = str(ROOT / "main.py")
    with virtual_lan(3) as (h1, h2, h3):
        for host, name in ((h1, "one"), (h2, "two")):
            host.popen([sys.executable, main, "--web", "--data-dir", str(tmp_path / name)],
                       stdout=open(tmp_path / f"{name}.log", "w"),  # noqa: SIM115, ASYNC230
                       stderr=subprocess.STDOUT)
        wait_port_in(h1, 8550)
        wait_port_in(h2, 8550)
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium_in(h3, tmp_path),
                                              args=CHROMIUM_ARGS)
            try:
                alice = await ChatPage.open(await browser.new_context(), f"http://{h1.ip}:8550/")
                await alice.join("Alice")
                bob = await ChatPage.open(await browser.new_context(accept_downloads=True),
                                          f"http://{h2.ip}:8550/")
                fetched = served(bob.page)
                await bob.join("Bob")
                await expect(alice.notice("Bob has joined the chat.")).to_be_visible(
                    timeout=TIMEOUT)
                await alice.type_in_field("across the LAN")
                await attach(alice, picture, notes)
                row = re.compile(r"^Alice at [0-9:\- ]+: across the LAN.*image lan square\.png"
                                 r".*file lan notes\.txt")
                await expect(bob.page.get_by_label(row)).to_be_visible(timeout=TIMEOUT)
                image = bob.page.get_by_role("button", name="Image lan square.png, open full size")
                await expect(image).to_be_visible(timeout=TIMEOUT)
                await eventually(lambda: any(u.startswith(f"http://{h2.ip}:8550/") for u in fetched),
                                 "the thumbnail fetched from host two", 30)
                save = bob.page.get_by_label("Save lan notes.txt")  # host two has it: auto-fetched
                await expect(save).to_be_visible(timeout=TIMEOUT)
                async with bob.page.expect_download(timeout=TIMEOUT) as download_info:
                    await save.click()
                saved = tmp_path / "bob-saved.txt"
                await (await download_info.value).save_as(saved)
                assert saved.read_bytes() == notes.read_bytes()
                await bob.screenshot("files-across-two-hosts.png")
            finally:
                await browser.close()
