"""The polling helpers themselves: each can fail, and says what it waited for."""

import pytest

from tests.timing import eventually, eventually_sync, never_within, never_within_sync


async def test_eventually_returns_the_value_and_fails_with_the_reason():
    box = {"n": 0}

    def bump():
        box["n"] += 1
        return box["n"] if box["n"] >= 3 else 0

    assert await eventually(bump, "three polls", 2.0) == 3
    with pytest.raises(AssertionError, match="never true"):
        await eventually(lambda: False, "never true", 0.1)


async def test_never_within_fails_on_arrival_not_only_at_the_end():
    await never_within(lambda: False, "nothing", 0.1)
    arrivals = {"n": 0}

    def arrived():
        arrivals["n"] += 1
        return arrivals["n"] > 2

    with pytest.raises(AssertionError, match="late arrival"):
        await never_within(arrived, "late arrival", 5.0)
    assert arrivals["n"] == 3  # failed at the third poll, not after 5 s


def test_the_sync_pair_waits_and_fails_like_the_async_one():
    box = {"n": 0}

    def bump():
        box["n"] += 1
        return box["n"] >= 3

    assert eventually_sync(bump, "three polls", 2.0)
    never_within_sync(lambda: False, "nothing", 0.1)
    with pytest.raises(AssertionError, match="late arrival"):
        never_within_sync(bump, "late arrival", 5.0)
