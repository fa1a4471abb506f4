"""Who on this device wrote a message, beyond its name: a host knows its people only by the name
they join under, so a tab (or static client) that joined as "Alice" could edit or delete what
Alice wrote from that host. Each browser keeps a random *owner secret* (client storage) and gives
it when it joins; the device records a digest of it for every chat message the session writes,
and only a session with the same secret may edit or delete that message (docs/security.md, "Who
may change what"). The secret itself: ``owner``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path

from .conversation.kinds import NOT_AUTHOR
from .model import ValidationError

log = logging.getLogger(__name__)

AUTHORS_FILE = "authors.sqlite3"
MAX_AUTHORED = 200_000  # messages remembered (past it the oldest 10,000 go: no longer changeable)
PRUNE_BATCH = 10_000  # rows dropped at once past the bound (a delete per message would cost more)
# The same name, not the same person: the browser's owner secret differs.
OTHER_BROWSER = NOT_AUTHOR + " It can be changed only from the browser or app it was written in."
UNKNOWN_AUTHOR = "Could not check who wrote this message. Try again in a moment."
UNRECORDED = ("This message can no longer be edited or deleted here: who wrote it is not "
              "recorded on this device.")


class Authorship:
    """Message id -> its owner's digest, in a small SQLite file of its own (``open``) or, with no
    data directory, in memory. Safe to call from any thread (sends are stored off the loop)."""

    def __init__(self, db: sqlite3.Connection | None = None, limit: int = MAX_AUTHORED,
                 since: float = 0.0) -> None:
        self._db = db
        self._limit = limit
        # Wall-clock seconds from which every chat message this device's sessions write is
        # recorded: one written since with no record (pruned, a failed write) is nobody's to
        # change, never the name rule's. In memory: 0, every message (nothing older is known).
        self.since = since
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._count = self._rows() if db is not None else 0

    @classmethod
    def open(cls, data_dir: Path, limit: int = MAX_AUTHORED) -> Authorship:
        """The install's record; in memory (logged) when the file cannot be used, so a broken
        file costs the protection across restarts, never the chat."""
        try:
            db = sqlite3.connect(data_dir / AUTHORS_FILE, check_same_thread=False,
                                 isolation_level=None)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS authored (n INTEGER PRIMARY KEY, "
                       "id TEXT NOT NULL UNIQUE, owner BLOB NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL)")
            db.execute("INSERT OR IGNORE INTO meta VALUES ('since', ?)", (time.time(),))
            since = float(db.execute("SELECT value FROM meta WHERE key = 'since'").fetchone()[0])
        except (sqlite3.Error, TypeError, ValueError) as err:  # in memory: earlier runs' messages
            log.error("who wrote what is kept in memory only: %s", err)  # are nobody's this run
            return cls(None, limit)
        return cls(db, limit, since)

    def _rows(self) -> int:
        assert self._db is not None
        return int(self._db.execute("SELECT count(*) FROM authored").fetchone()[0])

    def wrote(self, msg_id: str, owner: bytes) -> None:
        """Record that ``owner`` wrote ``msg_id`` (before it is posted: an edit can follow fast)."""
        with self._lock:
            if self._db is None:
                self._memory[msg_id] = owner
                while len(self._memory) > self._limit:
                    self._memory.popitem(last=False)
                return
            try:
                self._db.execute("INSERT OR IGNORE INTO authored (id, owner) VALUES (?, ?)",
                                 (msg_id, owner))
                self._count += 1
                if self._count > self._limit:
                    self._db.execute("DELETE FROM authored WHERE n IN (SELECT n FROM authored "
                                     "ORDER BY n LIMIT ?)", (min(PRUNE_BATCH, self._count),))
                    self._count = self._rows()
            except sqlite3.Error as err:  # nobody may change this message here (``since``)
                log.warning("who wrote %s not recorded: %s", msg_id, err)

    def check(self, msg_id: str, written_at: float, owner: bytes | None) -> None:
        """``ValidationError`` unless ``owner`` may change the own message ``msg_id`` (written at
        ``written_at``, this device's clock): its recorded owner; one written before ``since``
        falls to the caller's name rule (this device kept no record then)."""
        wrote = self.owner_of(msg_id)
        if wrote is None:
            if written_at >= self.since:
                raise ValidationError(UNRECORDED)
        elif wrote != owner:
            raise ValidationError(OTHER_BROWSER)

    def owner_of(self, msg_id: str) -> bytes | None:
        """The digest of who wrote ``msg_id`` here; ``None`` when not recorded (written before
        ``since``, forgotten past ``MAX_AUTHORED``, or its write failed); ``ValidationError``
        when the file cannot be read."""
        with self._lock:
            if self._db is None:
                return self._memory.get(msg_id)
            try:
                row = self._db.execute("SELECT owner FROM authored WHERE id = ?",
                                       (msg_id,)).fetchone()
            except sqlite3.Error as err:  # refused, not waved through on the name alone
                log.warning("who wrote %s unknown: %s", msg_id, err)
                raise ValidationError(UNKNOWN_AUTHOR) from None
            return bytes(row[0]) if row is not None else None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
