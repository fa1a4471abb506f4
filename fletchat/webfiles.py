"""Host mode's HTTP side of files: browser uploads in, stored files out.

**Uploads** (``PUT /files/upload/<ticket>``). A browser tab cannot hand the host a path: Flet's
``FilePicker.upload`` (and the audio recorder's streaming upload) PUT the bytes to a URL. The
session asks ``UploadTickets.issue`` for a ticket first: a random, single-use token bound to the
session that asked, a directory named by the token under ``<data>/uploads`` and a file name made by
``upload_name`` (the client's name is a display hint, never a path). The route streams the body
to ``<token>/<name>.part`` counting bytes itself (a ``Content-Length`` is only an early "no"),
refuses more than ``MAX_UPLOAD_BYTES`` (the partial file is deleted), renames it into place and
wakes the session waiting in ``UploadTickets.wait``; then the session calls
``ChatBackend.share_files`` with that path and ``release`` removes the directory. Tickets expire
after ``TICKET_SECONDS``; at most ``MAX_TICKETS`` are open on the host, ``MAX_TICKETS_PER_OWNER``
per session and ``MAX_TICKETS_PER_ADDRESS`` per client address (one device with many throw-away
tabs cannot take every slot); the directory is emptied at start (a crash's leftovers). The disk is
guarded as the bytes arrive: all uploads in progress together hold at most
``MAX_BYTES_IN_FLIGHT``, and an upload stops (507, partial file deleted) before the file system's
free space would fall under ``MIN_FREE_BYTES`` — the history database must never hit a full disk
because of files in transit.

**Downloads** (``GET /files/blob/<sha256>?name=N[&dl=1]``). A stored, verified file by its hash:
the hash must be 64 lowercase hex digits, the path comes from the blob store's resolver and must
resolve inside its root (a symlink or a bug cannot make the route read elsewhere). The type is
sniffed from the first bytes: PNG, JPEG, GIF, WebP, BMP and common audio containers are served
inline (``<img>``, the audio player), everything else as ``application/octet-stream`` attachment,
always with ``nosniff`` and a sandboxing CSP, so a shared HTML or SVG file can never run script on
the host's origin. ``Content-Disposition`` carries ``manifest.export_name`` of the given name.

Both routes sit behind the passphrase gate when the host has one (``gate.PassphraseGate`` wraps the
whole app), so only a browser that unlocked the host reaches them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import shutil
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .aio import within
from .files import limits as L
from .files.manifest import export_name, validate_file_name
from .model import JOINERS, ValidationError
from .webpace import PacedFileResponse
from .webpaths import BLOB_PATH, UPLOAD_PATH, upload_url

log = logging.getLogger("fletchat.webfiles")

UPLOAD_DIR = "uploads"  # under the data dir
MAX_UPLOAD_BYTES = 1 * L.GIB  # one file from a browser (the app itself shares up to MAX_FILE_BYTES)
MAX_TICKETS = 64  # uploads open on the host at once
MAX_TICKETS_PER_OWNER = L.MAX_FILES_PER_MESSAGE  # per session: one message's worth
MAX_TICKETS_PER_ADDRESS = 16  # per client address, over all its sessions
MAX_BYTES_IN_FLIGHT = L.UPLOADS_IN_FLIGHT_BYTES  # all uploads being received at once
MIN_FREE_BYTES = L.UPLOAD_MIN_FREE_BYTES  # what an upload may never take from the file system
TICKET_SECONDS = 15 * 60  # an unused or unfinished ticket is dropped after this
UPLOAD_STALL_SECONDS = 30.0  # a body that sends nothing for this long is dropped
MAX_UPLOAD_NAME_CHARS = 120
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DROP_CATEGORIES = ("Cc", "Cf", "Zl", "Zp", "Cs", "Co")
_WRITE_BLOCK = 1 * L.MIB


def upload_name(raw: object, fallback: str = "file") -> str:
    """A safe single path component from a client's file name: its last component (``/`` or
    ``\\``), NFC, no control/format characters (bidi overrides), no characters Windows forbids, no
    device names, at most 120 characters keeping the extension; ``fallback`` when nothing is left.
    The result also passes ``manifest.validate_file_name`` (it becomes the file's display name)."""
    text = unicodedata.normalize("NFC", raw if isinstance(raw, str) else "")
    text = re.split(r"[/\\]", text)[-1]
    text = "".join(ch for ch in text
                   if ch in JOINERS or unicodedata.category(ch) not in _DROP_CATEGORIES)
    safe = export_name(text, "0" * 64)
    if safe.startswith("file-0000") or not safe.strip(". "):
        safe = fallback
    try:
        return validate_file_name(safe)
    except ValidationError:
        return fallback


class TicketState(StrEnum):
    ISSUED = "issued"
    RECEIVING = "receiving"
    DONE = "done"
    FAILED = "failed"


@dataclass
class Ticket:
    """One upload slot. ``path`` is where the bytes land (inside its own token directory)."""

    token: str
    owner: str
    path: Path
    expires: float
    max_bytes: int
    address: str = ""
    state: TicketState = TicketState.ISSUED
    size: int = 0
    reason: str = ""
    released: bool = False  # forgotten (shared, failed, expired, its tab gone): a body still
    # coming in for it is dropped, not written on uncounted
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return upload_url(self.token)


class UploadTickets:
    """The host's upload slots (see the module docstring)."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.monotonic,
                 max_bytes: int = MAX_UPLOAD_BYTES, max_in_flight: int = MAX_BYTES_IN_FLIGHT,
                 min_free: int = MIN_FREE_BYTES,
                 disk_free: Callable[[Path], int] | None = None, opened: Any = None) -> None:
        self.root = Path(root).resolve()
        self.opened = opened  # ``webopened.OpenedLinks``: a tab's links to opened sealed files
        self.clock = clock
        self.max_bytes = max_bytes
        self.max_in_flight = max_in_flight
        self.min_free = min_free
        self._disk_free = disk_free or (lambda path: shutil.disk_usage(path).free)
        self._tickets: dict[str, Ticket] = {}
        shutil.rmtree(self.root, ignore_errors=True)  # leftovers of a crash belong to nobody
        self.root.mkdir(parents=True, exist_ok=True)

    def issue(self, owner: str, raw_name: object, address: str = "") -> Ticket:
        """A slot for one file from ``owner`` (a session id) at client ``address``;
        ``ValidationError`` when full."""
        self.sweep()
        if len(self._tickets) >= MAX_TICKETS:
            raise ValidationError("The host is receiving too many files right now; try again.")
        if sum(t.owner == owner for t in self._tickets.values()) >= MAX_TICKETS_PER_OWNER:
            raise ValidationError(
                f"At most {MAX_TICKETS_PER_OWNER} files at once; send these first.")
        if address and sum(t.address == address
                           for t in self._tickets.values()) >= MAX_TICKETS_PER_ADDRESS:
            raise ValidationError("This device is sending too many files at once; "
                                  "wait for them to finish.")
        token = secrets.token_urlsafe(32)
        folder = self.root / token
        folder.mkdir()
        ticket = Ticket(token, owner, folder / upload_name(raw_name),
                        self.clock() + TICKET_SECONDS, self.max_bytes, address)
        self._tickets[token] = ticket
        return ticket

    def get(self, token: str) -> Ticket | None:
        if not isinstance(token, str) or not _TOKEN.match(token):
            return None
        ticket = self._tickets.get(token)
        if ticket is not None and ticket.expires <= self.clock():
            self.release(token)
            return None
        return ticket

    async def wait(self, ticket: Ticket, timeout: float) -> Path:
        """The uploaded file once the route has all of it; ``ValidationError`` with the reason.
        Never waits past the ticket's expiry (an upload that slow holds its place no longer)."""
        try:
            # ``within``: a timer in no context (the waiting tab's page is not held till due)
            await within(ticket.done.wait(), max(0.0, min(timeout, ticket.expires - self.clock())))
        except TimeoutError:
            raise ValidationError(f"{ticket.path.name}: the upload did not finish.") from None
        if ticket.state != TicketState.DONE:
            raise ValidationError(f"{ticket.path.name}: {ticket.reason or 'upload failed'}.")
        return ticket.path

    def release(self, token: str) -> None:
        """Forget a ticket and delete what it received (after sharing, or when it failed)."""
        ticket = self._tickets.pop(token, None)
        if ticket is not None:
            ticket.released = True
            ticket.done.set()
            shutil.rmtree(ticket.path.parent, ignore_errors=True)

    def release_owner(self, owner: str) -> None:
        for token in [t.token for t in self._tickets.values() if t.owner == owner]:
            self.release(token)
        if self.opened is not None:
            self.opened.release_owner(owner)

    def opened_link(self, owner: str, path: Path, name: str = "", download: bool = False) -> str:
        """Where session ``owner``'s tab loads a private room's file it opened (``webopened``);
        ``ValueError`` if this host serves none."""
        if self.opened is None:
            raise ValueError("this host serves no opened files")
        return self.opened.link(owner, path, name, download)

    def sweep(self) -> None:
        now = self.clock()
        for token in [t.token for t in self._tickets.values() if t.expires <= now]:
            self.release(token)

    def __len__(self) -> int:
        return len(self._tickets)

    def in_flight(self) -> int:
        """Bytes on disk for uploads not yet shared: those being received and those received
        and waiting for their message (released once shared or given up)."""
        return sum(t.size for t in self._tickets.values()
                   if t.state in (TicketState.RECEIVING, TicketState.DONE))

    def no_room(self, ticket: Ticket, more: int) -> str:
        """Why ``more`` bytes for ``ticket`` may not be written now ("" when they may)."""
        if self.in_flight() + more > self.max_in_flight:
            return "the host is receiving too much at once; try again in a moment"
        if self._disk_free(self.root) - more < self.min_free:
            return "the host's disk is nearly full"
        if ticket.released or ticket.expires <= self.clock():
            return "the upload was cancelled or took too long"
        return ""

    # ---- the PUT route ----
    async def receive(self, request: Request) -> Response:
        ticket = self.get(request.path_params.get("token", ""))
        if ticket is None:
            return PlainTextResponse("unknown or expired upload ticket", 404)
        if ticket.state != TicketState.ISSUED:
            return PlainTextResponse("this upload ticket was used already", 409)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > ticket.max_bytes:
            return self._fail(ticket, 413, f"larger than {_mb(ticket.max_bytes)}")
        if declared.isdigit() and (why := self.no_room(ticket, int(declared))):
            return self._fail(ticket, 507, why)
        ticket.state = TicketState.RECEIVING
        part = ticket.path.with_name(ticket.path.name + ".part")
        size = await self._body(request, part, ticket)
        if isinstance(size, Response):
            return size
        if ticket.released:  # let go while its last block was written: nothing is kept
            part.unlink(missing_ok=True)
            return PlainTextResponse("the upload was cancelled", 410)
        os.replace(part, ticket.path)
        ticket.size, ticket.state = size, TicketState.DONE
        ticket.done.set()
        return PlainTextResponse("stored", 200)

    async def _body(self, request: Request, part: Path, ticket: Ticket) -> int | Response:
        """The body's size once all of it is in ``part``, or the failure's response (``part``
        deleted)."""
        try:
            return await _stream_to(request, part, ticket, self.no_room)
        except _TooLarge:
            part.unlink(missing_ok=True)
            return self._fail(ticket, 413, f"larger than {_mb(ticket.max_bytes)}")
        except _NoRoom as err:
            part.unlink(missing_ok=True)
            return self._fail(ticket, 507, str(err))
        except TimeoutError:
            part.unlink(missing_ok=True)
            return self._fail(ticket, 408, f"nothing arrived for {UPLOAD_STALL_SECONDS:.0f} s")
        except OSError as err:
            part.unlink(missing_ok=True)
            log.warning("upload %s failed: %s", ticket.path.name, err)
            return self._fail(ticket, 507, "the host could not store it")
        except Exception:  # the client went away mid-body (ClientDisconnect and friends)
            part.unlink(missing_ok=True)
            self._fail(ticket, 400, "the upload was interrupted")
            raise

    def _fail(self, ticket: Ticket, status: int, reason: str) -> Response:
        ticket.state, ticket.reason = TicketState.FAILED, reason
        ticket.done.set()
        return PlainTextResponse(reason, status)

    def route(self) -> Route:
        return Route(UPLOAD_PATH + "/{token}", self.receive, methods=["PUT", "POST"],
                     name="files-upload")


class _TooLarge(Exception):
    pass


class _NoRoom(Exception):
    """The in-flight budget or the disk's free-space floor stops this upload (the reason)."""


def _mb(n: int) -> str:
    return f"{n / L.MIB:.0f} MiB"


async def _stream_to(request: Request, part: Path, ticket: Ticket,
                     no_room: Callable[[Ticket, int], str]) -> int:
    """Write the body to ``part`` (in a worker thread, block by block); count every byte, and
    ask ``no_room`` before each block is written (``ticket.size`` is what is written so far)."""
    size = 0
    buffer = bytearray()

    async def write() -> None:
        if why := no_room(ticket, len(buffer)):
            raise _NoRoom(why)
        await asyncio.to_thread(out.write, bytes(buffer))
        ticket.size += len(buffer)
        buffer.clear()

    loop = asyncio.get_running_loop()
    with await asyncio.to_thread(open, part, "wb") as out:
        async with asyncio.timeout(UPLOAD_STALL_SECONDS) as stall:
            async for chunk in request.stream():
                stall.reschedule(loop.time() + UPLOAD_STALL_SECONDS)
                if ticket.released:
                    raise _NoRoom("the upload was cancelled")
                size += len(chunk)
                if size > ticket.max_bytes:
                    raise _TooLarge
                buffer += chunk
                if len(buffer) >= _WRITE_BLOCK:
                    await write()
        if buffer:
            await write()
    return size


# ---- downloads ----

# (magic at offset, offset, type): what the first bytes say; inline only for these.
_SNIFF: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
    (b"BM", 0, "image/bmp"),
    (b"WAVE", 8, "audio/wav"),
    (b"OggS", 0, "audio/ogg"),
    (b"\x1aE\xdf\xa3", 0, "audio/webm"),
    (b"ftyp", 4, "audio/mp4"),
    (b"ID3", 0, "audio/mpeg"),
    (b"fLaC", 0, "audio/flac"),
)
SAFE_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
    "cache-control": "private, max-age=31536000, immutable",  # content-addressed: never changes
    "referrer-policy": "no-referrer",
}


