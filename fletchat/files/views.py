"""What the UI sees of a file (the ``ChatBackend`` port's file values and events): pure, no flet.

``FileView`` is a snapshot of one attached file on this device; ``FileChanged`` is published through
``ChatBackend.subscribe`` whenever that snapshot changes (progress, done, failed, holders gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class FileState(StrEnum):
    AVAILABLE_REMOTE = "available_remote"  # others have it; not fetched here (click to download)
    FETCHING = "fetching"  # chunks arriving (``done_bytes`` of ``size``)
    READY = "ready"  # stored and verified here: ``path`` is the file (for sealed: the opened copy)
    WAITING_FOR_HOLDER = "waiting_for_holder"  # nobody who has it is online; resumes when one is
    FAILED = "failed"  # ``reason`` says why (quota, hash, refused ...)
    SEALED_NO_KEY = "sealed_no_key"  # a private room's file, and this person has no passphrase


@dataclass(frozen=True)
class FileView:
    state: FileState
    done_bytes: int
    size: int
    path: Path | None = None
    thumb: Path | None = None
    reason: str = ""
    name: str = ""  # display name ("" when sealed without the key); never a path
    mime: str = ""


@dataclass(frozen=True)
class FileChanged:
    """The file ``sha256`` changed state (delivered to every ``subscribe`` handler)."""

    sha256: str
    view: FileView
