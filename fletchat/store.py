"""Persistent history: SQLite (WAL, FTS5), per-origin sequence numbers, sync cursors, outbox.

The store knows messages, channels, origins (the install that wrote a message) and opaque peer keys
for sync cursors. It does not know sockets, sessions or controls. Every method is thread-safe: one
connection guarded by one lock (WAL lets other processes read meanwhile). Bursts of incoming
messages go through ``StoreWriter``, which commits them in batches on its own thread.

See ``docs/store.md`` for the schema, ordering, catch-up exchange, outbox and corruption handling.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Self

from .clock import Stamp
from .conversation.stored import ConvStoreMethods, conv_columns, stored_conv
from .idfilter import KnownIds
from .journal import Journal
from .model import DEFAULT_CHANNEL, FileRef, FletChatError, Message, ValidationError
from .sqlbatch import all_rows, id_chunks, insert_rows

log = logging.getLogger(__name__)

# "FLCT" in the database header (PRAGMA application_id), so a foreign database is recognised.
APPLICATION_ID = 0x464C4354
# How long after a commit the checkpointer thread copies the write-ahead log into the database
# (SQLite's automatic checkpoint is off: it ran inside the commit that crossed 1000 pages).
CHECKPOINT_EVERY_S = 0.5
SQLITE_HEADER = b"SQLite format 3\x00"

class State(StrEnum):
    """Where a message written here stands (the outbox); peers' messages are DELIVERED."""

    PENDING = "pending"  # stored here, not yet handed to any connection
    SENT = "sent"  # handed to at least one connection, no peer confirmed it yet
    DELIVERED = "delivered"  # a peer confirmed it stored it


STATES: tuple[State, ...] = tuple(State)

# Search markers around each matched term in a snippet. STX/ETX are control characters, which
# ``model.validate_text`` never lets into a message, so they cannot collide with stored text.
MARK_START = "\x02"
MARK_END = "\x03"
MAX_QUERY_CHARS = 200
MAX_QUERY_TERMS = 16
SNIPPET_TOKENS = 12
MAX_BATCH = 1000  # upper bound for missing_for / recent / search limits

_TERM_RE = re.compile(r"\w+")


class StoreError(FletChatError, RuntimeError):
    """The database cannot be used; ``str(err)`` says why and where the original was copied."""


class DuplicateMessage(StoreError):
    """``add_local`` of an id that is already stored."""


class StoreFull(StoreError):
    """A write failed because the disk is full or the data directory is read-only. What is
    stored stays readable; the app keeps running read-only (``Hub.store_error`` says why)."""


# SQLite's words for "cannot write here" (disk/quota full, read-only file or directory).
_WRITE_FAULTS = ("disk is full", "readonly", "read-only", "disk i/o error", "unable to open")


def write_fault(err: BaseException) -> StoreFull | None:
    """``err`` as a ``StoreFull`` if it means the store cannot be written, else ``None``."""
    if isinstance(err, StoreFull):
        return err
    if isinstance(err, PermissionError) or (
        isinstance(err, OSError) and getattr(err, "errno", None) in (28, 30, 122)
    ):
        return StoreFull(f"cannot write the history ({err.strerror or err})")
    if isinstance(err, sqlite3.Error) and any(w in str(err).lower() for w in _WRITE_FAULTS):
        return StoreFull(f"cannot write the history ({err})")
    return None


@dataclass(frozen=True)
class Record:
    """A message as the store keeps it: the shared ``Message`` plus store-side ordering fields.

    ``hlc`` orders history everywhere; ``seq`` is the origin's own counter (1, 2, 3, ... per origin)
    used for catch-up, ``None`` for messages from peers that do not send one.
    """

    msg: Message
    hlc: Stamp
    seq: int | None = None
    state: State = State.DELIVERED
    received_at: float = 0.0
    # Signed by its origin's known key (verified beats unverified for an id or (origin, seq)).
    verified: bool = field(default=False, compare=False)
    row: int = field(default=0, compare=False)  # local row number: later arrivals are larger
    # Written on this install (``Hub.post``): stored with its ``state`` (pending or sent) and
    # queued in the outbox, as ``Store.add_local`` does, but through the batched writer.
    local: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class Hit:
    """A search result: the record and a snippet with ``MARK_START``/``MARK_END`` around matches."""

    record: Record
    snippet: str


# ---- schema ----------------------------------------------------------------------------------
# Each entry upgrades the schema by one version (PRAGMA user_version = index + 1), inside one
# transaction together with the version bump, so an interrupted upgrade leaves the old version.
# Never edit a shipped entry; append a new one.
MIGRATIONS: tuple[str, ...] = (
    # v1
    f"""
    PRAGMA application_id = {APPLICATION_ID};
    CREATE TABLE channels (
        name TEXT PRIMARY KEY,
        created_at REAL NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO channels (name, created_at) VALUES ('{DEFAULT_CHANNEL}', 0);
    CREATE TABLE messages (
        n INTEGER PRIMARY KEY,              -- local row number (FTS5 content rowid)
        id TEXT NOT NULL UNIQUE,
        channel TEXT NOT NULL,
        origin TEXT NOT NULL,
        seq INTEGER CHECK (seq IS NULL OR seq >= 1),
        hlc TEXT NOT NULL,
        kind TEXT NOT NULL,
        author TEXT NOT NULL,
        text TEXT NOT NULL,
        ts REAL NOT NULL,
        received_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'delivered'
            CHECK (state IN ('pending', 'sent', 'delivered'))
    );
    CREATE UNIQUE INDEX messages_origin_seq ON messages (origin, seq) WHERE seq IS NOT NULL;
    CREATE INDEX messages_channel_hlc ON messages (channel, hlc);
    CREATE INDEX messages_hlc ON messages (hlc);
    CREATE TABLE origins (
        origin TEXT PRIMARY KEY,
        contiguous INTEGER NOT NULL DEFAULT 0,  -- every seq 1..contiguous is stored
        max_seq INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE sync_cursors (
        peer TEXT NOT NULL,
        origin TEXT NOT NULL,
        seq INTEGER NOT NULL,                   -- peer is known to hold origin's 1..seq
        updated_at REAL NOT NULL,
        PRIMARY KEY (peer, origin)
    ) WITHOUT ROWID;
    CREATE TABLE outbox (
        id TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
        queued_at REAL NOT NULL,
        sent_at REAL,
        delivered_at REAL
    ) WITHOUT ROWID;
    CREATE INDEX outbox_undelivered ON outbox (queued_at) WHERE delivered_at IS NULL;
    """,
    # v2: verified beats unverified (docs/store.md). Peers' rows from v1 start unverified and are
    # upgraded when their signed copy arrives again; own rows (in the outbox) are verified.
    """
    ALTER TABLE messages ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;
    UPDATE messages SET verified = 1 WHERE id IN (SELECT id FROM outbox);
    ALTER TABLE origins ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN refused_by TEXT;
    ALTER TABLE outbox ADD COLUMN refused_reason TEXT;
    """,
    # v3: attached files (issue 13): the message's ``files`` wire list as JSON (NULL = none), and
    # their names (lowercase, one per line; sealed files give none) for search by attachment name.
    """
    ALTER TABLE messages ADD COLUMN files TEXT;
    ALTER TABLE messages ADD COLUMN file_names TEXT;
    CREATE INDEX messages_with_files ON messages (hlc) WHERE file_names IS NOT NULL;
    """,
    # v4: conversation (docs/store.md): a message's conversation fields as JSON (reply, target,
    # emoji, ...), the delete that erased a row's text, and an index of the event rows
    # (reactions, edits, deletes) the hub folds into rows. Old rows keep NULLs: nothing changes.
    """
    ALTER TABLE messages ADD COLUMN conv TEXT;
    ALTER TABLE messages ADD COLUMN redacted_by TEXT;
    CREATE INDEX messages_events ON messages (n) WHERE kind IN ('reaction', 'edit', 'delete');
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

# The full-text index is derived data: created (and rebuilt) whenever FTS5 is available, and its
# triggers dropped when it is not (some mobile Python builds ship SQLite without FTS5), in which
# case search falls back to LIKE. It is therefore not part of the numbered migrations.
_FTS_SQL = """
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    text, content='messages', content_rowid='n', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS messages_fts_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.n, old.text);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_au AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.n, old.text);
    INSERT INTO messages_fts (rowid, text) VALUES (new.n, new.text);
