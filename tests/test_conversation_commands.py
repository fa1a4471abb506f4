"""The headless peer's conversation commands: what parses, and clear errors for what does not."""

from __future__ import annotations

import pytest

from fletchat.conversation.commands import Command, parse_command
from fletchat.model import ValidationError

THUMBS = "\U0001f44d"


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("hello", None),
        ("//reply not a command", None),
        ("/shrug", None),
        ("/reply m1 yes, agreed", Command("reply", "m1", "yes, agreed")),
        ("/edit m1  fixed typo ", Command("edit", "m1", "fixed typo")),
        ("/delete m1", Command("delete", "m1")),
        (f"/react m1 {THUMBS}", Command("react", "m1", THUMBS)),
        ("/react m1 :+1:", Command("react", "m1", THUMBS)),
        ("/typing", Command("typing")),
        ("/read", Command("read")),
    ],
)
def test_parse(line: str, command: Command | None) -> None:
    assert parse_command(line) == command


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("/reply", "Usage: /reply ID text"),
        ("/reply m1", "Usage: /reply ID text"),
        ("/reply m1    ", "Usage: /reply ID text"),
        ("/edit bad\x00id text", "Invalid message id."),
        ("/delete m1 now", "Usage: /delete ID"),
        ("/react m1", "Reaction is too long|Unknown reaction"),
        ("/react m1 " + "\U0001f600" * 2500, "Reaction is too long"),
        ("/react m1 :nosuch:", "Unknown reaction"),
        ("/react m1 x", "Unknown reaction"),
        ("/typing now", "Usage: /typing"),
        ("/edit m1 " + "x" * 4001, "Message is too long"),
    ],
)
def test_bad_commands_say_why(line: str, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        parse_command(line)
