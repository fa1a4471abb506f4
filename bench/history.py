"""History figures: late-join sync, search, insert rate — each next to a plain baseline.

- **sync**: a newcomer catches up N messages from a peer over the real TLS mesh (hub + store +
  trust, wired as ``fletchat.node.Node``): time until all are stored, and the bytes of the catch-up
  frames. Baseline: the same messages as one "send me everything" JSON dump over a raw loopback
  ``websockets`` connection, stored with one plain ``executemany``.
- **search**: p50/p99 of ``Store.search`` (FTS5, prefix) over M messages. Baseline: a plain
  ``LIKE '%word%'`` query on a plain ``sqlite3`` table holding the same texts.
- **insert**: messages/s through ``StoreWriter`` (batched, FTS index and catch-up counters
  maintained). Baseline: a plain ``sqlite3`` insert loop in one transaction, no index. Then the
  same beside a thread that runs Python (a busy event loop), against plain ``executemany``, and
  a worker's read of 1,000 messages beside it.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

from .common import loadavg, percentile, row, spread_row

COMMON = ["the", "a", "to", "and", "is", "it", "we", "at", "on", "for", "lunch", "meeting", "coffee", "today", "ok", "yes", "no", "please", "thanks"]


def _vocabulary(size: int = 5000, seed: int = 11) -> list[str]:
    """Pseudo-words: a chat's long tail of names, topics and typos (what people search for)."""
    rnd = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rnd.choice(letters) for _ in range(rnd.randint(4, 9))) for _ in range(size)]


WORDS = _vocabulary()


def _texts(n: int, seed: int = 7) -> list[str]:
    """Chat-like lines: mostly common words, two rarer ones."""
    rnd = random.Random(seed)
    return [
        " ".join([*rnd.choices(COMMON, k=6), rnd.choice(WORDS), rnd.choice(WORDS)]) + f" {i}"
        for i in range(n)
    ]


def _messages(n: int, origin: str):
    from fletchat.clock import HLC
    from fletchat.model import Message

    # A history as people write it: one message every 3 s over the last hours (a burst of 10k in
    # one minute from one origin is a flood the hub's per-origin quotas refuse, docs/security.md).
    start = int(time.time() * 1000) - n * 3_000
    out = []
    for i, text in enumerate(_texts(n)):
        at = start + i * 3_000
        m = Message.chat("Writer", text, origin)
        stamp = HLC(origin, wall=lambda at=at: at).now()
        out.append(replace(m, ts=at / 1000, hlc=stamp.encode(), seq=i + 1))
    return out


def _fill(store, msgs) -> None:
    from fletchat.clock import Stamp
    from fletchat.store import Record

    for i in range(0, len(msgs), 1000):
        store.add_many(
            Record(m, Stamp.decode(m.hlc), m.seq, "delivered", time.time())
            for m in msgs[i : i + 1000]
        )


# ---- sync -------------------------------------------------------------------------------------


