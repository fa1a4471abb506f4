"""Profile the host-mode fan-out (figure 5's app side): one message at a time to N tabs with R
rows shown, only the sends profiled (opening the tabs is not).

``uv run python -m bench.profile [--n 10] [--rows 200] [--reps 20] [--html FILE]`` prints
pyinstrument's tree and the CPU per tab per message (``time.process_time``).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pyinstrument import Profiler

from .fanout import _app_tabs, _close, _make_conn_class


async def _run(n: int, rows: int, reps: int, tmp: Path, profiler: Profiler) -> float:
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(4) as executor:
        tabs = await _app_tabs(_make_conn_class(), loop, executor, rows, n, tmp, "p")
        await tabs.one("warmupzz")
        cpu = 0.0
        profiler.start()
        for r in range(reps):
            t0 = time.process_time()
            await tabs.one(f"prof{r}zz")
            cpu += time.process_time() - t0
            await asyncio.sleep(0.01)
        profiler.stop()
        await _close([tabs])
    return cpu / reps / n


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--rows", type=int, default=200)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--html", type=Path)
    args = p.parse_args()
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    with tempfile.TemporaryDirectory(prefix="fcbench-") as tmp:
        per_tab = asyncio.run(_run(args.n, args.rows, args.reps, Path(tmp), profiler))
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    print(f"CPU per tab per message: {per_tab * 1000:.2f} ms ({args.n} tabs, {args.rows} rows)")
    if args.html:
        args.html.write_text(profiler.output_html())


if __name__ == "__main__":
    main()
