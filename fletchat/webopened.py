"""Host mode: a browser tab's links to the opened copies of a private room's files.

A sealed file is stored as ciphertext (``blobs/``) and, on a device that has the room's key, as
an opened copy (``files/opened/<sealed sha256>``, ``files/sealed_files``). ``BlobRoute`` serves
blobs by hash, which every peer of the mesh knows; an opened copy must reach only a tab whose
session holds the key. So a tab never names one: when its session shows an opened file (the
backend gave it the opened path, which it does only with the key), it asks ``OpenedLinks.link``
for a random token bound to that session, and ``GET /files/opened/<token>`` serves exactly that
path (it must resolve inside the opened folder), with ``BlobRoute``'s headers and type rules.
Tokens expire after ``LINK_SECONDS`` and go with their session (``release_owner``); a session
holds at most ``MAX_LINKS_PER_OWNER`` (its oldest go first) and the host ``MAX_LINKS`` (then the
oldest of the session holding the most go, so many busy sessions cannot push out a bystander's).
Behind the passphrase gate like every route.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .webfiles import stored_response
from .webpaths import OPENED_PATH, OPENED_TOKEN, opened_url

LINK_SECONDS = 60 * 60  # a tab shown an opened file can load it for an hour (then redraw)
MAX_LINKS_PER_OWNER = 256  # a session's opened files on screen
MAX_LINKS = 8192  # on the host, all sessions


@dataclass(frozen=True)
class _Link:
    owner: str
    path: Path
    expires: float


class OpenedLinks:
    def __init__(self, root: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = Path(root).resolve()
        self._roots = {self.root, Path(os.path.abspath(root))}  # (no file system call per link)
        self.clock = clock
        self._links: OrderedDict[str, _Link] = OrderedDict()  # soonest to expire first
        self._by_key: dict[tuple[str, Path], str] = {}
        self._held: Counter[str] = Counter()  # links per owner

    def link(self, owner: str, path: Path, name: str = "", download: bool = False) -> str:
        """The URL (relative to the host) a tab of session ``owner`` loads ``path`` from;
        ``ValueError`` if ``path`` is not an opened file of this host."""
        real = Path(os.path.abspath(path))  # the files' own paths (a digest under the root)
        if real.parent not in self._roots or real.name in ("", ".", ".."):
            raise ValueError(f"{path} is not an opened file")
        self._sweep()
        token = self._by_key.get((owner, real))
        if token is None:
            if self._held[owner] >= MAX_LINKS_PER_OWNER:
                self._drop(self._oldest_of(owner))
            while len(self._links) >= MAX_LINKS:  # from whoever holds the most: not a bystander
                self._drop(self._oldest_of(self._held.most_common(1)[0][0]))
            token = secrets.token_urlsafe(32)
            self._by_key[(owner, real)] = token
            self._held[owner] += 1
        self._links[token] = _Link(owner, real, self.clock() + LINK_SECONDS)
        self._links.move_to_end(token)
        return opened_url(token, name, download)

    def _oldest_of(self, owner: str) -> str:
        return next(t for t, link in self._links.items() if link.owner == owner)

    def release_owner(self, owner: str) -> None:
        for token in [t for t, link in self._links.items() if link.owner == owner]:
            self._drop(token)

    def __len__(self) -> int:
        return len(self._links)

    def _drop(self, token: str) -> None:
        link = self._links.pop(token, None)
        if link is not None:
            self._by_key.pop((link.owner, link.path), None)
            self._held[link.owner] -= 1
            if self._held[link.owner] <= 0:
                del self._held[link.owner]

    def _sweep(self) -> None:
        """Drop expired links: each use moves its link to the end with a new expiry, so the
        expired ones are at the front (stop at the first that is not)."""
        now = self.clock()
        while self._links:
            token, link = next(iter(self._links.items()))
            if link.expires > now:
                return
            self._drop(token)

    async def serve(self, request: Request) -> Response:
        token = request.path_params.get("token", "")
        link = self._links.get(token) if OPENED_TOKEN.fullmatch(token) else None
        if link is None or link.expires <= self.clock():
            return PlainTextResponse("unknown or expired link: reopen the chat", 404)
        if not await asyncio.to_thread(link.path.is_file):
            return PlainTextResponse("this host no longer keeps that file", 404)
        response = await stored_response(request, link.path, "file")
        response.headers["Cache-Control"] = "no-store"  # a room's plaintext: not kept by the browser
        return response

    def route(self) -> Route:
        return Route(OPENED_PATH + "/{token}", self.serve, methods=["GET", "HEAD"],
                     name="files-opened")