async def _sync_app(tmp: Path, msgs, old_id: str | None = None) -> tuple[float, int, float]:
    """The newcomer catches up ``msgs`` from the old peer. With ``old_id`` the old peer has that
    id and the history is its own: signed by it as it goes out, verified by the newcomer (which
    learns its key in the handshake), as a real catch-up from the author is. Without it the
    history comes from an origin the newcomer has no key for (stored unverified: no signature
    checked), the figure as measured before."""
    from fletchat.hub import Hub
    from fletchat.mesh import MeshSettings
    from fletchat.model import Message, Peer, new_id
    from fletchat.node import mesh_for_hub
    from fletchat.protocol import MAX_SYNC_MESSAGES, encode_sync
    from fletchat.store import Store
    from fletchat.trust import Trust

    nodes = []
    for name in ("old", "new"):
        pid = old_id if name == "old" and old_id else new_id()
        data = tmp / name
        data.mkdir(parents=True)
        trust = Trust.open(data, pid)
        hub = Hub(pid, "headless", store=Store.open(data / "history.db"), trust=trust)
        mesh = mesh_for_hub(hub, Peer(pid, name, "headless"), trust,
                            MeshSettings(host="127.0.0.1", port=0))
        nodes.append((hub, mesh, trust))
    (old, m_old, t_old), (new, m_new, _) = nodes
    _fill(old.store, msgs)
    sig_for = t_old.sig_for if old_id else None
    # bytes of the catch-up frames the old peer sends for an empty summary
    wire = 0
    after = None
    while True:
        batch = old.missing({}, after, MAX_SYNC_MESSAGES)
        wire += sum(len(f.encode()) for f in encode_sync(batch, limit=len(batch), sig_for=sig_for))
        if len(batch) < MAX_SYNC_MESSAGES:
            break
        after = (batch[-1].origin, batch[-1].seq)
    accepted = [0]

    def counted(event: object) -> None:  # the hub's own event per accepted message
        if isinstance(event, Message):
            accepted[0] += 1

    new.add_listener(counted)
    for _, mesh, _ in nodes:
        await mesh.start()
    try:
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        m_new.add_peer_address("127.0.0.1", m_old.port)
        deadline = t0 + 300
        # No SQLite polling on the loop being measured (a count over the growing table every
        # 20 ms cost as much as a tenth of the catch-up): wait for the hub's events, then for
        # the writer to commit everything it accepted.
        while accepted[0] < len(msgs) and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        await asyncio.to_thread(new.flush, 60.0)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0  # both peers, every thread: the work, not the queue
        if new.store.count() < len(msgs):
            raise RuntimeError(f"sync incomplete: {new.store.count()} of {len(msgs)}")
    finally:
        for hub, mesh, trust in nodes:
            await mesh.stop()
            hub.close()
            trust.close()
    return elapsed, wire, cpu


async def _sync_baseline(tmp: Path, msgs, sigs: list[str] | None = None) -> tuple[float, int]:
    """One JSON dump (with each message's signature when ``sigs``: the same bytes to carry,
    nothing checked) over raw websockets, stored with one ``executemany``."""
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    dicts = [m.to_dict() for m in msgs]
    for d, sig in zip(dicts, sigs or (), strict=False):
        d["sig"] = sig
    payload = json.dumps(dicts, separators=(",", ":"))

    async def handler(ws) -> None:
        await ws.recv()
        await ws.send(payload)

    con = sqlite3.connect(tmp / "plain.db")
    con.execute("CREATE TABLE m (id TEXT PRIMARY KEY, author TEXT, text TEXT, ts REAL)")
    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        t0 = time.perf_counter()
        async with connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
            await ws.send("everything please")
            data = json.loads(await ws.recv())
        with con:
            con.executemany(
                "INSERT INTO m VALUES (?, ?, ?, ?)",
                [(d["id"], d["author"], d["text"], d["ts"]) for d in data],
            )
        elapsed = time.perf_counter() - t0
    con.close()
    return elapsed, len(payload.encode())


# ---- search / insert ----------------------------------------------------------------------------


def _search(tmp: Path, n: int, queries: int) -> tuple[list[float], list[float]]:
    from fletchat.store import Store

    msgs = _messages(n, "origin-s")
    store = Store.open(tmp / "search.db")
    _fill(store, msgs)
    plain = sqlite3.connect(tmp / "plain-search.db")
    plain.execute("CREATE TABLE m (id TEXT PRIMARY KEY, text TEXT)")
    with plain:
        plain.executemany("INSERT INTO m VALUES (?, ?)", [(m.id, m.text) for m in msgs])
    rnd = random.Random(3)
    ours, base = [], []
    for _ in range(queries):
        w = rnd.choice(msgs).text.split()[-2]  # one of the rarer words of a stored message
        q = w[: max(3, len(w) - 2)]  # a prefix, as people type
        t0 = time.perf_counter()
        hits = store.search(q, limit=50)
        ours.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        plain.execute(
            "SELECT id, text FROM m WHERE text LIKE ? ORDER BY rowid DESC LIMIT 50", (f"%{q}%",)
        ).fetchall()
        base.append((time.perf_counter() - t0) * 1000)
        if not hits:
            raise RuntimeError(f"search for {q!r} found nothing")
    store.close()
    plain.close()
    return ours, base


