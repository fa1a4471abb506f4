"""``uv run python -m bench [--quick] [--only ID,ID] [--out FILE]``

Runs the figures, prints a table (each figure next to a baseline measured in the same run, and the
ratio), writes JSON (default ``bench/results.json``). Exits non-zero only when a measurement could
not be taken at all (a figure raised, or produced no numbers): slow is reported, never failed.
A figure that needs what this machine lacks (root for namespaces, Chromium) is skipped, and that
counts as a failure only when ``CI`` is set (as in the tests).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .common import Skip, breakdown_lines, cell, machine, merge_results

FIGURES: dict[str, str] = {
    "discovery": "1. Discovery to visible (namespaced hosts, real mDNS)",
    "leave": "2. Leave detection",
    "delivery": "3. Delivery latency, 1 sender -> 4 peers",
    "throughput": "4. Throughput: one peer fanning out to 4",
    "fanout": "5. Host-mode fan-out to N sessions",
    "startup": "6. Start-up of host mode",
    "sync": "7. History: late-join catch-up",
    "search": "8. History: search",
    "insert": "9. History: insert rate",
    "sessions": "10. Host-mode memory with N sessions",
    "static_site": "11. Static web build: first and second visit",
    "files": "12. Files: a big file between two namespaced hosts (vs curl), chat during it, RSS, resume",
    "browsers": "13. Host mode in real browsers: 1 sender -> 5 Chromium receivers",
    "scaleout": "14. Scale-out: 3 namespaced hosts x N tabs sharing one conversation",
    "shutdown": "15. Host mode's exit after SIGTERM with N tabs open (goodbye sent, burst stored)",
    "allday": "16. Host mode all day: hundreds of messages to N tabs x R rows (collector pauses)",
}
# module -> the figures it produces (some share one expensive set-up)
RUNNERS: list[tuple[str, tuple[str, ...]]] = [
    ("bench.lan", ("discovery", "leave")),
    ("bench.delivery", ("delivery", "throughput")),
    ("bench.fanout", ("fanout",)),
    ("bench.startup", ("startup",)),
    ("bench.history", ("sync", "search", "insert")),
    ("bench.sessions", ("sessions",)),
    ("bench.static_site", ("static_site",)),
    ("bench.files", ("files",)),
    ("bench.browsers", ("browsers",)),
    ("bench.scaleout", ("scaleout",)),
    ("bench.shutdown", ("shutdown",)),
    ("bench.allday", ("allday",)),
]
# Quick mode (a smoke run of every figure in about a minute) runs these lanes at once, each in its
# own processes, one module after another within a lane: the browser figure alone; the two that
# mostly wait (mDNS on namespaced hosts, flet-web's session eviction); the CPU-bound rest. Quick
# numbers are for checking that every figure still works, not for quoting: lanes share the cores.
QUICK_LANES: list[list[str]] = [
    ["bench.static_site", "bench.browsers", "bench.startup"],  # the browsers, then 3 s more
    ["bench.lan", "bench.sessions", "bench.shutdown"],  # namespaced hosts, eviction: waiting
    ["bench.files", "bench.scaleout", "bench.history"],  # namespaced hosts: more waiting than CPU
    ["bench.delivery", "bench.fanout", "bench.allday"],  # CPU-bound (about 65 s on 2 cores)
]
DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"
# A smoke run's figures are not the ones to quote: they never replace the committed full run's.
QUICK_OUT = DEFAULT_OUT.with_name("results-quick.json")


def run_module(module: str, wanted: list[str], quick: bool) -> dict[str, dict[str, Any]]:
    """One module's figures (``wanted`` of them), each with its status; never raises."""
    figures: dict[str, dict[str, Any]] = {}
    print(f"running {module} ({', '.join(wanted)})...", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    try:
        mod = importlib.import_module(module)
        out = mod.run(quick)
        for fid in wanted:
            fig = out.get(fid)
            if fig is None or not fig.get("rows"):
                figures[fid] = {"status": "error", "error": "no numbers", **(fig or {})}
            else:
                figures[fid] = {"status": "ok", **fig}
    except Skip as why:
        for fid in wanted:
            figures[fid] = {"status": "skipped", "error": str(why), "rows": []}
    except Exception as err:  # noqa: BLE001 - a broken figure is reported, the rest still run
        traceback.print_exc()
        for fid in wanted:
            figures[fid] = {"status": "error", "error": f"{type(err).__name__}: {err}",
                            "rows": []}
    elapsed = time.monotonic() - t0
    for fid in wanted:
        figures[fid]["title"] = FIGURES[fid]
        figures[fid]["seconds"] = round(elapsed, 1)
    print(f"{module}: {elapsed:.1f} s", file=sys.stderr, flush=True)
    return figures


def _wanted(module: str, only: set[str] | None) -> list[str]:
    ids = dict(RUNNERS)[module]
    return [i for i in ids if only is None or i in only]


def _run_lanes(quick: bool, only: set[str] | None) -> dict[str, dict[str, Any]]:
    """``QUICK_LANES`` at once: each module in a child ``python -m bench --serial``."""
    figures: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def lane(modules: list[str], tmp: Path) -> None:
        for module in modules:
            wanted = _wanted(module, only)
            if not wanted:
                continue
            out = tmp / f"{module}.json"
            argv = [sys.executable, "-m", "bench", "--serial", "--only", ",".join(wanted),
                    "--out", str(out), *(["--quick"] if quick else [])]
            subprocess.run(argv, cwd=Path(__file__).resolve().parent.parent,
                           stdout=subprocess.DEVNULL, check=False)
            try:
                got = json.loads(out.read_text())["figures"]
            except (OSError, ValueError, KeyError):
                got = {fid: {"status": "error", "error": f"{module} wrote no results",
                             "rows": [], "title": FIGURES[fid]} for fid in wanted}
            with lock:
                figures.update(got)

    with tempfile.TemporaryDirectory(prefix="fcbench-lanes-") as tmp:
        threads = [threading.Thread(target=lane, args=(modules, Path(tmp)))
                   for modules in QUICK_LANES]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return figures


def run(quick: bool, only: set[str] | None, serial: bool = False,
        partial: Path | None = None) -> dict[str, Any]:
    """Every wanted figure; with ``partial``, the figures finished so far are written there after
    each module, so a long full run that is stopped keeps what it measured."""
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    t0 = time.monotonic()
    figures: dict[str, dict[str, Any]] = {}
    if quick and not serial:
        figures = _run_lanes(quick, only)
    else:
        for module, _ids in RUNNERS:
            wanted = _wanted(module, only)
            if wanted:
                figures.update(run_module(module, wanted, quick))
                if partial is not None:
                    partial.write_text(json.dumps({"figures": figures}, indent=1) + "\n")
    return {
        "total_seconds": round(time.monotonic() - t0, 1),
        "schema": 1,
        "quick": quick,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        # other work on the machine skews every figure: the 1-minute load before/after the run
        "loadavg_1min": [load_before and round(load_before[0], 2),
                         round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None],
        "figures": {fid: figures[fid] for fid in FIGURES if fid in figures},
    }


def table(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        (f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}, Python {m['python']} "
        f"(commit {m['commit']}{', quick run' if results['quick'] else ''})"),
        (f"Load average (1 min) before / after the run: {results.get('loadavg_1min')}; "
        "value (min–max) = median of repetitions and their spread"),
        "",
        "| figure | value | baseline (same run) | ratio | target | n |",
        "|---|---|---|---|---|---|",
    ]
    for fig in results["figures"].values():
        lines.append(f"| **{fig['title']}** | | | | | |")
        if fig["status"] != "ok":
            lines.append(f"| {fig['status']}: {fig.get('error', '')} | | | | | |")
        for r in fig.get("rows", []):
            met = "" if r["met"] is None else (" met" if r["met"] else " **missed**")
            lines.append(
                f"| {r['metric']} | {cell(r, 'value')} | "
                f"{cell(r, 'baseline')} ({r['baseline_name']}) | {cell(r, 'ratio')} | "
                f"{r['target']}{met} | {r['n'] if r['n'] is not None else ''} |"
            )
        for f in fig.get("failures", []) or []:
            lines.append(f"| (failure) {f} | | | | | |")
    for fig in results["figures"].values():
        if fig.get("breakdown"):
            lines += breakdown_lines(fig["breakdown"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    p.add_argument("--quick", action="store_true",
                   help="a smoke run of every figure in about a minute (lanes run at once)")
    p.add_argument("--serial", action="store_true", help=argparse.SUPPRESS)  # one lane's child
    p.add_argument("--only", help=f"comma-separated figure ids: {', '.join(FIGURES)}")
    p.add_argument("--out", type=Path, help=f"JSON results file (default {DEFAULT_OUT}; "
                                           f"{QUICK_OUT.name} with --quick)")
    p.add_argument("--merge", action="store_true",
                   help="put the figures run into the existing results file, keeping the others")
    args = p.parse_args(argv)
    only = None
    if args.only:
        only = {x.strip() for x in args.only.split(",") if x.strip()}
        unknown = only - set(FIGURES)
        if unknown:
            p.error(f"unknown figure(s): {', '.join(sorted(unknown))}")
    out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    partial = out.with_name(out.name + ".partial")
    results = run(args.quick, only, serial=args.serial, partial=partial)
    partial.unlink(missing_ok=True)
    saved = results
    if args.merge and out.exists():
        try:
            saved = merge_results(json.loads(out.read_text()), results)
        except (ValueError, KeyError) as err:
            p.error(f"--merge: {out}: {err}")
    out.write_text(json.dumps(saved, indent=1) + "\n")
    print(table(results))
    print(f"\nwrote {out}", file=sys.stderr)
    print(f"total: {results['total_seconds']:.1f} s"
          f"{' (quick: lanes at once)' if args.quick and not args.serial else ''}")
    broken = [
        fid for fid, fig in results["figures"].items()
        if fig["status"] == "error" or (fig["status"] == "skipped" and os.environ.get("CI"))
    ]
    if broken:
        print(f"no measurement for: {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
