"""Real-browser plumbing: a host-mode server in a subprocess and Debian's Chromium via Playwright.

Every timeout here is a limit scaled by ``FLETCHAT_TESTS_TIMEOUT_FACTOR`` (tests/timing.py).

Flutter draws on a canvas; the semantics tree (turned on by clicking ``flt-semantics-placeholder``)
puts aria-labels in the DOM. Message rows carry their own Semantics label ("NAME at HH:MM: TEXT").
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from tests.timing import scaled, scaled_ms

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("FLETCHAT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A fake microphone that needs no permission prompt (voice-note tests); nothing else uses it.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
ARTIFACTS = ROOT / "test-artifacts"
# What a row's label may add after the text: its delivery status, the "arrived late" cue, the
# "unverified" cue (relayed from an install never met), and under one's own messages who has seen
# it and how many devices hold it (issue 14).
STATUS_SUFFIX = (r"(?:, (?:waiting for a device|sent|delivered(?: [0-9:\- ]+)?|arrived late"
                 r"|unverified|seen by \d+: .+?|on \d+ of \d+ devices))*")


def chromium_available() -> tuple[bool, str]:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return False, f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False, "the playwright package is not installed (uv sync)"
    return True, ""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 30.0, proc=None) -> None:
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(scaled(10))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def host_mode_server(data_dir: Path, *extra: str, port: int | None = None, prefix=(),
                     entry: tuple[str, ...] = (str(ROOT / "main.py"), "--web")):
    """``main.py --web`` in a subprocess; yields (url, proc). ``prefix`` runs it e.g. in a netns;
    ``entry`` is what runs and its first options (default ``main.py --web``).

    A port picked here (``port`` not given) is free when picked but can be taken before the
    server binds it (any outgoing connection of the other worker may get it as its source
    port: seen once under stress-ng, the server exiting with "already in use"); then the server
    is started again on another port, at most three times."""
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    for attempt in range(3):
        use = port or free_port()
        log = open(log_path, "w")  # noqa: SIM115
        args = [*prefix, sys.executable, *entry, "--port", str(use), "--data-dir", str(data_dir),
                *extra]
        proc = subprocess.Popen(
            args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            if not prefix:
                wait_for_port("127.0.0.1", use, proc=proc)
            break
        except RuntimeError:
            _stop(proc)
            log.close()
            taken = "already in use" in log_path.read_text(errors="replace")
            if port is None and taken and attempt < 2:
                continue
            raise
    try:
        yield f"http://127.0.0.1:{use}/", proc
    finally:
        _stop(proc)
        log.close()


def label_re(text: str) -> re.Pattern[str]:
    return re.compile(re.escape(text))


def _text_pattern(text: str) -> str:
    """A message's text in a row's label, line breaks read as any whitespace."""
    return r"\s+".join(re.escape(part) for part in text.split())


class ChatPage:
    """One browser tab on the chat, driven the way a person would: keyboard and clicks."""

    def __init__(self, page) -> None:
        self.page = page

    @classmethod
    async def open(cls, context, url: str) -> ChatPage:
        page = await context.new_page()
        await page.goto(url, timeout=scaled_ms(30_000))
        placeholder = page.locator("flt-semantics-placeholder")
        await placeholder.wait_for(state="attached", timeout=scaled_ms(60_000))
        await placeholder.dispatch_event("click")
        await page.get_by_label("Enter your name to join the chat").wait_for(
            timeout=scaled_ms(30_000)
        )
        return cls(page)

    async def join(self, name: str) -> None:
        await self.page.keyboard.type(name)
        await self.page.keyboard.press("Enter")
        await self.page.get_by_label("Write a message...").wait_for(timeout=scaled_ms(15_000))

    async def focus_field(self, label: str = "Write a message...", tag: str = "TEXTAREA") -> None:
        """Click a text field and wait until Flutter's editing element for it has the focus
        (typing right after the click can otherwise land in the previous field's element). The
        message field is multi-line, so Flutter edits it in a <textarea> (the page's only one).

        Under load two things went wrong here (a stress run failed a test three times over, and
        so did a quiet run of the base commit): Flutter web can leave the composer's <textarea>
        without its aria-label after a send, so a click looking for the label waited 30 s for
        nothing; and a click can land while Flutter rebuilds the field's semantics node and be
        lost, after which no wait brings the focus. So the composer is found by its label or, when
        no element has that label, as the page's textarea; and a click that did not focus the field within a few seconds is
        made again, as a person would, until a 30 s limit (scaled; before, the click waited up
        to 30 s for the label and then up to 15 s, scaled, for the focus)."""
        from playwright.async_api import TimeoutError as PlaywrightTimeoutError

        labelled = self.page.get_by_label(label)
        deadline = time.monotonic() + scaled(30)
        clicks = 0
        while True:
            attempt = min(scaled(3), max(deadline - time.monotonic(), 0.1)) * 1000
            field = labelled
            if tag == "TEXTAREA" and not await labelled.count():
                field = self.page.locator("textarea").first
            try:
                await field.click(timeout=attempt)
                clicks += 1
                await self.page.wait_for_function(
                    f"() => document.activeElement?.tagName === '{tag}'", timeout=attempt)
                return
            except PlaywrightTimeoutError:
                if time.monotonic() < deadline:
                    continue
                active = await self.page.evaluate(
                    "() => `${document.activeElement?.tagName} ${document.activeElement"
                    "?.getAttribute('aria-label')}`")
                raise AssertionError(
                    f"{clicks} clicks on {label!r} did not focus it within {scaled(30):.0f} s"
                    f" (the focus is on {active})") from None

    async def type_in_field(
        self, text: str, label: str = "Write a message...", tag: str = "TEXTAREA",
        replace: bool = False,
    ) -> None:
        """Type into a field (``replace``: over what is there) and check the text landed, as a
        person watching the screen would (after a dialog or an error, Flutter web sometimes keeps
        keyboard input elsewhere for a moment: then click and type again).

        The check waits a moment for the field to show the text: right after the input, Flutter
        web may still be swapping the field's editing element, whose value then lags behind (a
        check made at once saw that and typed again, so the text landed two or three times). A
        second try types over whatever the field holds by then."""
        from playwright.async_api import TimeoutError as PlaywrightTimeoutError

        landed = None
        for attempt in range(3):
            await self.focus_field(label, tag)
            if replace or attempt:
                await self.page.keyboard.press("Control+a")
            await self.page.keyboard.insert_text(text)
            try:
                await self.page.wait_for_function(
                    "(text) => document.activeElement?.value === text", arg=text,
                    timeout=scaled(2) * 1000)
                return
            except PlaywrightTimeoutError:
                landed = await self.page.evaluate("() => document.activeElement?.value ?? ''")
        raise AssertionError(f"typing into {label!r} did not land (last saw {landed!r})")

    async def post(self, text: str) -> None:
        """Type a message (checked to have landed), press the send button and wait for the row
        to show here. Under load Flutter web can take the click before the typed text has reached
        the app, and then the send does nothing and the text stays in the field: as a person
        would, press the button again (a send clears the field, so a late first send and a
        second click never send twice). Seen in about one run in six of the mute test, right
        after a click on another channel: the <textarea> kept the typed text, stable, but Flutter
        web never passed it to the app (no value update reached the server; the field showed
        empty), so no click could send it. Then, after two clicks, the text is typed again once
        the focus has left the field and come back (a Tab, then the field clicked), which
        recovered it (in the one traced run of eight that hit it)."""
        from playwright.async_api import expect

        await self.type_in_field(text)
        rows = self.page.get_by_text(  # anyone's row with this text (replies say more after it)
            re.compile(r"^.+ at [0-9:\- ]+: " + _text_pattern(text) + r"(?:$|[\s,.;])"))
        before = await rows.count()
        for attempt in range(3):
            if attempt == 2:  # the text never reached the app: leave the field, type it again
                await self.page.keyboard.press("Tab")
                await self.type_in_field(text, replace=True)
            await self.page.get_by_label("Send message").click()
            try:
                await expect(rows).to_have_count(before + 1, timeout=scaled_ms(5_000))
                return
            except AssertionError:
                continue
        raise AssertionError(f"{text!r} was typed and sent three times and never shown")

    async def press_until(self, press, shown, retype=None, gone: bool = False) -> None:
        """Do ``press`` (a click, an Enter) until ``shown`` is visible (``gone``: until it is
        not there), as a person who sees nothing happen does it again: under load Flutter web
        can pass the press on before the typed text has reached the app (then the app acts on
        the old value), and sometimes never passes that text on at all (see ``post``). Before
        the third press ``retype`` (if given) types the text again after the focus has left the
        field."""
        from playwright.async_api import expect

        async def done(timeout: float) -> None:
            if gone:
                await expect(shown).to_have_count(0, timeout=timeout)
            else:
                await expect(shown).to_be_visible(timeout=timeout)

        for attempt in range(3):
            if attempt == 2 and retype is not None:
                await self.page.keyboard.press("Tab")
                await retype()
            await press()
            try:
                await done(scaled_ms(5_000))
                return
            except AssertionError:
                continue
        await done(scaled_ms(15_000))

    async def search(self, query: str) -> None:
        """Search from the header's field and wait for the results dialog (Enter again if the
        first one reached the app before the query did; an empty query does nothing, and one
        pressed while a search runs waits for that search)."""
        from fletchat.ui import SEARCH_HINT

        async def retype() -> None:
            await self.type_in_field(query, SEARCH_HINT, tag="INPUT", replace=True)

        await retype()
        await self.press_until(lambda: self.page.keyboard.press("Enter"),
                               self.page.get_by_text(f'Search: "{query}" (', exact=False).first,
                               retype)

    async def expect_composer(self, text: str, *, ending: bool = False) -> None:
        """Wait until one of the page's <textarea>s holds ``text`` (or ends with it). Flutter web
        can have two at once, the composer's semantics node and its editing element (a CI run
        found both right after a suggestion was picked), and only the one being edited holds
        the value; so every textarea is looked at, not ``locator("textarea")``, which is then
        ambiguous."""
        await self.page.wait_for_function(
            """([text, ending]) => [...document.querySelectorAll('textarea')].some(
                (area) => ending ? area.value.endsWith(text) : area.value === text)""",
            arg=[text, ending], timeout=scaled_ms(15_000))

    async def type(self, text: str) -> None:
        await self.page.keyboard.insert_text(text)

    async def send(self, text: str) -> None:
        await self.type(text)
        await self.page.keyboard.press("Enter")

    async def newline(self) -> None:
        await self.page.keyboard.press("Shift+Enter")

    def message(self, author: str, text: str):
        """The row whose screen-reader label says AUTHOR wrote TEXT (line breaks as whitespace)."""
        pattern = re.compile(
            "^" + re.escape(author) + r" at [0-9:\- ]+: " + _text_pattern(text) + STATUS_SUFFIX
            + "$"
        )
        return self.page.get_by_text(pattern)

    def notice(self, text: str):
        return self.page.get_by_text(text, exact=True)

    async def labels(self) -> list[str]:
        return await self.page.eval_on_selector_all(
            "[aria-label]", "els => els.map(e => e.getAttribute('aria-label'))"
        )

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        await self.page.screenshot(path=str(path))
        return path


# Issue 17: what a message needs from the host's fallback fonts, and the families Flutter asks
# for it (colour emoji, Chinese/Japanese kana, Korean).
WORLD_TEXT = "👍 你好 こんにちは 안녕"
WORLD_FONTS = {"notocoloremoji": ".woff2", "notosanssc": ".ttf", "notosanskr": ".ttf"}


def coloured_pixels(png: bytes, saturation: int = 90) -> int:
    """Pixels of a screenshot whose channels differ by more than ``saturation``: a colour
    emoji has many; a monochrome one, a box ("tofu") and grey text have none."""
    from io import BytesIO

    from PIL import Image

    data = Image.open(BytesIO(png)).convert("RGB").tobytes()
    pixels = zip(data[0::3], data[1::3], data[2::3], strict=True)
    return sum(1 for r, g, b in pixels if max(r, g, b) - min(r, g, b) > saturation)


def _luminance(rgb: tuple[int, int, int]) -> float:
    """WCAG relative luminance of an sRGB colour."""
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def background_luminance(png: bytes) -> float:
    """The luminance of a screenshot's most common colour (its background)."""
    from collections import Counter
    from io import BytesIO

    from PIL import Image

    data = Image.open(BytesIO(png)).convert("RGB").tobytes()
    pixels = Counter(zip(data[0::3], data[1::3], data[2::3], strict=True))
    return _luminance(pixels.most_common(1)[0][0])


