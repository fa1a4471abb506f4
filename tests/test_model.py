"""The pure model: validation rules, avatar helpers and the Message type's edge checks."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fletchat.model import (
    AVATAR_COLORS,
    DEFAULT_CHANNEL,
    KIND_CHAT,
    KIND_JOIN,
    KIND_LEAVE,
    MAX_CHANNEL_CHARS,
    MAX_ID_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    Message,
    ValidationError,
    avatar_color,
    initials,
    validate_name,
    validate_text,
)

# ---------------------------------------------------------------- validate_name


def test_validate_name_trims() -> None:
    assert validate_name("  Ada Lovelace \t") == "Ada Lovelace"


@pytest.mark.parametrize("raw", ["", "   ", "\t\n "])
def test_validate_name_blank(raw: str) -> None:
    with pytest.raises(ValidationError) as err:
        validate_name(raw)
    assert str(err.value) == "Name cannot be blank!"


def test_validate_name_length_limit() -> None:
    assert MAX_NAME_CHARS == 32
    ok = "x" * MAX_NAME_CHARS
    assert validate_name(ok) == ok
    # Surrounding spaces do not count against the limit.
    assert validate_name(f"  {ok}  ") == ok
    with pytest.raises(ValidationError, match="too long"):
        validate_name("x" * (MAX_NAME_CHARS + 1))


@pytest.mark.parametrize(
    "raw", ["Ada\x00", "A\x07da", "Ada\nLovelace", "Ada\tL", "Ada\u202eevil", "\x1b[31mred"]
)
def test_validate_name_refuses_control_chars(raw: str) -> None:
    with pytest.raises(ValidationError, match="control"):
        validate_name(raw)


@pytest.mark.parametrize("raw", [None, 42, b"Ada", ["Ada"], {"name": "Ada"}])
def test_validate_name_non_str(raw: object) -> None:
    with pytest.raises(ValidationError, match="text"):
        validate_name(raw)


def test_validate_name_accepts_unicode() -> None:
    assert validate_name("Zoë 李雷 👩‍💻") == "Zoë 李雷 👩‍💻"


# ---------------------------------------------------------------- validate_text


def test_validate_text_trims() -> None:
    assert validate_text("  hello there \n") == "hello there"


@pytest.mark.parametrize("raw", ["", " ", "\n\n", "\t \n "])
def test_validate_text_whitespace_only_is_none(raw: str) -> None:
    assert validate_text(raw) is None


def test_validate_text_limit() -> None:
    exact = "a" * MAX_MESSAGE_CHARS
    assert validate_text(exact) == exact
    assert validate_text(f"  {exact}\n") == exact
    with pytest.raises(ValidationError) as err:
        validate_text("a" * (MAX_MESSAGE_CHARS + 1))
    assert str(MAX_MESSAGE_CHARS) in str(err.value)


def test_validate_text_keeps_inner_newlines_and_tabs() -> None:
    assert validate_text("line one\nline two\n\tindented") == "line one\nline two\n\tindented"


@pytest.mark.parametrize(
    "raw", ["hi\x00", "bell\x07", "esc\x1b[2J", "rtl\u202eoverride", "del\x7f"]
)
def test_validate_text_refuses_control_chars(raw: str) -> None:
    with pytest.raises(ValidationError, match="control"):
        validate_text(raw)


@pytest.mark.parametrize("raw", [None, 3, b"hi", ["hi"]])
def test_validate_text_non_str(raw: object) -> None:
    with pytest.raises(ValidationError):
        validate_text(raw)


# ---------------------------------------------------------------- initials / avatar colour


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Ada Lovelace", "AL"),
        ("bob", "B"),
        ("  ada   lovelace  byron ", "AL"),
        ("grace\thopper", "GH"),
        ("", "?"),
        ("   ", "?"),
    ],
)
def test_initials(name: str, expected: str) -> None:
    assert initials(name) == expected


@pytest.mark.parametrize(
    "name", ["😀", "😀 party", "李雷", "Зоя Иванова", "👩‍💻 dev", "e\u0301mile"]
)
def test_initials_non_latin_do_not_crash(name: str) -> None:
    out = initials(name)
    assert isinstance(out, str) and 1 <= len(out) <= 4
    assert out[0] == name.split()[0][0].upper()[0]


NAMES = ["Ada Lovelace", "bob", "Zoë", "李雷", "😀 party", "x" * 32, "Grace Hopper"]


def test_avatar_color_in_palette() -> None:
    for name in NAMES:
        assert avatar_color(name) in AVATAR_COLORS


def test_avatar_color_spreads_over_palette() -> None:
    colours = {avatar_color(f"user{i}") for i in range(200)}
    assert len(colours) >= len(AVATAR_COLORS) - 1


def test_avatar_color_stable_across_processes() -> None:
    """hash() is salted per process; the colour must not be."""
    here = [avatar_color(n) for n in NAMES]
    code = (
        "import json, sys; from fletchat.model import avatar_color; "
        "print(json.dumps([avatar_color(n) for n in json.loads(sys.argv[1])]))"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(NAMES)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        assert json.loads(out.stdout) == here, f"PYTHONHASHSEED={seed}"


# ---------------------------------------------------------------- Message


def test_message_chat() -> None:
    m = Message.chat("  Ada ", "  hello \n", "peer-1")
    assert m.kind == KIND_CHAT
    assert m.author == "Ada"
    assert m.text == "hello"
    assert m.origin == "peer-1"
    assert m.channel == DEFAULT_CHANNEL
    assert m.id and len(m.id) <= MAX_ID_CHARS
    assert m.ts > 1_600_000_000
    assert Message.chat("Ada", "again", "peer-1").id != m.id


def test_message_chat_refuses_empty_and_bad_author() -> None:
    with pytest.raises(ValidationError):
        Message.chat("Ada", "   ", "p")
    with pytest.raises(ValidationError):
        Message.chat("", "hello", "p")
    with pytest.raises(ValidationError):
        Message.chat("Ada", "x" * (MAX_MESSAGE_CHARS + 1), "p")


def test_message_presence() -> None:
    j = Message.presence(KIND_JOIN, " Bob ", "peer-2")
    assert (j.kind, j.author, j.text, j.origin) == (KIND_JOIN, "Bob", "", "peer-2")
    leave = Message.presence(KIND_LEAVE, "Bob", "peer-2")
    assert leave.kind == KIND_LEAVE
    with pytest.raises(ValidationError):
        Message.presence(KIND_CHAT, "Bob", "peer-2")


def test_display_text() -> None:
    assert Message.presence(KIND_JOIN, "Bob", "p").display_text == "Bob has joined the chat."
    assert Message.presence(KIND_LEAVE, "Bob", "p").display_text == "Bob has left the chat."
    assert Message.chat("Bob", "yo", "p").display_text == "yo"


@pytest.mark.parametrize(
    "msg",
    [
        Message.chat("Ada Lovelace", "multi\nline 😀", "peer-1"),
        Message.presence(KIND_JOIN, "Bob", "peer-2"),
        Message.presence(KIND_LEAVE, "Bob", "peer-2"),
    ],
)
def test_round_trip(msg: Message) -> None:
    d = msg.to_dict()
    assert set(d) == {"id", "kind", "author", "origin", "text", "ts", "channel", "hlc", "seq"}  # no "files": none
    assert Message.from_dict(d) == msg
    # And through JSON, as it travels on the wire.
    assert Message.from_dict(json.loads(json.dumps(d))) == msg


def good() -> dict:
    return {
        "id": "abc123",
        "kind": KIND_CHAT,
        "author": "Ada",
        "origin": "peer-1",
        "text": "hello",
        "ts": 1_700_000_000.5,
        "channel": DEFAULT_CHANNEL,
    }


def test_good_dict_is_accepted() -> None:
    m = Message.from_dict(good())
    assert m.text == "hello" and m.ts == 1_700_000_000.5
    # Integer timestamps are fine and become floats; channel defaults.
    d = good()
    d["ts"] = 1_700_000_000
    del d["channel"]
    m = Message.from_dict(d)
    assert isinstance(m.ts, float) and m.channel == DEFAULT_CHANNEL


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "has space"),
        ("id", "semi;colon"),
        ("id", "slash/"),
        ("id", ""),
        ("id", "a" * (MAX_ID_CHARS + 1)),
        ("id", 123),
        ("id", None),
        ("origin", "bad origin"),
        ("origin", "o" * (MAX_ID_CHARS + 1)),
        ("kind", "shout"),
        ("kind", None),
        ("kind", "CHAT"),
        ("ts", True),
        ("ts", False),
        ("ts", "1700000000"),
        ("ts", math.nan),
        ("ts", math.inf),
        ("ts", -1),
        ("ts", 10**30),
        ("ts", None),
        ("text", " hello"),
        ("text", "hello\n"),
        ("text", ""),
        ("text", "   "),
        ("text", "x" * (MAX_MESSAGE_CHARS + 1)),
        ("text", None),
        ("text", 5),
        ("text", "nul\x00"),
        ("author", ""),
        ("author", "x" * (MAX_NAME_CHARS + 1)),
        ("author", 7),
        ("author", "bad\nname"),
        ("channel", ""),
        ("channel", " general"),
        ("channel", "c" * (MAX_CHANNEL_CHARS + 1)),
        ("channel", 1),
    ],
)
def test_from_dict_rejects_bad_field(field: str, value: object) -> None:
    d = good()
    d[field] = value
    with pytest.raises(ValidationError):
        Message.from_dict(d)


@pytest.mark.parametrize("field", ["id", "kind", "author", "origin", "ts"])
def test_from_dict_rejects_missing_field(field: str) -> None:
    d = good()
    del d[field]
    with pytest.raises(ValidationError):
        Message.from_dict(d)


@pytest.mark.parametrize("kind", [KIND_JOIN, KIND_LEAVE])
def test_from_dict_presence_with_text_is_rejected(kind: str) -> None:
    d = good()
    d["kind"] = kind
    with pytest.raises(ValidationError, match="no text"):
        Message.from_dict(d)
    d["text"] = ""
    assert Message.from_dict(d).kind == kind


@pytest.mark.parametrize("data", [None, [], "{}", 42, [("id", "x")], json.dumps(good())])
def test_from_dict_rejects_non_dict(data: object) -> None:
    with pytest.raises(ValidationError):
        Message.from_dict(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
field_values = st.one_of(
    json_values,
    st.sampled_from([KIND_CHAT, KIND_JOIN, KIND_LEAVE, "abc", "peer-1", "Ada", "", " x", "hello"]),
    st.floats(min_value=-1, max_value=2e11),
    st.text(),
)
message_like = st.dictionaries(
    st.sampled_from(["id", "kind", "author", "origin", "text", "ts", "channel", "extra"]),
    field_values,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, message_like))
def test_from_dict_only_raises_validation_error(data: object) -> None:
    try:
        m = Message.from_dict(data)
    except ValidationError:
        return
    # Whatever passed is a well-formed message that survives a round trip.
    assert Message.from_dict(m.to_dict()) == m
    assert m.kind in (KIND_CHAT, KIND_JOIN, KIND_LEAVE)
    assert 0 <= m.ts < 1e11


def test_persian_text_with_zwnj_is_accepted() -> None:
    text = "می\u200cخواهم بیایم"
    assert validate_text(text) == text
    assert validate_name("مری\u200cجان") == "مری\u200cجان"
