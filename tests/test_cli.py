"""main.py as a person runs it: real subprocesses, real sockets on loopback, real HTTP."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fletchat.identity import DataDirLock
from tests.timing import eventually_sync, scaled

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "main.py")
START_TIMEOUT = scaled(30.0)


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLETCHAT_")}
    env["FLETCHAT_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_main(args: list[str], data_dir: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, MAIN, *args],
        cwd=ROOT,
        env=env_for(data_dir),
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    """A main.py process whose stdout lines are collected by a thread (so reads can time out)."""

    def __init__(
        self, args: list[str], data_dir: Path, env: dict[str, str] | None = None, cwd: Path = ROOT
    ) -> None:
        self.stderr_path = data_dir.parent / f"stderr-{os.getpid()}-{id(self)}.log"
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, MAIN, *args],
            cwd=cwd,
            env={**env_for(data_dir), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> str:
        while True:
            try:
                line = self._q.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no {pattern!r} within {timeout}s; stdout so far: {self.lines}; "
                    f"stderr: {self.stderr_path.read_text()}"
                ) from None
            if line is None:
                raise AssertionError(
                    f"exited ({self.proc.wait()}) before {pattern!r}; stdout: "
                    f"{self.lines}; stderr: {self.stderr_path.read_text()}"
                )
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def url_lines(self, count: int) -> list[str]:
        return [self.wait_for(r"^\s+http").strip() for _ in range(count)]

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        return self.proc.returncode


def assert_one_line_error(result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


# ---------------------------------------------------------------- tests


def test_help(tmp_path: Path) -> None:
    r = run_main(["--help"], tmp_path / "data")
    assert r.returncode == 0, r.stderr
    for word in (
        "--web",
        "--port",
        "--data-dir",
        "--name",
        "--peer",
        "--headless",
        "FLETCHAT_PORT",
        "FLETCHAT_DATA_DIR",
        "--no-lan",
    ):
        assert word in r.stdout, word


def test_bad_option_exits_2(tmp_path: Path) -> None:
    r = run_main(["--peer", "nonsense"], tmp_path / "data")
    assert r.returncode == 2
    assert "HOST:PORT" in r.stderr and "Traceback" not in r.stderr


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_main(
            ["--web", "--no-lan", "--host", "127.0.0.1", "--port", str(port)], tmp_path / "data"
        )
    assert_one_line_error(r, "already in use")
    assert str(port) in r.stderr
    assert "Open:" not in r.stdout


def test_port_in_use_via_env(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = env_for(tmp_path / "data") | {
            "FLETCHAT_WEB": "1",
            "FLETCHAT_NO_LAN": "1",
            "FLETCHAT_HOST": "127.0.0.1",
            "FLETCHAT_PORT": str(port),
        }
        r = subprocess.run(
            [sys.executable, MAIN],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=scaled(30),
        )
    assert_one_line_error(r, "already in use")


def test_second_instance_same_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    first = Running(["--web", "--no-lan", "--host", "127.0.0.1", "--port", str(port)], data)
    try:
        first.wait_for("Open:")
        assert first.url_lines(1) == [f"http://127.0.0.1:{port}/"]
        second = run_main(
            ["--web", "--no-lan", "--host", "127.0.0.1", "--port", str(free_port())], data
        )
        assert_one_line_error(second, "already using")
        assert "--data-dir" in second.stderr
        assert first.proc.poll() is None  # the first one is unharmed
        # SIGTERM (a service manager stopping it) ends it quietly ...
        first.proc.terminate()
        first.proc.wait(timeout=scaled(15))
    finally:
        first.stop()
    assert "Traceback" not in first.stderr_path.read_text()
    # ... and the data-dir lock goes with the process: the dir is free again at once.
    lock = DataDirLock(data)
    lock.acquire()
    lock.release()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, int]]:
    """One host-mode instance on the default address (all interfaces), LAN side off."""
    data = tmp_path_factory.mktemp("host") / "data"
    port = free_port()
    proc = Running(["--web", "--no-lan", "--port", str(port)], data)
    try:
        proc.wait_for("Open:")
        yield proc, port
    finally:
        proc.stop()


def test_host_mode_announces_urls(host: tuple[Running, int]) -> None:
    proc, port = host
    text = "\n".join(proc.lines).lower()
    assert "host mode" in text
    urls = proc.url_lines(1)
    assert urls == [f"http://localhost:{port}/"]  # localhost first; LAN addresses may follow


def test_host_mode_serves_index(host: tuple[Running, int]) -> None:
    _, port = host
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=scaled(20)) as resp:
        assert resp.status == 200
        body = resp.read().decode("utf-8", "replace")
    assert "<title>Flet Chat</title>" in body


def test_host_mode_hides_api_docs(host: tuple[Running, int]) -> None:
    _, port = host
    for path in ("/docs", "/redoc", "/openapi.json"):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=scaled(20)) as resp:
                body = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            assert err.code == 404, path
            continue
        # A catch-all route may answer with the Flet page itself; never FastAPI's docs.
        assert "swagger" not in body.lower() and "redoc" not in body.lower(), path
        assert '"openapi"' not in body, path


def test_host_mode_creates_identity(host: tuple[Running, int]) -> None:
    proc, _ = host
    data = Path(proc.stderr_path).parent / "data"
    assert (data / "peer_id").is_file()
    assert (data / "instance.lock").is_file()


def test_ctrl_c_stops_host_mode_cleanly(tmp_path: Path) -> None:
    # SIGINT as at a terminal, even if this test run inherited it ignored (a handled signal is
    # reset to the default in the child at exec; an ignored one would stay ignored).
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = Running(
            ["--web", "--no-lan", "--host", "127.0.0.1", "--port", str(free_port())],
            tmp_path / "data",
        )
    finally:
        signal.signal(signal.SIGINT, old)
    try:
        proc.wait_for("Open:")
        proc.url_lines(1)
        proc.proc.send_signal(signal.SIGINT)
        proc.proc.wait(timeout=scaled(15))
    finally:
        proc.stop()
    err = proc.stderr_path.read_text()
    assert "Traceback" not in err, err
    assert proc.proc.returncode in (0, 130, -signal.SIGINT)


def test_a_desktop_client_that_never_connects_falls_back_to_host_mode(tmp_path):
    """An old or mismatched client on FLET_VIEW_PATH starts and never registers: after the client
    timeout the app stops it, says why, and serves host mode instead of waiting forever."""
    view = tmp_path / "old-flet-client"
    view.mkdir()
    pid_file = tmp_path / "fake-client.pid"
    client = view / "flet"
    client.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 600\n")
    client.chmod(0o755)
    port = free_port()
    proc = Running(
        ["--no-lan", "--host", "127.0.0.1", "--port", str(port)],
        tmp_path / "data",
        env={
            "DISPLAY": ":99",  # a display is claimed, so the window is tried first
            "FLET_VIEW_PATH": str(view),
            "FLETCHAT_DESKTOP_CLIENT_TIMEOUT": "3",
        },
        cwd=tmp_path,  # no build/linux client here that flet would prefer
    )
    try:
        line = proc.wait_for(r"^Host mode: ", timeout=90)
        assert "did not connect within 3 s" in line and "FLET_VIEW_PATH" in line
        (url,) = proc.url_lines(1)
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
        pid = int(pid_file.read_text())
        eventually_sync(lambda: not _alive(pid), "the stuck client was stopped", 10)
    finally:
        proc.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (killed, not yet reaped by its parent) is gone for our purpose
    with contextlib.suppress(OSError):
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    return True
