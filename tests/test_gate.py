"""Host mode with a passphrase: a real server, real HTTP, a real WebSocket, a real browser."""

from __future__ import annotations

import http.client
import re
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.async_api import expect
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from tests.browser import ChatPage, host_mode_server
from tests.timing import scaled, scaled_ms

SECRET = "correct horse battery staple"


@pytest.fixture
def server(tmp_path):
    with host_mode_server(tmp_path / "host", "--no-lan", "--passphrase", SECRET) as (url, _):
        yield urllib.parse.urlsplit(url).port


def request(port: int, method: str, path: str, body: str = "", cookie: str = ""):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(20))
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    if cookie:
        headers["Cookie"] = cookie
    conn.request(method, path, body=body or None, headers=headers)
    resp = conn.getresponse()
    data = resp.read().decode("utf-8", "replace")
    conn.close()
    return resp.status, dict(resp.getheaders()), data


def unlock(port: int, guess: str, next_path: str = "/"):
    form = urllib.parse.urlencode({"passphrase": guess, "next": next_path})
    return request(port, "POST", "/unlock", form)


def test_nothing_is_served_without_the_passphrase(server):
    status, headers, _ = request(server, "GET", "/")
    assert status == 303 and headers["location"].startswith("/unlock")
    status, _, page = request(server, "GET", "/unlock")
    assert status == 200 and "Passphrase" in page and 'type="password"' in page
    status, _, page = unlock(server, "guess")
    assert status == 401 and "Wrong passphrase." in page
    # The chat page itself only after the right answer, with the cookie it sets.
    status, headers, _ = unlock(server, SECRET)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"].split(";")[0]
    assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
    status, _, page = request(server, "GET", "/", cookie=cookie)
    assert status == 200 and "<title>Flet Chat</title>" in page
    # A forged cookie is not enough.
    status, _, _ = request(server, "GET", "/", cookie="fletchat_unlock=" + "0" * 64)
    assert status == 303


async def test_the_flet_websocket_needs_the_cookie(server):
    with pytest.raises((InvalidStatus, WebSocketException, OSError)):
        async with connect(f"ws://127.0.0.1:{server}/ws") as ws:
            await ws.recv()
    _, headers, _ = unlock(server, SECRET)
    cookie = headers["set-cookie"].split(";")[0]
    async with connect(
        f"ws://127.0.0.1:{server}/ws", additional_headers={"Cookie": cookie}
    ) as ws:
        assert ws.protocol.state.name == "OPEN"


def test_guessing_is_limited_and_redirects_stay_local(server):
    for _ in range(5):
        assert unlock(server, "nope")[0] == 401
    status, headers, page = unlock(server, SECRET)
    assert status == 429 and "Too many wrong passphrases" in page
    assert int(headers["retry-after"]) >= 1
    status, _, page = request(server, "GET", "/unlock?next=//evil.example/")
    assert 'value="/"' in page and "evil" not in page


OPEN_REDIRECTS = [
    "//evil.example/", "/%5Cevil.example", "/%5cevil.example", "/\\evil.example",
    "/\tevil.example", "/\t/evil.example", "/%09/evil.example", "/%2F/evil.example",
    "/%2f%2fevil.example", "/%255Cevil.example", "/%25255Cevil.example", "https://evil.example",
    "/ /evil.example", "/\r\n/evil.example", "\\evil.example", "/app//evil.example",
]


def test_no_open_redirect_after_the_right_passphrase(server):
    for target in OPEN_REDIRECTS:
        status, headers, _ = unlock(server, SECRET, target)
        assert (status, headers["location"]) == (303, "/"), target
        query = urllib.parse.quote(target, safe="")
        _, _, page = request(server, "GET", "/unlock?next=" + query)
        assert 'name="next" value="/"' in page, target
    for target in ["/", "/app/", "/app/index.html", "/a-b_c.d~e/f"]:
        status, headers, _ = unlock(server, SECRET, target)
        assert (status, headers["location"]) == (303, target)


def test_a_flood_of_guesses_is_shed_and_pages_still_load(server):
    """300 guesses from 60 loopback addresses at once: the excess is refused at once (503/429)."""

    def one(i: int):
        conn = http.client.HTTPConnection(
            "127.0.0.1", server, timeout=60, source_address=(f"127.0.1.{i % 60 + 1}", 0)
        )
        form = urllib.parse.urlencode({"passphrase": f"guess {i}", "next": "/"})
        conn.request("POST", "/unlock", body=form,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status

    with ThreadPoolExecutor(60) as pool:
        flood = [pool.submit(one, i) for i in range(300)]
        status, _, page = request(server, "GET", "/unlock")
        assert status == 200 and "Passphrase" in page
        statuses = Counter(f.result() for f in flood)
    assert set(statuses) <= {401, 429, 503}, statuses
    assert statuses[503] > 0, f"nothing was shed: {statuses}"
    # And the right passphrase still gets in from an address that did not guess.
    assert unlock(server, SECRET)[0] == 303


async def test_browser_asks_for_the_passphrase_before_the_chat(tmp_path, browser):
    with host_mode_server(tmp_path / "host", "--no-lan", "--passphrase", SECRET) as (url, _):
        page = await (await browser.new_context()).new_page()
        await page.goto(url, timeout=scaled_ms(30_000))
        await expect(page).to_have_url(re.compile(r"/unlock"))
        await page.get_by_label("Passphrase").fill("wrong")
        await page.get_by_role("button", name="Enter chat").click()
        await expect(page.get_by_role("alert")).to_have_text("Wrong passphrase.")
        await page.get_by_label("Passphrase").fill(SECRET)
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(url)
        placeholder = page.locator("flt-semantics-placeholder")
        await placeholder.wait_for(state="attached", timeout=scaled_ms(60_000))
        await placeholder.dispatch_event("click")
        chat = ChatPage(page)
        await page.get_by_label("Enter your name to join the chat").wait_for(
            timeout=scaled_ms(30_000)
        )
        await chat.join("Quinn")
        await chat.send("behind the passphrase")
        await expect(chat.message("Quinn", "behind the passphrase")).to_be_visible(
            timeout=scaled_ms(15_000)
        )
