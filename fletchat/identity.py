"""This install's identity: its stable peer id, its Ed25519 key pair, and the data-dir lock.

The I/O edge for identity files. The key pair proves that a peer id belongs to this install
(docs/security.md): the private key never leaves ``identity_ed25519.pem`` (owner-only), the public
key travels in the ``hello`` frame, and a self-signed certificate made from the same key is what
this peer presents in TLS.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import errno
import hashlib
import os
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import FletChatError, ValidationError, new_id, validate_id

PEER_ID_FILE = "peer_id"
LOCK_FILE = "instance.lock"
KEY_FILE = "identity_ed25519.pem"
CERT_FILE = "identity_cert.pem"
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
FINGERPRINT_GROUPS = 4  # 4 groups of 4 base32 characters = 80 bits, read aloud in ~10 s


class DataDirInUse(FletChatError, RuntimeError):
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


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` atomically, readable only by the owner (the mode is set at creation)."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def encode_key(public_key: bytes) -> str:
    """A raw Ed25519 public key as it travels in frames (standard base64, 44 characters)."""
    return base64.b64encode(public_key).decode("ascii")


def fingerprint(public_key: bytes) -> str:
    """A short, human-comparable fingerprint: ``ABCD-EFGH-IJKL-MNOP``.

    Base32 (letters and digits 2-7, no 0/1/8/9 to confuse with O/I/B/g) of SHA-256 of the raw
    public key, the first 16 characters in groups of 4. Two people named "Alex" compare these.
    """
    digest = base64.b32encode(hashlib.sha256(public_key).digest()).decode("ascii")
    return "-".join(digest[i * 4 : i * 4 + 4] for i in range(FINGERPRINT_GROUPS))


@dataclass(frozen=True)
class Identity:
    """This install's Ed25519 key pair (and the TLS certificate made from it)."""

    private_key: object  # cryptography's Ed25519PrivateKey (kept untyped: imported lazily)
    public_key: bytes  # raw, 32 bytes
    key_path: Path
    cert_path: Path
    cert_der: bytes
    # libsodium's form of the same key (seed + public key, 64 bytes): what ``sign`` uses
    sodium_secret: bytes = field(default=b"", repr=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @property
    def key_text(self) -> str:
        return encode_key(self.public_key)

    def sign(self, data: bytes) -> bytes:
        """The Ed25519 signature of ``data`` (libsodium: about 0.6x cryptography's time, and it
        releases the GIL; the same deterministic signature)."""
        from nacl.bindings import crypto_sign

        return crypto_sign(data, self.sodium_secret)[:SIGNATURE_BYTES]

    def server_context(self) -> ssl.SSLContext:
        """TLS 1.3 only, presenting the certificate bound to this identity."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx

    @staticmethod
    def client_context() -> ssl.SSLContext:
        """TLS 1.3 only. The certificate is not checked against a CA (there is none on a LAN):
        the mesh pins it to the key the peer proves in its handshake (docs/security.md)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Identity:
        """Read the install's key pair, creating it (owner-only file) on first run.

        An unreadable key file is moved aside and a new key made: peers that knew the old one will
        then refuse this install loudly until someone resets it there (``--forget-peer``), which is
        the right outcome for a key that may have been tampered with.
        """
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        data_dir.mkdir(parents=True, exist_ok=True)
        key_path = data_dir / KEY_FILE
        private = None
        if key_path.exists():
            try:
                loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
                if not isinstance(loaded, Ed25519PrivateKey):
                    raise TypeError("not an Ed25519 key")
                private = loaded
                if sys.platform != "win32" and key_path.stat().st_mode & 0o077:
                    os.chmod(key_path, 0o600)
            except (ValueError, TypeError, OSError):
                backup = key_path.with_name(f"{KEY_FILE}.corrupt-{int(time.time() * 1000)}")
                key_path.replace(backup)
                print(f"fletchat: {key_path} was unreadable; moved it to {backup} and made a new "
                      "key (peers that knew the old one will warn)", file=sys.stderr)
        if private is None:
            private = Ed25519PrivateKey.generate()
            _write_private(
                key_path,
                private.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        cert_path = data_dir / CERT_FILE
        cert_der = _load_cert(cert_path, public)
        if cert_der is None:
            cert_der = _make_cert(private, cert_path)
        from nacl.bindings import crypto_sign_seed_keypair

        seed = private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        sodium_public, sodium_secret = crypto_sign_seed_keypair(seed)
        if sodium_public != public:  # the same key in both libraries, or no identity at all
            raise RuntimeError("libsodium and cryptography disagree on this install's key")
        return cls(private, public, key_path, cert_path, cert_der, sodium_secret)


def _load_cert(path: Path, public: bytes) -> bytes | None:
    """The stored certificate if it exists and carries ``public``; else None (make a new one)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        raw = cert.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    except (OSError, ValueError, TypeError):
        return None
    return cert.public_bytes(serialization.Encoding.DER) if raw == public else None


def _make_cert(private, path: Path) -> bytes:
    """A self-signed certificate for ``private``. Nothing checks its names or dates: peers pin the
    key itself, so it is valid from 2000 to 9999 and names no host."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Flet Chat peer")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC))
        .sign(private, None)
    )
    _write_private(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert.public_bytes(serialization.Encoding.DER)


def cert_public_key(der: bytes) -> bytes | None:
    """The raw Ed25519 key in a DER certificate a peer presented, or None if it has none."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = x509.load_der_x509_certificate(der).public_key()
    except (ValueError, TypeError):
        return None
    if not isinstance(key, Ed25519PublicKey):
        return None
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def verify_signature(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """Is ``signature`` an Ed25519 signature of ``data`` by ``public_key``?

    libsodium (PyNaCl): about half of cryptography's time per verification here, and the GIL is
    released while it runs, so verifying on a worker thread leaves the event loop free. Its
    checks are the strict ones (canonical encodings, no small-order keys): an honest signer's
    signatures always pass them."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    sign_open, failures = _VERIFIER or _load_verifier()
    try:
        sign_open(signature + data, public_key)
    except failures:
        return False
    return True


_VERIFIER: tuple[Any, tuple[type[Exception], ...]] | None = None


def _load_verifier() -> tuple[Any, tuple[type[Exception], ...]]:
    """libsodium's verification and its failures, imported once (not on every message)."""
    global _VERIFIER  # a lazy import: PyNaCl loads only when first needed
    from nacl.bindings import crypto_sign_open
    from nacl.exceptions import BadSignatureError, CryptoError

    _VERIFIER = crypto_sign_open, (BadSignatureError, CryptoError, ValueError, TypeError)
    return _VERIFIER


class DataDirLock:
    """An exclusive lock on the data dir, held for the life of the process."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fh = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fh = open(self.path, "a+")  # noqa: SIM115 - held open on purpose
        except OSError as err:
            if err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC):
                raise
            # A read-only (or full) data dir: lock through a read-only handle; with no lock file
            # there is nothing to lock, and nobody can write this directory anyway.
            try:
                fh = open(self.path)  # noqa: SIM115
            except FileNotFoundError:
                return
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
