"""Hole 13: a headless peer fed a burst of lines still obeys SIGTERM promptly, saying goodbye.

On main, one ``call_soon_threadsafe`` per stdin line filled the event loop's wakeup pipe, so the
byte that announces SIGTERM was dropped and the process ran on. Real processes, real sockets.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.timing import scaled

ROOT = Path(__file__).resolve().parent.parent


class Headless:
    def __init__(self, tmp: Path, name: str, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLETCHAT_")}
        env.update(FLETCHAT_DATA_DIR=str(tmp / name), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "--headless", "--name", name,
             "--peer-port", "0", "--interface", "127.0.0.1", *extra],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )
        self.events: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                pass

    def wait_for(self, check, timeout: float = 30.0) -> dict:
        while True:
            event = self.events.get(timeout=scaled(timeout))
            if check(event):
                return event

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_sigterm_under_a_burst_of_input_exits_promptly_with_a_goodbye(tmp_path: Path) -> None:
    bob = Headless(tmp_path, "bob")
    ann = None
    try:
        port = bob.wait_for(lambda e: e["event"] == "ready")["peer_port"]
        ann = Headless(tmp_path, "ann", "--peer", f"127.0.0.1:{port}")
        bob.wait_for(lambda e: e["event"] == "online" and "ann" in e["people"])

        def flood() -> None:
            try:
                assert ann.proc.stdin is not None
                for i in range(20_000):
                    ann.proc.stdin.write(f"load {i} {'x' * 200}\n")
                ann.proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # it stopped reading: it is leaving

        threading.Thread(target=flood, daemon=True).start()
        bob.wait_for(lambda e: e["event"] == "message" and e["text"].startswith("load 50 "))
        ann.proc.send_signal(signal.SIGTERM)
        assert ann.proc.wait(timeout=scaled(5)) == 0  # a limit, not a measurement (bench: 1.6 s)
        # bob hears the goodbye: ann is gone from its list
        bob.wait_for(lambda e: e["event"] == "online" and "ann" not in e["people"], timeout=10)
    finally:
        for p in (ann, bob):
            if p is not None:
                p.close()
