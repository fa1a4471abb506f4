"""What a join costs a tab already open (issue 12): a classroom of 100 phones joining one host
must not cost each open tab more with every person already there. Measured on a real Flet
session (flet-web's msgpack on a stand-in connection): the tiles Flet's diff walks, the bytes
sent and the controls built in one open tab per join, with 5 and with 45 people online; and the
people list itself (``tile_chunks``) against the order and tiles it must keep."""

from __future__ import annotations

import asyncio
import random
import time

import flet as ft
import msgpack
import pytest
from flet.controls.base_control import BaseControl
from flet.messaging.connection import Connection
from flet.messaging.protocol import (
    configure_encode_object_for_msgpack,
)
from flet.pubsub.pubsub_hub import PubSubHub

from fletchat.conversation.views import ReadChanged
from fletchat.hub import Hub, HubSession
from fletchat.store import Store
from fletchat.ui import flet_speedup
from fletchat.ui.people import PEOPLE_SHOWN, PersonTile
from fletchat.ui.tile_chunks import MAX_TILES, TILES, ChunkedTiles, TileChunk, arrange
from tests.test_flet_speedup import open_tab

ENCODE = configure_encode_object_for_msgpack(BaseControl)


class Counting(Connection):
    """flet-web's send path up to the socket (msgpack), counting bytes; one PubSubHub for all
    tabs of the host, as flet-web has."""

    def __init__(self, pubsubhub: PubSubHub) -> None:
        super().__init__()
        self.loop = asyncio.get_running_loop()
        self.executor = None
        self.pubsubhub = pubsubhub
        self.page_url = "http://127.0.0.1/"
        self.bytes_out = 0

    def send_message(self, message) -> None:
        self.bytes_out += len(msgpack.packb([message.action, message.body], default=ENCODE))


async def quiet(conn: Counting) -> None:
    """Until nothing more is sent for a few loop turns (bounded)."""
    deadline = time.monotonic() + 5
    last, still = -1, 0
    while still < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        still = still + 1 if conn.bytes_out == last else 0
        last = conn.bytes_out


@pytest.fixture
def speedup():
    flet_speedup.install()  # as host mode runs
    yield
    flet_speedup.uninstall()


# names that sort all over the list (joins land inside chunks, not only at the end)
NAMES = [f"{a}{b}" for a, b in zip(random.Random(12).sample("BCDFGHJKLMNPQRSTVWXZ" * 3, 60),
                                    range(10, 70), strict=True)]


async def test_a_join_costs_an_open_tab_the_same_with_5_or_45_people_online(tmp_path,
                                                                          speedup) -> None:
    hub = Hub("host", "web-host", store=Store.open(tmp_path / "h.db"))
    walked = 0
    stock = PersonTile.before_update

    def counting(self) -> None:  # Flet calls it on every tile its diff walks
        nonlocal walked
        walked += 1
        stock(self)

    PersonTile.before_update = counting  # type: ignore[method-assign]
    try:
        conn, session, view = await open_tab(
            hub, "Ada", Counting(PubSubHub(loop=asyncio.get_running_loop())))
        await quiet(conn)
        others = [HubSession(hub, device="browser") for _ in NAMES]
        cost: dict[int, tuple[int, int, int]] = {}
        joined = 0
        for online in (5, 45):
            while joined < online - 1:
                others[joined].join(NAMES[joined])
                joined += 1
                await quiet(conn)
            walked, sent, built = 0, conn.bytes_out, len(session.index)
            for _ in range(10):  # ten more joins (a chunk's split among them)
                others[joined].join(NAMES[joined])
                joined += 1
                await quiet(conn)
            cost[online] = (walked, conn.bytes_out - sent, len(session.index) - built)
            assert len(view.people.tiles()) == min(online + 10, PEOPLE_SHOWN)
        (_walked5, sent5, built5), (walked45, sent45, built45) = cost[5], cost[45]
        # Flet walks the tiles of the chunk that changed, never every person's (was 45+ each)
        assert walked45 <= 10 * (MAX_TILES + 1), cost
        assert walked45 < 10 * 45
        # bytes and controls per join do not grow with the people online
        assert sent45 <= 1.3 * sent5 and sent45 <= 10 * 2500, cost
        assert built45 <= 1.3 * built5 + 20, cost
        # what the panel shows: the first PEOPLE_SHOWN, in order, in chunks of at most MAX_TILES
        names = [t.label.split(" online")[0] for t in view.people.tiles()]
        assert names == sorted(["Ada", *NAMES[:54]], key=str.casefold)[:PEOPLE_SHOWN]
        assert all(isinstance(c, TileChunk) and len(c.controls) <= MAX_TILES
                   for c in view.people.people.controls)
        assert view.people.title.value == "Online (55)"
        session.close()
    finally:
        PersonTile.before_update = stock  # type: ignore[method-assign]
        hub.close()


