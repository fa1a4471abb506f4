"""Storage faults (issue 11, #12): a full disk or a read-only data directory gives a clear error,
the app keeps running read-only, and nothing already stored is lost — also across a restart."""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from fletchat.clock import HLC
from fletchat.events import Outcome, StoreFailed
from fletchat.headless import event_line
from fletchat.hub import Hub, HubSession, ReadOnlyError
from fletchat.model import Message
from fletchat.store import Store, StoreFull
from tests.conftest import need


def remote(text: str, seq: int, origin: str = "peer-b") -> Message:
    m = Message.chat("Bob", text, origin)
    return replace(m, hlc=HLC(origin).now().encode(), seq=seq)


def fill_up(store: Store) -> None:
    """Let the database grow by no more than a page or two (as on a full disk)."""
    pages = store._con.execute("PRAGMA page_count").fetchone()[0]
    store._con.execute(f"PRAGMA max_page_count = {pages + 1}")


async def test_a_full_disk_turns_the_history_read_only_and_loses_nothing(tmp_path):
    path = tmp_path / "history.db"
    hub = Hub("me", store=Store.open(path))
    events: list = []
    hub.add_listener(events.append)
    ann = HubSession(hub, key="k")
    ann.join("Ann")
    kept = [ann.send(f"kept {i}") for i in range(20)]
    got = hub.receive(remote("from bob", 1), "peer-b", verified=True)
    await hub.wait_stored((got.message.id,))
    fill_up(hub.store)
    sent: list[Message] = []
    with pytest.raises(ReadOnlyError, match="read-only"):
        for i in range(500):
            sent.append(ann.send(f"filler {i} " + "x" * 3000))
            hub.flush()  # a send goes out first; its insert commits (or fails) after it
    # A clear error for people (banner / headless "error" line), naming the message that went
    # out but could not be saved here; the sends after it are refused at once...
    [fault] = [e for e in events if isinstance(e, StoreFailed)]
    assert "disk is full" in fault.reason and hub.store_error == fault.reason
    assert fault.not_saved == (sent[-1].id,)
    assert event_line(fault) == {"event": "error", "error": fault.reason,
                                 "not_saved": [sent[-1].id]}
    assert sent[-1].id not in {m.id for m in hub.history(limit=1000)}
    # ...peers' messages are refused with the reason (so never acknowledged)...
    late = hub.receive(remote("too late", 2), "peer-b", verified=True)
    assert late.outcome is Outcome.REFUSED and "cannot store" in late.reason
    # ...and everything stored before is still there, now and after a restart.
    shown = {m.id for m in hub.history(limit=1000)}
    assert {m.id for m in kept} | {got.message.id} <= shown
    hub.close()
    again = Hub("me", store=Store.open(path))
    assert {m.id for m in kept} | {got.message.id} <= {m.id for m in again.history(limit=1000)}
    assert again.store_error == ""  # room again: writable after the restart
    again.close()


async def test_a_batch_that_cannot_be_written_is_never_acknowledged(tmp_path):
    hub = Hub("me", store=Store.open(tmp_path / "history.db"))
    fill_up(hub.store)
    big = [remote("y" * 3900, i + 1) for i in range(40)]
    accepted = [hub.receive(m, "peer-b", verified=True, relay=False) for m in big]
    ids = tuple(a.message.id for a in accepted if a.stored)
    assert ids
    with pytest.raises(StoreFull):
        await hub.wait_stored(ids)  # the mesh acknowledges nothing when this raises
    assert hub.store.read_only and hub.store_error
    hub.close()


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    need(os.geteuid() == 0, "mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def written_history(path: Path, n: int = 30) -> list[str]:
    hub = Hub("me", store=Store.open(path))
    s = HubSession(hub, key="k")
    s.join("Ann")
    ids = [s.send(f"kept {i}").id for i in range(n)]
    hub.close()
    return ids


def test_a_read_only_data_dir_opens_the_history_read_only(tmp_path):
    with tmpfs(tmp_path / "data", "8m") as data:
        ids = written_history(data / "history.db")
        subprocess.run(["mount", "-o", "remount,ro", str(data)], check=True)
        store = Store.open(data / "history.db")
        hub = Hub("me", store=store)
        assert store.read_only and "read-only" in hub.store_error
        assert set(ids) <= {m.id for m in hub.history(limit=1000)}
        assert [m for m, _ in hub.search("kept")]  # search works too
        s = HubSession(hub, key="k2")
        s.join("Ann")  # joining still works (the line is only shown here)...
        with pytest.raises(ReadOnlyError):
            s.send("cannot be saved")  # ...sending says why it cannot
        hub.close()


def test_a_full_disk_at_start_opens_the_history_read_only(tmp_path):
    with tmpfs(tmp_path / "data", "2m") as data:
        ids = written_history(data / "history.db")
        with contextlib.suppress(OSError), open(data / "ballast", "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        store = Store.open(data / "history.db")
        hub = Hub("me", store=store)
        assert store.read_only and hub.store_error
        assert set(ids) <= {m.id for m in hub.history(limit=1000)}
        hub.close()
        (data / "ballast").unlink()
        again = Hub("me", store=Store.open(data / "history.db"))
        assert not again.store.read_only
        assert set(ids) <= {m.id for m in again.history(limit=1000)}
        assert again.store.count() == len(ids) + 1  # the join too: nothing was lost
        again.close()


def test_the_headless_peer_reports_and_keeps_running_on_a_read_only_data_dir(tmp_path):
    with tmpfs(tmp_path / "data", "8m") as data:
        proc = subprocess.run(
            ["uv", "run", "python", "main.py", "--headless", "--no-lan", "--data-dir", str(data),
             "--name", "Ann"], input="before\n", capture_output=True, text=True, timeout=60,
            check=False,
            cwd=Path(__file__).resolve().parent.parent)
        assert proc.returncode == 0, proc.stderr[-2000:]
        subprocess.run(["mount", "-o", "remount,ro", str(data)], check=True)
        proc = subprocess.run(
            ["uv", "run", "python", "main.py", "--headless", "--no-lan", "--data-dir", str(data),
             "--name", "Ann"], input="after\n", capture_output=True, text=True, timeout=60,
            check=False,
            cwd=Path(__file__).resolve().parent.parent)
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = proc.stdout.splitlines()
        assert any('"event": "ready"' in line for line in lines), proc.stdout
        errors = [line for line in lines if '"event": "error"' in line]
        assert errors and "read-only" in errors[0], proc.stdout
        # the line it could not send says why, and the peer still exits cleanly
        assert any("read-only" in line for line in errors[1:]), proc.stdout


def test_a_bounded_close_still_writes_what_is_queued(tmp_path):
    """Host mode's exit closes the hub with a time limit (issue 11): what was received and
    queued for the writer is committed before the database closes, and the writer is done."""
    path = tmp_path / "history.db"
    hub = Hub("me", store=Store.open(path))
    got = [hub.receive(remote(f"queued {i}", i + 1), "peer-b", verified=True) for i in range(200)]
    assert hub.close(timeout=30) is True
    assert not hub._writer.running
    again = Hub("me", store=Store.open(path))
    assert {a.message.id for a in got} <= {m.id for m in again.history(limit=1000)}
    again.close()
