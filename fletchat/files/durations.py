"""A voice note's duration, read on the device that has the file (as its thumbnail is made there)
and carried in the message's ``ms`` (docs/protocol.md, "files"), so every row can say how long it
is before anything is downloaded."""

from __future__ import annotations

import wave
from pathlib import Path

from .limits import MAX_VOICE_MS

WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})


def wav_ms(path: Path) -> int | None:
    """The duration of a PCM WAV file in milliseconds; None if it is not one this can read, or is
    longer than a voice note may be (then it is shared as an ordinary file)."""
    try:
        with wave.open(str(path), "rb") as w:
            frames, rate = w.getnframes(), w.getframerate()
    except (wave.Error, EOFError, OSError):
        return None
    if rate <= 0:
        return None
    ms = frames * 1000 // rate
    return ms if 0 <= ms <= MAX_VOICE_MS else None
