"""A passphrase in front of host mode: browser users type it before the chat opens.

An ASGI middleware around the whole host-mode app (Flet's pages and WebSocket, the static build, the
relay). Everything but the unlock form is refused without a valid cookie.

- **scrypt never runs on the event loop.** A guess is checked on one worker thread (a global bound on
  CPU spent guessing), at most ``MAX_PENDING`` checks wait at once and one per client address; any
  guess beyond that is answered at once with 503/429, so a flood of guesses slows neither pages nor
  the LAN mesh on the same loop.
- **Per-address backoff, never a lock-out.** The first ``FREE_FAILURES`` wrong answers from an
  address cost nothing; each further one makes that address wait ``BASE_DELAY * 2**k`` seconds (at
  most ``MAX_DELAY``) before its next guess is even checked. Guesses during the wait are refused
  without counting, so the right passphrase always gets in at most ``MAX_DELAY`` after the last wrong
  one. A success clears the address; an address quiet for ``FORGET_AFTER`` is forgotten.
- **Per-browser cookies.** A right answer earns a token ``v2.<issued>.<random id>.<HMAC>`` under a key
  derived (scrypt) from the passphrase and a salt kept in the data dir: it expires after
  ``COOKIE_MAX_AGE``, survives restarts, and every cookie is revoked by changing the passphrase (or
  deleting the salt file).
- **No open redirect.** ``next`` must decode to a plain same-origin path (see ``safe_next``).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import math
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from .aio import Lane

UNLOCK_PATH = "/unlock"
COOKIE = "fletchat_unlock"
MAX_FORM_BYTES = 4096
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # about 16 MiB and tens of ms: hard to brute-force
CHECK_THREADS = 1  # scrypt runs on this many threads at most (the loop keeps the other core)
MAX_PENDING = 8  # guesses being checked or waiting for the thread; more get 503 at once
FREE_FAILURES = 5  # wrong answers per address before any delay
BASE_DELAY = 1.0  # seconds to wait after the first wrong answer past the free ones ...
MAX_DELAY = 60.0  # ... doubling per wrong answer up to this
FORGET_AFTER = 900.0  # an address with no wrong answer for this long starts afresh
MAX_TRACKED = 4096  # addresses remembered at once (the oldest quiet one goes first)
COOKIE_MAX_AGE = 30 * 24 * 3600  # seconds a browser stays unlocked
CLOCK_SLACK = 300  # a cookie issued this far in the future is still accepted (clock steps)
TOKEN_VERSION = "v2"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def stretch(passphrase: str, salt: bytes) -> bytes:
    """scrypt: the slow step every guess pays."""
    return hashlib.scrypt(passphrase.encode("utf-8"), salt=salt, dklen=32, **SCRYPT)


def _label(master: bytes, label: bytes) -> bytes:
    return hmac.new(master, label, hashlib.sha256).digest()


class Tokens:
    """Signs and checks cookie tokens; the key comes from the passphrase, so changing it revokes all."""

    def __init__(self, master: bytes, wall: Callable[[], float] = time.time) -> None:
        self._key = _label(master, b"fletchat host cookie v2")
        self._wall = wall

    def issue(self) -> str:
        body = f"{TOKEN_VERSION}.{int(self._wall())}.{secrets.token_hex(16)}"
        return f"{body}.{self._mac(body)}"

    def valid(self, token: str) -> bool:
        body, _, mac = token.rpartition(".")
        parts = body.split(".")
        if len(parts) != 3 or parts[0] != TOKEN_VERSION or not parts[1].isdigit():
            return False
        if not hmac.compare_digest(mac, self._mac(body)):
            return False
        age = self._wall() - int(parts[1])
        return -CLOCK_SLACK <= age < COOKIE_MAX_AGE

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode("ascii", "replace"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class _Record:
    failures: int
    last: float  # monotonic time of the last wrong answer
    wait_until: float


class Backoff:
    """Per-address wrong-answer memory (sans-I/O: time is passed in)."""

    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}

    def wait(self, address: str, now: float) -> float:
        """Seconds this address must still wait before a guess is checked (0: go ahead)."""
        record = self._records.get(address)
        if record is None:
            return 0.0
        if now - record.last >= FORGET_AFTER:
            del self._records[address]
            return 0.0
        return max(0.0, record.wait_until - now)

    def failed(self, address: str, now: float) -> None:
        old = self._records.pop(address, None)
        failures = (old.failures if old and now - old.last < FORGET_AFTER else 0) + 1
        delay = 0.0
        if failures >= FREE_FAILURES:
            delay = min(BASE_DELAY * 2 ** (failures - FREE_FAILURES), MAX_DELAY)
        while len(self._records) >= MAX_TRACKED:  # dicts keep order: the first is the oldest
            del self._records[next(iter(self._records))]
        self._records[address] = _Record(failures, now, now + delay)

    def succeeded(self, address: str) -> None:
        self._records.pop(address, None)


_SAFE_PATH = re.compile(r"/(?:[A-Za-z0-9._~-][A-Za-z0-9._~/-]*)?")


def safe_next(raw: str) -> str:
    """Only a plain same-origin path: ``/`` then a safe character, decoded fully; else ``/``.

    Browsers read ``//host``, ``/\\host``, ``/%5Chost`` or ``/\\t/host`` as another site, so a
    backslash, a control character, ``//`` or anything left encoded after decoding is refused.
    """
    path = raw
    for _ in range(3):  # %255C -> %5C -> \\ : decode until nothing changes
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    else:
        return "/"
    if len(path) > 512 or "//" in path or not _SAFE_PATH.fullmatch(path):
        return "/"
    return path


def unlock_page(error: str = "", next_path: str = "/") -> bytes:
    """A small, accessible form (no script, works on any phone browser)."""
    err = f'<p role="alert" class="err">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Flet Chat - passphrase</title>
<style>
body{{font-family:system-ui,sans-serif;display:flex;min-height:100vh;margin:0;
align-items:center;justify-content:center;background:#f4f6fb}}
form{{background:#fff;padding:2rem;border-radius:12px;box-shadow:0 2px 12px #0002;width:min(22rem,90vw)}}
h1{{font-size:1.4rem;margin-top:0}} label{{display:block;margin:.8rem 0 .3rem}}
input{{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem}}
button{{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem;background:#2563eb;color:#fff;
border:0;border-radius:6px}} .err{{color:#b91c1c}}
</style></head><body>
<form method="post" action="{UNLOCK_PATH}">
<h1>Flet Chat</h1>
<p>This chat is private. Ask the person who runs it for the passphrase.</p>
{err}
<label for="passphrase">Passphrase</label>
<input id="passphrase" name="passphrase" type="password" autofocus required
 autocomplete="current-password">
<input type="hidden" name="next" value="{html.escape(safe_next(next_path))}">
<button type="submit">Enter chat</button>
</form></body></html>""".encode()


