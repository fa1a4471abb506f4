"""Shared test plumbing.

``need(ok, reason)`` is how a test says it needs root, Chromium or network namespaces: on a laptop it
skips with the reason; when ``CI`` is set it fails, so CI can never go green by skipping.

Parallel runs (pytest-xdist, ``-n 2 --dist loadgroup`` in pyproject's addopts): every test that
starts Chromium (it asks for the ``browser`` or ``chromium_turn`` fixture) is put in a *browser lane*
that one worker runs in order (tests/lanes.py: xdist's own ``xdist_group`` no longer groups under
pytest 9.2). The lane is handed out first, so it starts at once on one worker and the other worker
takes everything else around it, then the *late lane* (``LATE_LANE_FILES``), instead of both
workers queueing on one Chromium lock.
``FLETCHAT_TESTS_BROWSER_LANES`` (default 1) is how many browsers may run at once. Everything else
is independent (ports 0, unique namespace names, tmp dirs) and runs on whichever worker is free.
``once_per_run`` builds something expensive (the static site) once for all workers. The
``browser`` fixture hands every test the worker's one Chromium (``SharedChromium``) with fresh
contexts, closed after the test; those tests run in the session's event loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import inspect
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import pytest_asyncio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

IN_CI = bool(os.environ.get("CI"))


BROWSER_LANES = max(1, int(os.environ.get("FLETCHAT_TESTS_BROWSER_LANES", "1") or "1"))
BROWSER_FIXTURES = ("browser", "chromium_turn")
EARLY_FIXTURES = {"static_build"}  # expensive, made once per run: made first


LANE = pytest.StashKey[int]()
# The browser tests run serially in the lanes above, and they are most of the run's time: the
# worker beside a lane finished the plain tests long before the lane ended. The late lane takes
# these files' browser tests and is scheduled after every plain test, so that worker runs them
# once it is free (two browsers at once only for that stretch).
LATE_LANE = BROWSER_LANES
LATE_LANE_FILES = {"test_static_build.py", "test_browser_convo.py", "test_browser_settings.py",
                   "test_gate.py"}


def browser_lane(item: pytest.Item) -> int | None:
    """The lane (0 .. BROWSER_LANES-1, or LATE_LANE) of a test that starts Chromium; None for
    the others."""
    return item.stash.get(LANE, None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadgroup`` (pyproject's addopts) schedules the browser lanes (tests/lanes.py)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from tests.lanes import LaneScheduling

    return LaneScheduling(config, log)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture
def chromium_turn(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """At most BROWSER_LANES Chromium tests at once across pytest-xdist workers: a browser plus
    its host-mode server is the heaviest thing here. Under ``--dist loadgroup`` the lanes already
    ensure it; this file lock per lane (in the run's shared temp dir; workers are processes) keeps
    it true under any other ``--dist``. A no-op without xdist."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    lane = browser_lane(request.node) or 0
    with _file_lock(tmp_path_factory.getbasetemp().parent / f"chromium-{lane}.lock"):
        yield


def once_per_run(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], object]
) -> Path:
    """``make(dir)`` once per test run, shared by all xdist workers (a file lock in the run's
    shared temp dir; the first worker makes it, the others wait and reuse it). Returns ``dir``.
    Without xdist it is a plain per-session directory. If ``make`` raises, every caller sees it
    raise again (nothing half-made is marked done)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    out = shared / name
    done = shared / f"{name}.done"
    with _file_lock(shared / f"{name}.lock"):
        if not done.exists():
            if out.exists():
                shutil.rmtree(out)
            make(out)
            done.touch()
    return out


@pytest.fixture(autouse=True)
def chunk_phase_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every in-process message list starts its chunks at phase 0 (conversation.draw_phase is
    random in the app, so tabs opened together do not start new chunks on the same message):
    tests that count slots or updates per row would otherwise pass or fail by the draw. The
    phases themselves are tested with explicit values (tests/test_ui_controls.py)."""
    from fletchat.ui import conversation

    monkeypatch.setattr(conversation, "draw_phase", lambda: 0)