END;
"""
_FTS_TRIGGERS = ("messages_fts_ad", "messages_fts_au")
# New rows are indexed by the store's own inserts (``_index_rows``), a batch with one statement: a
# per-row insert trigger cost half of a catch-up batch's commit. Versions before that had one; a
# history they opened has it again (and is consistent), and it is dropped here so rows are not
# indexed twice.
_OLD_INSERT_TRIGGER = "messages_fts_ai"

_COLS = "m.id, m.kind, m.author, m.origin, m.text, m.ts, m.channel, m.hlc, m.seq, m.state, " \
        "m.received_at, m.verified, m.n, m.files, m.conv, m.redacted_by"
_COL_NAMES = tuple(c.split(".")[-1] for c in _COLS.split(", "))  # as a subquery names them
_REAL_COLS = ("ts", "received_at")
ROW_KINDS_SQL = "('chat', 'join', 'leave', 'channel', 'rename')"  # model.ROW_KINDS: shown as rows


def fts5_available() -> bool:
    """Whether this Python's SQLite was built with FTS5."""
    try:
        con = sqlite3.connect(":memory:")
        try:
            con.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return True


def fts_query(raw: str) -> str | None:
    """What a person typed, as a safe FTS5 query: every word quoted, each a prefix, all required.

    Only runs of word characters survive, each wrapped in double quotes, so FTS5 operators and
    syntax (``"``, ``*``, ``NEAR(``, ``AND``, ``:``, parentheses) are searched as plain words or
    dropped, never interpreted. ``None`` when nothing searchable is left.
    """
    terms = _TERM_RE.findall(raw[:MAX_QUERY_CHARS])[:MAX_QUERY_TERMS]
    if not terms:
        return None
    return " ".join('"' + t.replace('"', '""') + '"*' for t in terms)


def _row_to_record(row: Sequence[object]) -> Record:
    (mid, kind, author, origin, text, ts, channel, hlc, seq, state, received_at, verified, n,
     files, conv, redacted_by) = row
    # Rows were validated (model.Message.from_dict / Message.chat) before they were stored. The
    # message carries its stamp and seq already, so ``outbox.wire`` need not copy it (catch-up).
    seq = None if seq is None else int(seq)  # type: ignore[call-overload]
    msg = Message(
        str(mid), str(kind), str(author), str(origin), str(text),
        float(ts), str(channel), str(hlc), seq or 0,  # type: ignore[arg-type]
        files=_files_of(files),
        conv=stored_conv(str(kind), conv, redacted_by) if conv or redacted_by else None,
    )
    state = str(state)
    return Record(
        msg,
        Stamp.decode(hlc),
        seq,
        State(state) if state in STATES else State.DELIVERED,
        float(received_at),  # type: ignore[arg-type]
        bool(verified),
        int(n),  # type: ignore[call-overload]
    )


def _files_of(raw: object) -> tuple[FileRef, ...]:
    """The ``files`` column back into ``FileRef``s (validated when stored; parsed the same way)."""
    if not raw:
        return ()
    return tuple(FileRef.from_wire(f) for f in json.loads(str(raw)))


def _files_columns(msg: Message) -> tuple[str | None, str | None]:
    """(files JSON, searchable names) for a message's row."""
    if not msg.files:
        return None, None
    names = "\n".join(f.name.lower() for f in msg.files if f.name)
    return (json.dumps([f.to_wire() for f in msg.files], ensure_ascii=False, separators=(",", ":")),
            names or None)


