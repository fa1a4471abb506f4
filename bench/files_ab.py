"""Figure 12's single-source row as an interleaved A/B: one file h1 -> h2 with a base commit's
``main.py`` and this checkout's, alternating, and one ``curl`` per round (root: namespaced hosts).

    uv run python -m bench.files_ab BASE_COMMIT [--mb 200] [--reps 3] [--py-spy PATH]

Each transfer gets a fresh pair of peers (two pairs on one LAN would both fetch every file with
``--download-all``). Per transfer it prints MB/s (offer to verified, as in figure 12), the load
average, and the CPU seconds the sender's and the receiver's processes used during it; with
``--py-spy`` it also records both processes (``--threads --format raw``) into a kept directory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import files as BF
from .common import ROOT, percentile, proc_cpu_s, stop_process

MB = 1_000_000


def _transfer(h1, h2, main: str, tmp: Path, tag: str, size: int, spy: tuple[str, Path] | None) -> str:
    BF.MAIN = main
    a = BF._peer(h1, f"A{tag}", tmp / f"a{tag}")
    b = BF._peer(h2, f"B{tag}", tmp / f"b{tag}")
    try:
        BF._online(a)
        BF._online(b)
        big = tmp / f"{tag}.bin"
        with open(big, "wb") as f:
            f.writelines(os.urandom(MB) for _ in range(size // MB))
        spies = [subprocess.Popen([spy[0], "record", "--threads", "--format", "raw", "-r", "200", "-o",
                                   str(spy[1] / f"{tag}-{role}.txt"), "-p", str(p.proc.pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for role, p in (("sender", a), ("receiver", b))] if spy else []
        cpu = [proc_cpu_s(a.proc.pid), proc_cpu_s(b.proc.pid)]
        load = os.getloadavg()[0]
        seconds, _ = BF._share(a, b, big)
        cpu = [proc_cpu_s(a.proc.pid) - cpu[0], proc_cpu_s(b.proc.pid) - cpu[1]]
        for s in spies:
            s.send_signal(2)
            s.wait()
        big.unlink()
        return (f"{size / MB / seconds:.1f} MB/s ({seconds:.2f} s) load {load:.1f}, "
                f"CPU sender {cpu[0]:.2f} s receiver {cpu[1]:.2f} s")
    finally:
        for p in (a, b):
            p.close_stdin()
            stop_process(p.proc)


def main() -> None:
    from tests.lan import virtual_lan

    ap = argparse.ArgumentParser()
    ap.add_argument("base", help="commit to compare this checkout with")
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--py-spy", dest="spy", default=None, help="py-spy executable (optional)")
    args = ap.parse_args()
    size = args.mb * MB
    spy = (args.spy, Path(tempfile.mkdtemp(prefix="fcbench-ab-spy-"))) if args.spy else None
    with virtual_lan(2) as lan, tempfile.TemporaryDirectory(prefix="fcbench-ab-") as tmpd:
        h1, h2 = lan
        tmp = Path(tmpd)
        base = tmp / "base"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        mains = {"base": str(base / "main.py"), "this": str(ROOT / "main.py")}
        curls: list[float] = []
        for r in range(args.reps):
            order = list(mains) if r % 2 == 0 else list(reversed(mains))
            for v in order:
                line = _transfer(h1, h2, mains[v], tmp, f"{v}{r}", size, spy)
                print(f"round {r} {v}: {line}", flush=True)
            (tmp / "share").mkdir(exist_ok=True)
            with open(tmp / "share" / "c.bin", "wb") as f:
                f.writelines(os.urandom(MB) for _ in range(size // MB))
            curls.append(size / MB / BF._curl(h1, h2, tmp / "share", "c.bin", 1)[0])
            print(f"round {r} curl: {curls[-1]:.1f} MB/s", flush=True)
        print(f"curl median {percentile(curls, 50):.1f} MB/s"
              + (f"; py-spy records in {spy[1]}" if spy else ""))


if __name__ == "__main__":
    sys.exit(main())
