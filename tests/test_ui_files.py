"""The files UI without a browser: rows with files, tiles updated alone, locked files, the
composer's buttons, voice-note helpers."""

from __future__ import annotations

import io
import wave
from dataclasses import replace
from pathlib import Path

import flet as ft
import pytest
from PIL import Image

from fletchat.files.blobstore import BlobStore
from fletchat.files.share import FileShare
from fletchat.files.views import FileChanged, FileState, FileView
from fletchat.hub import Hub, HubSession
from fletchat.model import FileRef, Message
from fletchat.store import Store
from fletchat.ui.attachments import LOCKED_LABEL, FileTile, human_size
from fletchat.ui.hub_backend import HubBackend
from fletchat.ui.view import ChatView
from fletchat.ui.voice import INSECURE, insecure_page, pcm_to_wav


class FakePage:
    width = 1000
    height = 800
    url = "ws://127.0.0.1:8550"

    def __init__(self, web: bool = True) -> None:
        self.web = web
        self.dialogs: list[ft.Control] = []
        self.updated: list[list[ft.Control]] = []

    def update(self, *controls) -> None:
        self.updated.append(list(controls))

    def show_dialog(self, dialog: ft.Control) -> None:
        self.dialogs.append(dialog)

    def pop_dialog(self) -> None:
        if self.dialogs:
            self.dialogs.pop()


async def make_view(tmp_path: Path, web: bool = True,
                    prefs_store=None) -> tuple[ChatView, HubSession, FileShare]:
    hub = Hub("here", store=Store.open(tmp_path / "history.db"))
    files = hub.files = FileShare(BlobStore(tmp_path / "files"), hub._publish)
    session = HubSession(hub)
    session.join("Ada")
    view = ChatView(FakePage(web), HubBackend(session),  # type: ignore[arg-type]
                    prefs_store=prefs_store)
    await view.show_channel("general")
    return view, session, files


def picture(tmp_path: Path, name: str = "red.png") -> Path:
    path = tmp_path / name
    out = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 0, 0)).save(out, "PNG")
    path.write_bytes(out.getvalue())
    return path


def walk(control: ft.Control):
    yield control
    for name in ("content", "controls"):
        child = getattr(control, name, None)
        for c in child if isinstance(child, list) else [child] if child is not None else []:
            if isinstance(c, ft.Control):
                yield from walk(c)


def tiles_of(view: ChatView, msg: Message) -> list[FileTile]:
    row = view.conversation.rows[msg.id]
    return [c for c in row.row.column.controls if isinstance(c, FileTile)]


async def test_a_message_with_files_shows_an_image_and_a_card(tmp_path):
    view, _session, _ = await make_view(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("x" * 1500)
    msg = await view.backend.share_files([picture(tmp_path), notes], "see", "general")
    view.on_message(msg)
    tiles = tiles_of(view, msg)
    assert [t.ref.name for t in tiles] == ["red.png", "notes.txt"]
    image = tiles[0].content
    assert isinstance(image, ft.Semantics) and image.label == "Image red.png, open full size"
    src = image.content.content.src
    # A browser gets the thumbnail from the host, by an absolute http URL (Flet would read a bare
    # "/files/blob/<hex>" as base64 image data).
    assert src == f"http://127.0.0.1:8550/files/blob/{msg.files[0].thumb.sha256}"
    row = view.conversation.rows[msg.id]
    assert row.label.endswith(", image red.png, file notes.txt (1.5 KB)")
    assert row.exclude_semantics is False  # the tiles' buttons are reachable


async def test_a_file_row_keeps_its_tiles_when_it_is_redrawn(tmp_path):
    """A read receipt, reaction or edit redraws a row's column: its files must stay (they
    vanished from the sender's own row once someone read it)."""
    from fletchat.ui.convo_row import ConvoRow

    view, _session, _ = await make_view(tmp_path)
    msg = await view.backend.share_files([picture(tmp_path)], "see", "general")
    view.on_message(msg)
    row = view.conversation.rows[msg.id]
    assert isinstance(row, ConvoRow)
    before = tiles_of(view, msg)
    row.redecorate(replace(row.decor, seen=("Bob",)))
    assert tiles_of(view, msg) == before and len(before) == 1
    assert "image red.png" in row.label


async def test_a_message_without_files_is_unchanged(tmp_path):
    view, session, _ = await make_view(tmp_path)
    msg = session.send("just text")
    view.on_message(msg)
    row = view.conversation.rows[msg.id]
    assert tiles_of(view, msg) == []
    assert row.exclude_semantics is True
    assert view.files.attachments.tiles == {}


async def test_file_changed_updates_only_that_tile(tmp_path):
    view, _session, _files = await make_view(tmp_path)
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"a" * 100)
    b.write_bytes(b"b" * 200)
    first = await view.backend.share_files([a], "", "general")
    second = await view.backend.share_files([b], "", "general")
    for m in (first, second):
        view.on_message(m)
    view.updates.flush()
    page = view.page
    page.updated.clear()
    ref = second.files[0]
    fetching = FileView(FileState.FETCHING, 50, ref.size, name=ref.name, mime=ref.mime)
    await view.on_event(FileChanged(ref.sha256, fetching))
    view.updates.flush()
    (tile,) = tiles_of(view, second)
    assert page.updated == [[tile]]  # that tile alone: no row, chunk or list
    bar = [c for c in walk(tile) if isinstance(c, ft.ProgressBar)]
    assert bar and bar[0].value == 0.25
    # A change of a file nobody shows costs nothing.
    page.updated.clear()
    await view.on_event(FileChanged("f" * 64, fetching))
    view.updates.flush()
    assert page.updated == []


