"""This install's stable peer id and the data-dir lock (the I/O edge for identity files)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .model import ValidationError, new_id, validate_id

PEER_ID_FILE = "peer_id"
LOCK_FILE = "instance.lock"


class DataDirInUse(RuntimeError):
    """Another running instance owns this data dir; two instances must not share one."""


def load_or_create_peer_id(data_dir: Path) -> str:
    """Read the install's peer id, creating it (owner-only permissions) on first run."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PEER_ID_FILE
    if path.exists():
        try:
            return validate_id(path.read_text(encoding="utf-8").strip(), "peer id")
        except (ValidationError, UnicodeDecodeError):
            backup = path.with_name(f"{PEER_ID_FILE}.corrupt-{int(time.time() * 1000)}")
            path.replace(backup)
            print(f"fletchat: {path} was unreadable; moved it to {backup} and made a new id",
                  file=sys.stderr)
    peer_id = new_id()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(peer_id + "\n")
    tmp.replace(path)
    return peer_id


class DataDirLock:
    """An exclusive lock on the data dir, held for the life of the process."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fh = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held open on purpose
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            fh.close()
            raise DataDirInUse(
                f"another Flet Chat is already using {self.path.parent}; "
                "give this one its own --data-dir"
            ) from err
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