class PassphraseGate:
    """ASGI middleware: no cookie, no chat."""

    def __init__(self, app: Callable[..., Awaitable[None]], passphrase: str,
                 salt: bytes | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        if not passphrase:
            raise ValueError("an empty passphrase protects nothing")
        self.app = app
        self._salt = salt or os.urandom(16)
        master = stretch(passphrase, self._salt)  # once, at start, before serving
        self._verifier = _label(master, b"fletchat host verify v2")
        self._tokens = Tokens(master, wall)
        self._backoff = Backoff()
        self._clock = clock
        self._lane = Lane(CHECK_THREADS, "gate-scrypt")
        self._pending: set[str] = set()  # addresses with a guess being checked

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        if scope["path"] == UNLOCK_PATH and kind == "http":
            await self._unlock(scope, receive, send)
            return
        if self._has_cookie(scope):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "passphrase required"})
            return
        target = quote(safe_next(scope["path"] or "/"), safe="/")
        await _respond(send, 303, b"", [(b"location", f"{UNLOCK_PATH}?next={target}".encode())])

    def _has_cookie(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name != b"cookie":
                continue
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                if key == COOKIE and self._tokens.valid(val):
                    return True
        return False

    async def _check(self, guess: str) -> bool:
        """scrypt on the gate's thread; the loop only waits for the answer."""
        key = await self._lane.run(stretch, guess, self._salt)
        return hmac.compare_digest(_label(key, b"fletchat host verify v2"), self._verifier)

    async def _unlock(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if scope["method"] != "POST":
            page = unlock_page(next_path=_next_of(query))
            await _respond(send, 200, page, _HTML)
            return
        body = await _read_body(receive, MAX_FORM_BYTES)
        if body is None:
            await _respond(send, 413, unlock_page("That was too long."), _HTML)
            return
        form = parse_qs(body.decode("utf-8", "replace"))
        next_path = _next_of(form)
        client = (scope.get("client") or ("?", 0))[0]
        wait = self._backoff.wait(client, self._clock())
        if wait > 0 or client in self._pending:
            seconds = max(1, math.ceil(wait))
            await _busy(send, 429, f"Too many wrong passphrases. Wait {seconds} s.",
                        next_path, seconds)
            return
        if len(self._pending) >= MAX_PENDING:
            await _busy(send, 503, "The host is busy. Try again in a moment.", next_path, 1)
            return
        self._pending.add(client)
        try:
            right = await self._check((form.get("passphrase") or [""])[0])
        finally:
            self._pending.discard(client)
        if not right:
            self._backoff.failed(client, self._clock())
            await _respond(send, 401, unlock_page("Wrong passphrase.", next_path), _HTML)
            return
        self._backoff.succeeded(client)
        cookie = (f"{COOKIE}={self._tokens.issue()}; Path=/; Max-Age={COOKIE_MAX_AGE}; "
                  "HttpOnly; SameSite=Strict")
        await _respond(send, 303, b"", [(b"location", quote(next_path, safe="/").encode()),
                                         (b"set-cookie", cookie.encode())])


_HTML = [(b"content-type", b"text/html; charset=utf-8")]


def _next_of(params: dict[str, list[str]]) -> str:
    return safe_next((params.get("next") or ["/"])[0])


async def _busy(send: Send, status: int, text: str, next_path: str, retry_after: int) -> None:
    headers = [*_HTML, (b"retry-after", str(retry_after).encode())]
    await _respond(send, status, unlock_page(text, next_path), headers)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if len(body) > limit:
            return None
        if not event.get("more_body"):
            return body


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})