async def test_a_room_descriptions_change_never_paints_a_plain_tile_of_the_same_blob(tmp_path):
    """A blob's hash is public: a room's description of it may change state (``of`` set) while
    a plain message shows the same blob. The plain tile asks for its own view instead."""
    view, _session, _files = await make_view(tmp_path)
    a = tmp_path / "a.bin"
    a.write_bytes(b"a" * 100)
    msg = await view.backend.share_files([a], "", "general")
    view.on_message(msg)
    view.updates.flush()
    ref = msg.files[0]
    (tile,) = tiles_of(view, msg)
    room_view = FileView(FileState.READY, 100, 100, name="the room's secret name.pdf")
    await view.on_event(FileChanged(ref.sha256, room_view, "0" * 32))
    assert tile.view.name == "a.bin"  # its own view, not the room file's
    await view.on_event(FileChanged(ref.sha256, FileView(FileState.READY, 100, 100, name="x")))
    assert tile.view.name == "x"  # an ordinary change of the blob is taken as it comes


async def test_a_tile_of_a_row_no_longer_shown_is_not_updated(tmp_path):
    view, _session, _ = await make_view(tmp_path)
    a = tmp_path / "a.bin"
    a.write_bytes(b"a" * 10)
    msg = await view.backend.share_files([a], "", "general")
    view.on_message(msg)
    view.conversation.reset([], False)  # the list is rebuilt (a channel switch) ...
    view.on_message(msg)  # ... with a new row and tile for the same message
    view.updates.flush()
    view.page.updated.clear()
    ref = msg.files[0]
    await view.on_event(FileChanged(ref.sha256, FileView(FileState.READY, 10, 10, name="a.bin")))
    view.updates.flush()
    (current,) = tiles_of(view, msg)
    assert view.page.updated == [[current]]


def test_a_sealed_file_without_the_key_says_locked():
    ref = FileRef("a" * 64, 16384, 262144, "b" * 64, sealed="sealed:v1:AAAA")
    view = FileView(FileState.SEALED_NO_KEY, 0, 16384)
    tile = FileTile(ref, view, ctx=None)  # type: ignore[arg-type]
    texts = [c.value for c in tile.content.controls if isinstance(c, ft.Text)]
    assert texts == [LOCKED_LABEL]


async def test_the_composer_has_attach_and_voice_buttons(tmp_path):
    view, _, _ = await make_view(tmp_path)
    tooltips = [getattr(c, "tooltip", None) or "" for c in view.composer.control.controls]
    # In a tab without the host's upload route (no tickets) the buttons say why they are off.
    assert "Attach files: Sending files from this page is not available." in tooltips
    assert "Record a voice note: Voice notes are not available on this page." in tooltips
    assert view.files.attach.button.disabled
    assert view.files.voice.button.disabled
    assert not view.files.attach.paste.visible  # a browser cannot paste through the session