def _insert(tmp: Path, n: int) -> tuple[float, float]:
    from fletchat.clock import Stamp
    from fletchat.store import Record, Store, StoreWriter

    msgs = _messages(n, "origin-i")
    store = Store.open(tmp / "insert.db")
    writer = StoreWriter(store)
    t0 = time.perf_counter()
    for m in msgs:
        writer.submit(Record(m, Stamp.decode(m.hlc), m.seq, "delivered", 0.0))
    writer.flush(timeout=120)
    ours = n / (time.perf_counter() - t0)
    writer.close()
    if store.count() != n:
        raise RuntimeError(f"stored {store.count()} of {n}")
    store.close()
    plain = sqlite3.connect(tmp / "plain-insert.db")
    plain.execute("CREATE TABLE m (id TEXT PRIMARY KEY, author TEXT, text TEXT, ts REAL)")
    t0 = time.perf_counter()
    with plain:
        for m in msgs:
            plain.execute("INSERT INTO m VALUES (?, ?, ?, ?)", (m.id, m.author, m.text, m.ts))
    base = n / (time.perf_counter() - t0)
    plain.close()
    return ours, base


class _Busy:
    """Another thread running Python the whole time, as the event loop does while it fans out or
    decodes a catch-up: a thread that lets go of the GIL waits for it once per step."""

    def __enter__(self) -> Self:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        return self

    def _spin(self) -> None:
        x = 0
        while not self._stop.is_set():
            for i in range(1000):
                x += i

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _busy_writes(tmp: Path, n: int) -> tuple[float, float, float, float]:
    """(StoreWriter msg/s beside a busy thread, plain executemany msg/s beside it; a worker's
    read of 1,000 rows beside it in ms: Store.missing_for, a plain fetchall of the same rows)."""
    from fletchat.clock import Stamp
    from fletchat.store import Record, Store, StoreWriter

    msgs = _messages(n, "origin-b")
    store = Store.open(tmp / "busy.db")
    writer = StoreWriter(store)
    with _Busy():
        t0 = time.perf_counter()
        writer.submit_many([Record(m, Stamp.decode(m.hlc), m.seq, verified=True) for m in msgs])
        writer.flush(timeout=600)
        ours = n / (time.perf_counter() - t0)
    writer.close()
    if store.count() != n:
        raise RuntimeError(f"stored {store.count()} of {n}")
    # the baseline: the same rows into the same schema (its indexes and search index, made by
    # Store.open) the usual way, one executemany; then the search index in one statement
    Store.open(tmp / "plain-busy.db").close()
    plain = sqlite3.connect(tmp / "plain-busy.db")
    with _Busy():
        t0 = time.perf_counter()
        with plain:
            plain.executemany(
                "INSERT INTO messages (id, channel, origin, seq, hlc, kind, author, text, ts, "
                "received_at, verified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                [(m.id, m.channel, m.origin, m.seq, m.hlc, m.kind, m.author, m.text, m.ts,
                  time.time()) for m in msgs])
            plain.execute("INSERT INTO messages_fts (rowid, text) SELECT n, text FROM messages")
        base = n / (time.perf_counter() - t0)
    rows = min(n, 1000)
    with _Busy():
        t0 = time.perf_counter()
        got = store.missing_for({}, limit=rows)
        read = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        plain_got = plain.execute("SELECT * FROM messages ORDER BY origin, seq LIMIT ?",
                                  (rows,)).fetchall()
        read_base = (time.perf_counter() - t0) * 1000
    if len(got) != rows or len(plain_got) != rows:
        raise RuntimeError(f"read {len(got)} and {len(plain_got)} of {rows}")
    store.close()
    plain.close()
    return ours, base, read, read_base