def _backup(path: Path) -> Path:
    """Copy the database (and its -wal/-shm, if any) to ``<name>.bad-<timestamp>``; never delete."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.bad-{stamp}-{n}")
    shutil.copy2(path, target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            shutil.copy2(side, target.with_name(target.name + suffix))
    return target


def _read_connection(path: Path) -> sqlite3.Connection:
    """A second, read-only connection to the same file (query_only: it can never write)."""
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    con.execute("PRAGMA query_only = 1")
    return con


def _inspection_connection(path: Path) -> sqlite3.Connection:
    """A read-only look at the file that includes a write-ahead log left beside it (a crashed or
    still-running newer version may hold its schema bump there). Only where the directory cannot
    hold the ``-shm`` index a WAL reader needs (read-only or full) does it fall back to reading the
    main file alone (``immutable``)."""
    uri = path.resolve().as_uri()
    con = sqlite3.connect(f"{uri}?mode=ro", uri=True)
    try:
        con.execute("PRAGMA user_version").fetchone()
        return con
    except sqlite3.Error:
        con.close()
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)


def _inspect(path: Path) -> str | None:
    """Why an existing file is not a usable store of ours, or ``None`` if it is (read-only)."""
    with open(path, "rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if not header:
        return None  # empty file: SQLite treats it as a new database
    if header != SQLITE_HEADER:
        return "is not a SQLite database"
    try:
        con = _inspection_connection(path)
    except sqlite3.Error as err:
        return f"cannot be opened ({err})"
    try:
        check = con.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            first = "; ".join(str(r[0]) for r in check[:3])
            return f"is damaged (quick_check: {first})"
        app_id = con.execute("PRAGMA application_id").fetchone()[0]
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.Error as err:
        return f"is damaged or unreadable ({err})"
    finally:
        con.close()
    if app_id == 0 and version == 0 and tables == 0:
        return None  # an empty SQLite database: ours to initialise
    if app_id != APPLICATION_ID:
        return f"belongs to another application (application_id {app_id:#x})"
    if version > SCHEMA_VERSION:
        return (
            f"was written by a newer Flet Chat (schema {version}; this version knows up to "
            f"{SCHEMA_VERSION}); update the app"
        )
    return None


class _StoreReads:
    """The read side of ``Store`` (history pages, search, catch-up answers), kept apart so each
    class stays small. Uses the store's connection, lock and column list."""

    _con: sqlite3.Connection
    _lock: threading.RLock
    _ro: sqlite3.Connection
    _ro_lock: threading.Lock | threading.RLock
    _cols: str
    fts: bool

    # ---- reading ----
    def get(self, msg_id: str) -> Record | None:
        with self._lock:
            row = self._con.execute(
                f"SELECT {self._cols} FROM messages m WHERE m.id = ?", (msg_id,)
            ).fetchone()
        return None if row is None else _row_to_record(row)

    def recent(self, channel: str = DEFAULT_CHANNEL, limit: int = 50,
               before: Stamp | None = None) -> list[Record]:
        """The ``limit`` latest messages of ``channel`` older than ``before``, oldest first.

        Page upwards by passing the first record's ``hlc`` of the previous page as ``before``.
        """
        limit = max(0, min(limit, MAX_BATCH))
        with self._lock:
            if before is None:
                rows = self._records(
                    f"FROM messages m WHERE m.channel = ? AND m.kind IN {ROW_KINDS_SQL} "
                    "ORDER BY m.hlc DESC, m.id DESC LIMIT ?", (channel, limit))
            else:
                rows = self._records(
                    f"FROM messages m WHERE m.channel = ? AND m.hlc < ? "
                    f"AND m.kind IN {ROW_KINDS_SQL} "
                    "ORDER BY m.hlc DESC, m.id DESC LIMIT ?",
                    (channel, before.encode(), limit))
        return rows[::-1]

    def _records(self, rest: str, params: Sequence[object]) -> list[Record]:
        """``SELECT <record columns> rest`` (on the writer's connection, under its lock), every
        row read in one step (``sqlbatch.all_rows``: many rows read row by row wait for the GIL
        once each while the event loop is busy)."""
        rows = all_rows(self._con, f"SELECT {self._cols} {rest}", params, _COL_NAMES, _REAL_COLS)
        return [_row_to_record(r) for r in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._con.execute("SELECT count(*) FROM messages").fetchone()[0])

    def last_hlc(self, origin: str | None = None) -> Stamp | None:
        """The greatest stored stamp (of ``origin``'s messages, if given): seed ``HLC(last=...)``
        with this install's own after a restart, so a peer's far-ahead stamp stored here never
        drags our clock (docs/protocol.md, Acceptance)."""
        with self._lock:
            if origin is None:
                row = self._con.execute("SELECT max(hlc) FROM messages").fetchone()
            else:
                row = self._con.execute(
                    "SELECT max(hlc) FROM messages WHERE origin = ?", (origin,)).fetchone()
        return None if row[0] is None else Stamp.decode(row[0])

    def lookup(self, msg_id: str, origin: str, seq: int) -> tuple[Record | None, Record | None]:
        """(the row with this id, the row in this (origin, seq) slot): two indexed reads on the
        lookup connection, cheap enough for the acceptance pipeline."""
        records = self.lookup_many(((msg_id, origin, seq),))
        by_id = next((r for r in records if r.msg.id == msg_id), None)
        slot = next((r for r in records if r.msg.origin == origin and r.seq == seq), None)
        return by_id, slot

    def lookup_many(self, keys: Sequence[tuple[str, str, int]]) -> list[Record]:
        """``lookup`` for many (id, origin, seq) at once: every row holding one of the ids or
        slots, in one read per 300 keys (a catch-up page is judged with one)."""
        out: list[Record] = []
        for at in range(0, len(keys), 300):
            chunk = keys[at : at + 300]
            ids = list(dict.fromkeys(k[0] for k in chunk))
            seqs: dict[str, list[int]] = {}
            for _, origin, seq in chunk:
                seqs.setdefault(origin, []).append(seq)
            marks = ",".join("?" * len(ids))
            parts = [f"SELECT {self._cols} FROM messages m WHERE m.id IN ({marks})"]
            args: list[object] = list(ids)
            for origin, nums in seqs.items():
                parts.append(f"SELECT {self._cols} FROM messages m WHERE m.origin = ? AND "
                             f"m.seq IN ({','.join('?' * len(nums))})")
                args += [origin, *nums]
            with self._ro_lock:  # one statement: one read transaction, read in one step
                rows = all_rows(self._ro, " UNION ALL ".join(parts), args, _COL_NAMES,
                                _REAL_COLS)
            out += [_row_to_record(r) for r in rows]
        return out

    # ---- search ----
    def search(self, query: str, channel: str | None = None, limit: int = 50,
               marks: tuple[str, str] = (MARK_START, MARK_END)) -> list[Hit]:
        """Messages containing every word of ``query`` (each as a prefix), newest first.

        Any text is safe to pass: it is reduced to quoted words (see ``fts_query``), never raises
        for odd input, and returns ``[]`` when nothing searchable is left.
        """
        limit = max(0, min(limit, MAX_BATCH))
        if not isinstance(query, str) or limit == 0:
            return []
        if not self.fts:
            hits = self._search_like(query, channel, limit, marks)
        else:
            hits = self._search_fts(query, channel, limit, marks)
        return _merge_hits(hits, self._search_file_names(query, channel, limit, marks), limit)

    def _search_fts(self, query: str, channel: str | None, limit: int,
                    marks: tuple[str, str]) -> list[Hit]:
        match = fts_query(query)
        if match is None:
            return []
        with self._lock:
            rows = self._con.execute(
                f"SELECT {self._cols}, snippet(messages_fts, 0, ?, ?, '…', ?) "
                "FROM messages_fts JOIN messages m ON m.n = messages_fts.rowid "
                "WHERE messages_fts MATCH ? AND (? IS NULL OR m.channel = ?) "
                "ORDER BY m.hlc DESC LIMIT ?",
                (marks[0], marks[1], SNIPPET_TOKENS, match, channel, channel, limit),
            ).fetchall()
        return [Hit(_row_to_record(r[:-1]), str(r[-1])) for r in rows]

    def _search_file_names(self, query: str, channel: str | None, limit: int,
                           marks: tuple[str, str]) -> list[Hit]:
        """Messages whose attachments' names contain every word (issue 13: search finds messages
        by attachment name); the snippet is the matching names."""
        terms = _TERM_RE.findall(query[:MAX_QUERY_CHARS].lower())[:MAX_QUERY_TERMS]
        if not terms or "m.files" not in self._cols:
            return []
        where = " AND ".join("m.file_names LIKE ? ESCAPE '\\'" for _ in terms)
        args: list[object] = ["%" + _like_escape(t) + "%" for t in terms]
        with self._lock:
            rows = self._con.execute(
                f"SELECT {self._cols} FROM messages m WHERE m.file_names IS NOT NULL AND {where} "
                "AND (? IS NULL OR m.channel = ?) ORDER BY m.hlc DESC LIMIT ?",
                (*args, channel, channel, limit)).fetchall()
        return [Hit(rec, _highlight(" ".join(f.name for f in rec.msg.files if f.name), terms, marks))
                for rec in map(_row_to_record, rows)]

    def _search_like(self, query: str, channel: str | None, limit: int,
                     marks: tuple[str, str]) -> list[Hit]:
        terms = _TERM_RE.findall(query[:MAX_QUERY_CHARS])[:MAX_QUERY_TERMS]
        if not terms:
            return []
        where = " AND ".join("m.text LIKE ? ESCAPE '\\'" for _ in terms)
        args: list[object] = ["%" + _like_escape(t) + "%" for t in terms]
        with self._lock:
            rows = self._con.execute(
                f"SELECT {self._cols} FROM messages m WHERE {where} AND (? IS NULL OR m.channel = ?) "
                "ORDER BY m.hlc DESC LIMIT ?", (*args, channel, channel, limit)).fetchall()
        return [Hit(rec, _highlight(rec.msg.text, terms, marks))
                for rec in map(_row_to_record, rows)]

    def with_file(self, sha256: str, limit: int = 20) -> list[Record]:
        """Messages that attach the file ``sha256`` (newest first)."""
        if "m.files" not in self._cols:
            return []
        with self._lock:
            rows = self._con.execute(
                f"SELECT {self._cols} FROM messages m WHERE m.files IS NOT NULL "
                "AND instr(m.files, ?) > 0 ORDER BY m.hlc DESC LIMIT ?",
                ('"' + sha256 + '"', max(1, min(limit, MAX_BATCH)))).fetchall()
        return [r for r in map(_row_to_record, rows) if any(f.sha256 == sha256 for f in r.msg.files)]

    # ---- catch-up ----
    def have_summary(self, keyed: Callable[[str], bool] | None = None) -> dict[str, int]:
        """Per origin, the highest seq such that every seq 1..it is stored (origins with >= 1).

        For origins where ``keyed(origin)`` is true (their key is known, so their messages can be
        verified here) only verified rows count: an unsigned squatter in a slot never makes us
        claim to hold the real message (docs/store.md)."""
        verified = "verified" if "m.verified" in self._cols else "0"
        with self._lock:
            rows = self._con.execute(
                f"SELECT origin, contiguous, {verified} FROM origins WHERE contiguous > 0"
            ).fetchall()
        out: dict[str, int] = {}
        for origin, contiguous, ver in rows:
            n = int(ver) if keyed is not None and keyed(str(origin)) else int(contiguous)
            if n > 0:
                out[str(origin)] = n
        return out

    def missing_for(self, summary: Mapping[str, int], limit: int = 200,
                    after: tuple[str, int] | None = None,
                    since: Mapping[str, int] | None = None) -> list[Record]:
        """What a peer whose ``have_summary()`` is ``summary`` lacks: records with a seq above the
        peer's number for their origin, in (origin, seq) order, at most ``limit``.

        Fewer than ``limit`` means this pass is complete. Otherwise ask again with
        ``after=(last.msg.origin, last.seq)``. The peer's summary comes from outside: entries that
        are not (str, int >= 0) are treated as absent. ``since`` maps origins to a row number:
        only rows stored after it are returned for that origin (what this peer was already sent
        above a gap it cannot fill is not sent again, see ``Hub.missing``).
        """
        since = since or {}
        limit = max(1, min(limit, MAX_BATCH))
        out: list[Record] = []
        with self._lock:
            origins = self._con.execute(
                "SELECT origin, max_seq FROM origins WHERE origin >= ? ORDER BY origin",
                (after[0] if after else "",)).fetchall()
            for origin, max_seq in origins:
                have = summary.get(origin, 0)
                if isinstance(have, bool) or not isinstance(have, int) or have < 0:
                    have = 0
                floor = have
                if after is not None and origin == after[0]:
                    floor = max(floor, after[1])
                if max_seq <= floor:
                    continue
                out += self._records(
                    "FROM messages m WHERE m.origin = ? AND m.seq > ? AND m.n > ? "
                    "ORDER BY m.seq LIMIT ?", (origin, floor, since.get(origin, 0),
                                               limit - len(out)))
                if len(out) >= limit:
                    break
        return out

    def update_cursor(self, peer: str, summary: Mapping[str, int]) -> None:
        """Remember that ``peer`` holds each origin's 1..seq (from its summary or its acks).
        Cursors only move forward."""
        with self._lock, self._transaction():
            now = self._now()
            insert_rows(  # one statement for a summary's origins, not one each (sqlbatch)
                self._con, "INSERT INTO sync_cursors (peer, origin, seq, updated_at) VALUES",
                [(peer, origin, seq, now) for origin, seq in summary.items()
                 if not isinstance(seq, bool) and isinstance(seq, int) and seq >= 0],
                "ON CONFLICT (peer, origin) DO UPDATE SET seq = max(seq, excluded.seq), "
                "updated_at = excluded.updated_at")

    def cursor(self, peer: str) -> dict[str, int]:
        """What ``peer`` was last known to hold: pass to ``missing_for`` to push what it lacks."""
        with self._lock:
            rows = self._con.execute(
                "SELECT origin, seq FROM sync_cursors WHERE peer = ?", (peer,)).fetchall()
        return {str(o): int(s) for o, s in rows}


