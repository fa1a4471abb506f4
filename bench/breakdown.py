"""Where one message's delivery time goes: ``time.perf_counter`` spans around the real code paths.

``Spans.install()`` wraps functions of the product (and of ``ssl`` / ``websockets``) *in this
process only*, for the duration of a ``with`` block: every wrapper calls the original with the
same arguments and returns its result, so behaviour is unchanged; it only adds about a
microsecond per call. Spans nest: each part is reported as *exclusive* time (a signature check
that calls Ed25519 verify is counted once, under verify, and the rest under the check).

All five peers of the delivery figure share one event loop (one thread), so loop-thread CPU per
message is, to a close approximation, what a message waits for: the parts below add up to it, and
the rest (asyncio, websockets' I/O, sockets) is reported as the remainder. SQLite commits on the
store-writer threads are reported apart: they are off the loop and cost latency only through
the GIL.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

SIG = "signatures: Ed25519 sign + verify"
SQL = "SQLite on the event loop (store, signature book)"
OFF = "SQLite on the store-writer threads (off the loop)"
TLS = "TLS encrypt / decrypt"
JSON = "JSON encode / decode + frame validation"
WS = "websockets framing"
HUB = "hub acceptance + publish"
ACK = "acks (receipts), without their SQLite"
FAN = "mesh fan-out"
REST = "rest: asyncio, websockets' asyncio I/O, sockets"

# (module, attribute path, part, group). The names are what the README's breakdown lists.
TARGETS: tuple[tuple[str, str, str, str], ...] = (
    ("fletchat.identity", "Identity.sign", "Ed25519 sign (sender)", SIG),
    ("fletchat.trust", "verify_signature", "Ed25519 verify (receivers)", SIG),
    ("fletchat.trust", "message_signing_bytes", "canonical signing bytes", SIG),
    ("fletchat.trust", "SignatureBook.put", "signature book write (SQLite, on the loop)", SQL),
    ("fletchat.trust", "SignatureBook.get", "signature book lookup (SQLite, on the loop)", SQL),
    # the signature check and the frame decoding moved to the sans-I/O peer connection on the
    # peer-core branch: the first path found is wrapped ("a|b" = alternatives)
    ("fletchat.mesh|fletchat.peer.connection", "Mesh._accept_message|PeerConnection._messages_in",
     "signature check, rest", SIG),
    ("ssl", "SSLObject.write", "TLS encrypt", TLS),
    ("ssl", "SSLObject.read", "TLS decrypt", TLS),
    ("fletchat.protocol", "encode_frame", "JSON encode (frame -> text)", JSON),
    ("fletchat.protocol", "_parse", "JSON decode", JSON),
    ("fletchat.mesh|fletchat.peer.connection", "decode_frame|decode_frame",
     "frame validation (after JSON decode)", JSON),
    ("websockets.protocol", "Protocol.send_text", "websockets framing (send)", WS),
    ("websockets.protocol", "Protocol.receive_data", "websockets framing (receive)", WS),
    ("fletchat.hub", "Hub.post", "hub post (sender: stamp, dedupe)", HUB),
    ("fletchat.hub", "Hub.receive", "hub acceptance (dedupe, clock, queue for store)", HUB),
    ("fletchat.hub", "Hub._publish", "hub publish to listeners", HUB),
    ("fletchat.store", "_StoreReads.get", "store lookup (dedupe, on the loop)", SQL),
    ("fletchat.store", "Store.add_local", "store write (sender's own message, on the loop)", SQL),
    ("fletchat.store", "_StoreOutbox.mark_sent", "store: mark sent (on the loop)", SQL),
    ("fletchat.store", "_StoreOutbox.mark_delivered", "store: mark delivered on ack (on the loop)", SQL),
    ("fletchat.store", "Store.add_many", "store write (batched, store-writer thread)", OFF),
    ("fletchat.mesh|fletchat.mesh_session|fletchat.mesh_judge", "Mesh._ack|Sessions._on_messages|MessageJudge.on_messages",
     "ack: receipt sent", ACK),
    ("fletchat.conversation.hub_part", "ConvHubMethods.acked", "ack: receipt handled", ACK),
    ("fletchat.mesh", "Mesh._broadcast", "mesh fan-out (queue per peer)", FAN),
)

GROUP_OF = {part: group for _m, _a, part, group in TARGETS}


def _lookup(module: Any, path: str) -> tuple[Any, str, Any]:
    """(owner, attribute, original) for ``Class.method`` or ``function`` in ``module``."""
    owner = module
    *outer, name = path.split(".")
    for attr in outer:
        owner = getattr(owner, attr)
    original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    return owner, name, original


@dataclass
class _Part:
    calls: int = 0
    wall: float = 0.0  # exclusive wall time: what a message waits for, preemption included
    cpu: float = 0.0  # exclusive CPU time of the thread: the work itself


class _TimedLock:
    """Stands in for a store's lock so the time spent *waiting* for it is a part of its own."""

    def __init__(self, lock: Any, enter: Callable[[], Any]) -> None:
        self._lock = lock
        self._enter = enter

    def __enter__(self) -> Any:
        return self._enter()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lock, name)


