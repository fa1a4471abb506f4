"""What the UI sees of a file (the ``ChatBackend`` port's file values and events): pure, no flet.

``FileView`` is a snapshot of one attached file on this device; ``FileChanged`` is published through
``ChatBackend.subscribe`` whenever that snapshot changes (progress, done, failed, holders gone).
"""

from __future__ import annotations

import hashlib
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
    """The file ``sha256`` changed state (delivered to every ``subscribe`` handler); ``of``:
    the view is of that private-room description of the blob (``sealed_digest``), not of the
    blob as an ordinary file ("")."""

    sha256: str
    view: FileView
    of: str = ""


def sealed_digest(ref: object) -> str:
    """Which private-room description of a blob ``ref`` is (a ``FileRef``): a blob's hash is
    public, so another message (anywhere) may name the same blob with a description of its
    own, and the state of one must never be taken for the other's. "" for an ordinary file."""
    sealed = getattr(ref, "sealed", None)
    if sealed is None:
        return ""
    return hashlib.sha256(sealed.encode("ascii", "replace")).hexdigest()[:32]
