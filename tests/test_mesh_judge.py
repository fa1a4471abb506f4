"""fletchat.mesh_judge: a link's messages are judged in order, and none is lost on the way.

Driven on a real hub (in memory) without sockets: the judge only needs the link's queue, its
peer and the hub. The race below lost messages for real under load (bench figure 3's capacity
search: single messages of the sender's sequence missing at every receiver until catch-up,
docs/performance.md "After an overload")."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from fletchat.hub import Hub
from fletchat.mesh_judge import PAGES_AHEAD, MessageJudge
from fletchat.mesh_link import Link
from fletchat.model import Peer
from fletchat.peer.connection import Messages, Received
from fletchat.peer.policy import NoTrust
from tests.test_hub_pages import NOW, chat
from tests.timing import eventually


def _link() -> Link:
    conn = SimpleNamespace(sender=None, peer=Peer("peer", "Pat", "headless"))
    return Link(ws=None, conn=conn, opened=0.0, last_message=0.0)  # type: ignore[arg-type]


def _live(msg) -> Messages:
    return Messages(items=(Received(msg, "", False),), live=True, refused=())


async def test_a_live_message_that_waited_for_room_behind_a_page_is_judged() -> None:
    """A read that waits for room in the link's queue puts its event only when it next runs.
    The page task could judge two live messages in a row without a pause, find the queue
    empty and leave first: the waiting message then went into a queue nobody read (never
    stored, never acknowledged). Now the task waits for reads still putting."""
    hub = Hub("me", wall=lambda: NOW)
    sent: list[str] = []
    judge = MessageJudge(SimpleNamespace(app=hub, trust=NoTrust(),  # type: ignore[arg-type]
                                         send=lambda link, frame: sent.append(frame)))
    link = _link()
    page = [chat("peer", seq) for seq in (1, 2)]
    a, b, c = (chat("peer", seq) for seq in (3, 4, 5))
    try:
        await judge.on_messages(link, Messages(items=(), live=False, refused=(),
                                               unchecked=tuple((m, "") for m in page)))
        await judge.on_messages(link, _live(a))
        assert link.pages is not None and link.pages.qsize() == PAGES_AHEAD  # full
        later = [asyncio.create_task(judge.on_messages(link, _live(m))) for m in (b, c)]
        await asyncio.gather(*later)
        await eventually(lambda: link.pages is None, "every queued event judged", 10)
        assert hub.flush()
        stored = {m.id for m in (*page, a, b, c) if hub.store.get(m.id) is not None}
        assert stored == {m.id for m in (*page, a, b, c)}
        acked: list[str] = []
        while not link.acks.empty():
            acked += link.acks.get_nowait()
        assert acked == [m.id for m in (*page, a, b, c)]  # in the order they came
        assert sent == []  # nothing refused
    finally:
        hub.close()


async def test_a_read_cancelled_after_it_was_woken_does_not_leave_the_page_task_waiting() -> None:
    """The page task waits for reads still putting; a read cancelled after it was woken for
    room (its link closing) puts nothing, so it wakes the task itself: the task ends, and the
    link's close does not wait on it."""
    hub = Hub("me", wall=lambda: NOW)
    later: list[asyncio.Task] = []
    a, b, c = (chat("peer", seq) for seq in (3, 4, 5))

    def receive(msg, from_peer, **kw):
        if msg.id == b.id:  # C's read was woken for room and has not run yet: close now
            later[1].cancel()
        return hub.receive(msg, from_peer, **kw)

    app = SimpleNamespace(receive=receive, receive_page=hub.receive_page)
    judge = MessageJudge(SimpleNamespace(app=app, trust=NoTrust(),  # type: ignore[arg-type]
                                         send=lambda link, frame: None))
    link = _link()
    page = [chat("peer", seq) for seq in (1, 2)]
    try:
        await judge.on_messages(link, Messages(items=(), live=False, refused=(),
                                               unchecked=tuple((m, "") for m in page)))
        await judge.on_messages(link, _live(a))
        later += [asyncio.create_task(judge.on_messages(link, _live(m))) for m in (b, c)]
        await eventually(lambda: all(t.done() for t in later), "both reads end", 10)
        assert not later[0].cancelled() and later[1].cancelled()
        await eventually(lambda: link.judging is not None and link.judging.done(),
                         "the page task ends", 10)
        assert link.pages is None and link.putting == 0
        assert hub.flush()
        assert all(hub.store.get(m.id) is not None for m in (*page, a, b))
        assert hub.store.get(c.id) is None  # its read was cancelled before it put it
    finally:
        hub.close()