class _StoreOutbox:
    """The outbox and channel tables of ``Store`` (small writes), kept apart so each class stays
    small. Uses the store's connection, lock, clock and transactions."""

    _con: sqlite3.Connection
    _lock: threading.RLock
    _cols: str
    _now: Callable[[], float]

    def _transaction(self) -> _Tx: ...

    # ---- outbox ----
    def pending(self, limit: int = MAX_BATCH) -> list[Record]:
        """Local messages no peer has confirmed yet, oldest first."""
        with self._lock:
            return self._records(
                "FROM outbox o JOIN messages m ON m.id = o.id "
                "WHERE o.delivered_at IS NULL ORDER BY o.queued_at, m.seq LIMIT ?",
                (max(0, min(limit, MAX_BATCH)),))

    def mark_sent(self, msg_id: str) -> bool:
        """Handed to at least one connection (not yet confirmed). ``False`` if not in the outbox."""
        with self._lock, self._transaction():
            now = self._now()
            cur = self._con.execute(
                "UPDATE outbox SET sent_at = coalesce(sent_at, ?) WHERE id = ?", (now, msg_id))
            self._con.execute(
                "UPDATE messages SET state = 'sent' WHERE id = ? AND state = 'pending'", (msg_id,))
            return cur.rowcount == 1

    def mark_delivered(self, msg_id: str) -> bool:
        """A peer confirmed it holds the message. ``False`` if unknown or already delivered."""
        with self._lock, self._transaction():
            now = self._now()
            cur = self._con.execute(
                "UPDATE outbox SET delivered_at = ?, sent_at = coalesce(sent_at, ?) "
                "WHERE id = ? AND delivered_at IS NULL", (now, now, msg_id))
            self._con.execute("UPDATE messages SET state = 'delivered' WHERE id = ?", (msg_id,))
            return cur.rowcount == 1

    def mark_sent_many(self, msg_ids: Iterable[str]) -> None:
        """``mark_sent`` for many ids in one transaction: two statements per 500 ids (a
        statement per id handed the GIL over once per id, ``sqlbatch``)."""
        with self._lock, self._transaction():
            now = self._now()
            for marks, part in id_chunks(self._con, list(dict.fromkeys(msg_ids)), extra=1):
                self._con.execute(
                    f"UPDATE outbox SET sent_at = coalesce(sent_at, ?) WHERE id IN ({marks})",
                    (now, *part))
                self._con.execute(
                    f"UPDATE messages SET state = 'sent' WHERE id IN ({marks}) "
                    "AND state = 'pending'", part)

    def mark_delivered_many(self, msg_ids: Iterable[str]) -> list[str]:
        """``mark_delivered`` for many ids in one transaction: the ids it newly marked, in the
        order given. Three statements per 500 ids (a catch-up's receipts name thousands, nearly
        all delivered long ago): which are still undelivered, then both updates for those."""
        ids = list(dict.fromkeys(msg_ids))
        newly: set[str] = set()
        with self._lock, self._transaction():
            now = self._now()
            for marks, part in id_chunks(self._con, ids, extra=2):
                fresh = [str(r[0]) for r in all_rows(
                    self._con, f"SELECT id FROM outbox WHERE delivered_at IS NULL "
                    f"AND id IN ({marks})", part, ("id",))]
                if not fresh:
                    continue
                newly.update(fresh)
                these = ",".join("?" * len(fresh))
                self._con.execute(
                    "UPDATE outbox SET delivered_at = ?, sent_at = coalesce(sent_at, ?) "
                    f"WHERE id IN ({these})", (now, now, *fresh))
                self._con.execute(
                    f"UPDATE messages SET state = 'delivered' WHERE id IN ({these})", fresh)
        return [i for i in ids if i in newly]

    def mark_refused(self, msg_id: str, peer: str, reason: str) -> bool:
        """A peer refused the message (and said why): kept in the outbox row for the writer's
        view. ``False`` if it is not in the outbox or already delivered."""
        with self._lock, self._transaction():
            cur = self._con.execute(
                "UPDATE outbox SET refused_by = ?, refused_reason = ? "
                "WHERE id = ? AND delivered_at IS NULL", (peer, reason[:200], msg_id))
            return cur.rowcount == 1

    def refusals(self) -> dict[str, tuple[str, str]]:
        """Undelivered messages written here that a peer refused: id -> (peer, reason)."""
        if "m.verified" not in self._cols:
            return {}
        with self._lock:
            rows = self._con.execute(
                "SELECT id, refused_by, refused_reason FROM outbox "
                "WHERE refused_by IS NOT NULL AND delivered_at IS NULL").fetchall()
        return {str(i): (str(p), str(r)) for i, p, r in rows}

    # ---- channels ----
    def channels(self) -> list[str]:
        with self._lock:
            rows = self._con.execute("SELECT name FROM channels ORDER BY name").fetchall()
        return [str(r[0]) for r in rows]

    def create_channel(self, name: str) -> bool:
        """``False`` if it exists. Validate ``name`` with ``model.validate_channel`` first."""
        with self._lock, self._transaction():
            cur = self._con.execute(
                "INSERT OR IGNORE INTO channels (name, created_at) VALUES (?, ?)",
                (name, self._now()))
            return cur.rowcount == 1


