"""The headless peer's side of the conversation: run a parsed stdin command, and the JSON line
printed for each conversation event (README, "Headless peer")."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..model import DEFAULT_CHANNEL, ROW_KINDS, Message, ValidationError
from .commands import Command, act_on
from .views import ReadChanged, RowChanged, TypingChanged

if TYPE_CHECKING:
    from ..session import HubSession


def run_command(session: HubSession, cmd: Command) -> None:
    """Do what one stdin command says; ``ValidationError`` with the sentence to print."""
    if cmd.name == "typing":
        session.typing(DEFAULT_CHANNEL)
        return
    if cmd.name == "read":
        latest = session.hub.history(DEFAULT_CHANNEL, 1)
        if latest:
            session.mark_read(DEFAULT_CHANNEL, latest[-1])
        return
    found = session.hub.find(cmd.target)
    if found is None or found[0].kind not in ROW_KINDS:
        raise ValidationError(f"No message with id {cmd.target} here.")
    act_on(session, cmd.name, found[0], cmd.text, found[0].channel)


def conversation_line(event: RowChanged | TypingChanged | ReadChanged,
                      status: Callable[[Message], str]) -> dict[str, Any] | None:
    """``{"event": "reaction" | "edit" | "delete", ...the event's message fields}``,
    ``{"event": "typing", "channel", "names"}`` or ``{"event": "read", "channel", "name",
    "upto"}``."""
    if isinstance(event, TypingChanged):
        return {"event": "typing", "channel": event.channel, "names": list(event.names)}
    if isinstance(event, ReadChanged):
        return {"event": "read", "channel": event.channel, "name": event.name,
                "upto": event.upto}
    if event.cause is None:
        return None
    return {"event": event.cause.kind, **event.cause.to_dict(), "verified": status(event.cause)}
