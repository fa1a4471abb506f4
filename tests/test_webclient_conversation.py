"""The static client's ``RelayBackend`` conversation methods without a browser: frames it sends
(throttled typing, read marks unless turned off, conv requests answered by ``done``) and what it
mirrors from the host (rows, typing, read marks)."""

from __future__ import annotations

import asyncio
import json

import pytest

from fletchat.conversation.reducer import ReactionSummary, RowState
from fletchat.conversation.relay_frames import RelayDone, RelayMarks, RelayRow, RelayTyping
from fletchat.conversation.signals import ReadMark
from fletchat.model import Message, ValidationError

THUMBS = "\U0001f44d"


class FakeClient:
    is_open = True

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send_frame(self, text: str, queue: bool = False) -> None:
        self.sent.append(json.loads(text))

    def close(self) -> None:
        pass


@pytest.fixture
def backend():
    from webclient.main import RelayBackend

    b = RelayBackend(FakeClient())
    b.join("Ada")
    b.host_peer = "host-1"
    return b


def conv_frames(b) -> list[dict]:
    return [f for f in b.client.sent if f["type"] == "conv"]


async def test_actions_are_requests_and_refusals_become_errors(backend) -> None:
    theirs = Message.chat("Bob", "hi", "host-1")

    async def answer(error: str) -> None:
        while not conv_frames(backend):
            await asyncio.sleep(0.01)
        backend.answered(conv_frames(backend)[-1]["req"], RelayDone(
            conv_frames(backend)[-1]["req"], error))

    await asyncio.gather(backend.react(theirs, THUMBS), answer(""))
    frame = conv_frames(backend)[-1]
    assert (frame["op"], frame["target"], frame["text"]) == ("react", theirs.id, THUMBS)
    with pytest.raises(ValidationError, match="Only the author"):
        await backend.edit(theirs, "mine")  # refused here already: not Ada's
    backend.client.sent.clear()
    with pytest.raises(ValidationError, match="Too many reactions"):
        await asyncio.gather(backend.react(theirs, THUMBS), answer("Too many reactions; slow down."))


async def test_mirrors_rows_typing_and_marks(backend) -> None:
    got: list = []

    async def handler(event) -> None:
        got.append(event)

    backend.subscribe(handler)
    m = Message("m1", "chat", "Ada", "host-1", "hello", 1.0, "general", "01a000000000.0000.h", 1)
    pushed = RowState("m1", "", "", "", 0.0, "", "hello!", edited=True,
                      reactions=(ReactionSummary(THUMBS, 1, ("Bob",), False),))
    await backend.on_conv_frame(RelayRow(pushed))
    row = backend.row_state(m)
    assert row.text == "hello!" and row.edited and row.author == "Ada" and row.reactions
    await backend.on_conv_frame(RelayTyping("general", ("Bob", "Ada")))
    assert backend.typing_names("general") == ["Bob"]
    await backend.on_conv_frame(RelayMarks("general", (
        ReadMark("host-1/Bob", "Bob", "general", "01a000000001.0000.h"),
        ReadMark("host-1/Ada", "Ada", "general", "01a000000001.0000.h"))))
    assert backend.seen_by(m) == ["Bob"]  # the author is left out
    assert len(got) == 3


def test_typing_is_throttled_and_receipts_can_be_turned_off(backend) -> None:
    m = Message("m1", "chat", "Bob", "host-1", "hello", 1.0, "general", "01a000000000.0000.h", 1)
    for _ in range(5):
        backend.typing("general")
    assert [f["op"] for f in conv_frames(backend)] == ["typing"]
    backend.mark_read("general", m)
    assert conv_frames(backend)[-1]["op"] == "read"
    backend.client.sent.clear()
    backend.set_conversation_prefs(read_receipts=False, typing=False)
    backend.mark_read("general", m)
    backend.typing("lunch")
    assert conv_frames(backend) == []


def test_own_rows_claim_no_reach_the_static_client_cannot_know(backend) -> None:
    """The host tells a static client only that some device confirmed a message (``delivered``),
    not which ones: the row says "seen by" but nothing about "on N of M devices"."""
    from fletchat.ui.decorate import Dresser

    mine = Message("m1", "chat", "Ada", "host-1", "hello", 1.0, "general", "01a000000000.0000.h", 1)
    assert backend.reach(mine) is None
    decor = Dresser(backend, lambda: "Ada").decor(mine)
    assert decor.mine and decor.reach is None
    assert "devices" not in decor.footer and "devices" not in decor.suffix()


async def test_the_hosts_problems_become_the_banner_and_not_saved_rows(backend) -> None:
    from fletchat.events import StoreFailed
    from fletchat.relay_protocol import RelayProblems

    got: list = []

    async def handler(event) -> None:
        got.append(event)

    backend.subscribe(handler)
    assert backend.problems() == []
    m = Message.chat("Ada", "hello", "host-1")
    await backend.on_problems(RelayProblems(("History is read-only: disk is full.",), (m.id,)))
    assert backend.problems() == ["History is read-only: disk is full."]
    [event] = got
    assert isinstance(event, StoreFailed) and event.not_saved == (m.id,)
    assert event.reason == "History is read-only: disk is full."
    await backend.on_problems(RelayProblems((), ()))  # fixed on the host: the banner goes
    assert backend.problems() == [] and len(got) == 1


async def test_a_rename_is_the_clients_only_once_the_host_said_done(backend) -> None:
    """The settings dialog confirms a rename: a static client asks the host and waits, so a
    refused one (a name in use there) is an error here, not a name the host never took."""

    async def answer(error: str) -> None:
        while not conv_frames(backend):
            await asyncio.sleep(0.01)
        req = conv_frames(backend)[-1]["req"]
        backend.answered(req, RelayDone(req, error))

    with pytest.raises(ValidationError, match="already someone's name"):
        await asyncio.gather(backend.rename("Bob"),
                             answer("Bob is already someone's name here: pick another."))
    assert backend.name == "Ada"
    frame = conv_frames(backend)[-1]
    assert (frame["op"], frame["text"]) == ("rename", "Bob") and frame["req"] > 0
    backend.client.sent.clear()
    await asyncio.gather(backend.rename("Adele"), answer(""))
    assert backend.name == "Adele"
