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
import json
import logging
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
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
from .protocol import decode_b64, encode_b64, message_signing_bytes

log = logging.getLogger("fletchat.trust")

TRUST_FILE = "trust.json"
SIGNATURES_FILE = "signatures.db"
MAX_KNOWN_PEERS = 10_000  # keys remembered; the oldest first-seen entries go beyond this
MAX_BLOCKED_PEERS = 10_000

NEW = "new"
KNOWN = "known"
CHANGED = "changed"

VERIFIED = "verified"  # signed by the origin's known key
UNVERIFIED = "unverified"  # origin never met (no key to check with) or unsigned legacy message
REFUSED = "refused"  # claims an origin whose key we know, without a valid signature from it


@dataclass(frozen=True)
class KeyCheck:
    """The outcome of ``TrustStore.check``: ``status`` is NEW, KNOWN or CHANGED."""

    status: str
    old_key: bytes | None = None

    @property
    def old_fingerprint(self) -> str:
        return fingerprint(self.old_key) if self.old_key else ""


class TrustStore:
    """Known peer keys (TOFU) and blocked peers, persisted in ``trust.json`` (``None`` path =
    in memory, for tests)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._known: dict[str, dict] = {}
        self._blocked: dict[str, dict] = {}
        if path is not None and path.exists():
            self._load(path)

    @classmethod
    def open(cls, data_dir: Path) -> TrustStore:
        return cls(data_dir / TRUST_FILE)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = {
                validate_id(pid, "peer id"): entry
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

    def _save(self) -> None:
        if self.path is None:
            return
        data = {"known": self._known, "blocked": self._blocked}
        _write_private(self.path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))

    # ---- keys ----
    def key_of(self, peer_id: str) -> bytes | None:
        with self._lock:
            entry = self._known.get(peer_id)
        return decode_b64(entry["key"]) if entry else None

    def check(self, peer_id: str, key: bytes, name: str = "") -> KeyCheck:
        """Trust on first use: remember a new id's key; say KNOWN or CHANGED for a known id.

        A CHANGED key is not stored: the old one stays until ``forget``.
        """
        with self._lock:
            entry = self._known.get(peer_id)
            if entry is None:
                if len(self._known) >= MAX_KNOWN_PEERS:
                    oldest = min(self._known, key=lambda k: self._known[k].get("first_seen", 0))
                    del self._known[oldest]
                self._known[peer_id] = {
                    "key": encode_b64(key), "name": name, "first_seen": time.time(),
                }
                self._save()
                return KeyCheck(NEW)
            old = decode_b64(entry["key"])
            if old == key:
                if name and entry.get("name") != name:
                    entry["name"] = name
                    self._save()
                return KeyCheck(KNOWN)
            return KeyCheck(CHANGED, old)

    def forget(self, peer_id: str) -> bool:
        """Reset what we know of ``peer_id``'s key (after checking the new fingerprint with its
        owner); the next key it presents is trusted on first use. True if there was one."""
        with self._lock:
            gone = self._known.pop(peer_id, None)
            if gone is not None:
                self._save()
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
            self._save()

    def unblock(self, peer_id: str) -> bool:
        with self._lock:
            gone = self._blocked.pop(peer_id, None)
            if gone is not None:
                self._save()
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
    caught-up message travels on with its origin's proof. ``None`` path = in memory."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
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
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO sigs (id, origin, sig, verified) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET verified = max(verified, excluded.verified)",
                    (msg_id, origin, sig, int(verified)),
                )
            except sqlite3.Error as err:  # full disk / read-only: the message still counts
                log.debug("signature of %s not kept: %s", msg_id, err)

    def get(self, msg_id: str) -> tuple[bytes, bool] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT sig, verified FROM sigs WHERE id = ?", (msg_id,)
            ).fetchone()
        return (bytes(row[0]), bool(row[1])) if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Trust:
    """This install's identity plus what it trusts: the one object the mesh and hub share."""

    def __init__(
        self, identity: Identity, store: TrustStore, book: SignatureBook, peer_id: str
    ) -> None:
        self.identity = identity
        self.store = store
        self.book = book
        self.peer_id = peer_id

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

    def close(self) -> None:
        self.book.close()

    def sig_for(self, msg: Message) -> str:
        """The signature a message travels with: ours for our own, the stored one otherwise."""
        if msg.origin == self.peer_id:
            return encode_b64(self.identity.sign(message_signing_bytes(msg)))
        found = self.book.get(msg.id)
        return encode_b64(found[0]) if found else ""

    def check_message(self, msg: Message, sig: str) -> str:
        """VERIFIED, UNVERIFIED (origin's key unknown: kept, marked) or REFUSED (claims a known
        origin without its valid signature; never our own id from elsewhere)."""
        if msg.origin == self.peer_id:
            # Our own messages come back through relays and catch-up: only genuine ones match.
            ok = bool(sig) and verify_signature(
                self.identity.public_key, decode_b64(sig), message_signing_bytes(msg)
            )
            return VERIFIED if ok else REFUSED
        key = self.store.key_of(msg.origin)
        raw = decode_b64(sig) if sig else b""
        if key is None:
            if raw:
                self.book.put(msg.id, msg.origin, raw, verified=False)
            return UNVERIFIED
        if raw and verify_signature(key, raw, message_signing_bytes(msg)):
            self.book.put(msg.id, msg.origin, raw, verified=True)
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
        if found[1] or verify_signature(key, found[0], message_signing_bytes(msg)):
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
        lock.release()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
