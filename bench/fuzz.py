"""Fuzz the edges where bytes from strangers enter: ``protocol.decode_frame``, the mesh's secured
handshake (the real ``Mesh._run`` with a trust store, driven through a fake socket), and
``discovery.parse_txt``.

    uv run python -m bench.fuzz --n 100000 [--seed S] [--save-crashes]

Inputs: a quarter replay structured inputs drawn by hypothesis (JSON frames and TXT maps with
hostile values; at most ``GENERATED_MAX`` per target, hypothesis draws only ~20/s for these), the
rest are mutations of the corpus in ``bench/fuzz_corpus/`` plus those drawn inputs (bit flips, byte
inserts/deletes, splices, JSON-aware field swaps with interesting values). atheris would give coverage guidance, but
has no wheel for CPython 3.11 (checked: ``uv add --dev atheris`` finds only cp312+ wheels).

Checks, for every input: only ``ProtocolError``/``ValidationError`` escape (anything else is a
crash, printed and with ``--save-crashes`` written to the corpus as ``crash-*``); the handshake never
registers a peer or delivers a message; afterwards, the store a hub shares with that mesh holds
exactly what it held before, and traced memory did not grow (after a warm-up). Prints numbers; the
100k-run results are recorded in docs/security.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import logging
import random
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fletchat.discovery import parse_txt
from fletchat.hub import Hub, HubSession
from fletchat.mesh import Mesh, MeshSettings
from fletchat.model import Peer, ValidationError
from fletchat.protocol import ProtocolError, decode_frame
from fletchat.store import Store
from fletchat.trust import Trust

CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
EXPECTED = (ProtocolError, ValidationError)
MEMORY_SLACK_BYTES = 512 * 1024
GENERATED_MAX = 600  # hypothesis draws ~20/s for these structures: it seeds, the mutator multiplies

INTERESTING: list[Any] = [
    None, True, False, 0, -1, 1, 2**31, 2**53 + 1, 2**64, 10**30, -(2**63),
    1e308, -0.0, 1.5, "", " ", "a" * 70, "a" * 5000, "\u0000", "\ud800", "\u202e", "💬" * 40,
    "ZZZZ" * 22, "=" * 44, [], {}, [[[[[]]]]], {"a": {"b": {"c": {}}}}, ["x"] * 300,
    "0" * 32, "f" * 31, "hello", "msg", "auth", "sync",
]


# ---------------------------------------------------------------- corpus and mutation


def load_corpus() -> dict[str, list[bytes]]:
    """Seeds by target: files named ``frame-*``, ``handshake-*`` (JSON list of frames, one per
    line) and ``txt-*`` (a JSON object of TXT key -> value or null)."""
    seeds: dict[str, list[bytes]] = {"frame": [], "handshake": [], "txt": []}
    for path in sorted(CORPUS.glob("*")):
        for prefix in list(seeds):
            if path.name.startswith(prefix + "-") or path.name.startswith(f"crash-{prefix}-"):
                seeds[prefix].append(path.read_bytes())
    return seeds


def _mutate_json(data: bytes, rng: random.Random) -> bytes:
    try:
        obj = json.loads(data)
    except ValueError:
        return data
    targets: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k in list(node):
                targets.append((node, k))
                walk(node[k])
        elif isinstance(node, list):
            for i in range(len(node)):
                targets.append((node, i))
                walk(node[i])

    walk(obj)
    if not targets:
        return data
    for _ in range(rng.randint(1, 3)):
        container, key = rng.choice(targets)
        roll = rng.random()
        if roll < 0.15 and isinstance(container, dict):
            container.pop(key, None)
        elif roll < 0.25 and isinstance(container, dict):
            container[rng.choice(["v", "type", "id", "sig", "key", "nonce", "msg", "x"])] = (
                rng.choice(INTERESTING)
            )
        else:
            try:
                container[key] = rng.choice(INTERESTING)
            except (IndexError, KeyError):
                pass
    try:
        return json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError):
        return data


def mutate(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    if rng.random() < 0.4:
        return _mutate_json(data, rng)
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[pos:pos] = bytes([rng.randrange(256)])
        elif op == 2 and buf:
            del buf[pos : pos + rng.randint(1, 8)]
        elif op == 3 and buf:
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start : start + rng.randint(1, 32)] * rng.randint(1, 4)
        elif op == 4 and pool:
            other = rng.choice(pool)
            buf = buf[:pos] + other[rng.randrange(len(other) + 1) :]
        else:
            buf[pos:pos] = rng.choice([b"{", b"}", b"[", b"]", b'"', b"\\u", b"\xff", b"\xed\xa0\x80",
                                       b"1e999", b"NaN", b",", b":", b"null", b"-",
                                       b"1" * 5000, b"[" * 40, b"\\ud800"])
    return bytes(buf)


def generated(n: int, seed: int) -> dict[str, list[bytes]]:
    """Structured hostile inputs from hypothesis strategies (drawn, not shrunk: this is a fuzzer)."""
    import warnings

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import NonInteractiveExampleWarning

    warnings.simplefilter("ignore", NonInteractiveExampleWarning)
    leaf = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
        st.text(max_size=80), st.sampled_from([s for s in INTERESTING if isinstance(s, str)]),
    )
    value = st.recursive(leaf, lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ), max_leaves=10)
    frame = st.fixed_dictionaries(
        {"v": st.one_of(st.just(1), st.integers(-2, 3)),
         "type": st.sampled_from(["hello", "auth", "msg", "sync", "have", "ack", "peers", "ping",
                                  "pong", "bye", "nope"])},
        optional={k: value for k in ("id", "name", "device", "port", "app", "session", "dial",
                                      "key", "nonce", "sig", "msg", "msgs", "have", "ids",
                                      "peers", "reason")},
    )
    txt = st.dictionaries(
        st.one_of(st.binary(max_size=12), st.sampled_from([b"v", b"id", b"name", b"port",
                                                          b"device", b"V", b"ID"])),
        st.one_of(st.none(), st.binary(max_size=80), st.sampled_from([b"1", b"8551", b"desktop"])),
        max_size=8,
    )
    out: dict[str, list[bytes]] = {"frame": [], "handshake": [], "txt": []}

    def dump(obj: Any) -> bytes:
        return json.dumps(obj).encode("utf-8", "surrogatepass")

    @settings(max_examples=n, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(frame, frame, txt)
    def collect(f1: dict, f2: dict, t: dict) -> None:
        out["frame"].append(dump(f1))
        out["handshake"].append(dump(f1) + b"\n" + dump(f2))
        out["txt"].append(json.dumps(
            {k.decode("latin-1"): (None if v is None else v.decode("latin-1")) for k, v in t.items()}
        ).encode("utf-8"))

    collect()
    return out


# ---------------------------------------------------------------- targets


def fuzz_frame(data: bytes) -> None:
    """Both ways a frame arrives: bytes, and text (websockets hands over ``str``)."""
    if len(data) % 2:
        decode_frame(data)
    else:
        decode_frame(data.decode("utf-8", "surrogateescape"))


def fuzz_txt(data: bytes) -> None:
    try:
        obj = json.loads(data)
    except ValueError:
        obj = {data[:20]: data[20:]}  # raw bytes as one key/value pair
    if isinstance(obj, dict):
        obj = {
            (k.encode("latin-1", "replace") if isinstance(k, str) else k):
            (v.encode("latin-1", "replace") if isinstance(v, str) else v)
            for k, v in obj.items()
        }
    parse_txt(obj)


class ClosedError(Exception):
    pass


class FakeWS:
    """Just enough of a websockets connection for ``Mesh._run`` (server side: no TLS object)."""

    remote_address = ("192.0.2.7", 40000)

    def __init__(self, frames: list[str | bytes]) -> None:
        self.frames = frames
        self.sent: list[str] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None

    async def send(self, data: str) -> None:
        self.sent.append(data)

    async def recv(self) -> str | bytes:
        from websockets.exceptions import ConnectionClosed

        if self.close_code is not None or not self.frames:
            raise ConnectionClosed(None, None)
        return self.frames.pop(0)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.close_code, self.close_reason = code, reason


class _CountingHub(Hub):
    """A real hub that counts what the mesh lets through (nothing, for a fuzzed handshake)."""

    delivered = 0
    ups = 0

    def receive(self, msg, from_peer, *, verified=False, relay=True):
        self.delivered += 1
        return super().receive(msg, from_peer, verified=verified, relay=relay)

    def peer_up(self, peer) -> None:
        self.ups += 1
        super().peer_up(peer)


class HandshakeHarness:
    """A real secured ``Mesh`` (trust, store-backed hub) fed fake connections."""

    def __init__(self, tmp: Path) -> None:
        self.trust = Trust.open(tmp / "id", "fuzz-target")
        self.store = Store.open(tmp / "history.db")
        self.hub = _CountingHub("fuzz-target", store=self.store, trust=self.trust)
        session = HubSession(self.hub, device="headless")
        session.join("Target")
        for i in range(5):
            session.send(f"before the fuzz {i}")
        self.close_codes: Counter[int | None] = Counter()  # how the mesh ended each handshake
        settings = MeshSettings(heartbeat_timeout=0.05, heartbeat_interval=0.02,
                                handshake_timeout=0.05)
        self.mesh = Mesh(Peer("fuzz-target", "Target"), self.hub, settings, self.trust)
        self.loop = asyncio.new_event_loop()

    def snapshot(self) -> str:
        """What the store holds, through its public API: every channel's history, the catch-up
        summary and the outbox."""
        if self.hub._writer is not None:
            self.hub._writer.flush(timeout=5.0)
        rows = [
            (r.msg, r.hlc.encode(), r.seq)
            for channel in self.store.channels() + ["general"]
            for r in self.store.recent(channel, 1_000_000)
        ]
        state = (rows, self.store.have_summary(), sorted(r.msg.id for r in self.store.pending()))
        return hashlib.sha256(repr(state).encode()).hexdigest() + f"/{len(rows)}"

    def run(self, data: bytes) -> None:
        frames: list[str | bytes] = []
        for line in data.split(b"\n")[:4]:
            try:
                frames.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                frames.append(line)
        ws = FakeWS(frames)
        self.loop.run_until_complete(self.mesh._sessions.run(ws, outgoing=False, dial=0, want=None))  # type: ignore[arg-type]
        self.close_codes[ws.close_code] += 1
        if self.hub.ups or self.hub.delivered or len(self.mesh._registry):
            raise AssertionError("a fuzzed handshake got a peer registered or a message through")

    def close(self) -> None:
        self.loop.close()
        self.hub.close()
        self.trust.close()


# ---------------------------------------------------------------- driver


def run(
    n: int, seed: int = 1, save_crashes: bool = False, quiet: bool = False,
    generated_max: int = GENERATED_MAX,
) -> dict[str, Any]:
    rng = random.Random(seed)
    logging.getLogger("fletchat").setLevel(logging.CRITICAL)  # every refusal logs a line
    seeds = load_corpus()
    gen = generated(max(1, min(generated_max, n // 12)), seed)
    for kind, inputs in gen.items():  # structured inputs also seed the mutator
        seeds[kind] = seeds[kind] + inputs
    stats: dict[str, Any] = {"inputs": 0, "expected_errors": Counter(), "accepted": Counter(),
                             "crashes": []}
    with tempfile.TemporaryDirectory() as tmp:
        harness = HandshakeHarness(Path(tmp))
        targets: dict[str, Callable[[bytes], None]] = {
            "frame": fuzz_frame, "handshake": harness.run, "txt": fuzz_txt,
        }
        before = harness.snapshot()

        def one(kind: str, data: bytes) -> None:
            stats["inputs"] += 1
            try:
                targets[kind](data)
                stats["accepted"][kind] += 1
            except EXPECTED:
                stats["expected_errors"][kind] += 1
            except Exception as err:  # noqa: BLE001 - a crash: anything else escaping
                stats["crashes"].append((kind, repr(err)[:200], data[:200]))
                if save_crashes:
                    digest = hashlib.sha256(data).hexdigest()[:12]
                    (CORPUS / f"crash-{kind}-{digest}.bin").write_bytes(data)

        kinds = list(targets)
        started = time.perf_counter()
        warm = min(2000, n // 10)
        plan_generated = [(k, d) for k in kinds for d in gen[k]]
        for i in range(n):
            if i == warm:
                gc.collect()
                tracemalloc.start()
                mem_before = tracemalloc.get_traced_memory()[0]
            if i % 4 == 0 and plan_generated:
                kind, data = plan_generated[(i // 4) % len(plan_generated)]
            else:
                kind = kinds[i % 3]
                pool = seeds[kind] or [b"{}"]
                data = mutate(rng.choice(pool), rng, pool)
            one(kind, data)
        elapsed = time.perf_counter() - started
        gc.collect()
        mem_after = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
        tracemalloc.stop()
        after = harness.snapshot()
        stats["handshake_close_codes"] = {str(k): v for k, v in harness.close_codes.items()}
        harness.close()
    growth = mem_after - mem_before if warm < n else 0
    stats.update(
        seconds=round(elapsed, 1), per_second=round(n / elapsed) if elapsed else 0,
        memory_growth_bytes=growth, store_unchanged=before == after,
        corpus_files=sum(len(v) for v in seeds.values()),
    )
    if not quiet:
        print(json.dumps({**stats, "crashes": len(stats["crashes"]),
                          "expected_errors": dict(stats["expected_errors"]),
                          "accepted": dict(stats["accepted"])}, indent=1))
        for kind, err, data in stats["crashes"][:10]:
            print(f"CRASH {kind}: {err} on {data!r}", file=sys.stderr)
    return stats


def check(stats: dict[str, Any]) -> list[str]:
    problems = []
    if stats["crashes"]:
        problems.append(f"{len(stats['crashes'])} inputs raised something else than "
                        "ProtocolError/ValidationError")
    if not stats["store_unchanged"]:
        problems.append("the store changed")
    if stats["memory_growth_bytes"] > MEMORY_SLACK_BYTES:
        problems.append(f"traced memory grew by {stats['memory_growth_bytes']} bytes")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save-crashes", action="store_true")
    args = parser.parse_args(argv)
    problems = check(run(args.n, args.seed, args.save_crashes))
    for p in problems:
        print("FAIL:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
