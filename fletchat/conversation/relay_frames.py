"""The relay's conversation frames (docs/protocol.md, "The relay for static web clients"):
what a static client asks (``conv``: reply, react, edit, delete, typing, read, rename) and what the
host pushes (``row``, ``typing``, ``marks``, ``done``). Pure, imported by host mode and the web
client; validated at the edge like every relay frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model import (
    DEFAULT_CHANNEL,
    MAX_ID_CHARS,
    ValidationError,
    validate_channel,
    validate_id,
    validate_name,
    validate_text,
)
from ..protocol import PROTOCOL_VERSION, ProtocolError
from ..relay_protocol import _dumps, _req, decode_sealed, sealed_field
from .kinds import ReplyRef, validate_emoji
from .reducer import ReactionSummary, RowState
from .signals import ReadMark

CONV_OPS = ("reply", "react", "edit", "delete", "typing", "read", "rename")
_TARGETED = ("reply", "react", "edit", "delete")
MAX_MARKS = 256  # read marks in one ``marks`` frame
MAX_NAMES = 64  # names in one ``typing`` frame or one reaction's "who"
MAX_REACTIONS = 64  # distinct emoji on one row


@dataclass(frozen=True)
class RelayConv:
    """A conversation action of the client's person; answered by ``done`` with the same ``req``."""

    req: int
    op: str
    target: str = ""  # message id (reply/react/edit/delete); read: the stamp read up to
    text: str = ""  # reply/edit text, the emoji, or the new name
    channel: str = DEFAULT_CHANNEL
    sealed: bool = False  # the client holds this channel as a private room: refused unless sealed


@dataclass(frozen=True)
class RelayRow:
    row: RowState


@dataclass(frozen=True)
class RelayTyping:
    channel: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class RelayMarks:
    channel: str
    marks: tuple[ReadMark, ...]


@dataclass(frozen=True)
class RelayDone:
    req: int
    error: str = ""


# ---- client -> host ----
def encode_client_conv(req: int, op: str, target: str = "", text: str = "",
                       channel: str = DEFAULT_CHANNEL, sealed: bool = False) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "conv", "req": req, "op": op,
                   "target": target, "text": text, "channel": channel, **sealed_field(sealed)})


def _checked(key: str, check) -> Any:
    try:
        return check()
    except ValidationError as err:
        raise ProtocolError(f"conv.{key}: {err}") from None


def decode_client_conv(obj: dict[str, Any]) -> RelayConv:
    op = obj.get("op")
    if op not in CONV_OPS:
        raise ProtocolError(f"conv.op must be one of {', '.join(CONV_OPS)}")
    req = _req(obj, "conv")
    channel = _checked("channel", lambda: validate_channel(obj.get("channel", DEFAULT_CHANNEL)))
    target, text = "", ""
    if op in _TARGETED:
        target = _checked("target", lambda: validate_id(obj.get("target"), "message id"))
    raw = obj.get("text", "")
    if op in ("reply", "edit"):
        text = _checked("text", lambda: validate_text(raw)) or ""
        if not text:
            raise ProtocolError("conv.text must not be blank")
    elif op == "react":
        text = _checked("text", lambda: validate_emoji(raw))
    elif op == "rename":
        text = _checked("text", lambda: validate_name(raw))
    elif op == "read":
        from .kinds import validate_hlc

        target = _checked("target", lambda: validate_hlc(obj.get("target")))
    return RelayConv(req, op, target, text, channel, decode_sealed(obj, "conv"))


# ---- host -> client ----
def row_to_dict(row: RowState) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id, "text": row.text, "edited": row.edited, "deleted": row.deleted,
        "reactions": [{"emoji": r.emoji, "count": r.count, "who": list(r.who[:MAX_NAMES]),
                       "mine": r.mine} for r in row.reactions[:MAX_REACTIONS]],
    }
    if row.reply is not None:
        out["reply"] = row.reply.to_dict()
    return out


