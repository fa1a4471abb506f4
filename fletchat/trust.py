"""Who we trust on a shared LAN: known keys (trust on first use), blocked peers, message signatures.

The mesh asks this module three questions: is this key the one we know for this peer id
(``TrustStore.check``), is this peer blocked (``TrustStore.is_blocked``), and is this message really
from its origin (``Trust.check_message``). Everything is kept in the data dir, owner-only:

- ``trust.json``: ``{"known": {peer id: {"key", "name", "first_seen"}}, "blocked": {peer id:
  {"name", "at"}}}``. A known id presenting another key is refused and reported, never accepted,
  until someone resets it (``forget``; from a shell: ``python -m fletchat.trust --data-dir DIR
  --forget-peer ID`` while the app is stopped).
- ``signatures.db``: the signatures of messages written elsewhere, so that relaying and catch-up
  hand them on with their proof.

docs/security.md explains the choices.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .identity import (
    DataDirInUse,
    DataDirLock,
    Identity,
    _write_private,
    fingerprint,
    verify_signature,
)
from .model import Message, ValidationError, validate_id
from .peer.policy import KeyCheck as PolicyKeyCheck
from .peer.policy import KeyStatus, Sender, Verdict
from .protocol import decode_b64, encode_b64, message_signing_bytes, message_signing_bytes_v1
from .sqlbatch import all_rows, insert_rows

log = logging.getLogger("fletchat.trust")

TRUST_FILE = "trust.json"
TRUST_LOG = "trust.log"  # appended between snapshots: one JSON line per change
SIGNATURES_FILE = "signatures.db"
MAX_KNOWN_PEERS = 10_000  # keys remembered; beyond this only stale, never-reconfirmed ones go
MAX_BLOCKED_PEERS = 10_000
# First contacts (a new id's key trusted on first use) are bounded per address and per time, so
# throw-away identities cannot fill the table; a refused newcomer is told to try again later.
FIRST_CONTACT_WINDOW = 600.0  # seconds
FIRST_CONTACTS_PER_ADDRESS = 16  # per window, from one IP address
FIRST_CONTACTS_PER_WINDOW = 128  # per window, from everywhere
STALE_KEY_SECONDS = 30 * 86400  # a key never seen again for this long may make room when full
MAX_TRACKED_ADDRESSES = 4096
LOG_FSYNC_DELAY = 0.5  # the journal is fsynced by a background thread, batched

NEW = KeyStatus.NEW
KNOWN = KeyStatus.KNOWN
CHANGED = KeyStatus.CHANGED
LIMITED = KeyStatus.LIMITED

VERIFIED = Verdict.VERIFIED
UNVERIFIED = Verdict.UNVERIFIED
REFUSED = Verdict.REFUSED


@dataclass(frozen=True)
class KeyCheck:
    """The outcome of ``TrustStore.check``: ``status`` is NEW, KNOWN, CHANGED or LIMITED."""

    status: KeyStatus
    old_key: bytes | None = None

    @property
    def old_fingerprint(self) -> str:
        return fingerprint(self.old_key) if self.old_key else ""


@dataclass
class FirstContacts:
    """Sliding-window counts of first contacts, per address and overall (pure; time passed in)."""

    window: float = FIRST_CONTACT_WINDOW
    per_address: int = FIRST_CONTACTS_PER_ADDRESS
    total: int = FIRST_CONTACTS_PER_WINDOW
    _by_address: dict[str, deque[float]] = field(default_factory=dict)
    _all: deque[float] = field(default_factory=deque)

    def allow(self, address: str, now: float) -> bool:
        """Count one first contact from ``address`` at ``now`` if under both limits."""
        self._trim(self._all, now)
        seen = self._by_address.get(address)
        if seen is not None:
            self._trim(seen, now)
        if len(self._all) >= self.total or (seen is not None and len(seen) >= self.per_address):
            return False
        if seen is None:
            if len(self._by_address) >= MAX_TRACKED_ADDRESSES:
                self._by_address = {a: d for a, d in self._by_address.items() if d}
                if len(self._by_address) >= MAX_TRACKED_ADDRESSES:
                    return False
            seen = self._by_address.setdefault(address, deque())
        seen.append(now)
        self._all.append(now)
        return True

    def _trim(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window:
            times.popleft()


class _Journal:
    """Appends one JSON line per change (cheap, under the store's lock) and fsyncs them in
    batches on a background thread: a first contact never rewrites or fsyncs the whole file."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._dirty = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._sync_loop, name="trust-fsync", daemon=True)
        self._thread.start()

    def append(self, record: dict) -> None:
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()
        self._dirty.set()

    def _sync_loop(self) -> None:
        while not self._closed:
            self._dirty.wait()
            if self._closed:
                return
            time.sleep(LOG_FSYNC_DELAY)
            self._dirty.clear()
            with contextlib.suppress(OSError, ValueError):
                os.fsync(self._file.fileno())

    def close(self) -> None:
        self._closed = True
        self._dirty.set()
        with contextlib.suppress(OSError, ValueError):
            self._file.flush()
            os.fsync(self._file.fileno())
        self._file.close()


class TrustStore:
    """Known peer keys (TOFU) and blocked peers, persisted in ``trust.json`` plus the journal
    ``trust.log`` (``None`` path = in memory, for tests).

    A known key is never forgotten except by the user (``forget``); first contacts are bounded per
    address and per time (``FirstContacts``); when the table is full, only keys first seen long ago
    and never seen again make room, otherwise the newcomer is LIMITED."""

    def __init__(self, path: Path | None, contacts: FirstContacts | None = None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._known: dict[str, dict] = {}
        self._blocked: dict[str, dict] = {}
        self._contacts = contacts or FirstContacts()
        self._journal: _Journal | None = None
        if path is not None:
            if path.exists():
                self._load(path)
            self._replay(path.with_name(TRUST_LOG))
            try:
                self._save()  # compact: one snapshot, an empty journal
                self._journal = _Journal(path.with_name(TRUST_LOG))
            except OSError as err:  # a full disk or a read-only data dir: keys read, kept in memory
                log.error("peer keys are read-only (%s): new ones are kept until exit only", err)

    @classmethod
    def open(cls, data_dir: Path) -> TrustStore:
        return cls(data_dir / TRUST_FILE)

    def close(self) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = {
                validate_id(pid, "peer id"): dict(entry)
                for pid, entry in dict(data.get("known", {})).items()
                if len(decode_b64(entry["key"])) == 32
            }
            blocked = {
                validate_id(pid, "peer id"): dict(entry)
                for pid, entry in dict(data.get("blocked", {})).items()
            }
        except (OSError, ValueError, TypeError, KeyError, AttributeError, ValidationError) as err:
            backup = path.with_name(f"{TRUST_FILE}.corrupt-{int(time.time() * 1000)}")
            path.replace(backup)
            log.error(
                "%s was unreadable (%s); moved it to %s. Known peer keys are forgotten: every "
                "peer is trusted on first use again.", path, err, backup,
            )
            return
        self._known, self._blocked = known, blocked

    def _replay(self, log_path: Path) -> None:
        """Apply the journal written since the last snapshot (a torn last line is skipped)."""
        if not log_path.exists():
            return
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
                self._apply(rec["op"], validate_id(rec["id"], "peer id"), rec.get("entry"))
            except (ValueError, TypeError, KeyError, ValidationError):
                log.warning("skipped a damaged line in %s", log_path)

    def _apply(self, op: str, peer_id: str, entry: dict | None) -> None:
        table = self._blocked if op in ("block", "unblock") else self._known
        if op in ("known", "block"):
            if op == "known" and len(decode_b64(entry["key"])) != 32:  # type: ignore[index]
                raise ValueError("bad key")
            table[peer_id] = dict(entry or {})
        else:
            table.pop(peer_id, None)

    def _save(self) -> None:
        if self.path is None:
            return
        data = {"known": self._known, "blocked": self._blocked}
        _write_private(self.path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self.path.with_name(TRUST_LOG), 0)

    def _record(self, op: str, peer_id: str, entry: dict | None = None) -> None:
        if self._journal is not None:
            try:
                self._journal.append({"op": op, "id": peer_id, "entry": entry})
            except OSError as err:  # disk full: the change holds in memory until exit
                log.error("could not record a peer-key change (%s): kept in memory only", err)

    # ---- keys ----
    def key_of(self, peer_id: str) -> bytes | None:
        with self._lock:
            entry = self._known.get(peer_id)
        return decode_b64(entry["key"]) if entry else None

    def check(
        self, peer_id: str, key: bytes, name: str = "", address: str = "",
        now: float | None = None,
    ) -> KeyCheck:
        """Trust on first use: remember a new id's key (if first contacts allow); say KNOWN or
        CHANGED for a known id. A CHANGED key is not stored: the old one stays until ``forget``."""
        now = time.time() if now is None else now
        with self._lock:
            entry = self._known.get(peer_id)
            if entry is None:
                return self._first_contact(peer_id, key, name, address, now)
            old = decode_b64(entry["key"])
            if old != key:
                return KeyCheck(CHANGED, old)
            if (name and entry.get("name") != name) or not entry.get("seen_again"):
                entry.update(name=name or entry.get("name", ""), seen_again=True, last_seen=now)
                self._record("known", peer_id, entry)
            else:
                entry["last_seen"] = now  # in memory; the journal need not grow per handshake
            return KeyCheck(KNOWN)

    def _first_contact(
        self, peer_id: str, key: bytes, name: str, address: str, now: float
    ) -> KeyCheck:
        if len(self._known) >= MAX_KNOWN_PEERS and not self._make_room(now):
            log.warning("refused first contact with %s: %d keys known", peer_id, len(self._known))
            return KeyCheck(LIMITED)
        if not self._contacts.allow(address, now):
            log.warning("refused first contact with %s from %s: too many new ids lately",
                        peer_id, address or "?")
            return KeyCheck(LIMITED)
        entry = {"key": encode_b64(key), "name": name, "first_seen": now, "last_seen": now,
                 "address": address, "seen_again": False}
        self._known[peer_id] = entry
        self._record("known", peer_id, entry)
        return KeyCheck(NEW)

    def _make_room(self, now: float) -> bool:
        """Forget one key that was never seen again after its first contact, long ago."""
        stale = [
            pid for pid, e in self._known.items()
            if not e.get("seen_again") and e.get("last_seen", e.get("first_seen", 0))
            < now - STALE_KEY_SECONDS
        ]
        if not stale:
            return False
        victim = min(stale, key=lambda pid: self._known[pid].get("last_seen", 0))
        del self._known[victim]
        self._record("forget", victim)
        return True

    def forget(self, peer_id: str) -> bool:
        """Reset what we know of ``peer_id``'s key (after checking the new fingerprint with its
        owner); the next key it presents is trusted on first use. True if there was one."""
        with self._lock:
            gone = self._known.pop(peer_id, None)
            if gone is not None:
                self._record("forget", peer_id)
        if gone is not None:
            log.warning("forgot the key of peer %s (%s)", peer_id, fingerprint(decode_b64(gone["key"])))
        return gone is not None

    def known(self) -> dict[str, str]:
        """Peer id -> fingerprint of every key we know."""
        with self._lock:
            return {pid: fingerprint(decode_b64(e["key"])) for pid, e in self._known.items()}

    # ---- blocking ----
    def block(self, peer_id: str, name: str = "") -> None:
        validate_id(peer_id, "peer id")
        with self._lock:
            if peer_id in self._blocked:
                return
            if len(self._blocked) >= MAX_BLOCKED_PEERS:
                raise ValidationError("Too many blocked peers.")
            self._blocked[peer_id] = {"name": name, "at": time.time()}
            self._record("block", peer_id, self._blocked[peer_id])

    def unblock(self, peer_id: str) -> bool:
        with self._lock:
            gone = self._blocked.pop(peer_id, None)
            if gone is not None:
                self._record("unblock", peer_id)
        return gone is not None

    def is_blocked(self, peer_id: str) -> bool:
        with self._lock:
            return peer_id in self._blocked

    def blocked(self) -> dict[str, str]:
        """Peer id -> the name it had when blocked."""
        with self._lock:
            return {pid: str(e.get("name", "")) for pid, e in self._blocked.items()}


class SignatureBook:
    """Signatures of messages written elsewhere (message id -> 64 bytes), so a relayed or
    caught-up message travels on with its origin's proof. ``None`` path = in memory.

    ``put`` is called for every message a peer sends, on the event loop: it only records the
    signature in memory; a background thread writes them to SQLite in batches (one transaction
    each). ``get`` sees what is still pending."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()  # the pending map
        self._db_lock = threading.Lock()  # the connection
        try:
            self._db = self._open(str(path) if path is not None else ":memory:", path is not None)
        except sqlite3.Error as err:  # a full or read-only data dir (issue 11, #12): read what is
            log.error("signatures kept read-only: %s", err)  # there, keep new ones in memory
            uri = (f"{path.resolve().as_uri()}?mode=ro&immutable=1"
                   if path is not None and path.exists() else "file::memory:")
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False,
                                       isolation_level=None)
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("CREATE TABLE IF NOT EXISTS sigs (id TEXT PRIMARY KEY, origin "
                                 "TEXT NOT NULL, sig BLOB NOT NULL, verified INTEGER NOT NULL)")
        self._pending: dict[str, tuple[str, bytes, bool]] = {}
        # What ``flush`` is writing: still read from here until its transaction has committed
        # (without it, a ``get`` between the writer taking the batch and its commit found none).
        self._writing: dict[str, tuple[str, bytes, bool]] = {}
        self._dirty = threading.Event()
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="signatures", daemon=True)
        self._writer.start()

    @staticmethod
    def _open(where: str, on_disk: bool) -> sqlite3.Connection:
        db = sqlite3.connect(where, check_same_thread=False, isolation_level=None)
        if on_disk:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS sigs (id TEXT PRIMARY KEY, origin TEXT NOT NULL,"
            " sig BLOB NOT NULL, verified INTEGER NOT NULL)"
        )
        return db

    def put(self, msg_id: str, origin: str, sig: bytes, verified: bool) -> None:
        self.put_many(((msg_id, origin, sig, verified),))

    def put_many(self, entries: Iterable[tuple[str, str, bytes, bool]]) -> None:
        """``put`` of each (id, origin, signature, verified), in order, in one lock round."""
        with self._lock:
            pending = self._pending
            for msg_id, origin, sig, verified in entries:
                old = pending.get(msg_id)
                if old is not None and old[1] == sig:
                    verified = verified or old[2]
                pending[msg_id] = (origin, sig, verified)
        if not self._dirty.is_set():  # the writer clears it before it takes what is pending
            self._dirty.set()

    def get(self, msg_id: str) -> tuple[bytes, bool] | None:
        with self._lock:
            pending = self._pending.get(msg_id) or self._writing.get(msg_id)
        with self._db_lock:
            row = self._db.execute(
                "SELECT sig, verified FROM sigs WHERE id = ?", (msg_id,)
            ).fetchone()
        if pending is not None:
            return pending[1], pending[2] or bool(row and row[1] and bytes(row[0]) == pending[1])
        return (bytes(row[0]), bool(row[1])) if row else None

    def get_many(self, msg_ids: list[str]) -> dict[str, tuple[bytes, bool]]:
        """``get`` for many ids at once (one query per 500): what catch-up sends a batch with."""
        with self._lock:
            pending = {i: p for i in msg_ids
                       if (p := self._pending.get(i) or self._writing.get(i)) is not None}
        stored: dict[str, tuple[bytes, bool]] = {}
        for at in range(0, len(msg_ids), 500):
            chunk = msg_ids[at : at + 500]
            with self._db_lock:  # in one step (sqlbatch.all_rows), the signatures as hex
                rows = all_rows(
                    self._db, "SELECT id, hex(sig) AS sig, verified FROM sigs WHERE id IN "
                    f"({','.join('?' * len(chunk))})", chunk, ("id", "sig", "verified"))
            stored.update((str(i), (bytes.fromhex(str(sig)), bool(v))) for i, sig, v in rows)
        out = dict(stored)
        for i, (_origin, sig, verified) in pending.items():
            row = stored.get(i)
            out[i] = (sig, verified or bool(row and row[1] and row[0] == sig))
        return out

    def flush(self) -> None:
        """Write what is pending now (on the caller's thread)."""
        with self._db_lock:  # one flush at a time: the writer's and a caller's
            with self._lock:
                batch, self._pending = self._pending, {}
                self._writing = batch
            if not batch:
                return
            try:
                self._db.execute("BEGIN")
                insert_rows(  # a few statements, not one step per row (sqlbatch)
                    self._db, "INSERT INTO sigs (id, origin, sig, verified) VALUES",
                    [(i, o, sig, int(v)) for i, (o, sig, v) in batch.items()],
                    "ON CONFLICT(id) DO UPDATE SET verified = max(verified, excluded.verified)",
                )
                self._db.execute("COMMIT")
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                with self._lock:  # kept for the next try; newer entries win
                    self._pending = {**batch, **self._pending}
                raise
            finally:
                with self._lock:
                    self._writing = {}

    def _write_loop(self) -> None:
        while not self._closed:
            self._dirty.wait()
            self._dirty.clear()
            if self._closed:
                return
            try:
                self.flush()
            except sqlite3.Error:
                log.exception("writing message signatures failed")
            time.sleep(0.05)  # let a burst gather into one transaction

    def close(self) -> None:
        self._closed = True
        self._dirty.set()
        self._writer.join(timeout=2.0)
        try:
            self.flush()
        except sqlite3.Error:
            log.exception("writing message signatures failed")
        with self._db_lock:
            self._db.close()


def _keeps_own(msg: Message) -> bool:
    """Whether our signature of our own ``msg`` may be kept and reused: a plain message (no
    files, no conversation fields) reads back from the store exactly as it was signed. An edit,
    reaction, delete or a message with files is signed afresh each time, as before, so a row
    the store shows differently (a redaction) never travels with a signature of another form."""
    return not msg.files and msg.conv is None


def _signed_by(key: bytes, sig: bytes, msg: Message) -> bool:
    """The current canonical bytes, or the v1 form (float ``ts``) that history from before
    protocol 2 was signed with, so stored and caught-up old messages still verify."""
    return verify_signature(key, sig, message_signing_bytes(msg)) or (
        not msg.files  # protocol 1 had no files: its form must not cover a message that has some
        and verify_signature(key, sig, message_signing_bytes_v1(msg))
    )


class Trust:
    """This install's identity plus what it trusts: the one object the mesh and hub share.

    It is the mesh's ``TrustPolicy`` (fletchat/peer/policy.py): TLS contexts, key proofs, TOFU,
    blocks and message signatures."""

    secured = True

    def __init__(
        self, identity: Identity, store: TrustStore, book: SignatureBook, peer_id: str
    ) -> None:
        self.identity = identity
        self.store = store
        self.book = book
        self.peer_id = peer_id
        self.cert_sha256 = hashlib.sha256(identity.cert_der).hexdigest()

    @classmethod
    def open(cls, data_dir: Path, peer_id: str) -> Trust:
        return cls(
            Identity.load_or_create(data_dir),
            TrustStore.open(data_dir),
            SignatureBook(data_dir / SIGNATURES_FILE),
            peer_id,
        )

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint

    @property
    def key_text(self) -> str:
        return self.identity.key_text

    def close(self) -> None:
        self.book.close()
        self.store.close()

    # ---- TrustPolicy ----
    def server_context(self):
        return self.identity.server_context()

    def client_context(self):
        return self.identity.client_context()

    def sign(self, data: bytes) -> bytes:
        return self.identity.sign(data)

    def verify(self, key: bytes, sig: bytes, data: bytes) -> bool:
        return verify_signature(key, sig, data)

    def fingerprint_of(self, key: bytes) -> str:
        return fingerprint(key)

    def check_key(
        self, peer_id: str, key: bytes, name: str, address: str, now: float
    ) -> PolicyKeyCheck:
        check = self.store.check(peer_id, key, name, address, now)
        return PolicyKeyCheck(check.status, check.old_fingerprint)

    def is_blocked(self, peer_id: str) -> bool:
        return self.store.is_blocked(peer_id)

    def block(self, peer_id: str, name: str = "") -> None:
        self.store.block(peer_id, name)

    def unblock(self, peer_id: str) -> None:
        self.store.unblock(peer_id)

    def sig_for(self, msg: Message) -> str:
        """The signature a message travels with: ours for our own (signed once, then kept in
        the signature book, see ``_keeps_own``), the stored one otherwise."""
        if msg.origin == self.peer_id:
            return encode_b64(self._sign_own(msg))
        found = self.book.get(msg.id)
        return encode_b64(found[0]) if found else ""

    def sigs_for(self, msgs: list[Message]) -> list[str]:
        """``sig_for`` of many messages, with one signature-book query (catch-up batches; it
        reads SQLite, so call it off the event loop). Our own messages are signed only if the
        book does not already hold their signature (a peer serving its own history used to
        sign every message again for every catch-up it served)."""
        found = self.book.get_many([m.id for m in msgs
                                    if m.origin != self.peer_id or _keeps_own(m)])
        out = []
        for m in msgs:
            sig = found.get(m.id)
            if m.origin == self.peer_id:
                out.append(encode_b64(sig[0] if sig and _keeps_own(m) else self._sign_own(m)))
            else:
                out.append(encode_b64(sig[0]) if sig else "")
        return out

    def _sign_own(self, msg: Message) -> bytes:
        raw = self.identity.sign(message_signing_bytes(msg))
        if _keeps_own(msg):
            self.book.put(msg.id, msg.origin, raw, verified=True)
        return raw

    def check_message(self, msg: Message, sig: str) -> Verdict:
        """VERIFIED, UNVERIFIED (origin's key unknown: kept, marked), REFUSED (claims a known
        origin without its valid signature; never our own id from elsewhere) or BLOCKED."""
        return self.check_messages(((msg, sig),))[0]

    def check_messages(self, pairs: Sequence[tuple[Message, str]],
                       sender: Sender | None = None) -> list[Verdict]:
        """``check_message`` of each pair, in order: each origin's block and key are looked up
        once per call, and the signatures go into the book in one round (a catch-up page).

        A signed message of ``sender``'s own origin, while the key ``sender`` proved is the one
        we trust for it, is VERIFIED by the connection (the handshake proved that key; TLS keeps
        the bytes whole): its signature is kept, unchecked, and travels on with it; whoever
        gets it from someone else checks it. A signature costs 45-115 µs of CPU to check, the
        largest part of receiving a message (issue 11)."""
        keys: dict[str, bytes | None] = {self.peer_id: self.identity.public_key}
        blocked: dict[str, bool] = {}
        book: list[tuple[str, str, bytes, bool]] = []
        out = []
        # the connection's own peer and the key it proved (never our own id: nobody is us)
        direct, proved = ("", b"") if sender is None or sender.peer_id == self.peer_id else (
            sender.peer_id, sender.key)
        for msg, sig in pairs:
            origin = msg.origin
            if origin not in blocked:
                blocked[origin] = self.store.is_blocked(origin)
                keys.setdefault(origin, self.store.key_of(origin))
            if blocked[origin]:
                verdict = Verdict.BLOCKED
            elif origin == direct and sig and keys[origin] == proved:
                book.append((msg.id, origin, decode_b64(sig), False))  # not checked by us
                verdict = VERIFIED
            else:
                verdict = self._verdict(msg, sig, keys[origin], book)
            out.append(verdict)
        if book:
            self.book.put_many(book)
        return out

    def _verdict(self, msg: Message, sig: str, key: bytes | None,
                 book: list[tuple[str, str, bytes, bool]]) -> Verdict:
        raw = decode_b64(sig) if sig else b""
        if msg.origin == self.peer_id:
            # Our own messages come back through relays and catch-up: only genuine ones match.
            return VERIFIED if raw and _signed_by(self.identity.public_key, raw, msg) else REFUSED
        if key is None:
            if raw:
                book.append((msg.id, msg.origin, raw, False))
            return UNVERIFIED
        if raw and _signed_by(key, raw, msg):
            book.append((msg.id, msg.origin, raw, True))
            return VERIFIED
        return REFUSED

    def message_status(self, msg: Message) -> str:
        """How far a stored message is proven: checked again now, so a message from an origin
        met after it arrived becomes VERIFIED (or REFUSED if its signature does not hold)."""
        if msg.origin == self.peer_id:
            return VERIFIED
        found = self.book.get(msg.id)
        key = self.store.key_of(msg.origin)
        if key is None:
            return UNVERIFIED
        if found is None:
            return UNVERIFIED  # written before signatures, or reached us unsigned
        if found[1] or _signed_by(key, found[0], msg):
            if not found[1]:
                self.book.put(msg.id, msg.origin, found[0], verified=True)
            return VERIFIED
        return REFUSED


def main(argv: list[str] | None = None) -> int:
    """``python -m fletchat.trust --data-dir DIR (--forget-peer ID | --unblock ID | --list)``."""
    parser = argparse.ArgumentParser(
        prog="python -m fletchat.trust",
        description="Show or reset what this install trusts (run while the app is stopped).",
    )
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--forget-peer", metavar="ID", action="append", default=[],
                        help="forget a peer's key: its next key is trusted on first use")
    parser.add_argument("--unblock", metavar="ID", action="append", default=[])
    parser.add_argument("--list", action="store_true", help="print known keys and blocked peers")
    args = parser.parse_args(argv)
    lock = DataDirLock(args.data_dir)
    try:
        lock.acquire()
    except DataDirInUse as err:
        print(f"fletchat: {err} (stop it first, or use the app's own reset)", file=sys.stderr)
        return 2
    store: TrustStore | None = None
    try:
        store = TrustStore.open(args.data_dir)
        for peer_id in args.forget_peer:
            print(f"{'forgot' if store.forget(peer_id) else 'no key known for'} {peer_id}")
        for peer_id in args.unblock:
            print(f"{'unblocked' if store.unblock(peer_id) else 'not blocked:'} {peer_id}")
        if args.list:
            for peer_id, fp in sorted(store.known().items()):
                print(f"known   {peer_id}  {fp}")
            for peer_id, name in sorted(store.blocked().items()):
                print(f"blocked {peer_id}  {name}")
    finally:
        if store is not None:
            store.close()
        lock.release()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
