"""Join lines and posts are bounded per client address and per device (fletchat/budgets.py):
connect, hello, close, again, made the host post a pair of stored lines each time, unlimited,
and every peer counted them against the host's quota."""

from __future__ import annotations

import asyncio
import time

import pytest

from fletchat.budgets import (
    JOIN_LINES_PER_ADDRESS,
    JOIN_LINES_PER_DEVICE,
    MAX_TRACKED_ADDRESSES,
    join_lines_budget,
)

ANNOUNCED_JOINS_ADDRESS_BURST = JOIN_LINES_PER_ADDRESS[0].burst
ANNOUNCED_JOINS_PER_ADDRESS_PER_MINUTE = JOIN_LINES_PER_ADDRESS[0].per_second * 60
ANNOUNCED_JOINS_BURST = JOIN_LINES_PER_DEVICE[0].burst
ANNOUNCED_JOINS_PER_MINUTE = JOIN_LINES_PER_DEVICE[0].per_second * 60
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
    budget = join_lines_budget(clock)
    burst = int(ANNOUNCED_JOINS_ADDRESS_BURST)
    assert all(budget.allow("10.0.0.7") for _ in range(burst))
    assert not budget.allow("10.0.0.7")  # that address's budget is spent...
    assert budget.allow("10.0.0.8")  # ...not the others'
    clock.now += 60 / ANNOUNCED_JOINS_PER_ADDRESS_PER_MINUTE + 0.01  # one join's worth
    assert budget.allow("10.0.0.7") and not budget.allow("10.0.0.7")
    # many throw-away addresses: the device's total holds
    budget = join_lines_budget(clock)
    fresh = [budget.allow(f"10.1.{i // 250}.{i % 250}") for i in range(200)]
    assert sum(fresh) == int(ANNOUNCED_JOINS_BURST)
    assert not budget.allow("10.0.0.9")
    clock.now += 60 / ANNOUNCED_JOINS_PER_MINUTE + 0.01
    assert budget.allow("10.0.0.9") and not budget.allow("10.0.0.10")


def test_the_addresses_tracked_are_bounded():
    budget = join_lines_budget(Clock())
    for i in range(MAX_TRACKED_ADDRESSES + 50):
        budget.allow(f"a{i}")
    assert len(budget._by_address) == MAX_TRACKED_ADDRESSES


async def test_connect_hello_close_again_posts_a_bounded_number_of_lines(host: Host):  # noqa: F811
    hub = host.node.hub
    started = time.monotonic()
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
        left = sum(m.kind == KIND_LEAVE for m in lines)
        announced = sum(m.kind == KIND_JOIN and m.author.startswith("Churn") for m in lines)
        if left >= ANNOUNCED_JOINS_ADDRESS_BURST and left == announced:
            break
        await asyncio.sleep(0.05)
    joins = [m.author for m in lines if m.kind == KIND_JOIN]
    leaves = [m.author for m in lines if m.kind == KIND_LEAVE]
    churned = [a for a in joins if a.startswith("Churn")]
    # the address's burst, plus what refilled meanwhile (one every 10 s: a very slow run only)
    refilled = (time.monotonic() - started) * ANNOUNCED_JOINS_PER_ADDRESS_PER_MINUTE / 60
    assert ANNOUNCED_JOINS_ADDRESS_BURST <= len(churned) <= ANNOUNCED_JOINS_ADDRESS_BURST + refilled
    assert len(churned) < 20, joins
    assert sorted(leaves) == sorted(churned)  # a leave line only for an announced join
    assert "Ann" in joins
    assert [m.text for m in hub.history(limit=200) if m.kind == KIND_CHAT] == ["hello all"]


async def test_fresh_connections_from_one_address_share_its_post_budget(host: Host):  # noqa: F811
    """A person's send rate is per session, and a script gets a fresh session per connection:
    hello, twenty posts, close, again, spent the host's per-origin quota at every peer."""
    import time

    from fletchat.budgets import POSTS_PER_ADDRESS
    from fletchat.relay_protocol import encode_client_send

    hub = host.node.hub
    t0 = time.monotonic()
    for i in range(8):
        client = await open_client(host, f"Poster{i}")
        for j in range(18):  # within this session's own burst, and the relay's frame burst
            await client.ws.send(encode_client_send(f"post {i}.{j}"))
        await client.ws.close()
    rate = POSTS_PER_ADDRESS[0]
    stored: list = []
    for _ in range(60):  # the posts are stored on worker threads, after the closes
        stored = [m for m in hub.history(limit=500) if m.kind == KIND_CHAT]
        await asyncio.sleep(0.05)
        if len(stored) >= rate.burst and len(
                [m for m in hub.history(limit=500) if m.kind == KIND_CHAT]) == len(stored):
            break
    # every post was spent before this (the last look), so tokens refilled until now at most
    elapsed = time.monotonic() - t0
    most = rate.burst + rate.per_second * elapsed
    assert len(stored) <= most, f"{len(stored)} posts from one address in {elapsed:.1f} s"
    assert len(stored) >= rate.burst  # the address's own budget was there to spend


