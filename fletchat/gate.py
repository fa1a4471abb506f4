"""A passphrase in front of host mode: browser users type it before the chat opens.

An ASGI middleware around the whole host-mode app (Flet's pages and WebSocket, the static build, the
relay). The passphrase is stretched with scrypt (memory-hard) once at start; a right answer earns an
HttpOnly, SameSite=Strict cookie holding an HMAC token that only this process can make. Everything
else — pages, the Flet WebSocket, the relay — is refused without it. Wrong answers are limited per
client address, so guessing over the LAN is slow.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, quote, unquote

UNLOCK_PATH = "/unlock"
COOKIE = "fletchat_unlock"
MAX_FORM_BYTES = 4096
MAX_FAILURES = 5  # wrong answers per client address ...
FAILURE_WINDOW = 60.0  # ... per this many seconds
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # about 16 MiB and a few tens of ms: hard to brute-force

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def derive_token(passphrase: str, salt: bytes) -> str:
    """The cookie value: HMAC of a fixed label under the scrypt-stretched passphrase."""
    key = hashlib.scrypt(passphrase.encode("utf-8"), salt=salt, dklen=32, **SCRYPT)
    return hmac.new(key, b"fletchat host unlock v1", hashlib.sha256).hexdigest()


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
<input type="hidden" name="next" value="{html.escape(next_path)}">
<button type="submit">Enter chat</button>
</form></body></html>""".encode()


class PassphraseGate:
    """ASGI middleware: no cookie, no chat."""

    def __init__(self, app: Callable[..., Awaitable[None]], passphrase: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not passphrase:
            raise ValueError("an empty passphrase protects nothing")
        self.app = app
        self._salt = os.urandom(16)  # per process: a restart asks everyone again
        self._token = derive_token(passphrase, self._salt)
        self._passphrase_check = lambda guess: hmac.compare_digest(
            derive_token(guess, self._salt), self._token
        )
        self._failures: dict[str, list[float]] = {}
        self._clock = clock

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
        target = quote(scope["path"] or "/", safe="/")
        await _respond(send, 303, b"", [(b"location", f"{UNLOCK_PATH}?next={target}".encode())])

    def _has_cookie(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name != b"cookie":
                continue
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                if key == COOKIE and hmac.compare_digest(val, self._token):
                    return True
        return False

    async def _unlock(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if scope["method"] != "POST":
            await _respond(send, 200, unlock_page(next_path=_safe_next(query)), _HTML)
            return
        body = await _read_body(receive, MAX_FORM_BYTES)
        if body is None:
            await _respond(send, 413, unlock_page("That was too long."), _HTML)
            return
        form = parse_qs(body.decode("utf-8", "replace"))
        next_path = _safe_next(form)
        client = (scope.get("client") or ("?", 0))[0]
        now = self._clock()
        recent = [t for t in self._failures.get(client, []) if now - t < FAILURE_WINDOW]
        if len(recent) >= MAX_FAILURES:
            self._failures[client] = recent
            await _respond(
                send, 429, unlock_page("Too many wrong passphrases. Wait a minute.", next_path),
                _HTML,
            )
            return
        guess = (form.get("passphrase") or [""])[0]
        if not self._passphrase_check(guess):
            recent.append(now)
            self._failures[client] = recent
            await _respond(send, 401, unlock_page("Wrong passphrase.", next_path), _HTML)
            return
        self._failures.pop(client, None)
        cookie = f"{COOKIE}={self._token}; Path=/; HttpOnly; SameSite=Strict"
        await _respond(send, 303, b"", [(b"location", next_path.encode()),
                                         (b"set-cookie", cookie.encode())])


_HTML = [(b"content-type", b"text/html; charset=utf-8")]


def _safe_next(params: dict[str, list[str]]) -> str:
    """Only a local path: never redirect to another site."""
    raw = unquote((params.get("next") or ["/"])[0])
    return raw if raw.startswith("/") and not raw.startswith("//") else "/"


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