def quick_plan(quick: bool) -> dict[str, int]:
    """Messages caught up, interleaved catch-up repetitions, searched over, searches, inserts."""
    if quick:
        return {"n_sync": 1000, "sync_reps": 1, "n_search": 10_000, "n_queries": 20,
                "n_insert": 2000, "n_busy": 1000}
    return {"n_sync": 10_000, "sync_reps": 3, "n_search": 100_000, "n_queries": 200,
            "n_insert": 10_000, "n_busy": 2000}


def _sync_reps(tmp: Path, n: int, reps: int) -> dict[str, Any]:
    """Catch-up of ``n`` messages, signed and verified (``signed``) and unsigned from an origin
    without a key (``unsigned``), each next to its raw dump, in interleaved repetitions (app and
    baseline back to back, order alternating); the load average per repetition."""
    from fletchat.model import new_id

    old_id = new_id()
    signed_msgs = _messages(n, old_id)
    unsigned_msgs = _messages(n, "origin-sync")
    sigs = _own_sigs(tmp / "sigs", old_id, signed_msgs)
    from .history_lan import sync_two_processes

    out: dict[str, Any] = {"signed": ([], [], 0, 0), "unsigned": ([], [], 0, 0), "load": [],
                           "cpu_signed": [], "cpu_unsigned": [], "lan": [], "lan_base": [],
                           "lan_relayed": []}
    lists = {"app": "lan", "base": "lan_base", "app-relayed": "lan_relayed"}
    for rep in range(reps):
        # The main row: serving peer and newcomer in two processes, as two devices on a LAN;
        # beside it the same history served by a peer that did not write it (every signature
        # checked by the newcomer: its origin's own connection vouches for none of it).
        order = ["app", "base", "app-relayed"]
        for kind in order if rep % 2 == 0 else order[::-1]:
            got = sync_two_processes(tmp / f"lan-{kind}-{rep}", n, old_id, kind)
            out[lists[kind]].append(got)
        for kind, msgs, who, base_sigs in (("signed", signed_msgs, old_id, sigs),
                                           ("unsigned", unsigned_msgs, None, None)):
            at = tmp / f"{kind}-{rep}"
            (at / "base").mkdir(parents=True)
            steps = [("app", lambda at=at, msgs=msgs, who=who: _sync_app(at / "app", msgs, who)),
                     ("base", lambda at=at, msgs=msgs, s=base_sigs: _sync_baseline(at / "base",
                                                                                  msgs, s))]
            if rep % 2:
                steps.reverse()
            got = {name: asyncio.run(step()) for name, step in steps}
            apps, bases, _, _ = out[kind]
            apps.append(got["app"][0])
            bases.append(got["base"][0])
            out[kind] = (apps, bases, got["app"][1], got["base"][1])
            out[f"cpu_{kind}"].append(got["app"][2])
        out["load"].append(loadavg())
    return out


def _own_sigs(tmp: Path, peer_id: str, msgs) -> list[str]:
    """The signatures ``peer_id`` gives its own messages (for the baseline's dump: the same
    bytes to carry); the identity is the one ``_sync_app`` opens for that peer."""
    from fletchat.trust import Trust

    trust = Trust.open(tmp, peer_id)
    try:
        return [trust.sig_for(m) for m in msgs]
    finally:
        trust.close()