async def test_a_join_line_sends_no_read_mark(tmp_path) -> None:
    """Read marks are up to the newest chat message: a join line is no news to mark (every
    tab marked every join line, and each mark went to every tab: N x N events per join)."""
    hub = Hub("host", "web-host", store=Store.open(tmp_path / "h.db"))
    try:
        conn, _session, view = await open_tab(
            hub, "Ada", Counting(PubSubHub(loop=asyncio.get_running_loop())))
        marks: list[ReadChanged] = []
        hub.add_listener(lambda e: marks.append(e) if isinstance(e, ReadChanged) else None)
        bob = HubSession(hub, device="browser")
        bob.join("Bob")
        hello = bob.send("hello", "general")
        await quiet(conn)
        assert view.convo._read_timer is not None  # a chat row: a mark is due
        view.convo._read_timer.cancel()
        view.convo.mark_read()
        assert [(m.name, m.upto) for m in marks] == [("Ada", hello.hlc)]
        HubSession(hub, device="browser").join("Cy")
        await quiet(conn)
        assert view.convo._read_timer is None  # a join line schedules none
        view.convo.mark_read()  # and a mark now is the same one: not sent again
        assert len(marks) == 1
        assert view.conversation.newest_row().message.author == "Cy"
    finally:
        hub.close()


# ---- the chunks, without Flet's diff ----

def tile(key: object) -> ft.Control:
    return ft.Text(str(key))


def test_tiles_keep_their_order_and_identity_through_joins_and_leaves() -> None:
    rng = random.Random(7)
    column = ft.Column()
    chunked = ChunkedTiles(column, spacing=8)
    shown: list[int] = []
    before: dict[int, ft.Control] = {}
    rebuilt = 0
    for step in range(400):
        if shown and rng.random() < 0.3:
            shown.remove(rng.choice(shown))
        else:
            shown.append(rng.randrange(10_000))
        shown = sorted(set(shown))
        changed = chunked.show(shown, tile)
        tiles = chunked.tiles()
        assert [t.value for t in tiles] == [str(k) for k in shown]
        assert column.controls == [c for c in column.controls if isinstance(c, TileChunk)]
        assert all(0 < len(c.controls) <= MAX_TILES for c in column.controls), step
        now = dict(zip(shown, tiles, strict=True))
        rebuilt += sum(1 for k, t in now.items() if k in before and before[k] is not t)
        # what changed is returned: chunks whose tiles changed, the Column if chunks did
        assert all(isinstance(c, TileChunk) or c is column for c in changed)
        before = now
    # a tile is built again only when its chunk is cut: about one per join, not per person
    assert rebuilt <= 400


def test_appending_in_order_never_builds_a_tile_again() -> None:
    column = ft.Column()
    chunked = ChunkedTiles(column, spacing=8)
    first: dict[int, ft.Control] = {}
    for n in range(1, 60):
        changed = chunked.show(list(range(n)), tile)
        for k, t in zip(range(n), chunked.tiles(), strict=True):
            assert first.setdefault(k, t) is t
        # one chunk (the last) or the Column (a new chunk) is updated, nothing else
        assert len(changed) == 1
    assert [len(c.controls) for c in column.controls] == [TILES] * 5 + [9]


def test_kept_keys_out_of_order_make_the_chunks_afresh() -> None:
    assert arrange([[1, 2], [3, 4]], [3, 1, 2, 4]) is None
    assert arrange([[1, 2], [3, 4]], [1, 5, 2, 4]) == [(0, [1, 5, 2]), (1, [4])]
    assert arrange([], [1, 2]) == [(None, [1, 2])]
    column = ft.Column()
    chunked = ChunkedTiles(column, spacing=8)
    chunked.show(list(range(30)), tile)
    old = chunked.tiles()
    changed = chunked.show(list(reversed(range(30))), tile)
    assert [t.value for t in chunked.tiles()] == [str(k) for k in reversed(range(30))]
    assert changed == [column]  # new chunks, with new tiles: none moved between chunks
    assert not set(map(id, old)) & set(map(id, chunked.tiles()))
    changed = chunked.show(list(range(30)), tile)


