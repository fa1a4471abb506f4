"""Bounds on host mode's Flet sessions: how long a closed tab is kept, and how many per address.

Every browser tab on host mode is a Flet session holding a whole chat view (a ``HubSession`` and
its controls). flet-web keeps a session whose WebSocket closed for ``session_timeout_seconds``
(default 3600) so a tab that reconnects finds its page again; a tab that is gone for good is held
that long too. Host mode keeps it ``SessionLimits.grace`` seconds instead (a network blip or a
locked phone screen; after that, a returning tab starts a new session), and flet-web's eviction
task (every 10 s) releases it.

Sessions per client address are bounded at the server: ``SessionGate`` counts the Flet WebSocket
connections of each address that are open, plus those closed less than ``grace`` ago (their
sessions are still held), and refuses a new one beyond ``per_address`` (or ``total``) before Flet
creates a session. One device cannot fill the host with throw-away sessions; other addresses are
not affected.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

FLET_WS_PATH = "/ws"  # Flet's page at "/" talks over "/ws"
CLOSE_TRY_AGAIN = 1013
CLOSE_POLICY = 1008
# A Flet client registers once per WebSocket; flet-web makes a new session for every
# registration, and only the socket's last one is ever released: more close the socket.
MAX_REGISTRATIONS_PER_SOCKET = 1
_REGISTER_CLIENT = 1  # flet's MessageAction.REGISTER_CLIENT

Scope = MutableMapping[str, Any]
ASGIApp = Callable[..., Awaitable[None]]


def _env_grace(default: int) -> int:
    """flet-web lets ``FLET_SESSION_TIMEOUT`` override the grace: count with the same number."""
    value = os.environ.get("FLET_SESSION_TIMEOUT", "")
    return int(value) if value.isdigit() else default


@dataclass(frozen=True)
class SessionLimits:
    grace: int = field(default_factory=lambda: _env_grace(60))  # seconds a closed tab is kept
    per_address: int = 16  # sessions open or held per client address
    total: int = 1000  # sessions open or held on the host


def flet_sessions() -> dict:
    """The sessions flet-web holds now, by id (open tabs, and closed ones until its eviction
    task, every 10 s, releases them after the grace): its app manager's registry (flet-web
    1.0.5), read in this one place."""
    import flet_web.fastapi as flet_fastapi

    return getattr(flet_fastapi.app_manager, "_FletAppManager__sessions", {})


def flet_sessions_held() -> int:
    return len(flet_sessions())


class SessionBook:
    """Who holds how many sessions (sans-I/O: time is passed in)."""

    def __init__(self, limits: SessionLimits) -> None:
        self.limits = limits
        self._open: dict[str, int] = {}
        self._held: dict[str, deque[float]] = {}  # release times of closed connections
        self._count = 0

    def _prune(self, address: str, now: float) -> None:
        held = self._held.get(address)
        while held and held[0] <= now:
            held.popleft()
            self._count -= 1
        if held is not None and not held:
            del self._held[address]

    def count(self, address: str, now: float) -> int:
        self._prune(address, now)
        return self._open.get(address, 0) + len(self._held.get(address, ()))

    def total(self, now: float) -> int:
        for address in list(self._held):
            self._prune(address, now)
        return self._count

    def admit(self, address: str, now: float) -> bool:
        if self.count(address, now) >= self.limits.per_address:
            return False
        if self._count >= self.limits.total and self.total(now) >= self.limits.total:
            return False
        self._open[address] = self._open.get(address, 0) + 1
        self._count += 1
        return True

    def closed(self, address: str, now: float) -> None:
        left = self._open.get(address, 0) - 1
        if left > 0:
            self._open[address] = left
        else:
            self._open.pop(address, None)
        self._held.setdefault(address, deque()).append(now + self.limits.grace)


class SessionGate:
    """ASGI wrapper around Flet's app: Flet WebSockets beyond the bounds are refused (1013)."""

    def __init__(self, app: ASGIApp, limits: SessionLimits,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.book = SessionBook(limits)
        self._clock = clock

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "websocket" or not scope["path"].endswith(FLET_WS_PATH):
            await self.app(scope, receive, send)
            return
        address = (scope.get("client") or ("?", 0))[0]
        if not self.book.admit(address, self._clock()):
            await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN,
                        "reason": "too many sessions from this address"})
            return
        registrations = 0

        async def counted() -> dict:
            """``receive``, closing the socket at a registration too many (a script sending
            ``REGISTER_CLIENT`` again and again on one socket made a session each time, never
            released, past every bound above)."""
            nonlocal registrations
            event = await receive()
            if event.get("type") == "websocket.receive" and _registers(event.get("bytes")):
                registrations += 1
                if registrations > MAX_REGISTRATIONS_PER_SOCKET:
                    await send({"type": "websocket.close", "code": CLOSE_POLICY,
                                "reason": "one session per connection"})
                    return {"type": "websocket.disconnect", "code": CLOSE_POLICY}
            return event

        try:
            await self.app(scope, counted, send)
        finally:
            self.book.closed(address, self._clock())


def _registers(data: bytes | None) -> bool:
    """Whether a Flet frame (``[0x00][msgpack [action, body]]``) is a registration, read from
    its first bytes only: an array header (at most 5 bytes) and the action, an integer (at most
    9), however it is encoded (flet takes ``1``, ``True`` and ``1.0`` alike)."""
    if not data or data[0] != 0:
        return False
    import msgpack

    unpacker = msgpack.Unpacker()
    unpacker.feed(bytes(data[1:17]))
    try:
        unpacker.read_array_header()
        action = unpacker.unpack()
    except (ValueError, msgpack.UnpackException):  # not an array, or cut short: flet refuses it
        return False
    return isinstance(action, (int, float)) and action == _REGISTER_CLIENT
