"""Figure 12 on links shaped like a real LAN: issue 13's three rows again, with every namespaced
host given a link of a set rate each way (``tests/lan.py``, ``Lan.shape``: tc tbf on its
interface and on its bridge port), beside figure 12's rows on the bare veth pair (kept as they
are, in ``bench/files.py``).

On the bare pair each transfer moves as fast as two cores can, so app and curl compete for CPU,
not for a link; a real LAN has a link: gigabit Ethernet moves about 117 MB/s of TCP payload,
Wi-Fi far less. Per rate (1000 Mbit/s, wired; 200 Mbit/s, a Wi-Fi-like rate), with the same
shaping, the same hosts and the same file for app and baseline:

- a 200 MB file h1 -> h2 (offer to verified), vs ``curl`` from ``python -m http.server`` on the
  same pair, rounds alternating which goes first (target: >= 0.8x curl's MB/s);
- chat latency during that transfer (h1 writes a line, h2 prints it; from the offer's arrival
  to the verified file), vs the same peers on the same shaped pair with no transfer, measured
  just before in each round (target: p50 <= 1.5x);
- the same chat latency while ``curl`` (not the app) moves the file over the same link: what the
  link's own queue adds, the part of the figure above that no app change can remove;
- one sender, four receivers of a 100 MB file, every one of the five hosts shaped, vs four
  sequential curls from h1 (target: faster), with the share of chunks the sender sent in the note.

Quick mode: one tiny row set (200 Mbit/s, 4 MB, one round, no four-receiver row).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import files as BF
from .common import percentile, proc_cpu_s, spread_row, stop_process

MB = 1_000_000
LINKS = {1000: "1000 Mbit/s links (wired gigabit)", 200: "200 Mbit/s links (Wi-Fi-like)"}


@dataclass(frozen=True)
class Plan:
    rates: tuple[int, ...]  # Mbit/s of each host's link, both ways: one set of rows per rate
    pair_mb: int  # the h1 -> h2 file
    rounds: int  # app / baseline rounds per rate (which goes first alternates)
    pings: int  # quiet chat samples per round
    fan_mb: int  # the four-receiver file; 0: no four-receiver rows


def quick_plan(quick: bool) -> Plan:
    if quick:
        return Plan(rates=(200,), pair_mb=4, rounds=1, pings=5, fan_mb=0)
    return Plan(rates=(1000, 200), pair_mb=200, rounds=3, pings=20, fan_mb=100)


def link_name(mbit: int) -> str:
    return LINKS.get(mbit, f"{mbit} Mbit/s links")


@dataclass
class PairRound:
    app: float  # MB/s, offer to verified at the receiver
    curl: float  # MB/s
    quiet: list[float]  # chat latencies (s) just before, no transfer
    busy: list[float]  # chat latencies (s) during the transfer
    cpu: tuple[float, float]  # CPU seconds of the sender's and the receiver's process during it
    load: float  # 1-minute load average at the round's start
    first: float | None  # the line typed right after /file, during the import (not counted)
    during_curl: list[float]  # chat latencies (s) while curl moved the same file on the same link


def transfer_with_chat(a: Any, b: Any, big: Path, tag: str) -> tuple[
        float, list[float], tuple[float, float], float | None]:
    """``big`` from a to b while a keeps writing chat lines: (offer-to-verified seconds, the chat
    latencies from the offer's arrival at b to the verified file, CPU seconds the sender's and
    the receiver's processes used, the latency of the line typed right after ``/file``).

    That first line is not counted as "during the transfer": it is sent while the sender imports
    the file (hashing and copying it), before the offer goes out. (Until 66d3f3f the headless peer
    handled its stdin lines in order, so that line waited for the whole import.)
    """
    cpu0 = (proc_cpu_s(a.proc.pid), proc_cpu_s(b.proc.pid))
    result: dict[str, tuple[float, float]] = {}
    t0 = time.monotonic()
    t = threading.Thread(target=lambda: result.setdefault("r", BF._share(a, b, big)))
    t.start()
    first = BF._chat_latency(a, b, 1, f"{tag}-first", gap=0)
    b.wait_for(lambda e: e.get("event") == "message" and e.get("files"), BF.WAIT, after=t0)
    busy: list[float] = []
    while t.is_alive():
        busy += BF._chat_latency(a, b, 1, tag, gap=0.02)
    t.join()
    cpu = (proc_cpu_s(a.proc.pid) - cpu0[0], proc_cpu_s(b.proc.pid) - cpu0[1])
    if "r" not in result:
        raise RuntimeError(f"{big.name} did not arrive")
    return result["r"][0], busy, cpu, first[0] if first else None


def curl_with_chat(lan: Any, a: Any, b: Any, files: Path, name: str,
                   tag: str) -> tuple[float, list[float]]:
    """``curl`` on h2 fetching ``name`` from ``python -m http.server`` on h1 (into a file on the
    same disk) while a keeps writing chat lines to b, as during the app's transfer: (the curl's
    seconds, the chat latencies meanwhile: what the link's own queue adds, with no app transfer)."""
    h1, h2 = lan
    server = h1.popen([sys.executable, "-m", "http.server", "8099", "--bind", h1.ip, "--directory",
                       str(files)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result: dict[str, float] = {}

    def fetch() -> None:
        t0 = time.monotonic()
        h2.run(["curl", "-sS", "-o", str(files / "curl.out"), f"http://{h1.ip}:8099/{name}"],
               timeout=600)
        result["s"] = time.monotonic() - t0

    try:
        time.sleep(1.0)
        t = threading.Thread(target=fetch)
        t.start()
        chat: list[float] = []
        while t.is_alive():
            chat += BF._chat_latency(a, b, 1, tag, gap=0.02)
        t.join()
    finally:
        stop_process(server)
        (files / "curl.out").unlink(missing_ok=True)
    if "s" not in result:
        raise RuntimeError("the curl failed")
    return result["s"], chat


def pair_rounds(lan: Any, a: Any, b: Any, files: Path, plan: Plan, mbit: int) -> list[PairRound]:
    """``plan.rounds`` rounds on h1 -> h2, both hosts shaped to ``mbit``."""
    h1, h2 = lan
    for h in (h1, h2):
        h.shape(mbit)
    size = plan.pair_mb * MB
    out = []
    for i in range(plan.rounds):
        load = os.getloadavg()[0]
        quiet = BF._chat_latency(a, b, plan.pings, f"quiet{mbit}-{i}")
        big = BF.random_file(files / f"s{mbit}-{i}.bin", size)
        curl = curl_with_chat(lan, a, b, files, big.name, f"curl{mbit}-{i}") if i % 2 else None
        secs, busy, cpu, first = transfer_with_chat(a, b, big, f"busy{mbit}-{i}")
        if curl is None:
            curl = curl_with_chat(lan, a, b, files, big.name, f"curl{mbit}-{i}")
        big.unlink()
        out.append(PairRound(size / MB / secs, size / MB / curl[0], quiet, busy, cpu, load, first,
                             curl[1]))
        print(f"  {mbit} Mbit/s round {i}: app {out[-1].app:.1f} MB/s, curl {out[-1].curl:.1f} "
              f"MB/s, chat p50 {percentile(busy, 50) * 1000 if busy else 0:.0f} ms during vs "
              f"{percentile(quiet, 50) * 1000:.0f} ms quiet, "
              f"{percentile(curl[1], 50) * 1000 if curl[1] else 0:.0f} ms during curl, first line "
              f"after /file {first * 1000 if first is not None else -1:.0f} ms, CPU {cpu[0]:.2f} / {cpu[1]:.2f} s, "
              f"load {load:.1f}", file=sys.stderr, flush=True)
    return out


def _pair_rows(plan: Plan, mbit: int, rounds: list[PairRound]) -> list[dict[str, Any]]:
    link = link_name(mbit)
    loads = [r.load for r in rounds]
    note = (f"each host's link {mbit} Mbit/s each way (tc tbf); rounds alternate which goes "
            f"first; 1-min load {min(loads):.1f}-{max(loads):.1f}; CPU per transfer (median): "
            f"sender {percentile([r.cpu[0] for r in rounds], 50):.2f} s, receiver "
            f"{percentile([r.cpu[1] for r in rounds], 50):.2f} s")
    rows = [spread_row(f"{plan.pair_mb} MB h1 -> h2 on {link}, offer to verified (MB/s)",
                       [r.app for r in rounds], [r.curl for r in rounds], unit="MB/s",
                       baseline_name="curl from python -m http.server, same shaped pair",
                       n=len(rounds), target_min_ratio=0.8, note=note)]
    chat = [r for r in rounds if r.busy and r.quiet]
    waits = [r.first for r in rounds if r.first is not None]
    first = (f"not counted: the line typed right after /file, {percentile(waits, 50) * 1000:.0f} ms"
             f" (median; max {max(waits) * 1000:.0f} ms; sent during the sender's import of the "
             "file); " if waits else "")
    if len(chat) < len(rounds):
        first += (f"{len(rounds) - len(chat)} round(s) without a chat line timed during the "
                  "transfer (the line after /file outlasted it); ")
    for q in (50, 99):
        rows.append(spread_row(
            f"chat latency during that transfer on {link} p{q}",
            [percentile(r.busy, q) for r in chat], [percentile(r.quiet, q) for r in chat],
            unit="s", baseline_name="same peers and links, no transfer (just before)",
            n=sum(len(r.busy) for r in chat), target_max_ratio=1.5 if q == 50 else None,
            note=f"per round: p{q} of the chat lines from the offer to the verified file / "
                 f"before the transfer; {first}{note}"))
    link_only = [r for r in chat if r.during_curl]
    rows.append(spread_row(
        f"chat latency during a curl of that file on {link} p50 (the link's own queue)",
        [percentile(r.during_curl, 50) for r in link_only],
        [percentile(r.quiet, 50) for r in link_only], unit="s",
        baseline_name="same peers and links, no transfer (just before)",
        n=sum(len(r.during_curl) for r in link_only),
        note="chat lines while curl (not the app) moves the same file over the same shaped link: "
             "what the link's FIFO queue adds to chat without any app transfer"))
    return rows


def fan_rounds(tmp: Path, plan: Plan, mbit: int) -> list[tuple[float, float, float | None]]:
    """Five hosts, all shaped to ``mbit``: per round (app seconds, 4 curls' seconds, the share of
    chunk frames the sender sent), a fresh set of peers and a fresh file each round."""
    from tests.lan import virtual_lan

    out = []
    with virtual_lan(5) as lan:
        lan.shape_all(mbit)
        for i in range(plan.rounds):
            files = tmp / f"fan{mbit}-{i}"
            files.mkdir()
            src = BF.random_file(files / "fan.bin", plan.fan_mb * MB)
            curls = BF._fan_curls(lan, files, src) if i % 2 else None
            app, origin = BF._fan_app(lan, tmp / f"peers{mbit}-{i}", src)
            if curls is None:
                curls = BF._fan_curls(lan, files, src)
            shutil.rmtree(files)
            shutil.rmtree(tmp / f"peers{mbit}-{i}", ignore_errors=True)
            out.append((app, curls, origin))
            print(f"  {mbit} Mbit/s, 4 receivers, round {i}: app {app:.1f} s, curls {curls:.1f} "
                  f"s, sender's share {origin if origin is not None else float('nan'):.2f}, "
                  f"load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    return out


def _fan_row(plan: Plan, mbit: int, rounds: list[tuple[float, float, float | None]],
             loads: tuple[float, float]) -> dict[str, Any]:
    shares = [s for _, _, s in rounds if s is not None]
    share = (f"the sender sent {min(shares):.0%}-{max(shares):.0%} of the chunk frames "
             f"(1/4 = {0.25:.0%} if receivers shared perfectly, 100 % if not at all); "
             if shares else "")
    return spread_row(
        f"one sender, 4 receivers, {plan.fan_mb} MB on {link_name(mbit)}: first offer to last "
        "verified", [a for a, _, _ in rounds], [c for _, c, _ in rounds], unit="s",
        baseline_name="4 sequential curls from h1, same shaped links", n=len(rounds),
        target_max_ratio=1.0,
        note=f"{share}rounds alternate which goes first; 1-min load {loads[0]:.1f} -> "
             f"{loads[1]:.1f}")


def rows(quick: bool) -> list[dict[str, Any]]:
    """Every shaped row of the plan; a rate whose run failed is left out (said on stderr)."""
    from tests.lan import tc_available, virtual_lan

    ok, reason = tc_available()
    if not ok:
        print(f"shaped-link rows skipped: {reason}", file=sys.stderr)
        return []
    plan = quick_plan(quick)
    out: list[dict[str, Any]] = []
    with virtual_lan(2) as lan, tempfile.TemporaryDirectory(prefix="fcbench-links-") as tmpd:
        tmp = Path(tmpd)
        files = tmp / "share"
        files.mkdir()
        h1, h2 = lan
        a = BF._peer(h1, "Alice", tmp / "a")
        b = BF._peer(h2, "Bob", tmp / "b")
        try:
            BF._online(a)
            BF._online(b)
            for mbit in plan.rates:
                try:
                    out += _pair_rows(plan, mbit, pair_rounds(lan, a, b, files, plan, mbit))
                except (RuntimeError, OSError) as err:
                    print(f"{mbit} Mbit/s pair rows failed: {err!r}", file=sys.stderr)
        finally:
            for p in (a, b):
                p.close_stdin()
                stop_process(p.proc)
    for mbit in plan.rates if plan.fan_mb else ():
        with tempfile.TemporaryDirectory(prefix="fcbench-links-fan-") as tmpd:
            load0 = os.getloadavg()[0]
            try:
                fan = fan_rounds(Path(tmpd), plan, mbit)
            except (RuntimeError, OSError) as err:
                print(f"{mbit} Mbit/s four-receiver row failed: {err!r}", file=sys.stderr)
                continue
            out.append(_fan_row(plan, mbit, fan, (load0, os.getloadavg()[0])))
    return out