def contrast_ratio(png: bytes) -> float:
    """WCAG contrast between a screenshot's background (its most common colour) and the pixel
    farthest from it in luminance (the core of the text drawn on it)."""
    from io import BytesIO

    from PIL import Image

    data = Image.open(BytesIO(png)).convert("RGB").tobytes()
    colours = set(zip(data[0::3], data[1::3], data[2::3], strict=True))
    bg = background_luminance(png)
    far = max((_luminance(c) for c in colours), key=lambda lum: abs(lum - bg))
    hi, lo = max(bg, far), min(bg, far)
    return (hi + 0.05) / (lo + 0.05)


def text_line_clip(box: dict) -> dict:
    """The text of a message row's box: right of the avatar (a grouped row's text starts at
    the same place), left of the delivery tick and the actions button. A row is one Text
    (issue 12): the message is on the name's line's next line, or on the first line of a
    grouped row, so the whole height is taken; the bold name and the grey time and delivery
    words have no colour and the same contrast as the message."""
    return {"x": box["x"] + 48, "y": box["y"],
            "width": max(min(box["width"] - 120, 220), 10), "height": box["height"]}


async def message_text_png(tab: ChatPage, author: str, text: str) -> bytes:
    """A screenshot of the text line of AUTHOR's row (below the name, right of the avatar)."""
    box = await tab.message(author, text).bounding_box()
    assert box is not None, (author, text)
    return await tab.page.screenshot(clip=text_line_clip(box))


async def launch_browser(playwright):
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