def test_how_long_someone_is_online_changes_in_place(monkeypatch) -> None:
    """A minute later the tile says "1 min": the same tile, its label and detail span, updated
    on its own (a new tile for everyone each minute, in every tab, was most of a join's bytes
    once people had been online a while)."""
    import fletchat.ui.people as people_module
    from fletchat.events import Online
    from fletchat.ui.people import PeoplePanel

    now = 1_000_000.0
    monkeypatch.setattr(people_module.time, "time", lambda: now)
    panel = PeoplePanel("", None, None, lambda _p: None)
    ann = Online("k1", "Ann", "browser", now, True)
    bob = Online("k2", "Bob", "browser", now, True)
    panel.render([ann], [])
    [tile] = panel.tiles()
    assert tile.label == "Ann online, browser · on this host · just now"
    now += 61
    changed = panel.render([ann, bob], [])
    assert panel.tiles()[0] is tile and tile in changed
    assert tile.label == "Ann online, browser · on this host · 1 min"
    assert "browser · on this host · 1 min" in tile.content.content.controls[1].spans[0].text
    assert panel.tiles()[1].label.endswith("1 min")  # Bob's, built now, says it from the start
    assert tile not in panel.render([ann, bob], [])  # nothing new to say: not updated again


async def test_read_marks_reach_the_tabs_coalesced_per_channel() -> None:
    """100 tabs read a message a second after it arrived: their 100 marks went to 100 tabs
    (10,000 handler calls, about a second of CPU). The tabs now get the last mark of each
    channel once per READ_WINDOW; everything else goes through at once."""
    from fletchat.model import Message
    from fletchat.ui.screens import READ_WINDOW, ScreensPublisher

    class Pubsub:
        def __init__(self) -> None:
            self.sent: list[tuple[str, object]] = []

        def send_all_on_topic(self, topic: str, message: object) -> None:
            self.sent.append((topic, message))

    pubsub = Pubsub()
    screens = ScreensPublisher(pubsub, asyncio.get_running_loop())
    for i in range(100):
        screens.send_all_on_topic("t", ReadChanged("general", f"Tab{i}", f"h{i}"))
    screens.send_all_on_topic("t", ReadChanged("lunch", "Ada", "h1"))
    hello = Message.chat("Ada", "hello", "o1")
    screens.send_all_on_topic("t", hello)
    assert pubsub.sent == [("t", hello)]  # not held back
    deadline = time.monotonic() + 5
    while len(pubsub.sent) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(READ_WINDOW / 4)
    await asyncio.sleep(READ_WINDOW * 2)  # and nothing more comes
    assert pubsub.sent[1:] == [("t", ReadChanged("general", "Tab99", "h99")),
                               ("t", ReadChanged("lunch", "Ada", "h1"))]
    screens.send_all_on_topic("t", ReadChanged("general", "Bob", "h2"))  # a new window
    deadline = time.monotonic() + 5
    while len(pubsub.sent) < 4 and time.monotonic() < deadline:
        await asyncio.sleep(READ_WINDOW / 4)
    assert pubsub.sent[3] == ("t", ReadChanged("general", "Bob", "h2"))


def _people(names: list[str], local: bool = True) -> list:
    from fletchat.events import Online

    now = time.time()
    return sorted((Online(f"k{i}", n, "browser", now, local) for i, n in enumerate(names)),
                  key=lambda o: (o.name.casefold(), o.key))


