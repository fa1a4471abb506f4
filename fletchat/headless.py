"""The headless peer: no UI, JSON lines out (every message), text lines in (each one is sent;
``/reply ID text``, ``/react ID EMOJI``, ``/edit ID text``, ``/delete ID``, ``/typing``, ``/read``
are the conversation commands: ``conversation/commands.py``, ``conversation/headless.py``).

For bots, scripts and tests. A line that is refused (too long, not text) gets a JSON error line on
stdout and the peer keeps going. ``/file PATH [caption]`` shares a file; every peer prints a
``file`` line once an attached file is stored and verified here (``files_events``). A file is
imported (hashed, copied) in the background, files in the order given: the lines after it are
sent at once, as the app's composer does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

from .config import Config
from .conversation.commands import parse_command
from .conversation.headless import conversation_line, run_command
from .conversation.views import ReadChanged, RowChanged, TypingChanged
from .events import IdentityWarning, MessageRefused, RosterChanged
from .hub import HubSession, StoreFailed
from .model import DEFAULT_CHANNEL, FletChatError, Message, ValidationError
from .node import Node

FILE_COMMAND = "/file"
log = logging.getLogger(__name__)


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def event_line(
    event: object, status: Callable[[Message], str] = lambda msg: "unverified"
) -> dict | None:
    """The JSON line printed for a hub event (None for events the headless peer does not print).

    Messages carry ``verified``: "verified" (signed by the origin's known key), "unverified"
    (origin never met, or unsigned) or "refused"; the roster carries each LAN peer's key
    fingerprint, to compare in person."""
    if isinstance(event, Message):
        return {"event": "message", **event.to_dict(), "verified": status(event)}
    if isinstance(event, IdentityWarning):
        return {
            "event": "identity_warning",
            "peer_id": event.peer_id,
            "name": event.name,
            "old_fingerprint": event.old_fingerprint,
            "new_fingerprint": event.new_fingerprint,
            "at": event.at,
        }
    if isinstance(event, RosterChanged):
        return {
            "event": "online",
            "people": [p.name for p in event.online],
            "peers": [{"id": d.key, "name": d.name, "fingerprint": d.fingerprint}
                      for d in event.devices],
        }
    if isinstance(event, StoreFailed):
        line: dict = {"event": "error", "error": event.reason}
        return {**line, "not_saved": list(event.not_saved)} if event.not_saved else line
    if isinstance(event, RowChanged | TypingChanged | ReadChanged):
        return conversation_line(event, status)
    if isinstance(event, MessageRefused):
        return {"event": "refused", "peer_id": event.peer_id,
                "refused": [{"id": i, "reason": r} for i, r in event.refusals], "at": event.at}
    return None


async def serve_headless(config: Config, node: Node) -> None:
    loop = asyncio.get_running_loop()
    inbox = _Stdin(loop)

    def on_event(event: object) -> None:
        line = event_line(event, node.hub.message_status)
        if line is not None:
            emit(line)

    files = FileLines(emit, lambda sha: [(r.msg.id, next(f for f in r.msg.files if f.sha256 == sha))
                                         for r in node.hub.store.with_file(sha)])
    node.hub.add_listener(files.on_event)
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: no such handlers
            loop.add_signal_handler(sig, inbox.stop)
    node.hub.add_listener(on_event)
    node.on_diagnosis = lambda d: emit({"event": "network_doctor", **json.loads(d.to_json())})
    await node.start()
    session = HubSession(node.hub, device="headless")
    session.join(config.name or node.name)
    emit({"event": "ready", "peer_id": node.peer_id, "name": session.name,
          "peer_port": node.peer_port, "fingerprint": node.hub.fingerprint})
    if node.hub.store_error:  # e.g. the history opened read-only (disk full, read-only folder)
        emit({"event": "error", "error": node.hub.store_error})
    threading.Thread(target=inbox.read, args=(sys.stdin,), daemon=True, name="stdin").start()
    shares = _Shares(lambda path, caption: _share(node, session, path, caption))
    try:
        while (line := await inbox.next()) is not None:
            try:
                command = parse_command(line)
                if line.startswith(FILE_COMMAND + " ") or line == FILE_COMMAND:
                    shares.add(*share_args(node, line[len(FILE_COMMAND):]))
                elif command is None:
                    await asyncio.to_thread(session.send, line)  # stored (SQLite): off the loop
                else:
                    await asyncio.to_thread(run_command, session, command)
            except ValidationError as err:
                emit({"event": "error", "error": str(err)})
        await shares.finish(until=inbox.stopping)  # end of input: what was asked still goes out
    finally:
        await shares.finish()  # stopped (a signal): an import in progress is not waited for
        session.leave()
        await node.stop()


class _Shares:
    """``/file`` lines, shared one after another in the background: each file is hashed and
    copied before its message goes out (seconds for a big one), and the chat lines typed after
    it must not wait for that. Failures print an ``error`` line."""

    def __init__(self, share: Callable[[Path, str], Awaitable[object]]) -> None:
        self._share = share
        self._queue: asyncio.Queue[tuple[Path, str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def add(self, path: Path, caption: str) -> None:
        self._queue.put_nowait((path, caption))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="file shares")

    async def _run(self) -> None:
        while True:
            path, caption = await self._queue.get()
            try:
                await self._share(path, caption)
            except FletChatError as err:
                emit({"event": "error", "error": str(err)})
            except Exception as err:
                log.exception("sharing %s failed", path)
                emit({"event": "error", "error": f"Could not share {path.name}: {err}"})
            finally:
                self._queue.task_done()

    async def finish(self, until: asyncio.Event | None = None) -> None:
        """With ``until``: the queued shares are done first, unless ``until`` is set before."""
        if self._task is None:
            return
        if until is not None:
            waits = [asyncio.ensure_future(self._queue.join()), asyncio.ensure_future(until.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


async def _share(node: Node, session: HubSession, path: Path, caption: str) -> None:
    assert node.files is not None  # share_args checked it
    await node.files.share(session, [path], caption, DEFAULT_CHANNEL)


def share_args(node: Node, rest: str) -> tuple[Path, str]:
    """``/file PATH [caption]`` checked at once (a refusal is printed in order with the other
    lines): PATH may be quoted (shell rules) when it has spaces."""
    import shlex

    if node.files is None:
        raise ValidationError("File sharing is off here (no data folder).")
    try:
        words = shlex.split(rest)
    except ValueError:
        words = rest.split()
    if not words:
        raise ValidationError("Usage: /file PATH [caption]")
    path = Path(words[0]).expanduser()
    if not path.is_file():
        raise ValidationError(f"No such file: {words[0]}")
    return path, " ".join(words[1:])


class FileLines:
    """The ``file`` lines: one per (message, attached file) once the bytes are stored and
    verified here; an ``error`` line when a download fails, ``file_waiting`` when nobody who has
    it is online. Hub events arrive on any thread."""

    def __init__(self, out: Callable[[dict], None],
                 lookup: Callable[[str], list[tuple[str, object]]] = lambda sha: []) -> None:
        self.out = out
        self.lookup = lookup  # (message id, ref) of stored messages attaching a file (SQLite)
        self._lock = threading.Lock()
        self._messages: dict[str, list[tuple[str, object]]] = {}  # sha256 -> [(message id, ref)]
        self._told: set[tuple[str, str]] = set()
        self._state: dict[str, object] = {}  # sha256 -> the last state told (no repeats)

    def on_event(self, event: object) -> None:
        from .files.views import FileChanged, FileState

        if isinstance(event, Message):
            with self._lock:
                for ref in event.files:
                    self._messages.setdefault(ref.sha256, []).append((event.id, ref))
            return
        if not isinstance(event, FileChanged):
            return
        view = event.view
        if event.sha256 not in self._messages and view.state is FileState.READY:
            # e.g. a download resumed after a restart: its message came in an earlier run
            threading.Thread(target=self._look_up, args=(event,), daemon=True).start()
            return
        self._tell(event)

    def _look_up(self, event: object) -> None:
        try:
            found = self.lookup(event.sha256)
        except (FletChatError, OSError, ValueError):  # the store failing must not stop the peer
            found = []
        with self._lock:
            self._messages.setdefault(event.sha256, []).extend(found)
        if found:
            self._tell(event)

    def _tell(self, event: object) -> None:
        from .files.views import FileState

        view = event.view
        with self._lock:
            refs = list(self._messages.get(event.sha256, ()))
            if view.state is FileState.READY:
                refs = [(m, r) for m, r in refs if (m, event.sha256) not in self._told]
                self._told.update((m, event.sha256) for m, _ in refs)
            elif self._state.get(event.sha256) is view.state:
                return
            self._state[event.sha256] = view.state
        for msg_id, ref in refs:
            if view.state is FileState.READY:
                self.out({"event": "file", "message": msg_id, "name": view.name or ref.name,
                          "size": view.size, "sha256": event.sha256, "path": str(view.path)})
            elif view.state is FileState.FAILED:
                self.out({"event": "error", "error": view.reason, "message": msg_id,
                          "sha256": event.sha256})
            elif view.state is FileState.WAITING_FOR_HOLDER:
                self.out({"event": "file_waiting", "message": msg_id, "sha256": event.sha256,
                          "reason": view.reason})


class _Stdin:
    """Lines from a reader thread to the loop, waking the loop once per burst rather than once
    per line: a call_soon_threadsafe per line writes a byte per line to the loop's wakeup pipe,
    which a fast producer fills, and then SIGTERM's byte is dropped (the signal is lost). A stop
    request wins over lines still queued, and the loop yields between lines."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lines: deque[str | None] = deque()
        self._woken = threading.Event()
        self._wake = asyncio.Event()
        self.stopping = asyncio.Event()  # set by ``stop`` (a signal), not by the end of input

    def read(self, stream) -> None:  # on the reader thread
        for line in stream:
            self._put(line.rstrip("\n"))
        self._put(None)

    def _put(self, line: str | None) -> None:
        self._lines.append(line)
        if not self._woken.is_set():
            self._woken.set()
            with contextlib.suppress(RuntimeError):  # loop closed: nobody to tell
                self._loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()

    async def next(self) -> str | None:
        """The next line, or None at end of input or once stopped."""
        await asyncio.sleep(0)  # a queued line must not starve the mesh, timers or signals
        while not self.stopping.is_set():
            if self._lines:
                return self._lines.popleft()
            self._woken.clear()
            if not self._lines:
                self._wake.clear()
                await self._wake.wait()
        return None


def run_headless(config: Config, node: Node) -> None:
    try:
        asyncio.run(serve_headless(config, node))
    except KeyboardInterrupt:
        pass
