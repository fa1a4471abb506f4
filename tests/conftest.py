"""Shared test plumbing.

``need(ok, reason)`` is how a test says it needs root, Chromium or network namespaces: on a laptop it
skips with the reason; when ``CI`` is set it fails, so CI can never go green by skipping.

Parallel runs (pytest-xdist, ``-n`` in pyproject's addopts): tests that start Chromium take turns
(``chromium_turn``, a file lock shared by the workers); everything else is independent (ports 0,
unique namespace names, tmp dirs) and runs on whichever worker is free.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

IN_CI = bool(os.environ.get("CI"))


@pytest.fixture
def chromium_turn(tmp_path_factory: pytest.TempPathFactory):
    """One Chromium test at a time across pytest-xdist workers: a browser plus its host-mode
    server is the heaviest thing here, and two at once on two loaded cores time out. A file lock
    in the run's shared temp dir (workers are processes); a no-op without xdist."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    lock = tmp_path_factory.getbasetemp().parent / "chromium.lock"
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def need(ok: bool, reason: str) -> None:
    """Skip (laptop) or fail (CI) when a test's real prerequisite is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI requires this test to run, but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
async def browser(chromium_turn):
    """Debian's Chromium through Playwright, closed after the test (see tests/browser.py)."""
    from playwright.async_api import async_playwright, expect

    from tests.browser import chromium_available, launch_browser
    from tests.timing import scaled_ms

    need(*chromium_available())
    expect.set_options(timeout=scaled_ms(5_000))  # Playwright's default, scaled
    async with async_playwright() as p:
        b = await launch_browser(p)
        try:
            yield b
        finally:
            await b.close()


# Chromium drives Flutter's canvas UI, whose layout and focus settle at the browser's pace: under CPU
# contention (xdist's other worker, a loaded CI machine) a step can miss its window although the app
# is right. A browser test that fails is run again, at most twice, and every rerun is reported in
# pytest's summary ("R" / "rerun"), so flakiness stays visible instead of failing CI at random.
# Tests without a browser never rerun. (Issue 16 tracks making these deterministic.)
BROWSER_RERUNS = 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.flaky(reruns=BROWSER_RERUNS, reruns_delay=1))
