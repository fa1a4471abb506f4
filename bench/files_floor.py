"""Figure 12's floor: the CPU that the file design's own work takes on this machine, with no
Python around it, to compare with what curl does on the bare veth pair.

A received file is decrypted (TLS), hashed twice (each chunk's leaf, the whole file's SHA-256, the
two digests the signed manifest names; docs/protocol.md "Files") and written; a served one is
read and encrypted. curl from ``python -m http.server`` does none of the hashing or encryption.
Measured here, per MB, in this process: a blocking TLS 1.3 stream over loopback (each side's
thread CPU, user and system, so the kernel's copies count as they do for curl), ``hashlib``'s
SHA-256 and ``os.pwrite`` into the page cache.

On two cores the best any implementation of the design can do is every core busy with exactly
this work: ``floor = total CPU / cores``. That bounds figure 12's rows on the bare pair from
below: when the floor alone is near curl's time, no transport or language choice meets a target
set against curl there; on the shaped links the link, not the CPU, sets both times.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
SAMPLE_MIB = 64  # what each measurement moves (its per-MB cost scales the figure's sizes)


@dataclass(frozen=True)
class PerMB:
    """CPU seconds per MB (10**6 bytes) of each kind of work."""

    encrypt: float  # TLS send side, including the kernel's send path
    decrypt: float  # TLS receive side, including the kernel's receive path
    sha256: float  # one SHA-256 pass
    write: float  # pwrite into the page cache
    read: float  # pread from the page cache

    def receiver(self) -> float:
        return self.decrypt + 2 * self.sha256 + self.write

    def sender(self) -> float:
        return self.read + self.encrypt


def _contexts(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key, cert = directory / "k.pem", directory / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=floor"],
                   check=True, capture_output=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    server.num_tickets = 0  # nothing unread at the client's close
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    return server, client


def _tls(size: int) -> tuple[float, float]:
    """(sender, receiver) thread CPU seconds for ``size`` bytes over a loopback TLS stream."""
    with tempfile.TemporaryDirectory(prefix="fcbench-floor-") as tmp:
        server_ctx, client_ctx = _contexts(Path(tmp))
        listener = socket.create_server(("127.0.0.1", 0))
        cpu: dict[str, float] = {}

        def send() -> None:
            with client_ctx.wrap_socket(socket.create_connection(listener.getsockname())) as s:
                s.do_handshake()
                block = os.urandom(MIB)
                t0 = time.thread_time()
                for _ in range(size // MIB):
                    s.sendall(block)
                cpu["send"] = time.thread_time() - t0

        sender = threading.Thread(target=send)
        sender.start()
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as s:
            buf = memoryview(bytearray(MIB))
            got, t0 = 0, time.thread_time()
            while got < size and (n := s.recv_into(buf, MIB)):
                got += n
            cpu["recv"] = time.thread_time() - t0
        sender.join()
        listener.close()
    return cpu["send"], cpu["recv"]


def _local(size: int) -> tuple[float, float, float]:
    """(sha256, pwrite, pread) CPU seconds for ``size`` bytes, in 1 MiB pieces."""
    block = os.urandom(MIB)
    t0 = time.thread_time()
    for _ in range(size // MIB):
        hashlib.sha256(block).digest()
    sha = time.thread_time() - t0
    fd, path = tempfile.mkstemp(prefix="fcbench-floor-")
    try:
        t0 = time.thread_time()
        for i in range(size // MIB):
            os.pwrite(fd, block, i * MIB)
        write = time.thread_time() - t0
        t0 = time.thread_time()
        for i in range(size // MIB):
            os.pread(fd, MIB, i * MIB)
        read = time.thread_time() - t0
    finally:
        os.close(fd)
        os.unlink(path)
    return sha, write, read


def measure(rounds: int = 3) -> PerMB:
    """The cheapest of ``rounds`` runs of each (the floor: what other work on the machine added
    is not the design's)."""
    size = SAMPLE_MIB * MIB
    mb = size / 1e6
    tls = [_tls(size) for _ in range(rounds)]
    local = [_local(size) for _ in range(rounds)]
    return PerMB(encrypt=min(t[0] for t in tls) / mb, decrypt=min(t[1] for t in tls) / mb,
                 sha256=min(x[0] for x in local) / mb, write=min(x[1] for x in local) / mb,
                 read=min(x[2] for x in local) / mb)


def pair_seconds(per: PerMB, mb: float, cores: int) -> float:
    """The least time for one sender and one receiver on ``cores`` shared cores: every core busy
    with the design's work, and never less than the receiver's one TLS stream (decrypted in
    order, on one core)."""
    return max((per.sender() + per.receiver()) * mb / cores, per.decrypt * mb)


def swarm_seconds(per: PerMB, mb: float, receivers: int, cores: int) -> float:
    """The least time for ``receivers`` to each get ``mb``: each copy is read or received once,
    encrypted once by whoever serves it, and received, hashed twice and written by its receiver."""
    return receivers * (per.sender() + per.receiver()) * mb / cores


def cores() -> int:
    return len(os.sched_getaffinity(0))
