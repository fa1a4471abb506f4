"""Typing, read receipts, reach, flood limits, emoji shortcodes, mentions and the notification
arithmetic (unread/mention counts, tab title, unread line, date separators, grouping)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from fletchat.conversation.emoji import (
    PICKER,
    QUICK_REACTIONS,
    REACTION_SET,
    SHORTCODES,
    replace_shortcodes,
    shortcode_candidates,
)
from fletchat.conversation.mentions import (
    active_query,
    candidates,
    complete,
    find_mentions,
    mentions_me,
)
from fletchat.conversation.notify import (
    ChannelCount,
    badge_total,
    date_separators,
    group_starts,
    should_alert,
    tab_title,
    unread_counts,
    unread_line,
)
from fletchat.conversation.signals import (
    TYPING_INTERVAL,
    TYPING_TIMEOUT,
    FloodLimit,
    ReadMark,
    ReadMarks,
    TypingBoard,
    TypingThrottle,
    person_key,
    reach_line,
    seen_line,
    typing_line,
)

UTC = dt.UTC


def stamp(ms: int) -> str:
    return f"{ms:012x}.0000.n"


# ---- typing -----------------------------------------------------------------------------------

def test_sender_says_typing_at_most_once_per_interval() -> None:
    t = TypingThrottle()
    keystrokes = [0.0, 0.1, 0.5, 1.0, 2.9, 3.0, 3.1, 5.9, 6.0, 6.5]
    sent = [now for now in keystrokes if t.should_send(now)]
    assert sent == [0.0, 3.0, 6.0]
    t.sent_message()
    assert t.should_send(6.6)  # a new message starts a new typing run


def test_typing_board_expires_and_never_shows_me() -> None:
    b = TypingBoard()
    assert b.note("general", person_key("host", "Ada"), "Ada", 0.0)
    assert b.note("general", person_key("host", "Me"), "Me", 0.0)  # another tab on one host
    assert b.note("random", "bob-dev/Bob", "Bob", 0.0)
    assert b.typing("general", 1.0, me=person_key("host", "Me")) == ["Ada"]
    assert b.typing("general", TYPING_TIMEOUT + 0.01) == []
    assert b.typing("random", TYPING_TIMEOUT + 0.01) == []


def test_typing_flood_is_dropped_and_a_message_clears_the_line() -> None:
    b = TypingBoard()
    accepted = sum(b.note("general", "spam-dev", "Spam", i * 0.01) for i in range(1000))
    assert accepted <= int(10.0 / (TYPING_INTERVAL / 2)) + 1
    b.stopped("general", "spam-dev")
    assert b.typing("general", 10.0) == []


def test_typing_board_is_bounded() -> None:
    b = TypingBoard(max_tracked=10)
    for i in range(1000):
        b.note("general", f"sock-{i}", f"S{i}", 0.0)
    assert len(b.typing("general", 0.1)) == 10


@pytest.mark.parametrize(
    ("names", "line"),
    [
        ([], ""),
        (["Ada"], "Ada is typing\u2026"),
        (["Ada", "Bob"], "Ada and Bob are typing\u2026"),
        (["Ada", "Bob", "Cy"], "Ada, Bob and Cy are typing\u2026"),
        (["Ada", "Bob", "Cy", "Di", "Ed"], "Ada, Bob and 3 others are typing\u2026"),
    ],
)
def test_typing_line(names: list[str], line: str) -> None:
    assert typing_line(names) == line


# ---- read receipts and reach ------------------------------------------------------------------

def test_read_marks_move_forward_only_and_aggregate_seen_by() -> None:
    r = ReadMarks()
    assert r.update(ReadMark("bob-dev", "Bob", "general", stamp(50)))
    assert not r.update(ReadMark("bob-dev", "Bob", "general", stamp(10)))  # going back: ignored
    assert r.position("general", "bob-dev") == stamp(50)
    r.update(ReadMark("cy-dev", "Cy", "general", stamp(20)))
    r.update(ReadMark("ada-dev", "Ada", "general", stamp(90)))  # the author's own device
    r.update(ReadMark("di-dev", "Di", "random", stamp(90)))  # another channel
    assert r.seen_by("general", stamp(20), author="ada-dev") == ("Bob", "Cy")
    assert r.seen_by("general", stamp(40), author="ada-dev") == ("Bob",)
    assert seen_line(r.seen_by("general", stamp(40), "ada-dev")) == "seen by 1"
    assert seen_line(()) == ""


def test_a_reader_who_opts_out_is_forgotten() -> None:
    r = ReadMarks()
    r.update(ReadMark("bob-dev", "Bob", "general", stamp(50)))
    r.update(ReadMark("bob-dev", "Bob", "random", stamp(50)))
    r.forget("bob-dev")
    assert r.seen_by("general", stamp(1), "ada-dev") == ()
    assert r.position("random", "bob-dev") == ""


def test_read_marks_are_bounded() -> None:
    r = ReadMarks(max_tracked=5)
    for i in range(50):
        r.update(ReadMark(f"s{i}", f"S{i}", "general", stamp(9)))
    assert len(r.seen_by("general", stamp(1), "x")) == 5


def test_reach_line() -> None:
    devices = {"a", "b", "c", "d", "e"}
    assert reach_line({"a", "b", "c", "d"}, devices) == "on 4 of 5 devices"
    assert reach_line({"a", "gone"}, devices) == "on 1 of 5 devices"
    assert reach_line(set(), set()) == ""


def test_flood_limit_per_key() -> None:
    lim = FloodLimit(count=3, window=10.0)
    assert [lim.allow("m", t) for t in (0, 1, 2, 3, 9.9)] == [True, True, True, False, False]
    assert lim.allow("bob", 5)  # another person is not affected
    assert lim.allow("m", 10.0)  # the first hit left the window


# ---- emoji ------------------------------------------------------------------------------------

def test_shortcodes() -> None:
    assert replace_shortcodes("ship it :rocket: :tada:!") == "ship it \U0001f680 \U0001f389!"
    assert replace_shortcodes(":nosuchcode: and 10:30:45") == ":nosuchcode: and 10:30:45"
    assert replace_shortcodes("`:tada:` :tada:") == "`:tada:` \U0001f389"
    assert shortcode_candidates(":th")[:2] == [(":thumbsup:", "\U0001f44d"),
                                               (":thumbsdown:", "\U0001f44e")]
    assert shortcode_candidates(":") == []


def test_picker_holds_the_quick_set_and_every_shortcode_once() -> None:
    assert PICKER[: len(QUICK_REACTIONS)] == QUICK_REACTIONS
    assert len(PICKER) == len(set(PICKER)) == len(REACTION_SET)
    assert set(SHORTCODES.values()) <= REACTION_SET


# ---- mentions ---------------------------------------------------------------------------------

NAMES = ["Ada", "Ada Lovelace", "Bob", "Straße"]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("hi @Ada", ["Ada"]),
        ("hi @ada!", ["Ada"]),
        ("@Ada Lovelace, look", ["Ada Lovelace"]),
        ("@Adam is not Ada", []),
        ("mail ada@Bob.org", []),
        ("@@Bob", []),
        ("@bob and @ADA", ["Bob", "Ada"]),
        ("@STRASSE", []),
        ("@straße ok", ["Straße"]),
        ("@", []),
    ],
)
def test_find_mentions(text: str, found: list[str]) -> None:
    assert [m.name for m in find_mentions(text, NAMES)] == found


def test_mentions_me() -> None:
    assert mentions_me("ping @ada", "Ada")
    assert mentions_me("@everyone standup", "Ada")
    assert not mentions_me("Ada without the at", "Ada")
    assert not mentions_me("@Adam", "Ada")


def test_autocomplete() -> None:
    assert active_query("hello @Ad") == (6, "Ad")
    assert active_query("hello @Ada Lo") == (6, "Ada Lo")
    assert active_query("mail x@y") is None
    assert active_query("no at") is None
    online = ["Ada", "ada", "Adalbert", "Bob", "Me", "Ada"]
    assert candidates("ad", online, me="Me") == ["Ada", "ada", "Adalbert"]
    assert candidates("", online, me="Me", limit=2) == ["Ada", "ada"]
    assert complete("hi @Ad and", 6, "Ada") == ("hi @Ada  and", 8)


def test_mention_scan_is_linear_on_hostile_input() -> None:
    # 4000 "@" with no name: each "@" is looked at once (no backtracking)
    assert find_mentions("@" * 4000, NAMES) == []
    assert len(find_mentions("@Ada " * 800, NAMES)) == 800


# ---- notifications ----------------------------------------------------------------------------

@dataclass(frozen=True)
class R:
    id: str
    author: str
    origin: str
    text: str
    ts: float
    channel: str = "general"
    hlc: str = ""
    kind: str = "chat"


ME = "me-dev"
DAY1 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp()


def rows() -> list[R]:
    return [
        R("1", "Ada", "ada-dev", "morning", DAY1, hlc=stamp(1)),
        R("2", "Ada", "ada-dev", "still me", DAY1 + 60, hlc=stamp(2)),
        R("3", "Me", ME, "hi", DAY1 + 120, hlc=stamp(3)),
        R("4", "Ada", "ada-dev", "@Me look", DAY1 + 180, hlc=stamp(4)),
        R("5", "Ada", "ada-dev", "later", DAY1 + 3600, hlc=stamp(5)),
        R("6", "Bob", "bob-dev", "next day", DAY1 + 86400, hlc=stamp(6)),
        R("7", "Bob", "bob-dev", "x", DAY1 + 86400, channel="random", hlc=stamp(7)),
        R("8", "Bob", "bob-dev", "", DAY1 + 86400, channel="random", hlc=stamp(8), kind="join"),
        R("9", "Bob", "bob-dev", "dm", DAY1 + 86400, channel="@Bob+Me", hlc=stamp(9)),
    ]


def test_unread_and_mention_counts_and_title() -> None:
    counts = unread_counts(rows(), {"general": stamp(2)}, ME, "Me")
    assert counts == {"general": ChannelCount(3, 1), "random": ChannelCount(1, 0),
                      "@Bob+Me": ChannelCount(1, 0)}
    assert badge_total(counts) == 5
    assert badge_total(counts, muted={"general", "@Bob+Me"}) == 1 + 1 + 1  # mention + random + DM
    assert tab_title(badge_total(counts, muted={"general", "random"})) == "(2) Flet Chat"
    assert tab_title(0) == "Flet Chat"
    assert tab_title(250) == "(99+) Flet Chat"


@pytest.mark.parametrize(
    ("index", "focused", "muted", "alert"),
    [
        (3, False, (), True),  # a mention
        (3, True, (), False),  # focused: the row itself is enough
        (3, False, ("general",), True),  # muted, but a mention of me
        (4, False, (), False),  # ordinary row
        (8, False, (), True),  # a direct message
        (8, False, ("@Bob+Me",), False),
        (2, False, (), False),  # my own
        (7, False, (), False),  # a join
    ],
)
def test_should_alert(index: int, focused: bool, muted: tuple, alert: bool) -> None:
    assert should_alert(rows()[index], ME, "Me", focused, muted) is alert


def test_unread_line_position() -> None:
    general = [r for r in rows() if r.channel == "general"]
    assert unread_line(general, stamp(2), ME) == 3  # row 3 is mine: the line goes above row 4
    assert unread_line(general, stamp(6), ME) is None
    assert unread_line(general, "", ME) is None


def test_date_separators_and_grouping() -> None:
    general = [r for r in rows() if r.channel == "general"]
    seps = date_separators(general, dt.date(2026, 12, 2), UTC)
    assert seps == {0: "Yesterday", 5: "Today"}
    assert date_separators(general, dt.date(2026, 12, 5), UTC) == {
        0: "Tuesday, 1 December", 5: "Wednesday, 2 December"}
    assert date_separators(general, dt.date(2027, 3, 1), UTC)[0] == "1 December 2026"
    starts = group_starts(general, breaks=seps, tz=UTC)
    # 1 and 2 grouped; mine breaks; 4 starts; 5 is an hour later; 6 a new day
    assert starts == [True, False, True, True, True, True]
    assert group_starts(general, breaks={1}, tz=UTC)[1] is True  # the unread line breaks a group