def test_voice_needs_a_secure_page():
    assert insecure_page("ws://192.168.1.23:8550")
    assert insecure_page("http://192.168.1.23:8550/")
    assert not insecure_page("ws://127.0.0.1:8550")
    assert not insecure_page("http://localhost:8550/")
    assert not insecure_page("https://chat.lan/")
    assert "secure" in INSECURE


def test_pcm_becomes_a_wav_with_its_duration(tmp_path):
    raw = tmp_path / "note.pcm"
    raw.write_bytes(b"\x01\x00" * 16_000 * 2 + b"\x05")  # two seconds and a torn byte
    ms = pcm_to_wav(raw, tmp_path / "note.wav")
    assert ms == 2000
    with wave.open(str(tmp_path / "note.wav")) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (1, 16_000, 32_000)


def pcm(path: Path, seconds: float, rate: int, channels: int, copied: bool = True) -> Path:
    """Raw 16-bit PCM as a browser uploads it: a square-wave beep; ``copied``: one microphone on
    both channels (headless Chromium's fake device), else the channels differ."""
    import struct

    frames = []
    for i in range(int(seconds * rate)):
        v = 12000 if (i // 51) % 2 else -12000
        frames.append([v] * channels if copied else [v, -v // 2][:channels])
    flat = [x for f in frames for x in f]
    path.write_bytes(struct.pack(f"<{len(flat)}h", *flat))
    return path


@pytest.mark.parametrize(("rate", "channels", "copied", "seconds"), [
    (44100, 2, True, 2.2),   # what headless Chromium sends when 16 kHz mono is asked for
    (48000, 2, False, 1.5),  # a real stereo microphone
    (16000, 1, False, 2.0),  # what was asked for
    (16000, 2, True, 3.0),   # 32,000 values a second: copied pairs, so two channels
    (32000, 1, False, 3.0),  # the same rate of values, pairs differ: one channel
    # (a mono recording whose pairs are all equal plays the same either way)
])
def test_a_browser_recordings_format_is_read_from_its_size_and_time(
        tmp_path, rate, channels, copied, seconds):
    from fletchat.ui.voice import pcm_format

    raw = pcm(tmp_path / "note.pcm", seconds, rate, channels, copied)
    # the time measured on the host is a little off (the stop click, the upload's last part)
    assert pcm_format(raw, seconds * 1.03) == (rate, channels)
    assert pcm_format(raw, seconds * 0.97) == (rate, channels)
    ms = pcm_to_wav(raw, tmp_path / "note.wav", rate, channels)
    assert abs(ms - seconds * 1000) <= 1


def test_sizes_read_like_a_person_writes_them():
    assert human_size(600) == "600 bytes"
    assert human_size(1500) == "1.5 KB"
    assert human_size(25_000_000) == "25.0 MB"


class DataUploader:
    """What the static client hands ``Attach`` (``webclient.files``): bytes in, shared."""

    max_bytes = 100

    def __init__(self) -> None:
        self.shared: list[tuple[list[tuple[str, bytes]], str, str]] = []

    async def share_picked(self, picked, caption, channel, progress) -> None:
        progress("Sharing...")
        self.shared.append((picked, caption, channel))


async def test_the_static_client_attaches_the_picked_bytes(tmp_path):
    """Without a server session, the picker hands over the bytes (``with_data``) and they go to
    the uploader with the composer's text as caption; too large a file is refused first."""
    from fletchat.ui.upload import Attach

    uploader = DataUploader()
    sent: list[object] = []
    said: list[str] = []

    async def on_sent(msg) -> None:
        sent.append(msg)

    hub = Hub("here")
    hub.files = FileShare(BlobStore(tmp_path / "files"), hub._publish)
    backend = HubBackend(HubSession(hub))
    attach = Attach(FakePage(web=True), backend, uploader, lambda: ("general", "look"),
                    on_sent, said.append)  # type: ignore[arg-type]
    assert attach.by_data and attach.button.action.with_data and not attach.paste.visible
    files = [ft.FilePickerFile(id=1, name="a.txt", size=3, bytes=b"abc")]
    await attach.picked(ft.FilePickerResultEvent(name="result", control=attach.picker, files=files))
    assert uploader.shared == [([("a.txt", b"abc")], "look", "general")] and sent == [None]
    big = [ft.FilePickerFile(id=2, name="big.bin", size=101, bytes=b"x" * 101)]
    await attach.picked(ft.FilePickerResultEvent(name="result", control=attach.picker, files=big))
    assert len(uploader.shared) == 1 and "larger than" in said[-1]
    attach.release()  # nothing to release here: the relay drops slots with its connection


async def test_a_host_never_takes_a_path_from_a_tab_that_says_it_is_no_browser(tmp_path):
    """A script on /ws registered with ``web: false`` and answered the picker with a "path":
    the host shared whatever file it named (its own keys, its history). A host's tabs always
    go through the upload route, whatever their page says."""
    from fletchat.ui.upload import Attach
    from fletchat.webfiles import UploadTickets

    secret = tmp_path / "identity.key"
    secret.write_bytes(b"private")
    hub = Hub("here")
    hub.files = FileShare(BlobStore(tmp_path / "files"), hub._publish)
    backend = HubBackend(HubSession(hub))
    attach = Attach(FakePage(web=False), backend, UploadTickets(tmp_path / "uploads"),
                    lambda: ("general", ""), lambda msg: None, lambda text: None)  # type: ignore[arg-type]
    routes: list[str] = []

    async def uploaded(files) -> None:
        routes.append("upload route")

    async def shared(paths) -> None:
        routes.append(f"shared {paths}")

    attach._upload_and_share = uploaded  # type: ignore[method-assign]
    attach.share = shared  # type: ignore[method-assign]
    files = [ft.FilePickerFile(id=1, name="k", size=1, path=str(secret))]
    await attach.picked(ft.FilePickerResultEvent(name="result", control=attach.picker, files=files))
    assert routes == ["upload route"] and attach.web and attach.clipboard is None


class FakeClipboard:
    def __init__(self, image: bytes | None) -> None:
        self.image = image

    async def get_image(self) -> bytes | None:
        return self.image


def wav_file(path: Path, seconds: float, rate: int = 16_000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x01" * int(rate * seconds))
    return path


class FakeRecorder:
    """flet-audio-recorder as the app calls it: a recording at ``output_path``, one second of WAV
    once stopped; with ``gate``, stopping waits for it (a note still being sent)."""

    def __init__(self, gate=None) -> None:
        self.output: str | None = None
        self.gate = gate

    async def has_permission(self) -> bool:
        return True

    async def start_recording(self, output_path: str | None = None, **kw) -> bool:
        self.output = output_path
        Path(output_path).write_bytes(b"recording...")
        return True

    async def stop_recording(self) -> str | None:
        path = self.output
        assert path is not None
        if self.gate is not None:
            await self.gate.wait()
        wav_file(Path(path), 1.0)
        return path

    async def cancel_recording(self) -> None:
        pass


def app_attach(tmp_path: Path, said: list[str], sent: list[object]):
    """The app's composer (no browser, no tickets): it may paste and record into the data dir."""
    from fletchat.ui.upload import Attach

    async def on_sent(msg) -> None:
        sent.append(msg)

    hub = Hub("here", store=Store.open(tmp_path / "history.db"))
    hub.files = FileShare(BlobStore(tmp_path / "files"), hub._publish)
    session = HubSession(hub)
    session.join("Ada")
    return Attach(FakePage(web=False), HubBackend(session), None, lambda: ("general", "pasted"),
                  on_sent, said.append), hub  # type: ignore[arg-type]


def leftovers(prefix: str) -> set[str]:
    import tempfile

    return {p.name for p in Path(tempfile.gettempdir()).glob(f"{prefix}*")}


async def test_a_pasted_image_is_shared_and_nothing_of_it_stays_outside_the_store(tmp_path):
    """The issue: nothing is written outside the data dir. The pasted PNG goes through the data
    dir's scratch folder into the store, and the scratch copy is gone once it is shared."""
    said: list[str] = []
    sent: list[object] = []
    attach, hub = app_attach(tmp_path, said, sent)
    assert attach.paste.visible and attach.clipboard is not None  # the app can paste
    before = leftovers("fletchat-paste-")
    png = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 0, 200)).save(png, "PNG")
    attach.clipboard = FakeClipboard(png.getvalue())
    await attach.paste_image()
    assert said == [] and len(sent) == 1
    (ref,) = sent[0].files
    assert ref.name.startswith("pasted-image-") and ref.mime == "image/png" and ref.thumb is not None
    assert sent[0].text == "pasted"
    assert hub.files.store.has(ref.sha256)  # the bytes are in the store, verified
    assert list((tmp_path / "files" / "scratch").iterdir()) == []
    assert leftovers("fletchat-paste-") == before  # nothing in the system's temp folder

    attach.clipboard = FakeClipboard(None)
    await attach.paste_image()
    assert said == ["There is no image on the clipboard."] and len(sent) == 1


def test_the_scratch_folder_is_emptied_when_the_files_open(tmp_path):
    """A crash between recording (or pasting) and sharing leaves nothing behind for long."""
    share = FileShare(BlobStore(tmp_path / "files"), lambda _e: None)
    left = share.scratch() / "voice-note-1.wav"
    left.write_bytes(b"half a recording")
    assert share.scratch() == (tmp_path / "files" / "scratch").resolve()
    FileShare(BlobStore(tmp_path / "files"), lambda _e: None)
    assert not left.exists()


async def test_a_wav_shared_here_carries_its_duration_but_not_in_a_private_room(tmp_path):
    """Voice notes say how long they are before anyone downloads them (``ms``); a sealed file
    must not show it (docs/protocol.md: ``ms`` is not allowed with ``sealed``)."""
    view, session, _files = await make_view(tmp_path)
    note = wav_file(tmp_path / "voice-note-1.wav", 2.5)
    msg = await view.backend.share_files([note], "", "general")
    assert msg.files[0].ms == 2500
    view.on_message(msg)
    assert "voice note 0:02" in view.conversation.rows[msg.id].label
    fake = tmp_path / "not-audio.wav"
    fake.write_bytes(b"RIFF but not really a wave file")
    plain = await view.backend.share_files([fake], "", "general")
    assert plain.files[0].ms is None  # shared as an ordinary file
    session.set_room_passphrase("secret-room", "correct horse battery staple")
    sealed = await view.backend.share_files([note], "", "secret-room")
    assert sealed.files[0].sealed and sealed.files[0].ms is None


async def test_an_app_recording_goes_to_the_data_dir_and_is_removed_once_sent(tmp_path):
    from fletchat.ui.voice import Voice

    said: list[str] = []
    sent: list[object] = []
    attach, _hub = app_attach(tmp_path, said, sent)
    voice = Voice(FakePage(web=False), attach)  # type: ignore[arg-type]
    voice.recorder = FakeRecorder()
    before = leftovers("fletchat-voice-")
    await voice.start()
    recording = Path(voice.recorder.output)
    assert recording.parent == (tmp_path / "files" / "scratch").resolve()
    await voice.stop_and_send()
    assert said == [] and len(sent) == 1 and sent[0].files[0].ms == 1000
    assert not recording.exists() and leftovers("fletchat-voice-") == before
    await voice.start()  # and a recording given up goes too
    recording = Path(voice.recorder.output)
    recording.write_bytes(b"partial")
    await voice.cancel()
    assert not recording.exists() and len(sent) == 1


def texts_in(control: ft.Control) -> list[str]:
    from tests.test_ui_controls import controls_in

    return [c.value for c in controls_in(control) if isinstance(c, ft.Text) and c.value]


async def test_the_apps_settings_show_files_here_and_the_auto_download_choice(tmp_path):
    """The issue: auto-download up to a size the person sets; storage with a quota and a view
    of it. The app's settings show both; a host's browser tab does not (the host's own)."""
    from fletchat.conversation.prefs import Prefs
    from fletchat.ui.settings import PrefsStore
    from fletchat.ui.settings import PrefsStore as _Store

    view, _session, files = await make_view(tmp_path, web=False,
                                            prefs_store=_Store(tmp_path / "prefs.json"))
    settings = view.convo.settings
    notes = tmp_path / "notes.bin"
    notes.write_bytes(b"n" * 300_000)
    await view.backend.share_files([notes], "", "general")
    dialog = settings.dialog()
    words = texts_in(dialog)
    assert "Files on this device" in words
    assert "Files here take 300.0 KB of the 2.1 GB they may use." in words
    radios = [c for c in controls_in_dialog(dialog) if isinstance(c, ft.RadioGroup)]
    auto = next(r for r in radios if any(getattr(x, "label", "") == "Files up to 100 MB"
                                         for x in controls_in_dialog(r)))
    assert auto.value == "25"  # the device's own default, shown as chosen
    auto.value = "100"
    await auto.on_change(ft.Event(name="change", control=auto))
    assert files.auto_limit == 100_000_000
    assert settings.prefs.auto_download_mb == 100
    # remembered: the next session on this device starts with it
    store = PrefsStore(tmp_path / "prefs.json")
    await store.save(settings.prefs)
    view2, _s2, files2 = await make_view(tmp_path / "again", web=False, prefs_store=store)
    await view2.convo.settings.load()
    assert files2.auto_limit == 100_000_000 and view2.convo.settings.prefs == Prefs(auto_download_mb=100)

    tab, _s3, _f3 = await make_view(tmp_path / "tab", web=True)
    assert "Files on this device" not in texts_in(tab.convo.settings.dialog())
    # A script on a host's /ws registering as a desktop client (``web: false``) is still a tab:
    # its preferences are the browser's, so it gets no say over the host's files.
    liar, _s4, files4 = await make_view(tmp_path / "liar", web=False,
                                        prefs_store=PrefsStore(client=True))
    storage = liar.convo.settings.storage
    assert not storage.shown() and "Files on this device" not in texts_in(
        liar.convo.settings.dialog())
    kept = tmp_path / "kept.bin"
    kept.write_bytes(b"k" * 100_000)
    ref4 = (await liar.backend.share_files([kept], "", "general")).files[0]
    await storage.free()
    group = ft.RadioGroup(value="1000", content=ft.Column([]))
    await storage.control().controls[3].on_change(ft.Event(name="change", control=group))
    assert files4.store.has(ref4.sha256) and files4.auto_limit == 25_000_000


def controls_in_dialog(control: ft.Control):
    from tests.test_ui_controls import controls_in

    return list(controls_in(control))


async def test_free_space_removes_the_files_kept_here_but_not_thumbnails(tmp_path):
    """Files over ``MAX_THUMB_BYTES`` go (an image's own bytes too); its thumbnail stays, so the
    row still shows it and offers the image for download again."""
    import os as _os

    view, _session, files = await make_view(tmp_path, web=False)
    noisy = tmp_path / "noisy.png"
    Image.frombytes("RGB", (300, 300), _os.urandom(300 * 300 * 3)).save(noisy, "PNG")
    notes = tmp_path / "notes.bin"
    notes.write_bytes(b"n" * 300_000)
    small = tmp_path / "small.txt"
    small.write_text("kept: smaller than a thumbnail may be")
    msg = await view.backend.share_files([noisy, notes, small], "", "general")
    view.on_message(msg)
    image, card, tiny = msg.files
    changes: list[FileChanged] = []
    files.publish = changes.append
    used_before, _quota = view.backend.files_usage()
    freed = view.backend.free_files_space()
    assert freed == image.size + card.size and image.size > 64 * 1024
    assert not files.store.has(card.sha256) and not files.store.has(image.sha256)
    assert files.store.has(image.thumb.sha256) and files.store.has(tiny.sha256)
    assert view.backend.files_usage()[0] == used_before - freed
    assert {c.sha256 for c in changes} == {card.sha256, image.sha256}
    for event in changes:
        await view.on_event(event)
    tiles = tiles_of(view, msg)
    assert [t.view.state for t in tiles] == [FileState.AVAILABLE_REMOTE] * 2 + [FileState.READY]
    assert tiles[0].view.thumb is not None  # the image row still has its thumbnail
    assert view.backend.free_files_space() == 0


async def test_a_file_whose_holders_are_all_gone_says_so_in_its_row(tmp_path):
    """The issue: a file whose holders are all gone says so (the tile, and only it, changes)."""
    view, _session, _files = await make_view(tmp_path)
    notes = tmp_path / "notes.bin"
    notes.write_bytes(b"n" * 5000)
    msg = await view.backend.share_files([notes], "", "general")
    view.on_message(msg)
    ref = msg.files[0]
    waiting = FileView(FileState.WAITING_FOR_HOLDER, 0, ref.size, name=ref.name, mime=ref.mime)
    await view.on_event(FileChanged(ref.sha256, waiting))
    (tile,) = tiles_of(view, msg)
    assert "Nobody who has this file is online." in [
        c.value for c in walk(tile) if isinstance(c, ft.Text)]
    reason = FileView(FileState.WAITING_FOR_HOLDER, 0, ref.size, reason="Bob went away.",
                      name=ref.name, mime=ref.mime)
    await view.on_event(FileChanged(ref.sha256, reason))
    assert "Bob went away." in [c.value for c in walk(tile) if isinstance(c, ft.Text)]


async def test_where_voice_notes_cannot_be_recorded_the_button_says_why(tmp_path):
    """The issue: where recording is unavailable the button says why (the static client has no
    recorder: its button is shown, off, with the reason, not hidden)."""
    from dataclasses import replace as _replace

    from fletchat.ui.upload import Attach
    from fletchat.ui.voice import NO_RECORDER, RECORD_TOOLTIP, Voice

    hub = Hub("here")
    hub.files = FileShare(BlobStore(tmp_path / "files"), hub._publish)
    backend = HubBackend(HubSession(hub))
    backend.capabilities = _replace(backend.capabilities, voice=False)  # as the static client's

    async def on_sent(msg) -> None:
        pass

    attach = Attach(FakePage(web=True), backend, DataUploader(), lambda: ("general", ""),
                    on_sent, lambda _t: None)  # type: ignore[arg-type]
    voice = Voice(FakePage(web=True), attach)  # type: ignore[arg-type]
    assert voice.button.visible and voice.button.disabled
    assert voice.button.tooltip == f"{RECORD_TOOLTIP}: {NO_RECORDER}"
    assert voice.controls == [voice.button]  # no cancel button where nothing can be recorded
    assert voice.recorder is None and voice.player is None


async def test_a_sealed_files_change_is_shown_with_this_sessions_own_keys(tmp_path):
    """The hub announces a sealed file's change with its own view, which has no room keys: a
    session with the passphrase must not turn its tile to "locked" on it."""
    view, session, _files = await make_view(tmp_path)
    session.set_room_passphrase("vault", "correct horse battery staple")
    notes = tmp_path / "plan.txt"
    notes.write_text("the plan")
    msg = await view.backend.share_files([notes], "", "vault")
    await view.show_channel("vault")
    view.on_message(msg)
    ref = msg.files[0]
    hub_view = FileView(FileState.SEALED_NO_KEY, ref.size, ref.size, reason="no key")
    await view.on_event(FileChanged(ref.sha256, hub_view))
    (tile,) = tiles_of(view, msg)
    assert tile.view.state is FileState.READY and tile.view.name == "plan.txt"
    assert LOCKED_LABEL not in [c.value for c in walk(tile) if isinstance(c, ft.Text)]


async def test_a_note_started_while_the_last_one_is_sent_keeps_its_own_recording(tmp_path):
    """The button is on again as soon as a note is stopped: a next note started while the last
    one is still being sent must not lose its file to the first one's clean-up."""
    import asyncio

    from fletchat.ui.voice import Voice

    gate = asyncio.Event()

    said: list[str] = []
    sent: list[object] = []
    attach, _hub = app_attach(tmp_path, said, sent)
    voice = Voice(FakePage(web=False), attach)  # type: ignore[arg-type]
    voice.recorder = FakeRecorder(gate)
    await voice.start()
    first = Path(voice.recorder.output)
    sending = asyncio.ensure_future(voice.stop_and_send())
    await asyncio.sleep(0.05)
    await voice.start()  # the next note, while the first is still being sent
    second = Path(voice.recorder.output)
    assert second != first
    gate.set()
    await sending
    assert said == [] and len(sent) == 1 and not first.exists() and second.exists()
    assert voice.recording_path == second
