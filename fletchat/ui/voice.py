"""Voice notes: the composer's microphone button (click to record, click again to send; the
cancel button drops it) and the one player every voice note of the session plays through.

Recording uses ``flet-audio-recorder``, playback ``flet-audio`` (official Flet extensions).

- **The app**: the recorder writes a WAV file on this device; it is shared as it is.
- **A browser tab in host mode**: the recorder streams raw 16-bit PCM to an upload ticket on the
  host (``webfiles``); when it stops, the host wraps the samples in a WAV header (``wave``) and
  shares that. Browsers give a page the microphone only in a *secure context* (https, or
  localhost): on ``http://192.168.x.y`` the button is off and says so.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
import wave
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import flet as ft

from ..files.limits import MAX_VOICE_MS
from ..model import ValidationError
from .upload import Attach

log = logging.getLogger("fletchat.ui")

RECORD_TOOLTIP = "Record a voice note"
STOP_TOOLTIP = "Stop and send the voice note"
CANCEL_TOOLTIP = "Discard the voice note"
SAMPLE_RATE = 16_000  # asked for: 16 kHz mono, 32 KB/s (browsers may send 44.1/48 kHz stereo)
CHANNELS = 1
SAMPLE_BYTES = 2
INSECURE = ("Voice notes need the microphone, which browsers allow only on a secure page: open "
            "this chat on the host itself (http://localhost) or over https.")
NO_VOICE = "Voice notes are not available on this page."
NO_RECORDER = ("This page cannot record voice notes (the static web client has no recorder): "
               "open the chat at the host's own address, or in the app.")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def insecure_page(url: str | None) -> bool:
    """A page over plain http on another host: no microphone for it in any browser. (Flet's
    ``page.url`` in host mode is the session's WebSocket URL: ``ws://`` is plain http.)"""
    if not url:
        return False
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme in ("http", "ws") and not (host in LOCAL_HOSTS or host.startswith("127.")
                                           or host.endswith(".localhost"))


STANDARD_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
SNIFF_BYTES = 1 << 20  # enough of the recording to tell a mono microphone copied to two channels


def pcm_format(raw: Path, seconds: float) -> tuple[int, int]:
    """(rate, channels) of a browser's raw 16-bit recording that lasted ``seconds``. The upload
    has no header, and browsers record at their own rate whatever the recorder was asked for
    (headless Chromium sends 44.1 kHz stereo when 16 kHz mono is asked). So: the standard rate
    and channel count whose bytes per second come nearest what arrived in that time; two channels
    when every pair of samples is equal (a mono microphone on both), else one, at a tie."""
    size = raw.stat().st_size
    if seconds <= 0 or size < 2 * SAMPLE_BYTES:
        return SAMPLE_RATE, CHANNELS
    with open(raw, "rb") as f:
        head = f.read(SNIFF_BYTES)
    head = head[:len(head) - len(head) % (2 * SAMPLE_BYTES)]
    samples = memoryview(head).cast("h")
    copied = samples[0::2] == samples[1::2]
    per_second = size / SAMPLE_BYTES / seconds

    def miss(option: tuple[int, int]) -> tuple[float, bool]:
        rate, channels = option
        return abs(rate * channels - per_second) / (rate * channels), (channels == 2) != copied

    return min(((r, c) for r in STANDARD_RATES for c in (1, 2)), key=miss)


def pcm_to_wav(raw: Path, wav: Path, rate: int = SAMPLE_RATE, channels: int = CHANNELS) -> int:
    """Wrap raw 16-bit little-endian PCM in a WAV header; the duration in ms."""
    frame = SAMPLE_BYTES * channels
    with open(raw, "rb") as src, wave.open(str(wav), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(SAMPLE_BYTES)
        out.setframerate(rate)
        frames = 0
        while block := src.read(1 << 20):
            usable = len(block) - len(block) % frame  # a torn last sample is dropped
            out.writeframes(block[:usable])
            frames += usable // frame
    return frames * 1000 // rate


class Voice:
    """The record button (and its cancel button) beside the composer, and the session's player."""

    def __init__(self, page: ft.Page, attach: Attach) -> None:
        self.page, self.attach = page, attach
        backend = attach.backend
        self.web = attach.web
        self.ticket: Any = None
        self.recording_path: Path | None = None  # the app's recording, in the data dir's scratch
        self.recording = False
        self.started: datetime.datetime | None = None
        self.player: Any = None
        self.recorder: Any = None
        if backend.capabilities.voice:
            # Imported only where voice notes are on: the static web client (voice off) ships
            # neither extension among its wheels.
            import flet_audio as fa
            import flet_audio_recorder as far

            self._far = far
            self.player = fa.Audio(release_mode=fa.ReleaseMode.STOP)
            self.recorder = far.AudioRecorder(configuration=far.AudioRecorderConfiguration(
                encoder=far.AudioEncoder.PCM16BITS if self.web else far.AudioEncoder.WAV,
                channels=CHANNELS, sample_rate=SAMPLE_RATE))
        why = self.unavailable(page, backend, attach.tickets)
        self.button = ft.IconButton(
            icon=ft.Icons.MIC_NONE, tooltip=f"{RECORD_TOOLTIP}: {why}" if why else RECORD_TOOLTIP,
            # where files go (a voice note is one), never hidden: off, its tooltip says why; with
            # file sharing off the attach button is not there either
            disabled=bool(why), on_click=self.toggle, visible=backend.capabilities.files)
        self.cancel_button = ft.IconButton(icon=ft.Icons.DELETE_OUTLINE, tooltip=CANCEL_TOOLTIP,
                                           on_click=self.cancel, visible=False)

    @property
    def controls(self) -> list[ft.Control]:
        """The cancel button only where recording can start (a hidden control still costs each
        tab's heap, issue 12); the record button wherever files go, off with the reason where
        it cannot record."""
        if not self.button.visible:
            return []
        return [self.button, self.cancel_button] if not self.button.disabled else [self.button]

    def unavailable(self, page: ft.Page, backend: Any, tickets: Any) -> str:
        if not backend.capabilities.voice:
            return NO_RECORDER
        if self.web:
            if tickets is None:
                return NO_VOICE
            try:
                url = page.url
            except (AttributeError, RuntimeError):
                url = None
            if insecure_page(url):
                return INSECURE
        return ""

    def _show(self, recording: bool) -> None:
        self.recording = recording
        self.button.icon = ft.Icons.STOP_CIRCLE if recording else ft.Icons.MIC_NONE
        self.button.icon_color = ft.Colors.RED_600 if recording else None
        self.button.tooltip = STOP_TOOLTIP if recording else RECORD_TOOLTIP
        self.cancel_button.visible = recording
        for c in (self.button, self.cancel_button):
            try:
                c.update()
            except (RuntimeError, AssertionError):
                pass

    async def toggle(self, e: ft.Event | None = None) -> None:
        if self.recording:
            await self.stop_and_send()
        else:
            await self.start()

    async def start(self) -> None:
        try:
            if not await self.recorder.has_permission():
                self.attach.say("No microphone here, or permission to use it was denied.")
                return
            if self.web:
                self.ticket = self.attach.tickets.issue(self.attach.owner, "voice-note.pcm",
                                                         self.attach.address)
                ok = await self.recorder.start_recording(
                    upload=self._far.AudioRecorderUploadSettings(upload_url=self.ticket.url,
                                                           method="PUT"))
            else:
                folder = self.attach.backend.scratch_dir()
                if folder is None:
                    self.attach.say("Voice notes need a data folder, and file sharing is off here.")
                    return
                self.recording_path = folder / self._name()
                ok = await self.recorder.start_recording(output_path=str(self.recording_path))
        except (ValidationError, RuntimeError, TimeoutError) as err:
            self.attach.say(f"Could not start recording: {err}")
            self._let_go(*self._take())
            return
        if not ok:
            self.attach.say("Could not start recording (no microphone?).")
            self._let_go(*self._take())
            return
        self.started = datetime.datetime.now()
        self._show(True)
        self.attach.show_status("Recording... click the square to send.")

    async def stop_and_send(self) -> None:
        # This note's ticket and file, taken now: the button is on again at once, and a next
        # note started while this one is sent has its own.
        ticket, recording = self._take()
        self._show(False)
        self.attach.show_status("")
        seconds = (datetime.datetime.now() - self.started).total_seconds() if self.started else 0.0
        try:
            where = await self.recorder.stop_recording()
            if self.web:
                path = await self._wav_from_upload(ticket, seconds)
            elif where:
                path = Path(where)
            else:
                raise ValidationError("the recorder gave nothing back")
            await self.attach.share([path])
        except (ValidationError, RuntimeError, TimeoutError, OSError) as err:
            self.attach.say(f"The voice note could not be sent: {err}")
        finally:
            self._let_go(ticket, recording)

    async def _wav_from_upload(self, ticket: Any, seconds: float) -> Path:
        raw = await self.attach.tickets.wait(ticket, 30)
        wav = raw.with_name(self._name())
        rate, channels = await asyncio.to_thread(pcm_format, raw, seconds)
        ms = await asyncio.to_thread(pcm_to_wav, raw, wav, rate, channels)
        if ms <= 0:
            raise ValidationError("nothing was recorded")
        if ms > MAX_VOICE_MS:
            raise ValidationError(f"longer than {MAX_VOICE_MS // 60000} minutes")
        return wav

    def _name(self) -> str:
        # two notes may start within a second: each needs a file of its own
        return f"voice-note-{datetime.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}.wav"

    def _take(self) -> tuple[Any, Path | None]:
        """The current note's upload ticket and file, which are then no longer current."""
        taken = self.ticket, self.recording_path
        self.ticket, self.recording_path = None, None
        return taken

    def _let_go(self, ticket: Any, recording: Path | None) -> None:
        """Shared (copied into the store) or given up: neither the upload nor the file is kept."""
        if ticket is not None:
            self.attach.tickets.release(ticket.token)
        if recording is not None:
            recording.unlink(missing_ok=True)

    async def cancel(self, e: ft.Event | None = None) -> None:
        self._show(False)
        self.attach.show_status("")
        try:
            await self.recorder.cancel_recording()
        except (RuntimeError, TimeoutError) as err:
            log.debug("cancel recording: %s", err)
        self._let_go(*self._take())

    # ---- playback ----
    async def play(self, src: str) -> None:
        """One player per session: a new note stops the one playing."""
        if self.player is None:
            self.attach.say("Voice notes do not play here; open the chat in the app or a host's tab.")
            return
        try:
            if self.player.src != src:
                self.player.src = src
                self.player.update()
            await self.player.play()
        except (RuntimeError, TimeoutError) as err:
            self.attach.say(f"Could not play it: {err}")
