"""The hybrid logical clock: monotonic, causal, bounded drift, sortable encoding."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fletchat.clock import (
    HLC,
    MAX_ADOPT_MS,
    MAX_COUNTER,
    MAX_DRIFT_MS,
    MAX_WALL_MS,
    ClockDriftError,
    Stamp,
)
from fletchat.model import ValidationError


class FakeWall:
    def __init__(self, ms: int = 1_700_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_now_follows_the_wall_clock_and_counts_within_a_millisecond() -> None:
    wall = FakeWall()
    clock = HLC("a", wall)
    s1, s2 = clock.now(), clock.now()
    assert (s1.wall_ms, s1.counter) == (wall.ms, 0)
    assert (s2.wall_ms, s2.counter) == (wall.ms, 1)
    wall.ms += 5
    s3 = clock.now()
    assert (s3.wall_ms, s3.counter) == (wall.ms, 0)
    assert s1 < s2 < s3


def test_never_goes_backwards_when_the_wall_clock_does() -> None:
    wall = FakeWall()
    clock = HLC("a", wall)
    before = clock.now()
    wall.ms -= 60_000
    after = [clock.now() for _ in range(3)]
    assert before < after[0] < after[1] < after[2]
    assert all(s.wall_ms == before.wall_ms for s in after)


def test_observe_moves_past_a_remote_stamp_from_a_clock_that_is_ahead() -> None:
    wall = FakeWall()
    clock = HLC("b", wall)
    remote = Stamp(wall.ms + 2_000, 7, "a")
    got = clock.observe(remote)
    assert got > remote
    assert (got.wall_ms, got.counter) == (remote.wall_ms, 8)
    assert clock.now() > got  # a reply sorts after the message it answers


def test_observe_of_an_older_stamp_still_advances() -> None:
    wall = FakeWall()
    clock = HLC("b", wall)
    mine = clock.now()
    got = clock.observe(Stamp(wall.ms - 10_000, 3, "a"))
    assert got > mine


def test_observe_same_wall_takes_the_larger_counter() -> None:
    wall = FakeWall()
    clock = HLC("b", wall)
    clock.now()  # (wall, 0)
    got = clock.observe(Stamp(wall.ms, 9, "a"))
    assert (got.wall_ms, got.counter) == (wall.ms, 10)


def test_remote_too_far_ahead_is_refused_and_leaves_the_clock_alone() -> None:
    wall = FakeWall()
    clock = HLC("b", wall)
    before = clock.now()
    with pytest.raises(ClockDriftError, match=r"ahead of ours.*check its date and time"):
        clock.observe(Stamp(wall.ms + MAX_DRIFT_MS + 1, 0, "a"))
    assert clock.last == before
    # exactly at the bound is accepted, but followed only up to MAX_ADOPT_MS ahead of our wall
    assert clock.observe(Stamp(wall.ms + MAX_DRIFT_MS, 0, "a")).wall_ms == wall.ms + MAX_ADOPT_MS


def test_drift_error_is_a_validation_error() -> None:
    assert issubclass(ClockDriftError, ValidationError)


def test_counter_overflow_borrows_the_next_millisecond() -> None:
    wall = FakeWall()
    clock = HLC("b", wall, last=Stamp(wall.ms, MAX_COUNTER, "b"))
    s = clock.now()
    assert (s.wall_ms, s.counter) == (wall.ms + 1, 0)
    r = clock.observe(Stamp(wall.ms + 1, MAX_COUNTER, "a"))
    assert r > Stamp(wall.ms + 1, MAX_COUNTER, "a")


def test_advance_moves_the_clock_as_observe_does_without_issuing_a_stamp() -> None:
    """The hub's acceptance advances the clock past each message (``advance``): the same rule
    as ``observe``, drift refusal and counter overflow included."""
    for remote_at, counter in [(2_000, 7), (-10_000, 3), (0, 9), (1, MAX_COUNTER)]:
        wall = FakeWall()
        observed, advanced = HLC("b", wall), HLC("b", wall)
        observed.now(), advanced.now()
        remote = Stamp(wall.ms + remote_at, counter, "a")
        got = observed.observe(remote)
        assert advanced.advance(remote) is None
        assert advanced.last == got and advanced.now() > remote
    wall = FakeWall()
    clock = HLC("b", wall)
    before = clock.now()
    with pytest.raises(ClockDriftError):
        clock.advance(Stamp(wall.ms + MAX_DRIFT_MS + 1, 0, "a"))
    assert clock.last == before


@given(st.lists(st.tuples(st.integers(-5_000, 70_000), st.integers(0, MAX_COUNTER)),
                max_size=30))
def test_advance_many_is_advance_of_each_in_order(offsets: list[tuple[int, int]]) -> None:
    """A catch-up run moves the clock past its stamps in one lock round (``advance_many``):
    the same clock as ``advance`` of each in turn at the same wall time; a stamp beyond the
    drift bound is skipped (the page's rules refused it already), not raised."""
    wall = FakeWall()
    one, many = HLC("b", wall), HLC("b", wall)
    one.now(), many.now()
    stamps = [Stamp(wall.ms + at, counter, "a") for at, counter in offsets]
    for stamp in stamps:
        one.advance(stamp)
    many.advance_many([*stamps, Stamp(wall.ms + MAX_DRIFT_MS + 1, 0, "a")])
    assert many.last == one.last


def test_seeded_clock_continues_after_a_restart_with_a_clock_set_back() -> None:
    wall = FakeWall()
    first = HLC("a", wall)
    last = max(first.now() for _ in range(5))
    wall.ms -= 3_600_000
    second = HLC("a", wall, last=last)
    assert second.now() > last


def test_node_breaks_ties() -> None:
    assert Stamp(5, 0, "a") < Stamp(5, 0, "b")
    assert Stamp(5, 0, "z") < Stamp(5, 1, "a") < Stamp(6, 0, "a")


def test_encoding_is_fixed_width_round_trips_and_sorts_like_stamps() -> None:
    s = Stamp(1_700_000_000_123, 42, "node-1")
    enc = s.encode()
    assert enc == "018bcfe5687b.002a.node-1"  # hex(1_700_000_000_123) == 0x18bcfe5687b
    assert enc.index(".node-1") == 17
    assert Stamp.decode(enc) == s
    rng = random.Random(1)
    stamps = [
        Stamp(rng.choice([0, 1, 255, 256, 10**12]), rng.choice([0, 1, 15, 16, MAX_COUNTER]),
              rng.choice(["a", "ab", "b", "A", "a.b", "0"]))
        for _ in range(300)
    ]
    assert sorted(stamps) == sorted(stamps, key=Stamp.encode)


@given(
    st.lists(
        st.tuples(st.integers(0, MAX_WALL_MS), st.integers(0, MAX_COUNTER),
                  st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)),
        min_size=2, max_size=20,
    )
)
def test_encoding_order_property(parts: list[tuple[int, int, str]]) -> None:
    stamps = [Stamp(*p) for p in parts]
    assert sorted(stamps) == sorted(stamps, key=Stamp.encode)
    assert all(Stamp.decode(s.encode()) == s for s in stamps)


