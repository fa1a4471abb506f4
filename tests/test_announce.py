"""Join and leave lines are bounded per client address and per device (fletchat/announce.py):
connect, hello, close, again, made the host post a pair of stored lines each time, unlimited,
and every peer counted them against the host's quota."""

from __future__ import annotations

import asyncio

from fletchat.announce import (
    ANNOUNCED_JOINS_ADDRESS_BURST,
    ANNOUNCED_JOINS_BURST,
    ANNOUNCED_JOINS_PER_ADDRESS_PER_MINUTE,
    ANNOUNCED_JOINS_PER_MINUTE,
    MAX_TRACKED_ADDRESSES,
    AnnounceBudget,
)
from fletchat.hub import HubSession
from fletchat.model import KIND_CHAT, KIND_JOIN, KIND_LEAVE
from tests.test_relay import Host, host, open_client  # noqa: F401 (the fixture)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_address_has_its_budget_and_all_share_the_devices():
    clock = Clock()
    budget = AnnounceBudget(clock)
    burst = int(ANNOUNCED_JOINS_ADDRESS_BURST)
    assert all(budget.allow("10.0.0.7") for _ in range(burst))
    assert not budget.allow("10.0.0.7")  # that address's budget is spent...
    assert budget.allow("10.0.0.8")  # ...not the others'
    clock.now += 60 / ANNOUNCED_JOINS_PER_ADDRESS_PER_MINUTE  # one join's worth of time
    assert budget.allow("10.0.0.7") and not budget.allow("10.0.0.7")
    # many throw-away addresses: the device's total holds
    budget = AnnounceBudget(clock)
    fresh = [budget.allow(f"10.1.{i // 250}.{i % 250}") for i in range(200)]
    assert sum(fresh) == int(ANNOUNCED_JOINS_BURST)
    assert not budget.allow("10.0.0.9")
    clock.now += 60 / ANNOUNCED_JOINS_PER_MINUTE
    assert budget.allow("10.0.0.9") and not budget.allow("10.0.0.10")


def test_the_addresses_tracked_are_bounded():
    budget = AnnounceBudget(Clock())
    for i in range(MAX_TRACKED_ADDRESSES + 50):
        budget.allow(f"a{i}")
    assert len(budget._by_address) == MAX_TRACKED_ADDRESSES


async def test_connect_hello_close_again_posts_a_bounded_number_of_lines(host: Host):  # noqa: F811
    hub = host.node.hub
    for i in range(20):
        client = await open_client(host, f"Churn{i}")  # welcomed: joined, with a line or not
        await client.ws.close()
    # an honest person from elsewhere still joins with a line, and posts
    ann = HubSession(hub, device="browser", address="10.9.9.9")
    ann.join("Ann")
    ann.send("hello all")
    lines: list = []
    for _ in range(100):
        lines = [m for m in hub.history(limit=200) if m.kind in (KIND_JOIN, KIND_LEAVE)]
        if sum(m.kind == KIND_LEAVE for m in lines) >= ANNOUNCED_JOINS_ADDRESS_BURST:
            break
        await asyncio.sleep(0.05)
    joins = [m.author for m in lines if m.kind == KIND_JOIN]
    leaves = [m.author for m in lines if m.kind == KIND_LEAVE]
    churned = [a for a in joins if a.startswith("Churn")]
    assert len(churned) == ANNOUNCED_JOINS_ADDRESS_BURST, joins
    assert sorted(leaves) == sorted(churned)  # a leave line only for an announced join
    assert "Ann" in joins
    assert [m.text for m in hub.history(limit=200) if m.kind == KIND_CHAT] == ["hello all"]
