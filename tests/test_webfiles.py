"""Host mode's file routes without a browser: upload tickets (names, sizes, reuse, expiry) and the
download route (unknown hashes, path traversal, symlinks out of the store, types, the gate)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette

from fletchat.files.blobstore import BlobStore
from fletchat.gate import COOKIE, UNLOCK_PATH, PassphraseGate
from fletchat.model import ValidationError
from fletchat.webfiles import (
    MAX_TICKETS_PER_ADDRESS,
    MAX_TICKETS_PER_OWNER,
    BlobRoute,
    TicketState,
    UploadTickets,
    sniff,
    upload_name,
)
from fletchat.webpaths import blob_url


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(("raw", "expected"), [
    ("holiday.jpg", "holiday.jpg"),
    ("../../.bashrc", "bashrc"),
    ("..\\..\\windows\\system32\\evil.dll", "evil.dll"),
    ("/etc/passwd", "passwd"),
    ("photo\u202egpj.exe", "photogpj.exe"),  # a bidi override cannot disguise the type
    ("a\x00b\nc.txt", "abc.txt"),
    ("con.txt", "_con.txt"),
    ('what?<>:"|*.txt', "what_______.txt"),
    ("", "file"),
    ("...", "file"),
    ("   ", "file"),
    (None, "file"),
    ("Ünïcödé résumé.pdf", "Ünïcödé résumé.pdf"),
])
def test_upload_name_is_one_safe_component(raw, expected):
    name = upload_name(raw)
    assert name == expected
    assert "/" not in name and "\\" not in name and name not in (".", "..")


def test_upload_name_keeps_the_extension_of_a_long_name():
    name = upload_name("x" * 400 + ".tar.gz")
    assert len(name) <= 120 and name.endswith(".gz")


async def put(app, url: str, body: bytes, headers: dict | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://host") as client:
        return await client.put(url, content=body, headers=headers or {})


async def get(app, url: str, cookies: dict | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://host",
                                 cookies=cookies or {}) as client:
        return await client.get(url)


def upload_app(tickets: UploadTickets) -> Starlette:
    return Starlette(routes=[tickets.route()])


async def test_an_upload_lands_under_its_ticket_with_a_safe_name(tmp_path):
    tickets = UploadTickets(tmp_path / "uploads")
    ticket = tickets.issue("session-1", "../../../etc/cron.d/evil")
    response = await put(upload_app(tickets), ticket.url, b"hello")
    assert response.status_code == 200
    path = await tickets.wait(ticket, 5)
    assert path.read_bytes() == b"hello"
    assert path.name == "evil"
    assert path.parent.parent == (tmp_path / "uploads").resolve()
    # Single use: a second PUT to the same ticket is refused and changes nothing.
    again = await put(upload_app(tickets), ticket.url, b"other")
    assert again.status_code == 409
    assert path.read_bytes() == b"hello"
    tickets.release(ticket.token)
    assert not path.parent.exists()


async def test_an_upload_over_the_limit_is_refused_and_nothing_is_kept(tmp_path):
    tickets = UploadTickets(tmp_path / "uploads", max_bytes=1000)
    ticket = tickets.issue("s", "big.bin")
    # No Content-Length to trust: the route counts the bytes itself.
    async def body():
        for _ in range(5):
            yield b"x" * 400

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=upload_app(tickets)),
                                 base_url="http://host") as client:
        response = await client.put(ticket.url, content=body())
    assert response.status_code == 413
    with pytest.raises(ValidationError, match="larger than"):
        await tickets.wait(ticket, 5)
    assert list(ticket.path.parent.iterdir()) == []


async def test_a_declared_size_over_the_limit_is_refused_before_reading(tmp_path):
    tickets = UploadTickets(tmp_path / "uploads", max_bytes=10)
    ticket = tickets.issue("s", "big.bin")
    response = await put(upload_app(tickets), ticket.url, b"x" * 11)
    assert response.status_code == 413
    assert not ticket.path.exists()


async def test_unknown_expired_and_malformed_tickets_are_refused(tmp_path):
    clock = Clock()
    tickets = UploadTickets(tmp_path / "uploads", clock=clock)
    app = upload_app(tickets)
    assert (await put(app, "/files/upload/" + "A" * 43, b"x")).status_code == 404
    assert (await put(app, "/files/upload/..%2F..%2Fetc", b"x")).status_code == 404
    ticket = tickets.issue("s", "a.txt")
    clock.now += 10_000
    assert (await put(app, ticket.url, b"x")).status_code == 404
    assert not ticket.path.parent.exists()


def test_tickets_are_bounded_per_session(tmp_path):
    tickets = UploadTickets(tmp_path / "uploads")
    for i in range(MAX_TICKETS_PER_OWNER):
        tickets.issue("greedy", f"{i}.txt")
    with pytest.raises(ValidationError, match="At most"):
        tickets.issue("greedy", "one-more.txt")
    tickets.issue("someone-else", "fine.txt")  # another session is not affected
    tickets.release_owner("greedy")
    assert len(tickets) == 1


def test_tickets_are_bounded_per_address_over_many_sessions(tmp_path):
    """One device opening throw-away tabs cannot take every upload slot of the host."""
    tickets = UploadTickets(tmp_path / "uploads")
    for i in range(MAX_TICKETS_PER_ADDRESS):
        tickets.issue(f"tab-{i}", "x.bin", "10.0.0.66")  # one ticket per fresh session
    with pytest.raises(ValidationError, match="too many files at once"):
        tickets.issue("tab-new", "x.bin", "10.0.0.66")
    tickets.issue("tab-elsewhere", "x.bin", "10.0.0.7")  # another device still can


async def test_uploads_in_flight_share_one_byte_budget(tmp_path):
    tickets = UploadTickets(tmp_path / "uploads", max_in_flight=1000)
    slow = tickets.issue("a", "first.bin", "10.0.0.1")
    slow.state, slow.size = TicketState.RECEIVING, 900  # still arriving: 900 bytes held
    second = tickets.issue("b", "second.bin", "10.0.0.2")
    response = await put(upload_app(tickets), second.url, b"x" * 200)
    assert response.status_code == 507 and "too much at once" in response.text
    with pytest.raises(ValidationError, match="too much at once"):
        await tickets.wait(second, 5)
    assert list(second.path.parent.iterdir()) == []  # nothing of it kept
    third = tickets.issue("c", "small.bin", "10.0.0.3")
    assert (await put(upload_app(tickets), third.url, b"x" * 50)).status_code == 200


async def test_an_upload_never_takes_the_last_free_space(tmp_path):
    free = {"bytes": 10_000_000}
    tickets = UploadTickets(tmp_path / "uploads", min_free=9_000_000,
                            disk_free=lambda path: free["bytes"])
    ok = tickets.issue("a", "fits.bin")
    assert (await put(upload_app(tickets), ok.url, b"x" * 500_000)).status_code == 200
    free["bytes"] = 9_200_000  # something else filled the disk meanwhile

    async def body():  # no Content-Length: caught as the blocks arrive, not up front
        for _ in range(3):
            yield b"y" * 100_000

    big = tickets.issue("b", "too-much.bin")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=upload_app(tickets)),
                                 base_url="http://host") as client:
        response = await client.put(big.url, content=body())
    assert response.status_code == 507 and "disk is nearly full" in response.text
    assert list(big.path.parent.iterdir()) == []
    assert (await tickets.wait(ok, 5)).read_bytes() == b"x" * 500_000  # the earlier file stays


def test_leftover_uploads_are_removed_at_start(tmp_path):
    stale = tmp_path / "uploads" / "old-token" / "half.bin.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    UploadTickets(tmp_path / "uploads")
    assert not stale.exists()


# ---- downloads ----


@pytest.fixture
def store(tmp_path) -> BlobStore:
    return BlobStore(tmp_path / "files")


async def stored(store: BlobStore, tmp_path: Path, data: bytes, name: str, mime: str) -> str:
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    manifest = await store.aimport_file(src, name, mime)
    return manifest.sha256


def blob_app(store: BlobStore) -> Starlette:
    return Starlette(routes=[BlobRoute(store.path, store.root).route()])


async def test_a_stored_image_is_served_inline_with_its_bytes(store, tmp_path):
    data = png_bytes()
    sha = await stored(store, tmp_path, data, "red.png", "image/png")
    response = await get(blob_app(store), blob_url(sha, "red.png"))
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"].startswith("inline")
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_download_is_an_attachment_with_a_sanitised_name(store, tmp_path):
    data = b"<html><script>alert(1)</script></html>"
    sha = await stored(store, tmp_path, data, "page.html", "text/html")
    response = await get(blob_app(store), blob_url(sha, '../evil"\r\nX-Injected: 1.html'))
    assert response.status_code == 200 and response.content == data
    # HTML is never served as HTML on the host's origin, and the name cannot break the header.
    assert response.headers["content-type"] == "application/octet-stream"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment") and "/" not in disposition.split(";", 1)[1]
    assert "x-injected" not in response.headers
    assert "sandbox" in response.headers["content-security-policy"]
    # An image asked as a download is an attachment too.
    png = await stored(store, tmp_path, png_bytes(), "a.png", "image/png")
    dl = await get(blob_app(store), blob_url(png, "a.png", download=True))
    assert dl.headers["content-disposition"].startswith("attachment")


async def test_unknown_and_malformed_hashes_are_refused(store, tmp_path):
    app = blob_app(store)
    assert (await get(app, "/files/blob/" + "0" * 64)).status_code == 404
    assert (await get(app, "/files/blob/" + "A" * 64)).status_code == 400
    assert (await get(app, "/files/blob/..%2F..%2F..%2Fetc%2Fpasswd")).status_code in (400, 404)
    assert (await get(app, "/files/blob/../../history.db")).status_code in (400, 404)


async def test_the_route_never_reads_outside_the_store(store, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the host's private key")
    sha = hashlib.sha256(b"anything").hexdigest()
    # A symlink planted where a blob would be (a bug, another process): not followed out.
    blob = store.root / "blobs" / sha[:2] / sha
    blob.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(secret, blob)
    response = await get(blob_app(store), f"/files/blob/{sha}")
    assert response.status_code == 404
    assert b"private key" not in response.content
    # A resolver that returns a path outside the root is not trusted either.
    outside = Starlette(routes=[BlobRoute(lambda s: secret, store.root).route()])
    assert (await get(outside, f"/files/blob/{sha}")).status_code == 404


async def test_behind_the_passphrase_gate_only_an_unlocked_browser_downloads(store, tmp_path):
    sha = await stored(store, tmp_path, b"minutes of the meeting", "notes.txt", "text/plain")
    gate = PassphraseGate(blob_app(store), "correct horse", salt=b"s" * 16)
    locked = await get(gate, blob_url(sha, "notes.txt"))
    assert locked.status_code == 303
    assert locked.headers["location"].startswith(UNLOCK_PATH)
    assert b"minutes" not in locked.content
    forged = await get(gate, blob_url(sha, "notes.txt"), cookies={COOKIE: "v2.1.abc.def"})
    assert forged.status_code == 303
    token = gate._tokens.issue()
    unlocked = await get(gate, blob_url(sha, "notes.txt"), cookies={COOKIE: token})
    assert unlocked.status_code == 200 and unlocked.content == b"minutes of the meeting"


def test_sniffing_recognises_only_safe_types():
    assert sniff(png_bytes()[:16]) == "image/png"
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "audio/wav"
    assert sniff(b"<svg xmlns='http") is None
    assert sniff(b"<!doctype html>") is None
    assert sniff(b"XXXX\x00\x00\x00\x00WEBP") is None


async def test_a_released_upload_stops_being_written_and_a_stalled_one_is_dropped(
        tmp_path, monkeypatch):
    """A ticket let go while its body still comes in (its wait timed out, its tab closed,
    it expired) was written on to the end, counted by no cap; a body that trickles nothing
    held its place for good."""
    import asyncio

    from fletchat import webfiles

    tickets = UploadTickets(tmp_path / "uploads")
    ticket = tickets.issue("tab", "slow.bin", "10.0.0.66")
    sent = {"blocks": 0}

    async def body():
        for _ in range(20):
            sent["blocks"] += 1
            if sent["blocks"] == 3:
                tickets.release(ticket.token)  # e.g. the tab's wait gave up
            yield b"z" * 100_000

    response = await put_stream(upload_app(tickets), ticket.url, body())
    assert response.status_code == 507 and "cancelled" in response.text
    assert sent["blocks"] < 20, "the body was read to the end"
    assert not any(p.is_file() for p in (tmp_path / "uploads").rglob("*"))

    monkeypatch.setattr(webfiles, "UPLOAD_STALL_SECONDS", 0.2)
    stalled = tickets.issue("tab", "stalled.bin", "10.0.0.66")

    async def trickle():
        yield b"a" * 10
        await asyncio.sleep(5)
        yield b"b" * 10

    response = await put_stream(upload_app(tickets), stalled.url, trickle())
    assert response.status_code == 408 and "nothing arrived" in response.text
    with pytest.raises(ValidationError, match="nothing arrived"):
        await tickets.wait(stalled, 5)


async def test_received_uploads_count_until_shared_and_waits_end_with_the_ticket(tmp_path):
    clock = Clock()
    tickets = UploadTickets(tmp_path / "uploads", clock=clock)
    done = tickets.issue("a", "done.bin")
    assert (await put(upload_app(tickets), done.url, b"x" * 5000)).status_code == 200
    assert tickets.in_flight() == 5000  # on disk, waiting for its message: still counted
    tickets.release(done.token)
    assert tickets.in_flight() == 0
    late = tickets.issue("b", "late.bin")
    clock.now = late.expires - 0.05  # its upload took nearly the whole ticket
    with pytest.raises(ValidationError, match="did not finish"):
        await tickets.wait(late, 3600)  # returns at the expiry, not an hour later


async def put_stream(app, url: str, body) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://host") as client:
        return await client.put(url, content=body)