def test_a_tab_shows_at_most_people_shown_tiles_and_always_its_own() -> None:
    """A tile for every person in every tab made a host's memory tabs x people (1.2 MiB per
    tab at 100 people): a tab shows the first PEOPLE_SHOWN in the roster's order, its own
    "(you)" tile among them even when it sorts later, and says how many more there are."""
    from fletchat.ui.people import more_line, people_shown

    online = _people([f"P{i:03}" for i in range(3 * PEOPLE_SHOWN)] + ["Zoe"])
    keys, hidden = people_shown(online, None)
    assert [p.name for p, _ in keys] == [f"P{i:03}" for i in range(PEOPLE_SHOWN)]
    assert hidden == 2 * PEOPLE_SHOWN + 1
    keys, hidden = people_shown(online, "Zoe")
    assert len(keys) == PEOPLE_SHOWN and hidden == 2 * PEOPLE_SHOWN + 1
    assert keys[-1][0].name == "Zoe" and keys[-1][1] is True  # last, as it sorts: in, as "you"
    assert [p.name for p, _ in keys[:-1]] == [f"P{i:03}" for i in range(PEOPLE_SHOWN - 1)]
    few = online[:5]
    assert people_shown(few, None) == ([(p, False) for p in few], 0)
    # a search: any case, a part of the name; one's own tile only when it matches
    keys, hidden = people_shown(online, "Zoe", "p01")
    assert [p.name for p, _ in keys] == [f"P{i:03}" for i in range(10, 20)] and hidden == 0
    keys, hidden = people_shown(online, "Zoe", " zO ")
    assert [(p.name, mine) for p, mine in keys] == [("Zoe", True)]
    assert people_shown(online, "Zoe", "nobody") == ([], 0)
    assert more_line(0, "", 5) == ""
    assert more_line(61, "", 30) == "and 61 more: find them by name above"
    assert more_line(3, "P0", 30) == "and 3 more: type more of the name"
    assert more_line(0, "nobody ", 0) == 'Nobody online has "nobody" in their name.'


def test_the_people_panel_mounts_find_only_past_the_cap() -> None:
    """Small groups see no search field (every mounted control costs each tab); past the cap
    the field and the "and N more" line are mounted once, and the tiles stay PEOPLE_SHOWN."""
    from fletchat.ui.people import PeoplePanel

    panel = PeoplePanel("", None, None, lambda _p: None)
    online = _people([f"P{i:03}" for i in range(PEOPLE_SHOWN)])
    changed = panel.render(online, [])
    assert panel.find is None and panel.more not in panel.body.controls
    assert len(panel.tiles()) == PEOPLE_SHOWN and panel.body not in changed
    more = _people([f"P{i:03}" for i in range(PEOPLE_SHOWN + 12)])
    changed = panel.render(more, [])
    assert panel.find is not None and panel.body in changed
    at = panel.body.controls.index(panel.people)
    assert panel.body.controls[at - 1:at + 2] == [panel.find, panel.people, panel.more]
    assert len(panel.tiles()) == PEOPLE_SHOWN and panel.title.value == f"Online ({PEOPLE_SHOWN + 12})"
    assert panel.more.value == "and 12 more: find them by name above" and panel.more.visible
    changed = panel.render(more[:-1], [])  # someone not shown leaves: the title and the line
    assert panel.body not in changed and panel.more in changed
    assert panel.more.value == "and 11 more: find them by name above"
    assert not [c for c in changed if c not in (panel.title, panel.more)]


async def test_find_someone_filters_the_people_in_a_real_tab(tmp_path, speedup) -> None:
    """Through a real Flet session: 40 people online, the tab shows PEOPLE_SHOWN; typing in
    "Find someone" shows who matches (a person past the cap among them), the patch goes out,
    a click on a found tile opens a direct message; clearing it shows the first ones again."""
    hub = Hub("host", "web-host", store=Store.open(tmp_path / "h.db"))
    try:
        conn, session, view = await open_tab(
            hub, "Ada", Counting(PubSubHub(loop=asyncio.get_running_loop())))
        others = [HubSession(hub, device="browser") for _ in range(40)]
        for i, other in enumerate(others):
            other.join(f"Member{i:02}")
        await quiet(conn)
        panel = view.people
        assert len(panel.tiles()) == PEOPLE_SHOWN and panel.find is not None
        assert panel.more.value == f"and {41 - PEOPLE_SHOWN} more: find them by name above"
        shown_before = [t.label.split(" online")[0] for t in panel.tiles()]
        assert "Member39" not in shown_before
        sent = conn.bytes_out
        panel.find.value = "member3"
        await panel.find._trigger_event("change", "member3")
        await quiet(conn)
        names = [t.label.split(" online")[0] for t in panel.tiles()]
        assert names == [f"Member3{i}" for i in range(10)]
        assert conn.bytes_out > sent and not panel.more.visible
        assert all(t.page is session.page for t in panel.tiles())  # on the page, not detached
        await panel.tiles()[-1].on_tap(None)  # a click opens the direct message with Member39
        assert view.state.channel == view.backend.direct_channel("Member39")
        panel.find.value = ""
        await panel.find._trigger_event("change", "")
        await quiet(conn)
        assert [t.label.split(" online")[0] for t in panel.tiles()] == shown_before
        assert panel.more.visible
        session.close()
    finally:
        hub.close()
