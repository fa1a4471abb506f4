"""Runs of join/leave lines collapsed (issue 17): in a stretch of history with nothing but
"X has joined" / "X has left" notices, each person keeps only their latest one, so reconnects
and reloads do not fill the conversation with noise. Pure."""

from __future__ import annotations

from ..model import KIND_JOIN, KIND_LEAVE, Message

PRESENCE_KINDS = (KIND_JOIN, KIND_LEAVE)


def collapse_presence(msgs: list[Message]) -> list[Message]:
    """``msgs`` in order, with each run of presence notices reduced to one per person (the
    last, where it stands); every other message is kept as it is."""
    out: list[Message] = []
    run: list[Message] = []

    def flush() -> None:
        last = {m.author: i for i, m in enumerate(run)}
        out.extend(m for i, m in enumerate(run) if last[m.author] == i)
        run.clear()

    for msg in msgs:
        if msg.kind in PRESENCE_KINDS:
            run.append(msg)
        else:
            flush()
            out.append(msg)
    flush()
    return out
