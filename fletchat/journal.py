"""Messages written here, one line each in a file beside the history, appended before they go
out (``StoreWriter.submit`` of a local record, on ``Hub.post``'s path) and emptied once the store
has committed them. ``Store.open`` stores whatever the file still holds that the store has not
(the app stopped, or the disk was full, between a send and its commit), then empties it: a message
that went out is never missing from its own device's history, and its seq is never given again.

One ``os.write`` per message, no fsync: the durability of the history's own commits (SQLite WAL
with ``synchronous = NORMAL``): an app crash loses nothing, a power cut may lose the last moments.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any


class Journal:
    """An append-only file of JSON lines (``entries`` skips a line torn by a crash)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.size = 0  # the file's length (only this process writes it: the data dir is locked)

    def entries(self) -> list[dict[str, Any]]:
        """What the file holds, oldest first."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out = []
        for line in raw.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def append(self, entry: dict[str, Any]) -> None:
        """Add one line. ``OSError`` (a full disk, a read-only folder) is raised: the caller
        fails the send; a partly written line is cut off again first."""
        data = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        fd = self._open()
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            try:
                os.ftruncate(fd, self.size)
            except OSError:
                pass
            raise
        self.size += len(data)

    def clear(self) -> None:
        """Empty the file (everything in it is committed)."""
        fd = self._open()
        if self.size:
            os.ftruncate(fd, 0)
            self.size = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self.size = os.fstat(self._fd).st_size
        return self._fd