def run(quick: bool) -> dict[str, dict[str, Any]]:
    plan = quick_plan(quick)
    n_sync, n_search = plan["n_sync"], plan["n_search"]
    n_queries, n_insert = plan["n_queries"], plan["n_insert"]
    with tempfile.TemporaryDirectory(prefix="fcbench-hist-") as tmp_name:
        tmp = Path(tmp_name)
        sync = _sync_reps(tmp, n_sync, plan["sync_reps"])
        ours, base = _search(tmp, n_search, n_queries)
        ins, ins_base = _insert(tmp, n_insert)
        busy, busy_base, busy_read, busy_read_base = _busy_writes(tmp, plan["n_busy"])
    raw_name = "one JSON dump over raw websockets + plain executemany"
    like = f"plain sqlite3 LIKE '%word%' over {n_search} rows"
    s_app, s_base, s_bytes, s_base_bytes = sync["signed"]
    u_app, u_base, u_bytes, u_base_bytes = sync["unsigned"]
    cpu = {k: [round(c, 3) for c in sync[f"cpu_{k}"]] for k in ("signed", "unsigned")}
    note = (f"{plan['sync_reps']} interleaved repetitions; load {sync['load']}; process CPU "
            f"of the app's catch-up (s, both peers, all threads) {cpu}")

    def cpus(runs: list[dict[str, float]]) -> str:
        return ", ".join(f"{r['cpu_old']:.3f}/{r['cpu_new']:.3f}" for r in runs)

    lan_note = (f"{plan['sync_reps']} interleaved repetitions; load {sync['load']}; process CPU "
                f"(s, serving peer / newcomer, all threads) app {cpus(sync['lan'])}; baseline "
                f"{cpus(sync['lan_base'])}")
    return {
        "sync": {
            "rows": [
                spread_row(f"late-join catch-up of {n_sync} messages, two processes (TLS mesh, "
                           "stored, all verified: served by their origin, whose connection "
                           "vouches for them)",
                           [r["wall"] for r in sync["lan"]],
                           [r["wall"] for r in sync["lan_base"]], unit="s",
                           baseline_name=raw_name + " (with the signatures, unchecked), two "
                           "processes", n=n_sync,
                           target_max=1.0 if n_sync >= 10_000 else None,  # the target is for 10k
                           note=lan_note),
                spread_row("the same, served by a peer that did not write them (two "
                           "processes, every signature checked)",
                           [r["wall"] for r in sync["lan_relayed"]],
                           [r["wall"] for r in sync["lan_base"]], unit="s",
                           baseline_name=raw_name + " (with the signatures, unchecked), two "
                           "processes", n=n_sync,
                           note=f"process CPU (s, serving peer / newcomer) "
                                f"{cpus(sync['lan_relayed'])}"),
                spread_row("the same, both peers in one process (served by their origin)",
                           s_app, s_base, unit="s",
                           baseline_name=raw_name + " (with the signatures, unchecked)",
                           n=n_sync, note=note),
                spread_row("the same, unsigned from an origin without a known key (nothing "
                           "verified)", u_app, u_base, unit="s", baseline_name=raw_name,
                           n=n_sync, note=note),
                row("bytes of the catch-up frames (signed)", s_bytes / 1024,
                    s_base_bytes / 1024, unit="KiB",
                    baseline_name="the same messages and signatures as one JSON dump", n=n_sync),
                row("bytes of the catch-up frames (unsigned)", u_bytes / 1024,
                    u_base_bytes / 1024, unit="KiB",
                    baseline_name="the same messages as one JSON dump", n=n_sync),
            ]
        },
        "search": {
            "rows": [
                row(f"search over {n_search} messages (FTS5, prefix), p50",
                    percentile(ours, 50), percentile(base, 50), unit="ms", baseline_name=like,
                    n=n_queries),
                row("search p99", percentile(ours, 99), percentile(base, 99), unit="ms",
                    baseline_name=like, n=n_queries),
            ]
        },
        "insert": {
            "rows": [
                row(f"insert rate through StoreWriter ({n_insert} messages)", ins, ins_base,
                    unit="msg/s", baseline_name="plain sqlite3 insert loop, one transaction",
                    n=n_insert),
                row("the same beside another thread that runs Python (as a busy event loop)",
                    busy, busy_base, unit="msg/s",
                    baseline_name="plain sqlite3 executemany into the same tables (indexes, "
                    "search index), one transaction, beside the same thread", n=plan["n_busy"],
                    note="each step of SQLite hands the GIL over and waits up to 5 ms to get "
                         "it back: the store writes a batch in a few multi-row statements "
                         "(fletchat/sqlbatch.py)"),
                row("a worker's read of 1,000 messages beside that thread (Store.missing_for, "
                    "what catch-up sends)", busy_read, busy_read_base, unit="ms",
                    baseline_name="plain sqlite3 fetchall of the same rows, beside the same "
                    "thread", n=min(plan["n_busy"], 1000),
                    note="the store reads them in one step (json_group_array)"),
            ]
        },
    }