class Store(_StoreReads, _StoreOutbox, ConvStoreMethods):
    """Message history in one SQLite file: ``Store.open(path)`` ... ``close()``."""

    def __init__(self, con: sqlite3.Connection, path: Path, fts: bool,
                 clock: Callable[[], float], fault: str = "") -> None:
        self._con = con
        self.path = path
        self.fts = fts
        self._now = clock
        self._lock = threading.RLock()
        self._closed = False
        # Why this store is read-only ("" while it is writable): a full disk or a read-only data
        # directory, found at open or at the first failed write. Reads keep working.
        self.fault = fault
        version = con.execute("PRAGMA user_version").fetchone()[0]
        self._cols = _COLS if version >= 2 else _COLS.replace("m.verified", "0 AS verified")
        if version < 3:  # a read-only store of an older schema: no files column yet
            self._cols = self._cols.replace("m.files", "NULL AS files")
        if version < 4:  # a read-only history from before the conversation columns
            self._cols = self._cols.replace("m.conv, m.redacted_by",
                                            "NULL AS conv, NULL AS redacted_by")
        # Point lookups for the acceptance pipeline use their own connection, so they never wait
        # for the writer thread's transaction (WAL readers do not block on writers).
        self._ro = _read_connection(path) if not fault else con
        self._ro_lock = threading.Lock() if not fault else self._lock
        self._checkpoints: _Checkpointer | None = None
        if not fault:
            con.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer thread does it
            self._checkpoints = _Checkpointer(path)
        rows = con.execute("SELECT max(n) FROM messages").fetchone()[0] or 0
        self.known = KnownIds(2 * rows + 100_000)
        # Our own messages between their send and their commit (journal.py; StoreWriter).
        self.journal = Journal(path.with_name(path.name + ".sending")) if not fault else None
        if not fault:
            threading.Thread(target=_load_known, args=(path, self.known), daemon=True,
                             name="store-known-ids").start()

    def may_hold(self, msg_id: str, origin: str, seq: int) -> bool:
        """False when neither ``msg_id`` nor (``origin``, ``seq``) can be stored here (from
        memory; True means "ask ``lookup``")."""
        return self.known.may_hold(msg_id, origin, seq)

    @property
    def read_only(self) -> bool:
        return bool(self.fault)

    # ---- lifecycle ----
    @classmethod
    def open(cls, path: str | Path, *, fts: bool | None = None,
             clock: Callable[[], float] = time.time) -> Store:
        """Open (creating if needed) and upgrade the store at ``path``.

        Raises ``StoreError`` if the file is not a Flet Chat database, is damaged, or comes from a
        newer schema; the file is first copied to ``<name>.bad-<timestamp>`` and left untouched.
        On a full disk or a read-only data directory an existing history opens read-only
        (``read_only``/``fault`` say so) instead of failing. ``fts=False`` forces the LIKE search
        fallback (as on a SQLite without FTS5).
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"{path.parent} cannot be created: {err.strerror or err}") from err
        if path.exists():
            problem = _inspect(path)
            if problem is not None:
                try:
                    backup = f"copied to {_backup(path)}"
                except OSError as err:
                    backup = f"could not be copied aside ({err.strerror or err})"
                raise StoreError(
                    f"{path} {problem}. It was left as it is and {backup}; "
                    f"move it away (or choose another data directory) to start a new history."
                )
        use_fts = fts5_available() if fts is None else (fts and fts5_available())
        try:
            con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        except sqlite3.Error as err:
            raise StoreError(f"{path} could not be opened: {err}") from err
        try:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")  # durable across app crashes in WAL mode
            con.execute("PRAGMA foreign_keys = ON")
            cls._migrate(con)
            _sync_fts(con, use_fts)
        except (sqlite3.Error, OSError) as err:
            con.close()
            fault = write_fault(err)
            if fault is None or not path.exists() or path.stat().st_size == 0:
                raise StoreError(f"{path} could not be prepared: {err}") from err
            log.error("history opened read-only: %s", fault)
            return cls._open_read_only(path, use_fts, clock, str(fault))
        return _replay_journal(cls(con, path, use_fts, clock))

    @classmethod
    def _open_read_only(cls, path: Path, fts: bool, clock: Callable[[], float],
                        fault: str) -> Store:
        """The history as it is on disk, for reading only (immutable: nothing can write it)."""
        try:
            con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True,
                                  isolation_level=None, check_same_thread=False)
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        except sqlite3.Error as err:
            raise StoreError(f"{path} cannot be read: {err}") from err
        return cls(con, path, fts and "messages_fts" in names, clock, fault=fault)

    @staticmethod
    def _migrate(con: sqlite3.Connection) -> None:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # executescript() cannot run inside an explicit transaction, so run the statements of
            # one migration one by one between BEGIN and COMMIT (SQLite DDL is transactional).
            con.execute("BEGIN IMMEDIATE")
            try:
                for stmt in _statements(MIGRATIONS[target - 1]):
                    con.execute(stmt)
                con.execute(f"PRAGMA user_version = {target}")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            log.debug("store schema upgraded to version %d", target)
            if target == 2:  # the new verified counters start from what v1 rows say
                con.execute("BEGIN IMMEDIATE")
                origins = [r[0] for r in con.execute("SELECT origin FROM origins")]
                for origin in origins:
                    _advance(con, origin)
                con.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._checkpoints is not None:
                self._checkpoints.close()  # before the last connection, which checkpoints it all
            if not self.fault:
                try:
                    self._con.execute("PRAGMA optimize")
                except sqlite3.Error:
                    pass
            if self._ro is not self._con:
                with self._ro_lock:
                    self._ro.close()
            self._con.close()
            if self.journal is not None:
                self.journal.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writing ----
    def add(self, msg: Message, hlc: Stamp, seq: int | None = None) -> bool:
        """Store a message from a peer. ``False`` if it is already stored (same id): idempotent."""
        return self.add_many([Record(msg, hlc, seq)])[0]

    def add_many(self, records: Iterable[Record]) -> list[bool]:
        """Store many records in one transaction; per record, ``True`` if it is now stored as
        given (new, or it replaced an unverified copy), ``False`` if it was not written.

        A record's ``state`` and ``received_at`` are ignored unless it is ``local``: peers'
        messages are stored as ``delivered``, received now. Verified beats unverified: a record
        (verified) replaces an unverified row with the same id or the same (origin, seq); otherwise
        a new id that reuses an already stored (origin, seq) is refused (``False``) and logged.
        """
        records = list(records)
        if not records:
            return []
        results: list[bool] = []
        with self._lock, self._transaction():
            now = self._now()
            touched: set[str] = set()
            channels: set[str] = set()
            self._removed: set[str] = set()
            held = _Held(self._con, records)
            clean: list[Record] = []  # new id, free slot: inserted together (executemany)
            for rec in records:
                if held.clear(rec):
                    clean.append(rec)
                    written = True
                else:  # a row may hold its id or slot: the careful path, after the batch so far
                    _insert_new(self._con, clean, now, self.fts)
                    clean = []
                    written = self._put(rec, now)
                if written:
                    held.took(rec)
                    self.known.add(rec.msg.id, rec.msg.origin, rec.seq)
                    channels.add(rec.msg.channel)
                    touched.add(rec.msg.origin)
                results.append(written)
            _insert_new(self._con, clean, now, self.fts)
            self._ensure_channels(channels, now)
            for origin in touched:
                _advance(self._con, origin, full=origin in self._removed)
        return results

    def _put(self, rec: Record, now: float) -> bool:
        """One record into ``messages`` by the verified-beats-unverified rule (in a transaction)."""
        m = rec.msg
        held = self._con.execute(
            "SELECT verified FROM messages WHERE id = ?", (m.id,)).fetchone()
        if held is not None:
            if not rec.verified or held[0]:
                return False  # already here, as well proven
            self._con.execute("DELETE FROM messages WHERE id = ?", (m.id,))
            self._removed.add(m.origin)  # it may have held another slot of that origin
        if rec.seq is not None:
            slot = self._con.execute(
                "SELECT id, verified FROM messages WHERE origin = ? AND seq = ?",
                (m.origin, rec.seq)).fetchone()
            if slot is not None:
                if not rec.verified or slot[1]:
                    log.warning("message %s refused: %s seq %d is already another message",
                                m.id, m.origin, rec.seq)
                    return False
                log.warning("verified message %s replaces unverified %s at %s seq %d",
                            m.id, slot[0], m.origin, rec.seq)
                self._con.execute("DELETE FROM messages WHERE id = ?", (slot[0],))
        row = self._con.execute(
            "INSERT INTO messages (id, channel, origin, seq, hlc, kind, author, text, ts, "
            "received_at, state, verified, files, file_names, conv, redacted_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (m.id, m.channel, m.origin, rec.seq, rec.hlc.encode(), m.kind, m.author,
             m.text, m.ts, now, _state(rec), int(rec.verified), *_files_columns(m), *conv_columns(m)),
        ).lastrowid
        _index_rows(self._con, self.fts, (row or 1) - 1)
        _queue_outbox(self._con, [rec], now)
        return True

    def add_local(self, msg: Message, hlc: Stamp) -> Record:
        """Store a message written on this install: next seq of ``msg.origin``, state ``pending``,
        queued in the outbox until ``mark_delivered``. Raises ``StoreError`` on a duplicate id."""
        with self._lock, self._transaction():
            now = self._now()
            seq = self._next_seq(msg.origin)
            self.known.add(msg.id, msg.origin, seq)
            try:
                row = self._con.execute(
                    "INSERT INTO messages (id, channel, origin, seq, hlc, kind, author, text, ts, "
                    "received_at, state, verified, files, file_names, conv, redacted_by) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 1, ?, ?, ?, ?)",
                    (msg.id, msg.channel, msg.origin, seq, hlc.encode(), msg.kind, msg.author,
                     msg.text, msg.ts, now, *_files_columns(msg), *conv_columns(msg)),
                ).lastrowid
            except sqlite3.IntegrityError as err:
                raise DuplicateMessage(f"message {msg.id} is already stored") from err
            _index_rows(self._con, self.fts, (row or 1) - 1)
            self._con.execute("INSERT INTO outbox (id, queued_at) VALUES (?, ?)", (msg.id, now))
            self._ensure_channels({msg.channel}, now)
            _advance_next(self._con, msg.origin, seq)
        return Record(msg, hlc, seq, State.PENDING, now, verified=True)

    def next_seq(self, origin: str) -> int:
        """The seq the next message written by ``origin`` gets (1 for a new origin)."""
        with self._lock:
            return self._next_seq(origin)

    # ---- internals ----
    def _transaction(self) -> _Tx:
        if self._closed:
            raise StoreError("the store is closed")
        if self.fault:
            raise StoreFull(self.fault)
        return _Tx(self)

    def _next_seq(self, origin: str) -> int:
        row = self._con.execute(
            "SELECT max(seq) FROM messages WHERE origin = ? AND seq IS NOT NULL", (origin,)).fetchone()
        return 1 if row[0] is None else int(row[0]) + 1

    def _ensure_channels(self, names: set[str], now: float) -> None:
        for name in names:
            self._con.execute(
                "INSERT OR IGNORE INTO channels (name, created_at) VALUES (?, ?)", (name, now))


def _sync_fts(con: sqlite3.Connection, use_fts: bool) -> None:
    """The search index and its triggers as ``use_fts`` wants them (created or dropped)."""
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    if use_fts:
        if "messages_fts" in names and all(t in names for t in _FTS_TRIGGERS):
            if _OLD_INSERT_TRIGGER in names:
                con.execute(f"DROP TRIGGER {_OLD_INSERT_TRIGGER}")
            return
        con.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _statements(_FTS_SQL):
                con.execute(stmt)
            con.execute(f"DROP TRIGGER IF EXISTS {_OLD_INSERT_TRIGGER}")
            con.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    else:
        for trig in (*_FTS_TRIGGERS, _OLD_INSERT_TRIGGER):  # on a missing module they would
            if trig in names:  # break every insert
                con.execute(f"DROP TRIGGER {trig}")


def _replay_journal(store: Store) -> Store:
    """Store what the journal of our own messages still holds (sent, then the app stopped or
    the disk was full before the commit), then empty it; kept if the store cannot take it."""
    journal = store.journal
    if journal is None:
        return store
    records: list[Record] = []
    entries = journal.entries()
    for entry in entries:
        try:
            msg = Message.from_dict(entry.get("msg"))
            records.append(Record(msg, Stamp.decode(msg.hlc), msg.seq or None,
                                  State(entry.get("state")), verified=True, local=True))
        except (ValidationError, ValueError) as err:
            log.warning("a line of %s cannot be read (%s); skipped", journal.path, err)
    try:
        stored = sum(store.add_many(records))
        if stored:
            log.warning("%d messages sent before the app stopped are stored now", stored)
        if entries or journal.path.exists():
            journal.clear()
    except (StoreError, OSError) as err:
        log.error("messages sent before the app stopped stay in %s: %s", journal.path, err)
    return store


def _journal(store: Store, record: Record) -> None:
    """``record`` (ours) into the store's journal before it is queued: a full disk fails it."""
    journal = store.journal
    if journal is None:
        return
    try:
        journal.append({"msg": record.msg.to_dict(), "state": record.state.value})
    except OSError as err:
        fault = write_fault(err) or StoreFull(f"cannot write the history ({err})")
        if not store.fault:
            store.fault = str(fault)
            log.error("history is read-only from now on: %s", fault)
        raise fault from err