def need(ok: bool, reason: str) -> None:
    """Skip (laptop) or fail (CI) when a test's real prerequisite is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI requires this test to run, but: {reason}", pytrace=False)
    pytest.skip(reason)


class SharedChromium:
    """One Chromium (and one Playwright driver) per worker process, launched on first use and
    launched again if it died. Starting Playwright's driver, launching Chromium and closing it
    again for every test cost 2.25 s a test, a fresh context 0.31 s (medians of 6, interleaved,
    load 15 on 2 cores; issue 16). Every test still gets fresh contexts (their own cookies,
    storage and cache), all closed after it."""

    def __init__(self) -> None:
        self._playwright_cm = None
        self._playwright = None
        self._browser = None

    async def get(self):
        from tests.browser import launch_browser

        if self._browser is not None and self._browser.is_connected():
            return self._browser
        await self.close()
        from playwright.async_api import async_playwright

        self._playwright_cm = async_playwright()
        self._playwright = await self._playwright_cm.__aenter__()
        self._browser = await launch_browser(self._playwright)
        return self._browser

    async def close(self) -> None:
        browser, self._browser = self._browser, None
        cm, self._playwright_cm = self._playwright_cm, None
        self._playwright = None
        if browser is not None:
            with suppress(Exception):
                await browser.close()
        if cm is not None:
            with suppress(Exception):
                await cm.__aexit__(None, None, None)

    async def end_test(self) -> None:
        """Close every context a test left open (its pages leave their Flet sessions as a
        closed browser's did); a browser that does not answer in time is closed for good."""
        from playwright.async_api import Error as PlaywrightError

        from tests.timing import scaled

        browser = self._browser
        if browser is None or not browser.is_connected():
            return
        try:
            async with asyncio.timeout(scaled(30)):
                for context in list(browser.contexts):
                    await context.close()
        except (TimeoutError, PlaywrightError):
            await self.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def shared_chromium() -> AsyncIterator[SharedChromium]:
    chromium = SharedChromium()
    try:
        yield chromium
    finally:
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browser(chromium_turn, shared_chromium: SharedChromium):
    """Debian's Chromium through Playwright (see tests/browser.py): the worker's one browser
    (``SharedChromium``), with every context the test opened closed after it. Tests that ask
    for it run in the session's event loop (``pytest_collection_modifyitems``), the loop the
    browser lives in."""
    from playwright.async_api import expect

    from tests.browser import chromium_available
    from tests.timing import scaled_ms

    need(*chromium_available())
    expect.set_options(timeout=scaled_ms(5_000))  # Playwright's default, scaled
    b = await shared_chromium.get()
    try:
        yield b
    finally:
        await shared_chromium.end_test()


# Chromium drives Flutter's canvas UI, whose layout and focus settle at the browser's pace: under CPU
# contention (xdist's other worker, a loaded CI machine) a step can miss its window although the app
# is right. A browser test that fails is run again, at most twice, and every rerun is reported in
# pytest's summary ("R" / "rerun"), so flakiness stays visible instead of failing CI at random.
# Tests without a browser never rerun. (Issue 16 tracks making these deterministic.)
BROWSER_RERUNS = 2


def _schedule_rank(item: pytest.Item) -> int:
    lane = browser_lane(item)
    if lane == LATE_LANE:
        return 3
    if lane is not None:
        return 0
    return 1 if EARLY_FIXTURES & set(getattr(item, "fixturenames", ())) else 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    browser_items = sorted(
        (i for i in items if any(f in getattr(i, "fixturenames", ()) for f in BROWSER_FIXTURES)),
        key=lambda i: i.nodeid,
    )
    # Dealt in nodeid order, the same on every worker (xdist checks that all collect alike); the
    # late lane's files go to a lane of their own (LATE_LANE).
    early = [i for i in browser_items if i.path.name not in LATE_LANE_FILES]
    for n, item in enumerate(early):
        item.stash[LANE] = n % BROWSER_LANES
    for item in browser_items:
        if item.path.name in LATE_LANE_FILES:
            item.stash[LANE] = LATE_LANE
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.flaky(reruns=BROWSER_RERUNS, reruns_delay=1))
            if inspect.iscoroutinefunction(getattr(item, "obj", None)):
                # the loop the worker's shared browser lives in (SharedChromium)
                item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)
    # The order is the order of the schedule (tests/lanes.py): the browser lanes first, then the
    # plain test that builds the static site (once_per_run: the lanes find it built instead of
    # waiting for it), the other plain tests, and the late lane last.
    items.sort(key=_schedule_rank)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        from tests.lanes import write_lanes

        write_lanes(config, {i.nodeid: f"browser-{i.stash[LANE]}" for i in browser_items})


# What failed before a rerun: rerunfailures reports only the test's name ("RERUN ..."), so a
# flaky browser test left no trace in CI's log. Each rerun attempt's failure is kept (on the
# xdist controller, which receives every worker's reports) and printed after the run.
_RERUN_FAILURES: list[tuple[str, str]] = []
RERUN_TRACE_LINES = 40  # the end of each traceback (where the assertion and its values are)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.outcome == "rerun" and report.longrepr is not None:
        text = report.longreprtext.splitlines()[-RERUN_TRACE_LINES:]
        _RERUN_FAILURES.append((f"{report.nodeid} ({report.when})", "\n".join(text)))


def pytest_terminal_summary(terminalreporter) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") or not _RERUN_FAILURES:
        return
    terminalreporter.section("what failed before each rerun")
    for name, text in _RERUN_FAILURES:
        terminalreporter.write_line(f"--- {name}")
        terminalreporter.write_line(text)
