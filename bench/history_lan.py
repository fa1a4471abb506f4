"""Figure 7 as a LAN has it: the serving peer and the newcomer in two processes (two devices).

The serving peer (``python -m bench.history_lan serve app|base DIR N PEER_ID``) fills its own
history, listens on loopback, prints ``{"event": "ready", "port": P}`` and reports its process
CPU from ``go`` to ``stop`` (lines on its stdin). The newcomer runs in the bench process: the
real node (hub + store + trust + TLS mesh) for ``app``, a raw websockets client and one plain
``executemany`` for ``base`` (the same messages and signatures as one JSON dump, unchecked).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from .common import spawn_timed, stop_process


def _say(**event: Any) -> None:
    print(json.dumps(event), flush=True)


async def _lines():
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        yield line.strip()


async def _serve_until_stop() -> float:
    """CPU of this process between ``go`` and ``stop`` (every thread)."""
    cpu0 = time.process_time()
    async for line in _lines():
        if line == "go":
            cpu0 = time.process_time()
        elif line == "stop":
            break
    return time.process_time() - cpu0


async def _serve_app(data: Path, n: int, pid: str, unsent: bool = False,
                     relayed: bool = False) -> None:
    """``unsent``: a history never sent before (each message signed on its first catch-up).
    ``relayed``: ``pid``'s history held by another peer (with ``pid``'s signatures), so the
    newcomer, told ``pid``'s key (``origin_key`` in the ready line), checks every signature."""
    from fletchat.hub import Hub
    from fletchat.mesh import MeshSettings
    from fletchat.model import Peer, new_id
    from fletchat.node import mesh_for_hub
    from fletchat.protocol import decode_b64
    from fletchat.store import Store
    from fletchat.trust import Trust

    from .history import _fill, _messages

    data.mkdir(parents=True, exist_ok=True)
    me = new_id() if relayed else pid
    trust = Trust.open(data, me)
    hub = Hub(me, "headless", store=Store.open(data / "history.db"), trust=trust)
    mesh = mesh_for_hub(hub, Peer(me, "old", "headless"), trust,
                        MeshSettings(host="127.0.0.1", port=0))
    msgs = _messages(n, pid)
    _fill(hub.store, msgs)
    origin_key = ""
    if relayed:  # the origin signed them when it wrote them; this peer kept the signatures
        origin = Trust.open(data / "origin", pid)
        try:
            origin_key = origin.key_text
            trust.book.put_many([(m.id, pid, decode_b64(origin.sig_for(m)), True) for m in msgs])
        finally:
            origin.close()
        trust.book.flush()
    elif not unsent:  # its messages went out live when written: signed then, the signatures kept
        for at in range(0, n, 1000):
            trust.sigs_for(msgs[at : at + 1000])
    await mesh.start()
    try:
        _say(event="ready", port=mesh.port, origin_key=origin_key)
        _say(event="cpu", cpu=await _serve_until_stop())
    finally:
        await mesh.stop()
        hub.close()
        trust.close()


async def _serve_base(data: Path, n: int, pid: str) -> None:
    from websockets.asyncio.server import serve

    from .history import _messages, _own_sigs

    msgs = _messages(n, pid)
    dicts = [m.to_dict() for m in msgs]
    for d, sig in zip(dicts, _own_sigs(data / "sigs", pid, msgs), strict=True):
        d["sig"] = sig
    payload = json.dumps(dicts, separators=(",", ":"))

    async def handler(ws) -> None:
        await ws.recv()
        await ws.send(payload)

    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        _say(event="ready", port=server.sockets[0].getsockname()[1], bytes=len(payload.encode()))
        _say(event="cpu", cpu=await _serve_until_stop())


def _spawn(kind: str, data: Path, n: int, pid: str):
    proc = spawn_timed(__import__("subprocess").Popen,
                       [sys.executable, "-m", "bench.history_lan", "serve", kind, str(data),
                        str(n), pid], cwd=Path(__file__).resolve().parent.parent)
    if proc.wait_for(lambda e: e.get("event") == "ready", timeout=600) is None:
        stop_process(proc.proc)
        raise RuntimeError(f"the serving peer ({kind}) never got ready")
    ready = next(ev for _, ev in proc.events if ev.get("event") == "ready")
    return proc, ready


def _finish(proc) -> float:
    """Stop the serving peer; its CPU from ``go`` to ``stop``."""
    proc.send("stop")
    if proc.wait_for(lambda e: e.get("event") == "cpu", timeout=60) is None:
        stop_process(proc.proc)
        raise RuntimeError("the serving peer did not report its CPU")
    proc.close_stdin()
    proc.proc.wait(30)
    return next(ev["cpu"] for _, ev in proc.events if ev.get("event") == "cpu")


