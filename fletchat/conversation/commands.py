"""The headless peer's conversation commands, parsed from one stdin line (pure).

``/reply ID text``, ``/react ID EMOJI`` (toggles; ``:shortcode:`` accepted), ``/edit ID text``,
``/delete ID``, ``/typing`` and ``/read``. Any other line, including one starting with "//", is a
message (``None``). A malformed command raises ``ValidationError`` with the sentence the peer
prints as ``{"event": "error", ...}``, so a typo is never sent as a chat message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model import ValidationError, validate_id, validate_text
from .emoji import SHORTCODES
from .kinds import validate_emoji

USAGE = {
    "reply": "/reply ID text",
    "react": "/react ID EMOJI",
    "edit": "/edit ID text",
    "delete": "/delete ID",
    "typing": "/typing",
    "read": "/read",
}


@dataclass(frozen=True)
class Command:
    name: str  # a key of USAGE
    target: str = ""  # message id
    text: str = ""  # reply/edit text, or the reaction's emoji


def parse_command(line: str) -> Command | None:
    if not line.startswith("/") or line.startswith("//"):
        return None
    head, _, rest = line[1:].partition(" ")
    if head not in USAGE:
        return None  # "/shrug" and the like stay ordinary text
    usage = f"Usage: {USAGE[head]}"
    if head in ("typing", "read"):
        if rest.strip():
            raise ValidationError(usage)
        return Command(head)
    target, _, arg = rest.strip().partition(" ")
    if not target:
        raise ValidationError(usage)
    try:
        target = validate_id(target, "message id")
    except ValidationError as err:
        raise ValidationError(f"{err} {usage}") from None
    if head == "delete":
        if arg.strip():
            raise ValidationError(usage)
        return Command(head, target)
    if head == "react":
        code = arg.strip()
        emoji = SHORTCODES.get(code.strip(":"), code) if code.startswith(":") else code
        return Command(head, target, validate_emoji(emoji))
    text = validate_text(arg)
    if text is None:
        raise ValidationError(usage)
    return Command(head, target, text)


def act_on(session: Any, op: str, target: Any, text: str, channel: str) -> None:
    """Run one message action (``reply``/``react``/``edit``/anything else = delete) through a
    ``HubSession``: the headless peer's commands and the relay's ``conv`` requests share it."""
    if op == "reply":
        session.reply(target, text, channel)
    elif op == "react":
        session.react(target, text)
    elif op == "edit":
        session.edit(target, text)
    else:
        session.delete(target)
