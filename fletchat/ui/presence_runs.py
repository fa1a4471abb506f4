"""Runs of join/leave lines collapsed (issue 17): in a stretch of history with nothing but
"X has joined" / "X has left" notices, each person keeps only their latest one, so reconnects
and reloads do not fill the conversation with noise. Pure."""

from __future__ import annotations

from collections.abc import Callable

from ..model import KIND_JOIN, KIND_LEAVE, Message

PRESENCE_KINDS = (KIND_JOIN, KIND_LEAVE)


def _per_run(msgs: list[Message], shape: Callable[[list[Message]], list[Message]]
             ) -> list[Message]:
    """``msgs`` in order, each run of presence notices replaced by ``shape(run)``."""
    out: list[Message] = []
    run: list[Message] = []
    for msg in msgs:
        if msg.kind in PRESENCE_KINDS:
            run.append(msg)
            continue
        if run:
            out.extend(shape(run))
            run = []
        out.append(msg)
    if run:
        out.extend(shape(run))
    return out


def collapse_presence(msgs: list[Message]) -> list[Message]:
    """``msgs`` in order, with each run of presence notices reduced to one per person (the
    last, where it stands); every other message is kept as it is."""

    def latest_each(run: list[Message]) -> list[Message]:
        last = {m.author: i for i, m in enumerate(run)}
        return [m for i, m in enumerate(run) if last[m.author] == i]

    return _per_run(msgs, latest_each)


# A run of join/leave lines shows this many; from one more on, its last line stands for the
# people between ("..., and 30 others joined or left."), so a classroom joining does not add
# a row per person to every open tab (issue 12) nor bury the conversation in notices.
RUN_LINES = 3


def fold_line(msg: Message, others: tuple[str, ...]) -> str:
    """What a run's last line says when it stands for ``others`` too."""
    if not others:
        return msg.display_text
    many = "s" if len(others) != 1 else ""
    return f"{msg.display_text.rstrip('.')}, and {len(others)} other{many} joined or left."


def fold_label(msg: Message, others: tuple[str, ...]) -> str:
    """The same for screen readers, with the names."""
    line = fold_line(msg, others)
    return f"{line} Earlier: {', '.join(others)}." if others else line


def folded_others(others: tuple[str, ...], last_author: str, newest: str) -> tuple[str, ...]:
    """Who a fold stands for once ``newest`` takes its place: those it stood for and the
    person whose line it was, each once, ``newest`` not among them."""
    out: list[str] = []
    for name in (*others, last_author):
        if name != newest and name not in out:
            out.append(name)
    return tuple(out)


def fold_presence(msgs: list[Message]) -> tuple[list[Message], dict[str, tuple[str, ...]]]:
    """``msgs`` (each run already collapsed) with every run longer than ``RUN_LINES`` cut to
    its first ``RUN_LINES - 1`` lines and its last, which stands for the people between:
    returned by that last message's id (their names, oldest first)."""
    folds: dict[str, tuple[str, ...]] = {}

    def fold(run: list[Message]) -> list[Message]:
        if len(run) <= RUN_LINES:
            return run
        last, between = run[-1], run[RUN_LINES - 1:-1]
        folds[last.id] = folded_others(tuple(m.author for m in between[:-1]),
                                       between[-1].author, last.author)
        return [*run[:RUN_LINES - 1], last]

    return _per_run(msgs, fold), folds