@pytest.mark.parametrize(
    "raw",
    [None, 5, "", "zz", "0190f3a2b4c1.0000.", "0190f3a2b4c1-0000.a", "0190f3a2b4cZ.0000.a",
     "0190f3a2b4c1.000g.a", "0190f3a2b4c1.0000.a b", "0190f3a2b4c1.0000." + "x" * 65,
     "-190f3a2b4c1.0000.a"],
)
def test_decode_rejects_garbage(raw: object) -> None:
    with pytest.raises(ValidationError):
        Stamp.decode(raw)


def test_stamp_rejects_out_of_range_fields() -> None:
    for bad in [(-1, 0, "a"), (0, -1, "a"), (MAX_WALL_MS + 1, 0, "a"), (0, MAX_COUNTER + 1, "a"),
                (0, 0, ""), (True, 0, "a")]:
        with pytest.raises(ValidationError):
            Stamp(*bad)  # type: ignore[arg-type]


def test_two_clocks_exchanging_messages_keep_causal_order() -> None:
    """A conversation between a fast and a slow clock: every reply sorts after what it answers."""
    wa, wb = FakeWall(), FakeWall(1_700_000_000_000 - 30_000)  # b is 30 s behind
    a, b = HLC("a", wa), HLC("b", wb)
    timeline = []
    msg = a.now()
    timeline.append(msg)
    for _ in range(20):
        wb.ms += 3
        b.observe(msg)
        msg = b.now()
        timeline.append(msg)
        wa.ms += 2
        a.observe(msg)
        msg = a.now()
        timeline.append(msg)
    assert timeline == sorted(timeline)
    assert len(set(timeline)) == len(timeline)
