"""Timing in tests: one scale factor and one pair of polling helpers.

Every bound a test waits for is a *limit*, never an expected duration: a loaded machine (CI on two
cores, a stress run) only makes tests slower, never wrong. ``FLETCHAT_TESTS_TIMEOUT_FACTOR``
(default 1; as ``websockets`` does with ``WEBSOCKETS_TESTS_TIMEOUT_FACTOR``) multiplies them all.

- ``await eventually(check, what, timeout)`` polls until ``check()`` is truthy; fails with ``what``.
- ``await never_within(check, what, timeout)`` is the honest "nothing more arrived": it polls for the
  whole window and fails the moment ``check()`` becomes truthy, instead of sleeping once and looking.
- ``eventually_sync`` / ``never_within_sync`` are the same for plain (non-async) tests.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

TIMEOUT_FACTOR = float(os.environ.get("FLETCHAT_TESTS_TIMEOUT_FACTOR", "1") or "1")
POLL = 0.02


def scaled(seconds: float) -> float:
    """A test's time bound on this machine."""
    return seconds * TIMEOUT_FACTOR


def scaled_ms(milliseconds: float) -> float:
    """``scaled`` for APIs that count in milliseconds (Playwright)."""
    return milliseconds * TIMEOUT_FACTOR


async def eventually(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Wait until ``check()`` is truthy (returns its value) or fail after ``scaled(timeout)``."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {scaled(timeout):.1f} s: {what}")
        await asyncio.sleep(POLL)


async def never_within(check: Callable[[], Any], what: str, timeout: float = 1.0) -> None:
    """Poll ``check()`` for ``timeout`` seconds (unscaled: a window, not a limit); fail if truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            raise AssertionError(f"should not have happened: {what}")
        await asyncio.sleep(POLL)
    if check():
        raise AssertionError(f"should not have happened: {what}")


def eventually_sync(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """``eventually`` for plain (non-async) tests."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {scaled(timeout):.1f} s: {what}")
        time.sleep(POLL)


def never_within_sync(check: Callable[[], Any], what: str, timeout: float = 1.0) -> None:
    """``never_within`` for plain (non-async) tests."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            raise AssertionError(f"should not have happened: {what}")
        time.sleep(POLL)
    if check():
        raise AssertionError(f"should not have happened: {what}")