def _load_known(path: Path, known: KnownIds) -> None:
    """At open, on a thread: every stored id and each origin's top seq into ``known``."""
    try:
        con = _read_connection(path)
        try:
            # in one step (sqlbatch): row by row, 100,000 ids beside a busy event loop waited
            # for the GIL once per row
            ids = [str(r[0]) for r in all_rows(con, "SELECT id FROM messages", (), ("id",))]
            tops = {str(o): int(s) for o, s in con.execute(
                "SELECT origin, max(seq) FROM messages WHERE seq IS NOT NULL GROUP BY origin")}
        finally:
            con.close()
    except sqlite3.Error as err:  # then every question goes to SQLite, as before
        log.warning("message ids not loaded into memory: %s", err)
        return
    known.loaded(ids, tops)


class _Held:
    """Which ids and (origin, seq) slots of a batch may already be stored: two indexed queries
    per batch instead of two per record. ``clear`` is exact in one direction: a record it calls
    clear has neither its id nor its slot taken, so it can be inserted without ``_put``."""

    def __init__(self, con: sqlite3.Connection, records: list[Record]) -> None:
        self.ids: set[str] = set()
        self.slots: set[tuple[str, int]] = set()
        for marks, chunk in id_chunks(con, [r.msg.id for r in records]):
            self.ids.update(str(r[0]) for r in con.execute(
                f"SELECT id FROM messages WHERE id IN ({marks})", chunk))
        spans: dict[str, tuple[int, int]] = {}
        for r in records:
            if r.seq is not None:
                lo, hi = spans.get(r.msg.origin, (r.seq, r.seq))
                spans[r.msg.origin] = (min(lo, r.seq), max(hi, r.seq))
        for origin, (lo, hi) in spans.items():
            self.slots.update((origin, int(q[0])) for q in con.execute(
                "SELECT seq FROM messages WHERE origin = ? AND seq BETWEEN ? AND ?",
                (origin, lo, hi)))

    def clear(self, rec: Record) -> bool:
        return rec.msg.id not in self.ids and (
            rec.seq is None or (rec.msg.origin, rec.seq) not in self.slots)

    def took(self, rec: Record) -> None:
        """``rec`` is now stored: later records of the batch with its id or slot are not clear."""
        self.ids.add(rec.msg.id)
        if rec.seq is not None:
            self.slots.add((rec.msg.origin, rec.seq))


