"""Shared test plumbing.

``need(ok, reason)`` is how a test says it needs root, Chromium or network namespaces: on a laptop it
skips with the reason; when ``CI`` is set it fails, so CI can never go green by skipping.

Parallel runs (pytest-xdist, ``-n`` in pyproject's addopts, ``--dist loadgroup``): tests that start
Chromium share the xdist group "chromium", so one worker runs them one after another (a browser and
its host-mode server are the heaviest thing here); everything else is independent (ports 0, unique
namespace names, tmp dirs) and spreads over the workers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

IN_CI = bool(os.environ.get("CI"))
CHROMIUM_MODULES = {"test_browser_lan"}  # start Chromium without the ``browser`` fixture


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Chromium tests in one xdist group (see the module docstring)."""
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", "").rsplit(".", 1)[-1]
        if "browser" in getattr(item, "fixturenames", ()) or module in CHROMIUM_MODULES:
            item.add_marker(pytest.mark.xdist_group("chromium"))


def need(ok: bool, reason: str) -> None:
    """Skip (laptop) or fail (CI) when a test's real prerequisite is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI requires this test to run, but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
async def browser():
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
