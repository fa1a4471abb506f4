"""The passphrase gate driven in-process through ASGI: threads, bounds, backoff and cookies."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import urllib.parse

import pytest

from fletchat import gate
from fletchat.gate import (
    COOKIE,
    COOKIE_MAX_AGE,
    FREE_FAILURES,
    MAX_DELAY,
    MAX_PENDING,
    PassphraseGate,
    safe_next,
)
from tests.timing import eventually

SECRET = "correct horse battery staple"


class Clock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


async def app_ok(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"chat"})


async def call(g: PassphraseGate, method: str, path: str, body: str = "", cookie: str = "",
               client: str = "10.0.0.1"):
    """One HTTP request through the gate; returns (status, headers)."""
    path, _, query = path.partition("?")
    headers = [(b"cookie", cookie.encode())] if cookie else []
    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(),
             "headers": headers, "client": (client, 4000)}
    sent: list[dict] = []
    chunks = [{"type": "http.request", "body": body.encode(), "more_body": False}]

    async def receive():
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(event):
        sent.append(event)

    await g(scope, receive, send)
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


async def guess(g, words: str, client: str = "10.0.0.1", next_path: str = "/"):
    form = urllib.parse.urlencode({"passphrase": words, "next": next_path})
    return await call(g, "POST", "/unlock", form, client=client)


def cookie_of(headers: dict[str, str]) -> str:
    return headers["set-cookie"].split(";")[0]


async def test_scrypt_runs_off_the_event_loop(monkeypatch):
    g = PassphraseGate(app_ok, SECRET)
    real = hashlib.scrypt
    threads: list[int] = []

    def spy(*args, **kwargs):
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", spy)
    assert (await guess(g, "wrong"))[0] == 401
    assert (await guess(g, SECRET, client="10.0.0.2"))[0] == 303
    assert len(threads) == 2 and threading.get_ident() not in threads


async def test_guesses_beyond_the_bound_are_refused_at_once(monkeypatch):
    g = PassphraseGate(app_ok, SECRET)
    release = threading.Event()
    started: list[int] = []
    real = hashlib.scrypt

    def slow(*args, **kwargs):
        started.append(1)
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", slow)
    waiting = [asyncio.create_task(guess(g, "wrong", client=f"10.0.1.{i}"))
               for i in range(MAX_PENDING)]
    await eventually(lambda: started, "the first guess reaches the scrypt thread")
    # The thread is busy and the queue is full: everyone else is told at once, nothing waits.
    for i in range(20):
        status, headers = await guess(g, "wrong", client=f"10.0.2.{i}")
        assert status == 503 and headers["retry-after"] == "1"
    # A second guess from an address whose first is still being checked: 429, not queued.
    assert (await guess(g, "wrong", client="10.0.1.0"))[0] == 429
    # Pages are served meanwhile.
    assert (await call(g, "GET", "/unlock"))[0] == 200
    assert not any(t.done() for t in waiting)
    release.set()
    assert [(await t)[0] for t in waiting] == [401] * MAX_PENDING
    assert len(started) == MAX_PENDING


async def test_the_right_passphrase_gets_in_after_a_short_wait():
    clock = Clock()
    g = PassphraseGate(app_ok, SECRET, clock=clock)
    for _ in range(FREE_FAILURES):
        assert (await guess(g, "nope"))[0] == 401
    status, headers = await guess(g, SECRET)
    assert status == 429 and headers["retry-after"] == "1"
    clock.now += 1.5
    assert (await guess(g, SECRET))[0] == 303


async def test_hammering_during_the_wait_does_not_extend_it():
    clock = Clock()
    g = PassphraseGate(app_ok, SECRET, clock=clock)
    for _ in range(FREE_FAILURES + 20):  # the delay doubles up to its cap
        clock.now += MAX_DELAY
        assert (await guess(g, "nope"))[0] == 401
    for _ in range(100):
        clock.now += 0.5
        assert (await guess(g, "nope"))[0] == 429
    clock.now += MAX_DELAY - 50 + 0.1
    assert (await guess(g, SECRET))[0] == 303
    # Other addresses were never delayed by it.
    assert (await guess(g, SECRET, client="10.0.0.9"))[0] == 303


async def test_each_browser_gets_its_own_cookie_that_expires():
    wall = Clock(1_700_000_000.0)
    g = PassphraseGate(app_ok, SECRET, wall=wall)
    _, first = await guess(g, SECRET)
    _, second = await guess(g, SECRET, client="10.0.0.2")
    a, b = cookie_of(first), cookie_of(second)
    assert a != b and a.startswith(COOKIE + "=")
    assert f"Max-Age={COOKIE_MAX_AGE}" in first["set-cookie"]
    assert "HttpOnly" in first["set-cookie"] and "SameSite=Strict" in first["set-cookie"]
    assert (await call(g, "GET", "/", cookie=a))[0] == 200
    wall.now += COOKIE_MAX_AGE - 60
    assert (await call(g, "GET", "/", cookie=b))[0] == 200
    wall.now += 120
    status, headers = await call(g, "GET", "/", cookie=a)
    assert status == 303 and headers["location"].startswith("/unlock")


async def test_tampered_cookies_are_refused():
    g = PassphraseGate(app_ok, SECRET)
    token = cookie_of((await guess(g, SECRET))[1]).split("=", 1)[1]
    version, issued, rid, mac = token.split(".")
    forged = [
        f"{version}.{int(issued) + 10**6}.{rid}.{mac}",  # later issue time, same MAC
        f"{version}.{issued}.{'0' * 32}.{mac}",
        f"v1.{issued}.{rid}.{mac}",
        f"{version}.{issued}.{rid}.{'0' * 64}",
        "0" * 64, "", token + ".x",
    ]
    for value in forged:
        assert (await call(g, "GET", "/", cookie=f"{COOKIE}={value}"))[0] == 303, value


async def test_cookies_survive_a_restart_and_die_with_a_new_passphrase():
    salt = b"s" * 16
    g = PassphraseGate(app_ok, SECRET, salt=salt)
    cookie = cookie_of((await guess(g, SECRET))[1])
    again = PassphraseGate(app_ok, SECRET, salt=salt)
    assert (await call(again, "GET", "/", cookie=cookie))[0] == 200
    changed = PassphraseGate(app_ok, SECRET + " 2", salt=salt)
    assert (await call(changed, "GET", "/", cookie=cookie))[0] == 303


async def test_websockets_without_a_cookie_are_closed():
    g = PassphraseGate(app_ok, SECRET)
    sent = []

    async def send(event):
        sent.append(event)

    scope = {"type": "websocket", "path": "/ws", "headers": [], "client": ("10.0.0.1", 1)}
    await g(scope, None, send)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "passphrase required"}]


@pytest.mark.parametrize(("raw", "expected"), [
    ("/", "/"), ("/app/", "/app/"), ("/app/index.html", "/app/index.html"),
    ("//evil", "/"), ("/%5Cevil", "/"), ("/\\evil", "/"), ("/\t/evil", "/"), ("/%09/evil", "/"),
    ("/%2F%2Fevil", "/"), ("/%255Cevil", "/"), ("/%2525255Cevil", "/"), ("http://evil", "/"),
    ("evil", "/"), ("", "/"), ("/\u2215evil", "/"), ("/a" * 300, "/"),
])
def test_safe_next(raw, expected):
    assert safe_next(raw) == expected


def test_backoff_forgets_and_is_bounded(monkeypatch):
    monkeypatch.setattr(gate, "MAX_TRACKED", 3)
    b = gate.Backoff()
    for i in range(10):
        b.failed(f"a{i}", 0.0)
    assert len(b._records) == 3
    for _ in range(FREE_FAILURES):
        b.failed("x", 0.0)
    assert b.wait("x", 0.0) == 1.0
    assert b.wait("x", gate.FORGET_AFTER) == 0.0
