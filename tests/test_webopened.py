"""Host mode's links to a private room's opened files (``webopened``): only the session that was
given a link loads the file, only files of the opened folder are linked, links expire and go with
their session, and a session's links are bounded."""

from __future__ import annotations

import io
from pathlib import Path

import flet as ft
import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette

from fletchat.files.views import FileState, FileView
from fletchat.model import FileRef
from fletchat.webfiles import UploadTickets
from fletchat.webopened import LINK_SECONDS, MAX_LINKS_PER_OWNER, OpenedLinks
from fletchat.webpaths import OPENED_PATH


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def get(app, url: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://host") as client:
        return await client.get(url)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 200, 0)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def opened(tmp_path) -> Path:
    folder = tmp_path / "files" / "opened"
    folder.mkdir(parents=True)
    return folder


async def test_a_link_serves_that_opened_file_to_whoever_holds_it_and_nothing_else(opened, tmp_path):
    picture = opened / ("a" * 64)
    picture.write_bytes(png())
    notes = opened / ("b" * 64)
    notes.write_bytes(b"<html><script>alert(1)</script>")
    links = OpenedLinks(opened)
    app = Starlette(routes=[links.route()])
    url = links.link("tab-1", picture, "green.png")
    assert url.startswith(OPENED_PATH + "/") and "a" * 64 not in url  # no hash anyone knows
    response = await get(app, url)
    assert response.status_code == 200 and response.content == png()
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert links.link("tab-1", picture, "green.png") == url  # one link per session and file
    saved = await get(app, links.link("tab-1", notes, "notes.html", download=True))
    assert saved.headers["content-type"] == "application/octet-stream"
    assert saved.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in saved.headers["content-security-policy"]
    for bad in (OPENED_PATH + "/" + "x" * 43, OPENED_PATH + "/..%2F..%2Fetc", OPENED_PATH + "/a"):
        assert (await get(app, bad)).status_code == 404
    # only files of the opened folder itself: not the blobs beside it, not a subfolder
    blob = tmp_path / "files" / "blob"
    blob.write_bytes(b"ciphertext")
    (opened / "sub").mkdir()
    (opened / "sub" / ("c" * 64)).write_bytes(b"x")
    for path in (blob, opened / "sub" / ("c" * 64), opened / ".." / "blob"):
        with pytest.raises(ValueError):
            links.link("tab-1", path)


async def test_links_expire_go_with_their_session_and_are_bounded(opened):
    clock = Clock()
    links = OpenedLinks(opened, clock)
    app = Starlette(routes=[links.route()])
    files = []
    for i in range(MAX_LINKS_PER_OWNER + 1):
        f = opened / f"{i:064x}"
        f.write_bytes(b"x")
        files.append(f)
    first = links.link("tab-1", files[0])
    urls = [links.link("tab-1", f) for f in files[1:]]
    assert len(links) == MAX_LINKS_PER_OWNER  # the oldest went
    assert (await get(app, first)).status_code == 404
    assert (await get(app, urls[-1])).status_code == 200
    other = links.link("tab-2", files[1])
    links.release_owner("tab-1")  # its tab closed
    assert (await get(app, urls[-1])).status_code == 404
    assert (await get(app, other)).status_code == 200
    clock.now += LINK_SECONDS + 1
    assert (await get(app, other)).status_code == 404
    files[1].unlink()  # freed meanwhile: a fresh link finds nothing
    assert (await get(app, links.link("tab-2", files[1]))).status_code == 404


def test_upload_tickets_hand_out_opened_links_and_release_them_with_the_session(opened, tmp_path):
    links = OpenedLinks(opened)
    tickets = UploadTickets(tmp_path / "uploads", opened=links)
    f = opened / ("d" * 64)
    f.write_bytes(b"x")
    assert tickets.opened_link("tab-1", f, "n.txt", True).endswith("?name=n.txt&dl=1")
    tickets.release_owner("tab-1")
    assert len(links) == 0
    with pytest.raises(ValueError):
        UploadTickets(tmp_path / "u2").opened_link("tab-1", f)


def test_a_tab_shows_an_opened_sealed_image_inline_and_saves_through_its_own_links(opened):
    """The tile asks its session's link for a room's file (never the blob route, which would
    serve the ciphertext by a hash every peer knows); without a link it says to use the app."""
    from fletchat.ui.attachments import SEALED_IN_BROWSER, FileTile, TileContext

    picture = opened / ("e" * 64)
    picture.write_bytes(png())
    asked: list[tuple[Path, str, bool]] = []

    def link(path: Path, name: str, download: bool) -> str:
        asked.append((path, name, download))
        return f"{OPENED_PATH}/{'t' * 43}" + ("?dl=1" if download else "")

    ref = FileRef("e" * 64, 100, 262144, "f" * 64, "", "", sealed="s" * 40)
    view = FileView(FileState.READY, 100, 100, picture, None, "", "green.png", "image/png")

    def ctx(opened_link) -> TileContext:
        return TileContext(None, True, "http://host:8550", None, lambda *a: None,  # type: ignore[arg-type]
                           None, None, lambda *a: None, ft.UrlLauncher(), opened_link)  # type: ignore[arg-type]

    tile = FileTile(ref, view, ctx(link))
    image = tile.content.content.content
    assert isinstance(image, ft.Image) and image.src == f"http://host:8550{OPENED_PATH}/{'t' * 43}"
    assert asked and all(p == picture for p, _n, _d in asked)
    assert tile.blob_src(picture, "green.png", download=True).endswith("?dl=1")

    locked = FileTile(ref, view, ctx(None))  # a page with no such route: the app's way
    icons = [c for c in _walk(locked) if isinstance(c, ft.Icon)]
    assert any(i.tooltip == SEALED_IN_BROWSER for i in icons)


def _walk(control):
    from tests.test_ui_controls import controls_in

    return list(controls_in(control))


async def test_an_opened_file_is_never_kept_by_the_browser(opened):
    f = opened / ("9" * 64)
    f.write_bytes(b"plain")
    links = OpenedLinks(opened)
    response = await get(Starlette(routes=[links.route()]), links.link("tab-1", f))
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"


async def test_a_full_host_drops_the_links_of_whoever_holds_the_most(opened, monkeypatch):
    """Many sessions filling the host's links push out their own, not a bystander's."""
    import fletchat.webopened as W

    monkeypatch.setattr(W, "MAX_LINKS", 6)
    links = OpenedLinks(opened)
    app = Starlette(routes=[links.route()])
    files = []
    for i in range(8):
        f = opened / f"{i:064x}"
        f.write_bytes(b"x")
        files.append(f)
    bystander = links.link("quiet-tab", files[0])  # the oldest link on the host
    busy = [links.link(f"busy-{i % 2}", f) for i, f in enumerate(files[1:])]
    assert len(links) == 6
    assert (await get(app, bystander)).status_code == 200
    assert (await get(app, busy[-1])).status_code == 200
    assert (await get(app, busy[0])).status_code == 404  # the oldest of a busy session went