def _index_rows(con: sqlite3.Connection, fts: bool, after: int) -> None:
    """Add the rows numbered above ``after`` (just inserted, in this transaction) to the search
    index, with one statement however many there are."""
    if fts:
        con.execute("INSERT INTO messages_fts (rowid, text) SELECT n, text FROM messages "
                    "WHERE n > ?", (after,))


def _insert_new(con: sqlite3.Connection, records: list[Record], now: float, fts: bool) -> None:
    """Rows that ``_Held.clear`` passed, in a few multi-row statements (``sqlbatch``), then into
    the search index (new rows are numbered above the highest row at the start: nothing is
    deleted in between)."""
    if records:
        after = con.execute("SELECT max(n) FROM messages").fetchone()[0] or 0
        insert_rows(
            con,
            "INSERT INTO messages (id, channel, origin, seq, hlc, kind, author, text, ts, "
            "received_at, state, verified, files, file_names, conv, redacted_by) VALUES",
            [(r.msg.id, r.msg.channel, r.msg.origin, r.seq, r.hlc.encode(), r.msg.kind,
              r.msg.author, r.msg.text, r.msg.ts, now, _state(r), int(r.verified),
              *_files_columns(r.msg), *conv_columns(r.msg)) for r in records])
        _index_rows(con, fts, after)
        _queue_outbox(con, records, now)


def _state(rec: Record) -> str:
    """The ``state`` column: a local record's own (pending or sent), ``delivered`` otherwise."""
    return rec.state.value if rec.local and rec.state is not State.DELIVERED else "delivered"


def _queue_outbox(con: sqlite3.Connection, records: list[Record], now: float) -> None:
    """The outbox rows of the ``local`` records just inserted (``sent_at`` if handed out)."""
    local = [(r.msg.id, now, now if r.state is State.SENT else None) for r in records if r.local]
    if local:
        insert_rows(con, "INSERT OR IGNORE INTO outbox (id, queued_at, sent_at) VALUES", local)


def _advance(con: sqlite3.Connection, origin: str, full: bool = False) -> None:
    """Move ``origins`` (contiguous, verified contiguous, max_seq) for ``origin`` on from where
    they were (``full``: from 0, after a row was taken out)."""
    row = None if full else con.execute(
        "SELECT contiguous, verified FROM origins WHERE origin = ?", (origin,)).fetchone()
    c = _contiguous(con, origin, row[0] if row else 0, verified_only=False)
    v = _contiguous(con, origin, row[1] if row else 0, verified_only=True)
    top = con.execute(
        "SELECT max(seq) FROM messages WHERE origin = ? AND seq IS NOT NULL", (origin,)).fetchone()[0] or 0
    con.execute(
        "INSERT INTO origins (origin, contiguous, max_seq, verified) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (origin) DO UPDATE SET contiguous = excluded.contiguous, "
        "max_seq = excluded.max_seq, verified = excluded.verified", (origin, c, top, v))


def _advance_next(con: sqlite3.Connection, origin: str, seq: int) -> None:
    """``_advance`` after a verified row at ``origin``'s next seq (``_next_seq``: no row above
    it), in one statement instead of five: the counters move to ``seq`` if they were just below
    it (SQLite evaluates every ``SET`` on the old row), else only ``max_seq`` does."""
    cur = con.execute(
        "UPDATE origins SET max_seq = ?1, "
        "contiguous = CASE WHEN contiguous = ?1 - 1 THEN ?1 ELSE contiguous END, "
        "verified = CASE WHEN verified = ?1 - 1 THEN ?1 ELSE verified END WHERE origin = ?2",
        (seq, origin))
    if cur.rowcount == 0:  # the origin's first row here
        _advance(con, origin)


def _contiguous(con: sqlite3.Connection, origin: str, c: int, verified_only: bool) -> int:
    """The highest n such that every seq 1..n of ``origin`` is stored (and verified, with
    ``verified_only``), given that 1..c are: the end of the run that starts at c + 1, in one
    statement (a walk over the rows would step once per row: ``sqlbatch`` says why not)."""
    m, b = (" AND m.verified = 1", " AND b.verified = 1") if verified_only else ("", "")
    row = con.execute(
        f"SELECT EXISTS (SELECT 1 FROM messages m WHERE m.origin = ?1 AND m.seq = ?2 + 1{m}),"
        f" (SELECT m.seq FROM messages m WHERE m.origin = ?1 AND m.seq > ?2{m} AND NOT EXISTS"
        f" (SELECT 1 FROM messages b WHERE b.origin = ?1 AND b.seq = m.seq + 1{b})"
        " ORDER BY m.seq LIMIT 1)", (origin, c)).fetchone()
    return int(row[1]) if row[0] else c