def sniff(head: bytes) -> str | None:
    """The inline-safe type the first bytes show, or None (served as an attachment)."""
    for magic, offset, mime in _SNIFF:
        if head[offset:offset + len(magic)] == magic:
            if magic == b"WEBP" and not head.startswith(b"RIFF"):
                continue
            return mime
    return None


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(16)


async def stored_response(request: Request, path: Path, fallback_name: str) -> Response:
    """A stored file for a browser: inline only for the sniffed safe types, else an attachment;
    ``SAFE_HEADERS`` always; named by the request's ``name`` made safe."""
    head = await asyncio.to_thread(_head, path)
    mime = sniff(head)
    inline = mime is not None and not request.query_params.get("dl")
    name = upload_name(request.query_params.get("name", ""), fallback=fallback_name)
    return PacedFileResponse(  # yields the link to the tab's chat while it streams
        path,
        media_type=mime if inline else "application/octet-stream",
        headers=SAFE_HEADERS,
        filename=name,
        content_disposition_type="inline" if inline else "attachment",
    )


class BlobRoute:
    """``GET /files/blob/<sha256>``: a stored file, only from inside ``root``."""

    def __init__(self, resolve: Callable[[str], Path | None], root: Path) -> None:
        self.resolve = resolve
        self.root = Path(root).resolve()

    async def serve(self, request: Request) -> Response:
        sha = request.path_params.get("sha", "")
        if not _HEX64.match(sha):
            return PlainTextResponse("a file is named by its SHA-256 (64 lowercase hex digits)",
                                     400)
        path = await asyncio.to_thread(self._inside, sha)
        if path is None:
            return PlainTextResponse("this host does not have that file (yet)", 404)
        return await stored_response(request, path, f"file-{sha[:16]}")

    def _inside(self, sha: str) -> Path | None:
        try:
            found = self.resolve(sha)
        except ValueError:
            return None
        if found is None:
            return None
        real = Path(found).resolve()
        if not real.is_relative_to(self.root) or not real.is_file():
            log.warning("refusing to serve %s: %s is outside the file store", sha, real)
            return None
        return real

    def route(self) -> Route:
        return Route(BLOB_PATH + "/{sha}", self.serve, methods=["GET", "HEAD"], name="files-blob")