def test_a_refused_post_costs_nothing_and_says_whose_limit_it_is():
    from fletchat.model import ValidationError

    clock = Clock()
    hub = budgeted_hub(per_address=3, per_device=5, clock=clock)
    ann = HubSession(hub, address="10.0.0.5")
    ann.join("Ann")
    bea = HubSession(hub, address="10.0.0.5")  # another tab of the same phone
    bea.join("Bea")
    for i in range(3):
        assert ann.send(f"m{i}") is not None
    for session in (ann, bea):
        with pytest.raises(ValidationError, match="from your address"):
            session.send("one too many")
    assert ann._bucket.tokens == pytest.approx(17, abs=0.1)  # the refusals cost Ann nothing
    cy = HubSession(hub, address="10.0.0.6")
    cy.join("Cy")
    assert cy.send("from another phone") is not None
    assert cy.send("and again") is not None  # the device's 5: all spent now
    dee = HubSession(hub, address="10.0.0.7")
    dee.join("Dee")
    with pytest.raises(ValidationError, match="host has taken too many"):
        dee.send("a sixth")
    clock.now += 1000  # one of each back
    assert dee.send("later") is not None


def budgeted_hub(per_address: int, per_device: int, clock: Clock):
    """A hub whose people may post ``per_address`` times from one address and ``per_device``
    times in all before the (nearly still) buckets refill; each person's own budget is 20."""
    from fletchat.budgets import AddressBudget, Rate
    from fletchat.hub import Hub

    return Hub("p", session_rate=(0.001, 20.0), posts=AddressBudget(
        (Rate(0.001, per_address),), (Rate(0.001, per_device),), clock))


def allowed_until_the_address_is_refused(attempt, times: int) -> int:
    """How many of ``times`` calls of ``attempt(i)`` the budget let through; every refusal must
    name the address's budget."""
    from fletchat.model import ValidationError

    allowed = 0
    for i in range(times):
        try:
            attempt(i)
            allowed += 1
        except ValidationError as err:
            assert "from your address" in str(err)
    return allowed


def test_reactions_from_fresh_names_pay_the_addresss_budget():
    """A reaction is a stored message every device gets; its own limit is per person, and a
    script takes a fresh name per connection."""

    hub = budgeted_hub(per_address=4, per_device=100, clock=Clock())
    author = HubSession(hub, address="10.0.0.1")
    author.join("Ann")
    target = author.send("react to me")
    assert target is not None

    def react_as_a_fresh_name(i: int) -> None:
        fresh = HubSession(hub, address="10.0.0.66")
        fresh.join(f"Throwaway{i}")
        fresh.react(target, "\U0001f44d")

    assert allowed_until_the_address_is_refused(react_as_a_fresh_name, 10) == 4


def test_edits_and_deletes_pay_the_send_budget():
    """An edit or delete is a stored message every device gets; its own limit is per person
    (10 per 10 s), so without the send budget one post bought ten more, for every fresh name."""
    from fletchat.model import ValidationError

    clock = Clock()
    hub = budgeted_hub(per_address=4, per_device=100, clock=clock)
    ann = HubSession(hub, address="10.0.0.66")
    ann.join("Ann")
    target = ann.send("the first version")
    assert target is not None
    edits = allowed_until_the_address_is_refused(lambda i: ann.edit(target, f"version {i}"), 8)
    assert edits == 3  # the post took one of the address's four
    with pytest.raises(ValidationError, match="from your address"):
        ann.delete(target)
    assert not hub.conv.row_state(target).deleted
    clock.now += 1000  # one back
    ann.delete(target)
    assert hub.conv.row_state(target).deleted


async def test_file_shares_pay_the_send_budget(tmp_path):
    from fletchat.files.blobstore import BlobStore
    from fletchat.files.share import FileShare
    from fletchat.model import ValidationError

    hub = budgeted_hub(per_address=2, per_device=100, clock=Clock())
    share = FileShare(BlobStore(tmp_path / "files"), hub._publish)
    share.attach_listener(hub)
    hub.files = share
    await share.start()
    try:
        ann = HubSession(hub, address="10.0.0.66")
        ann.join("Ann")
        path = tmp_path / "notes.txt"
        path.write_text("hello")
        for i in range(2):
            msg = await share.share(ann, [path], f"copy {i}", "general")
            assert msg.files[0].name == "notes.txt"
        with pytest.raises(ValidationError, match="from your address"):
            await share.share(ann, [path], "one too many", "general")
        shared = [m for m in hub.history(limit=50) if m.files]
        assert [m.text for m in shared] == ["copy 0", "copy 1"]
    finally:
        await share.stop()
        hub.close()
