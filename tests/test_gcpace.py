"""Host mode's collector pacing: survivors frozen, full collections only when idle and due."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from pathlib import Path

import flet_web.fastapi as flet_fastapi
import pytest

from bench.sessions import open_flet_session
from fletchat.config import Config
from fletchat.gcpace import GcPacer, GcPolicy, GcStep
from fletchat.host import build_web_app, gc_pacer
from fletchat.model import Message
from fletchat.node import Node
from fletchat.sessions import SessionLimits, flet_sessions
from tests.browser import host_mode_server
from tests.timing import eventually, scaled
from tests.webhost import serving

MIN = 1000  # min_growth in the policy rows below


def policy(**kw) -> GcPolicy:
    return GcPolicy(idle_s=2.0, due_growth=0.25, forced_growth=1.0, min_growth=MIN, **kw)


# (what happened after a full collection left 100,000 objects frozen and 3 sessions, at t=0:
#  last event at, sessions held now, frozen now, asked at) -> step
ROWS = [
    ("busy, grown by half", 9.5, 3, 150_000, 10.0, GcStep.FREEZE),
    ("idle, grown by a fifth", 0.0, 3, 120_000, 10.0, GcStep.FREEZE),
    ("idle, grown by a quarter", 0.0, 3, 125_000, 10.0, GcStep.FULL),
    ("idle, a session released", 0.0, 2, 100_000, 10.0, GcStep.FULL),
    ("busy, a session released", 9.5, 2, 100_000, 10.0, GcStep.FREEZE),
    ("idle, more sessions, nothing grown", 0.0, 5, 100_000, 10.0, GcStep.FREEZE),
    ("busy, doubled", 9.9, 3, 200_000, 10.0, GcStep.FULL),
    ("idle just under the idle time", 8.1, 3, 190_000, 10.0, GcStep.FREEZE),
    ("idle exactly the idle time", 8.0, 3, 190_000, 10.0, GcStep.FULL),
    ("idle, shrunk", 0.0, 3, 50_000, 10.0, GcStep.FREEZE),
]


@pytest.mark.parametrize(("last_event", "held", "frozen", "now", "expected"),
                         [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_policy_steps(last_event, held, frozen, now, expected):
    p = policy()
    p.collected(frozen=100_000, held=3)
    p.event(last_event)
    p.sessions(held)
    assert p.step(now, frozen) is expected


def test_policy_small_growth_never_makes_a_full_collection_due():
    p = policy()
    p.collected(frozen=100, held=0)
    assert p.step(100.0, 100 + MIN - 1) is GcStep.FREEZE  # +999 objects is 10x the base
    assert p.step(100.0, 100 + MIN) is GcStep.FULL


def test_policy_a_release_is_remembered_until_the_next_full_collection():
    p = policy()
    p.collected(frozen=100_000, held=4)
    p.sessions(2)  # two tabs released while busy ...
    p.event(9.0)
    p.sessions(6)  # ... then more opened: the released ones' garbage is still there
    assert p.step(10.0, 100_000) is GcStep.FREEZE
    assert p.step(11.0, 100_000) is GcStep.FULL
    p.collected(frozen=100_000, held=6)
    assert p.step(20.0, 100_000) is GcStep.FREEZE


class Node_:
    """Something that can be in a reference cycle and report its death."""

    def __init__(self) -> None:
        self.me = self


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pacer():
    clock = Clock()
    held = [1]
    p = GcPacer(policy(), sessions=lambda: held[0], clock=clock)
    p.clock, p.held = clock, held  # type: ignore[attr-defined]
    # the first tick freezes the heap; the next finds it all new (grown from nothing): a full one
    assert [p.tick(), p.tick()] == [GcStep.FREEZE, GcStep.FULL]
    yield p
    asyncio.run(p.stop())
    assert gc.get_freeze_count() == 0


def test_frozen_survivors_are_out_of_the_collectors_sight_until_a_full_collection(pacer):
    young = Node_()
    dead_young = weakref.ref(young)
    del young  # garbage in a cycle, still young: the freeze step collects it first
    survivor = Node_()
    alive = weakref.ref(survivor)
    pacer.event()
    assert pacer.tick() is GcStep.FREEZE
    assert dead_young() is None
    assert gc.get_freeze_count() > 0
    del survivor  # now cyclic garbage, but frozen
    gc.collect()  # what CPython's own full collections do: they do not see it
    assert alive() is not None
    pacer.clock.now += 1.0
    assert pacer.tick() is GcStep.FREEZE  # still busy: nothing due
    assert alive() is not None
    pacer.held[0] = 0  # the tab is released ...
    pacer.clock.now += 5.0  # ... and the host is idle
    assert pacer.tick() is GcStep.FULL
    assert alive() is None
    assert pacer.full_collections and gc.get_freeze_count() > 0  # frozen again after it


def test_the_pacer_counts_what_it_freezes_without_walking_the_frozen_heap(pacer):
    """``gc.get_freeze_count`` walks every frozen object (about a second for 5.5 million): the
    pacer, ticking every second, counts what each freeze moves instead."""
    before = pacer.frozen
    keep = [Node_() for _ in range(10_000)]
    pacer.event()
    assert pacer.tick() is GcStep.FREEZE
    grown = pacer.frozen - before
    assert 10_000 <= grown < 20_000
    assert abs(pacer.frozen - gc.get_freeze_count()) < 0.2 * gc.get_freeze_count()
    del keep  # 10,000 cycles, frozen: found by the next full collection and taken off
    pacer.held[0] = 0
    pacer.clock.now += 5.0
    counted = pacer.frozen
    assert pacer.tick() is GcStep.FULL
    assert pacer.frozen < counted - 9_900  # (the tick froze what came since, too)


def test_stop_unfreezes(pacer):
    assert gc.get_freeze_count() > 0
    asyncio.run(pacer.stop())
    assert gc.get_freeze_count() == 0


# ---- in host mode ----

LIMITS = SessionLimits(grace=1, per_address=5, total=9)


@pytest.fixture
async def host(tmp_path: Path):
    config = Config(web=True, lan=False, data_dir=tmp_path / "data", port=0)
    node = Node(config, "web-host")
    app = build_web_app(node, static_dir=tmp_path / "none", limits=LIMITS)
    clock = Clock()
    pacer = gc_pacer(node)
    pacer._clock = clock
    try:
        async with serving(app) as port:
            yield node, pacer, clock, port
    finally:
        await pacer.stop()
        node.hub.close()


def in_a_task(obj: object) -> bool:
    """Whether a pending task's coroutines hold ``obj`` in a local (a tab's main still runs)."""
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        while coro is not None:
            frame = getattr(coro, "cr_frame", None)
            if frame is not None and any(v is obj for v in frame.f_locals.values()):
                return True
            coro = getattr(coro, "cr_await", None)
    return False


def subscribed(sid: str) -> bool:
    hubs = flet_fastapi.app_manager._FletAppManager__pubsubhubs.values()
    return any(sid in h._PubSubHub__topic_subscribers.get("fletchat", {}) for h in hubs)


async def test_a_closed_tab_frozen_while_open_is_collected_once_released_and_idle(host):
    node, pacer, clock, port = host
    before = set(flet_sessions())
    ws = await open_flet_session(port, "127.0.0.1")
    await eventually(lambda: set(flet_sessions()) - before, "the tab's session", 30)
    (sid,) = set(flet_sessions()) - before
    page = weakref.ref(flet_sessions()[sid].page)
    # a second tab stays open: flet-web's eviction loop keeps its last session in a variable
    other = await open_flet_session(port, "127.0.0.1")
    assert [pacer.tick(), pacer.tick()] == [GcStep.FREEZE, GcStep.FULL]  # the tab frozen too
    node.hub.post(Message.chat("Olga", "busy", node.hub.peer_id))
    assert pacer.policy._last_event == clock.now  # a chat event: the host is busy
    await ws.close()
    await eventually(lambda: sid not in flet_sessions(), "the closed tab released", 40)
    await eventually(lambda: not subscribed(sid), "the released tab unsubscribed", 10)
    # its main resumes once Flet released it (its mount waited for the browser), then ends
    await eventually(lambda: not in_a_task(page()), "the released tab's main ended", 10)
    gc.collect()  # CPython's own full collection: the frozen tab's cycles stay
    frozen_page_kept = page() is not None
    assert pacer.tick() is GcStep.FREEZE  # released, but not idle
    clock.now += 5.0
    assert pacer.tick() is GcStep.FULL
    assert page() is None
    assert frozen_page_kept, "the released tab was freed without the collector: nothing to test"
    await other.close()


def test_host_mode_runs_the_pacer(tmp_path):
    """``main.py --web``: the pacer's first look (a full collection about two ticks after the
    start) is in the host's debug log."""
    with host_mode_server(tmp_path / "host", "--no-lan", "--log-level", "debug"):
        log = tmp_path / "host-server.log"
        deadline = time.monotonic() + scaled(30)
        while "fletchat.gcpace" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
            time.sleep(0.1)
    assert "full collection:" in log.read_text(errors="replace")
