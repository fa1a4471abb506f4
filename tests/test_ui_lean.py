"""What one tab holds (issue 12): the controls a host-mode tab mounts for an empty page and for
each new message, counted on a real Flet session (Flet's own index of the tab's controls), with
upper bounds so they do not creep back. Every mounted control costs each open tab about 2 KiB of
Flet's state, and every control of a new row is built, diffed and encoded in every tab."""

from __future__ import annotations

import asyncio
import collections
import time

import pytest
from flet.messaging.session import Session

from fletchat.hub import Hub, HubSession
from fletchat.store import Store
from fletchat.ui import CHUNK_ROWS, conversation, flet_speedup
from tests.test_flet_speedup import open_tab
from tests.test_ui_controls import count_controls

# an empty page (#general, one "has joined" line, oneself online); was 88 before issue 12's
# leaner page (the tutorial's page is 16, its dialog and services included); the first chunk's
# slots come on top (one holds the join line; the free ones, invisible, are each filled by a new
# row without re-diffing the chunk)
EMPTY_PAGE_BUDGET = 74 + CHUNK_ROWS
# a message from another tab on this host (no delivery mark: those are its writer's), grouped
# under the previous one (the commonest new row in host mode): was 9; the first row of a person:
# was 12
GROUPED_ROW_BUDGET = 6
FIRST_ROW_BUDGET = 8


async def settled(session: Session, at_least: int) -> int:
    """The tab's control count once it has at least ``at_least`` (bounded wait), then one
    more loop turn's worth of quiet."""
    deadline = time.monotonic() + 5
    while len(session.index) < at_least and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    return len(session.index)


def kinds(session: Session, since: set[int]) -> collections.Counter:
    return collections.Counter(type(c).__name__ for i, c in session.index.items()
                               if i not in since)


@pytest.fixture
def speedup():
    flet_speedup.install()  # as host mode runs
    yield
    flet_speedup.uninstall()


async def test_an_empty_page_and_new_rows_stay_within_their_budget(tmp_path, speedup) -> None:
    # the budgets are for rows that go into a free slot: conftest's phase 0 gives the first
    # chunk all its slots (a random phase may start a new chunk of CHUNK_ROWS slots on any row)
    assert conversation.draw_phase() == 0
    hub = Hub("host", "web-host", store=Store.open(tmp_path / "h.db"))
    try:
        _conn, session, view = await open_tab(hub, "Ada")
        empty = await settled(session, 1)
        assert empty <= EMPTY_PAGE_BUDGET, kinds(session, set())
        # the count is what the tree holds: the page's own tree walk agrees with the index
        # (the page, its views, dialogs and services)
        assert count_controls(session.page) == empty

        sender = HubSession(hub, device="headless")
        sender.join("Bob")  # a join line and a person online more (not a message row)
        before_first = set(session.index)
        await settled(session, len(before_first) + 1)
        before_first = set(session.index)
        sender.send("hello")
        first = await settled(session, len(before_first) + 1) - len(before_first)
        assert 0 < first <= FIRST_ROW_BUDGET, kinds(session, before_first)

        before_grouped = set(session.index)
        sender.send("and again")
        grouped = await settled(session, len(before_grouped) + 1) - len(before_grouped)
        assert 0 < grouped <= GROUPED_ROW_BUDGET, kinds(session, before_grouped)
        assert [r.message.text for r in view.conversation.shown()][-2:] == ["hello", "and again"]
        session.close()
    finally:
        hub.close()
