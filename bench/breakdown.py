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
from dataclasses import dataclass, field
from typing import Any

# (module, attribute path, part). The part names are what the README's breakdown lists.
TARGETS: tuple[tuple[str, str, str], ...] = (
    ("fletchat.identity", "Identity.sign", "Ed25519 sign (sender)"),
    ("fletchat.trust", "verify_signature", "Ed25519 verify (receivers)"),
    ("fletchat.trust", "message_signing_bytes", "canonical signing bytes"),
    ("fletchat.trust", "SignatureBook.put", "signature book write (SQLite, on the loop)"),
    ("fletchat.trust", "SignatureBook.get", "signature book lookup (SQLite, on the loop)"),
    ("fletchat.mesh", "Mesh._accept_message", "signature check, rest"),
    ("ssl", "SSLObject.write", "TLS encrypt"),
    ("ssl", "SSLObject.read", "TLS decrypt"),
    ("fletchat.protocol", "encode_frame", "JSON encode (frame -> text)"),
    ("fletchat.protocol", "_parse", "JSON decode"),
    ("fletchat.mesh", "decode_frame", "frame validation (after JSON decode)"),
    ("websockets.protocol", "Protocol.send_text", "websockets framing (send)"),
    ("websockets.protocol", "Protocol.receive_data", "websockets framing (receive)"),
    ("fletchat.hub", "Hub.post", "hub post (sender: stamp, dedupe)"),
    ("fletchat.hub", "Hub.receive", "hub acceptance (dedupe, clock, queue for store)"),
    ("fletchat.hub", "Hub._publish", "hub publish to listeners"),
    ("fletchat.store", "Store.get", "store lookup (dedupe, on the loop)"),
    ("fletchat.store", "Store.add_local", "store write (sender's own message, on the loop)"),
    ("fletchat.store", "Store.mark_sent", "store: mark sent (on the loop)"),
    ("fletchat.store", "Store.mark_delivered", "store: mark delivered on ack (on the loop)"),
    ("fletchat.store", "Store.add_many", "store write (batched, store-writer thread)"),
    ("fletchat.mesh", "Mesh._ack", "ack: receipt sent"),
    ("fletchat.hub", "Hub.acked", "ack: receipt handled"),
    ("fletchat.mesh", "Mesh._broadcast", "mesh fan-out (queue per peer)"),
)


@dataclass
class _Part:
    calls: int = 0
    exclusive: float = 0.0
    threads: set[str] = field(default_factory=set)


class Spans:
    """Exclusive time per part, per thread-aware stack of open spans."""

    def __init__(self) -> None:
        self.parts: dict[str, _Part] = {}
        self._local = threading.local()
        self._lock = threading.Lock()

    def _wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        spans = self

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = getattr(spans._local, "stack", None)
            if stack is None:
                stack = spans._local.stack = []
            stack.append(0.0)  # time spent in nested spans
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                nested = stack.pop()
                if stack:
                    stack[-1] += elapsed
                with spans._lock:
                    p = spans.parts.setdefault(part, _Part())
                    p.calls += 1
                    p.exclusive += elapsed - nested
                    p.threads.add(threading.current_thread().name)

        return timed

    @contextmanager
    def install(self) -> Iterator[Spans]:
        """Wrap every target for the duration of the block; restore the originals after."""
        import importlib

        undo: list[tuple[Any, str, Any]] = []
        try:
            for module, path, part in TARGETS:
                owner: Any = importlib.import_module(module)
                *outer, name = path.split(".")
                for attr in outer:
                    owner = getattr(owner, attr)
                original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
                undo.append((owner, name, original))
                setattr(owner, name, self._wrap(part, original))
            yield self
        finally:
            for owner, name, original in reversed(undo):
                setattr(owner, name, original)

    def report(self, messages: int, loop_cpu: float, process_cpu: float,
               main_thread: str = "MainThread") -> dict[str, Any]:
        """Per-message figures: each part's exclusive µs and calls, loop vs off-loop threads."""
        rows = []
        on_loop = 0.0
        for part, p in sorted(self.parts.items(), key=lambda kv: -kv[1].exclusive):
            loop = p.threads == {main_thread}
            if loop:
                on_loop += p.exclusive
            rows.append({
                "part": part,
                "us_per_msg": p.exclusive / messages * 1e6,
                "calls_per_msg": p.calls / messages,
                "on_loop": loop,
            })
        loop_us = loop_cpu / messages * 1e6
        for r in rows:
            r["share_of_loop"] = r["us_per_msg"] / loop_us if r["on_loop"] and loop_us else None
        rest = max(0.0, loop_cpu - on_loop)
        return {
            "messages": messages,
            "loop_cpu_us_per_msg": loop_us,
            "process_cpu_us_per_msg": process_cpu / messages * 1e6,
            "parts": rows,
            "remainder_us_per_msg": rest / messages * 1e6,
            "remainder": "asyncio scheduling, websockets' asyncio I/O, socket syscalls, "
                         "parts not wrapped",
        }