class Spans:
    """Exclusive wall and CPU time per part, from a per-thread stack of open spans."""

    def __init__(self) -> None:
        self.parts: dict[tuple[str, bool], _Part] = {}  # (part, on the loop thread)
        self.not_wrapped: list[str] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def _wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        spans = self

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = getattr(spans._local, "stack", None)
            if stack is None:
                stack = spans._local.stack = []
            stack.append([0.0, 0.0])  # wall and CPU time spent in nested spans
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
                nested = stack.pop()
                if stack:
                    stack[-1][0] += wall
                    stack[-1][1] += cpu
                on_loop = threading.current_thread() is threading.main_thread()
                with spans._lock:
                    p = spans.parts.setdefault((part, on_loop), _Part())
                    p.calls += 1
                    p.wall += wall - nested[0]
                    p.cpu += cpu - nested[1]

        return timed

    @contextmanager
    def install(self, locks: tuple[tuple[Any, str, str], ...] = (),
                calls: tuple[tuple[Any, str, str], ...] = ()) -> Iterator[Spans]:
        """Wrap every target for the duration of the block; restore the originals after.
        ``locks``: (object, attribute, part) — a lock whose acquisition is timed as ``part``;
        ``calls``: (object, attribute, part) — a callable held by an instance (a callback bound
        before the block, which wrapping its class would miss). Missing attributes are skipped."""
        import importlib

        undo: list[tuple[Any, str, Any]] = []
        try:
            for obj, attr, part in locks:
                if (lock := getattr(obj, attr, None)) is not None:
                    undo.append((obj, attr, lock))
                    setattr(obj, attr, _TimedLock(lock, self._wrap(part, lock.acquire)))
            for obj, attr, part in calls:
                if callable(fn := getattr(obj, attr, None)):
                    undo.append((obj, attr, fn))
                    setattr(obj, attr, self._wrap(part, fn))
            for modules, paths, part, _group in TARGETS:
                found = None
                for module, path in zip(modules.split("|"), paths.split("|"), strict=True):
                    try:
                        found = _lookup(importlib.import_module(module), path)
                        break
                    except (ImportError, AttributeError, KeyError):
                        continue
                if found is None:
                    # the code moved (a refactor): that part falls into the rest, and says so
                    self.not_wrapped.append(f"{modules}.{paths}")
                    continue
                owner, name, original = found
                undo.append((owner, name, original))
                setattr(owner, name, self._wrap(part, original))
            yield self
        finally:
            for owner, name, original in reversed(undo):
                setattr(owner, name, original)

    def report(self, messages: int, loop_busy: float, loop_cpu: float) -> dict[str, Any]:
        """Per message: each part's exclusive wall and CPU µs and calls, the loop's busy time
        (wall minus time in select) and CPU, and the groups the README summarises."""
        rows = []
        on_wall = on_cpu = 0.0
        for (part, loop), p in sorted(self.parts.items(), key=lambda kv: -kv[1].wall):
            if loop:
                on_wall += p.wall
                on_cpu += p.cpu
            rows.append({
                "part": part if loop else f"{part} [off the loop]",
                "group": GROUP_OF.get(part, SQL) if loop else OFF,
                "us_per_msg": p.wall / messages * 1e6,
                "cpu_us_per_msg": p.cpu / messages * 1e6,
                "calls_per_msg": p.calls / messages,
                "us_per_call": p.wall / p.calls * 1e6 if p.calls else None,
                "on_loop": loop,
                "share_of_loop": p.wall / loop_busy if loop and loop_busy else None,
            })
        rest_wall = max(0.0, loop_busy - on_wall) / messages * 1e6
        rest_cpu = max(0.0, loop_cpu - on_cpu) / messages * 1e6
        groups: dict[str, dict[str, float]] = {}
        for r in rows:
            g = groups.setdefault(r["group"], {"us_per_msg": 0.0, "cpu_us_per_msg": 0.0})
            g["us_per_msg"] += r["us_per_msg"]
            g["cpu_us_per_msg"] += r["cpu_us_per_msg"]
        groups[REST] = {"us_per_msg": rest_wall, "cpu_us_per_msg": rest_cpu}
        return {
            "messages": messages,
            "loop_busy_us_per_msg": loop_busy / messages * 1e6,
            "loop_cpu_us_per_msg": loop_cpu / messages * 1e6,
            "groups": groups,
            "parts": rows,
            "rest": "asyncio scheduling, websockets' asyncio I/O, socket syscalls, code not wrapped",
            "not_wrapped": sorted(set(self.not_wrapped)),
        }
