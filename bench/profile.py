"""Profile the slowest per-message path found by the bench: host-mode fan-out to 50 sessions.

``uv run python -m bench.profile [--n 50] [--reps 20] [--html FILE]`` prints pyinstrument's tree.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from pyinstrument import Profiler

from .fanout import _app_fanout


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--html", type=Path)
    args = p.parse_args()
    profiler = Profiler(interval=0.001, async_mode="disabled")
    with tempfile.TemporaryDirectory(prefix="fcbench-") as tmp:
        profiler.start()
        asyncio.run(_app_fanout([args.n], args.reps, Path(tmp)))
        profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=True))
    if args.html:
        args.html.write_text(profiler.output_html())


if __name__ == "__main__":
    main()