class _Checkpointer:
    """Copies the write-ahead log into the database on a thread and connection of its own.

    SQLite's automatic checkpoint runs inside whichever commit crosses its threshold, two fsyncs
    included: every ~80 messages that was the event loop's own insert (``add_local``) or a commit
    holding the store's lock, a stall of milliseconds. A passive checkpoint here never blocks
    writers or readers; the log is reused from its start once one has caught up."""

    def __init__(self, path: Path, every: float = CHECKPOINT_EVERY_S) -> None:
        self._con = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                    timeout=10)
        self._every = every
        self._due = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """A transaction was committed: checkpoint within ``every`` seconds."""
        if not self._due.is_set():
            self._due.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._due.wait()
            if self._stop.wait(self._every):  # gather the commits of a burst into one checkpoint
                return
            self._due.clear()
            try:
                self._con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as err:  # e.g. a full disk: the log keeps it, nothing is lost
                log.debug("checkpoint failed: %s", err)

    def close(self) -> None:
        self._stop.set()
        self._due.set()
        self._thread.join(timeout=5.0)
        self._con.close()


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception (the connection autocommits).

    A write that fails because the disk is full or the directory read-only turns the store
    read-only (``Store.fault``) and raises ``StoreFull``; nothing committed before is touched."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._con = store._con

    def __enter__(self) -> None:
        try:
            self._con.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            self._fail(err)

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self._con.execute("COMMIT")
                if self._store._checkpoints is not None:
                    self._store._checkpoints.committed()
                return
            except sqlite3.Error as err:
                exc = err
        with contextlib.suppress(sqlite3.Error):
            self._con.execute("ROLLBACK")
        self._fail(exc)

    def _fail(self, err: BaseException) -> None:
        fault = write_fault(err)
        if fault is None:
            if isinstance(err, Exception) and not isinstance(err, sqlite3.Error):
                return  # the caller's own exception propagates unchanged
            raise err
        if not self._store.fault:
            self._store.fault = str(fault)
            log.error("history is read-only from now on: %s", fault)
        raise fault from err


def _statements(script: str) -> list[str]:
    """Split a script into complete statements (``sqlite3.complete_statement`` handles triggers)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--") and not buf.strip():
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def _merge_hits(text_hits: list[Hit], name_hits: list[Hit], limit: int) -> list[Hit]:
    """Hits on text and on attachment names, newest first, each message once (text snippet wins)."""
    if not name_hits:
        return text_hits
    seen = {h.record.msg.id for h in text_hits}
    merged = text_hits + [h for h in name_hits if h.record.msg.id not in seen]
    merged.sort(key=lambda h: (h.record.hlc.encode(), h.record.msg.id), reverse=True)
    return merged[:limit]


def _like_escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _highlight(text: str, terms: Sequence[str], marks: tuple[str, str]) -> str:
    """Mark case-insensitive occurrences of ``terms`` (the LIKE fallback's snippet)."""
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)),
                         re.IGNORECASE)
    return pattern.sub(lambda m: marks[0] + m.group(0) + marks[1], text)


# ---- batched writes ----------------------------------------------------------------------------
class StoreWriter:
    """Queues records and commits them with ``Store.add_many`` on a background thread: every
    ``batch_size`` records or ``interval`` seconds after the first queued one, or on ``flush()``.

    ``submit`` never touches the disk, so a burst of incoming messages does not stall the caller
    (it blocks only if ``max_queued`` records are already waiting). ``on_commit(records, results)``
    runs on the writer thread after each batch (``results`` is ``None`` if it failed). If a batch
    fails (disk full, I/O error), it is logged and dropped: those messages were never acknowledged
    (an ack waits for the commit), so the peers that sent them still hold them for catch-up.
    """

    def __init__(self, store: Store, batch_size: int = 500, interval: float = 0.05,
                 max_queued: int = 50_000,
                 on_commit: Callable[[list[Record], list[bool] | None], None] | None = None,
                 ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.interval = interval
        self.max_queued = max_queued
        self.on_commit = on_commit
        self.failed = 0
        self._queue: list[Record] = []
        self._cv = threading.Condition()
        self._submitted = 0
        self._done = 0
        self._flush = False
        self._closing = False
        self._callbacks: list[tuple[int, Callable[[], None]]] = []
        self._local = 0  # our own (``local``) records queued, not yet taken into a batch
        self._kept = False  # a batch with some of ours failed: its journal lines stay
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def submit(self, record: Record) -> int:
        """Queue ``record``; returns its ticket for ``wait``."""
        return self.submit_many([record])

    def submit_many(self, records: list[Record]) -> int:
        """Queue ``records`` in order (one lock round, at most one wake-up); returns the last
        one's ticket (the others' are the ones before it). A ``local`` record (ours) goes to the
        store's journal first (``StoreFull`` if it cannot: then it is not queued)."""
        with self._cv:
            if self._closing:
                raise StoreError("the writer is closed")
            while len(self._queue) >= self.max_queued and not self._closing:
                self._cv.wait()
            was = len(self._queue)
            for record in records:
                if record.local:
                    _journal(self.store, record)
                    self._local += 1
            self._queue.extend(records)
            self._submitted += len(records)
            # Wake the writer only when it waits for a first record or a full batch: waking a
            # thread per message costs the caller's thread the CPU and the GIL under load.
            if records and (was == 0 or len(self._queue) >= self.batch_size):
                self._cv.notify_all()
            return self._submitted

    def when_done(self, ticket: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the writer's thread, or now) once the record with ``ticket``
        and all before it are committed or failed: how an event loop waits without a thread."""
        with self._cv:
            if self._done < ticket:
                self._callbacks.append((ticket, callback))
                return
        callback()

    def wait(self, ticket: int, timeout: float | None = None, now: bool = True) -> bool:
        """Commit now (unless not ``now``: then the batch commits when it is due) and block until
        the record with ``ticket`` (and all before it) is committed or failed. ``False`` on
        timeout. Blocking: never call it on an event loop."""
        with self._cv:
            self._flush = self._flush or now
            self._cv.notify_all()
            return self._cv.wait_for(lambda: self._done >= ticket, timeout)

    def flush_ticket(self) -> int:
        """``flush`` without the wait: commit what is queued now, and the ticket that ``when_done``
        then waits for (everything submitted so far)."""
        with self._cv:
            self._flush = True
            self._cv.notify_all()
            return self._submitted

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is committed (or failed). ``False`` on timeout."""
        with self._cv:
            target = self._submitted
            self._flush = True
            self._cv.notify_all()
            return self._cv.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Commit what is queued, then stop the thread. Safe to call twice."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """The writer thread is still alive (before ``close``, or after its timeout ran out)."""
        return self._thread.is_alive()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self) -> list[Record] | None:
        with self._cv:
            while not self._queue:
                if self._closing:
                    return None
                self._cv.wait()
            deadline = time.monotonic() + self.interval
            while len(self._queue) < self.batch_size and not self._flush and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            batch = self._queue[: self.batch_size]
            del self._queue[: self.batch_size]
            self._local -= sum(1 for r in batch if r.local)
            if not self._queue:
                self._flush = False
            self._cv.notify_all()  # room for blocked submitters
            return batch

    def _clear_journal(self) -> None:
        journal = getattr(self.store, "journal", None)
        if journal is not None and journal.size:
            try:
                journal.clear()
            except OSError as err:  # it is replayed at the next start: duplicates are ignored
                log.warning("could not empty %s: %s", journal.path, err)

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            results: list[bool] | None = None
            try:
                results = self.store.add_many(batch)
            except StoreFull as err:
                self.failed += len(batch)
                log.error("store writer: %d messages not saved: %s", len(batch), err)
            except Exception:
                self.failed += len(batch)
                log.exception("store writer: a batch of %d messages was not saved", len(batch))
            if self.on_commit is not None:  # before waiters wake: they read what it recorded
                try:
                    self.on_commit(batch, results)
                except Exception:
                    log.exception("store writer: on_commit failed")
            with self._cv:
                self._done += len(batch)
                self._kept = self._kept or (results is None and any(r.local for r in batch))
                if results is not None and not self._local and not self._kept:
                    self._clear_journal()  # every record of ours submitted so far is stored
                self._cv.notify_all()
                due = [cb for t, cb in self._callbacks if t <= self._done]
                self._callbacks = [(t, cb) for t, cb in self._callbacks if t > self._done]
            for callback in due:
                try:
                    callback()
                except Exception:
                    log.exception("store writer: a commit callback failed")