def row_from_dict(data: object, base: RowState) -> RowState:
    """A ``row`` from the host, on top of what the client's message says (``base``)."""
    if not isinstance(data, dict) or data.get("id") != base.id:
        raise ProtocolError("row must be an object about that message")
    text = data.get("text")
    if not isinstance(text, str) or len(text) > 4000:
        raise ProtocolError("row.text must be a string")
    reactions = []
    raw = data.get("reactions", [])
    if not isinstance(raw, list) or len(raw) > MAX_REACTIONS:
        raise ProtocolError("row.reactions must be a short list")
    for r in raw:
        if not isinstance(r, dict):
            raise ProtocolError("row.reactions entries must be objects")
        who = r.get("who", [])
        count = r.get("count")
        if (not isinstance(who, list) or len(who) > MAX_NAMES or isinstance(count, bool)
                or not isinstance(count, int) or count < 0):
            raise ProtocolError("row.reactions entry is malformed")
        reactions.append(ReactionSummary(
            _checked("emoji", lambda r=r: validate_emoji(r.get("emoji"))), count,
            tuple(_checked("who", lambda n=n: validate_name(n)) for n in who),
            r.get("mine") is True))
    reply = None
    if "reply" in data:
        try:
            reply = ReplyRef.from_dict(data["reply"])
        except ValidationError as err:
            raise ProtocolError(f"row.reply: {err}") from None
    from dataclasses import replace

    return replace(base, text=text, edited=data.get("edited") is True,
                   deleted=data.get("deleted") is True, reactions=tuple(reactions), reply=reply)


def encode_row(row: RowState) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "row", "row": row_to_dict(row)})


def encode_typing(channel: str, names: tuple[str, ...]) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "typing", "channel": channel,
                   "names": list(names[:MAX_NAMES])})


def encode_marks(channel: str, marks: list[ReadMark]) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "marks", "channel": channel,
                   "marks": [{"reader": m.reader, "name": m.name, "upto": m.upto}
                             for m in marks[-MAX_MARKS:]]})


def encode_done(req: int, error: str = "") -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "done", "req": req, "error": error[:200]})


def _decode_row(obj: dict[str, Any]) -> RelayRow:
    data = obj.get("row")
    if not isinstance(data, dict):
        raise ProtocolError("row.row must be an object")
    mid = _checked("id", lambda: validate_id(data.get("id"), "message id"))
    base = RowState(mid, "", "", "", 0.0, "", "")
    return RelayRow(row_from_dict(data, base))


def _decode_typing(obj: dict[str, Any]) -> RelayTyping:
    names = obj.get("names")
    if not isinstance(names, list) or len(names) > MAX_NAMES:
        raise ProtocolError("typing.names must be a short list")
    return RelayTyping(_checked("channel", lambda: validate_channel(obj.get("channel"))),
                       tuple(_checked("names", lambda n=n: validate_name(n)) for n in names))


def _decode_marks(obj: dict[str, Any]) -> RelayMarks:
    from .kinds import validate_hlc

    raw = obj.get("marks")
    if not isinstance(raw, list) or len(raw) > MAX_MARKS:
        raise ProtocolError("marks.marks must be a short list")
    channel = _checked("channel", lambda: validate_channel(obj.get("channel")))
    marks = []
    for m in raw:
        if not isinstance(m, dict) or not isinstance(m.get("reader"), str) or len(
                m["reader"]) > MAX_ID_CHARS + 40:
            raise ProtocolError("marks entries must be objects with a reader")
        marks.append(ReadMark(m["reader"], _checked("name", lambda m=m: validate_name(
            m.get("name"))), channel, _checked("upto", lambda m=m: validate_hlc(m.get("upto")))))
    return RelayMarks(channel, tuple(marks))


def _decode_done(obj: dict[str, Any]) -> RelayDone:
    error = obj.get("error", "")
    if not isinstance(error, str) or len(error) > 200:
        raise ProtocolError("done.error must be a short string")
    return RelayDone(_req(obj, "done"), error)


SERVER_DECODERS = {"row": _decode_row, "typing": _decode_typing, "marks": _decode_marks,
                   "done": _decode_done}