async def _newcomer_app(data: Path, port: int, n: int, proc,
                        origin: tuple[str, str] | None = None) -> tuple[float, float]:
    """``origin``: (id, base64 key) of the messages' origin when another peer serves them: the
    newcomer met it before (it knows the key), so it checks each signature."""
    from fletchat.hub import Hub
    from fletchat.mesh import MeshSettings
    from fletchat.model import Message, Peer, new_id
    from fletchat.node import mesh_for_hub
    from fletchat.protocol import decode_b64
    from fletchat.store import Store
    from fletchat.trust import Trust

    pid = new_id()
    data.mkdir(parents=True)
    trust = Trust.open(data, pid)
    if origin is not None:
        trust.check_key(origin[0], decode_b64(origin[1]), "origin", "127.0.0.1", time.time())
    hub = Hub(pid, "headless", store=Store.open(data / "history.db"), trust=trust)
    mesh = mesh_for_hub(hub, Peer(pid, "new", "headless"), trust,
                        MeshSettings(host="127.0.0.1", port=0))
    accepted = [0]

    def counted(event: object) -> None:
        if isinstance(event, Message):
            accepted[0] += 1

    hub.add_listener(counted)
    await mesh.start()
    try:
        proc.send("go")
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        mesh.add_peer_address("127.0.0.1", port)
        deadline = t0 + 300
        while accepted[0] < n and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        await asyncio.to_thread(hub.flush, 60.0)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        if hub.store.count() < n:
            raise RuntimeError(f"sync incomplete: {hub.store.count()} of {n}")
    finally:
        await mesh.stop()
        hub.close()
        trust.close()
    # every message verified: by its signature, or (served by its origin) by the connection
    with sqlite3.connect(data / "history.db") as con:
        (verified,) = con.execute("SELECT count(*) FROM messages WHERE verified = 1").fetchone()
    if verified < n:
        raise RuntimeError(f"only {verified} of {n} caught-up messages were verified")
    return elapsed, cpu


async def _newcomer_base(data: Path, port: int, proc) -> tuple[float, float]:
    from websockets.asyncio.client import connect

    data.mkdir(parents=True)
    con = sqlite3.connect(data / "plain.db")
    con.execute("CREATE TABLE m (id TEXT PRIMARY KEY, author TEXT, text TEXT, ts REAL)")
    proc.send("go")
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    async with connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
        await ws.send("everything please")
        dump = json.loads(await ws.recv())
    with con:
        con.executemany("INSERT INTO m VALUES (?, ?, ?, ?)",
                        [(d["id"], d["author"], d["text"], d["ts"]) for d in dump])
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    con.close()
    return elapsed, cpu


def sync_two_processes(tmp: Path, n: int, pid: str, kind: str) -> dict[str, Any]:
    """One catch-up of ``n`` messages of ``pid``'s own history, served by another process:
    wall time, the newcomer's CPU and the serving peer's CPU (s). ``kind``: ``app`` (a history
    sent live when written), ``app-unsent`` (never sent: signed on this catch-up),
    ``app-relayed`` (served by a peer that is not their origin: every signature checked) or
    ``base``."""
    proc, ready = _spawn(kind, tmp / "old", n, pid)
    try:
        if kind.startswith("app"):
            origin = (pid, ready["origin_key"]) if kind == "app-relayed" else None
            wall, cpu_new = asyncio.run(_newcomer_app(tmp / "new", ready["port"], n, proc,
                                                      origin))
        else:
            wall, cpu_new = asyncio.run(_newcomer_base(tmp / "new", ready["port"], proc))
        cpu_old = _finish(proc)
    finally:
        if proc.proc.poll() is None:
            stop_process(proc.proc)
    return {"wall": wall, "cpu_new": cpu_new, "cpu_old": cpu_old}


def main(argv: list[str]) -> None:
    kinds = ("app", "app-unsent", "app-relayed", "base")
    if len(argv) != 5 or argv[0] != "serve" or argv[1] not in kinds:
        raise SystemExit(f"usage: python -m bench.history_lan serve {'|'.join(kinds)} DIR N ID")
    _, kind, data, n, pid = argv
    if kind == "base":
        asyncio.run(_serve_base(Path(data), int(n), pid))
    else:
        asyncio.run(_serve_app(Path(data), int(n), pid, unsent=kind == "app-unsent",
                               relayed=kind == "app-relayed"))


if __name__ == "__main__":
    main(sys.argv[1:])
