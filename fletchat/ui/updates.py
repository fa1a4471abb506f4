"""How the UI talks to the client: coalesced updates of the smallest controls that changed, and
the one place that waits for Flutter's layout.

``control.update()`` diffs everything under the control, per session; a burst of messages would
diff the same chunk again and again. ``Updates.mark`` collects what changed and sends it once per
loop turn (one ``page.update(*controls)`` per session, whatever the burst).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import flet as ft

log = logging.getLogger("fletchat.ui")

LAYOUT_SECONDS = 0.15  # a frame or two of Flutter: the rows just sent are laid out after this


async def after_layout(times: float = 1.0) -> None:
    """Wait until the client has laid out what was just sent (before ``scroll_to`` looks for a
    row, or before keyboard focus moves after a dialog); ``times`` for more than a frame's worth
    (a long page of rows). The only fixed wait in the UI: Flet offers no "laid out" event."""
    await asyncio.sleep(LAYOUT_SECONDS * times)


def detached(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task outside the tab's context (see ``aio.later``): cancelled when the tab closes, its
    sleeps keep nothing of the tab."""
    return asyncio.get_running_loop().create_task(coro, context=contextvars.Context())


def in_background(page: Any, handler: Callable[..., Awaitable[None]], *args: object) -> None:
    """``page.run_task``, unless the tab has gone meanwhile: Flet destroyed its session
    (``page.session`` raises) or the session has no connection (a tab that closed or
    disconnected while it opened). run_task would make the coroutine and then fail on the
    connection's loop, leaving a "never awaited" coroutine behind."""
    try:
        session = getattr(page, "session", None)
    except RuntimeError:
        return
    if session is not None and getattr(session, "connection", True) is None:
        return
    page.run_task(handler, *args)


class Isolated:
    """Mixin (before the Flet class) for a control updated on its own: its parent's update
    does not walk into it (``is_isolated``).

    Flet 1.0.5 asks ``parent != diff_root`` for every child it diffs under an isolated parent,
    and that parent usually *is* the root being updated (a chunk of rows): the dataclass
    ``__eq__`` then reads every field of both sides (about 60 ``Prop`` lookups each) per
    child, per update, per tab. An object is equal to itself whatever its fields, so this
    answers that case first and asks the dataclass comparison for every other (issue 12)."""

    def is_isolated(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return self is other or super().__eq__(other)  # type: ignore[misc]

    def __hash__(self) -> int:
        return object.__hash__(self)  # controls hash by identity (Flet's BaseControl too)


class Updates:
    """Per-session coalescer: ``mark(c)`` now, one ``page.update`` of every marked control on
    the next turn of the loop (ancestors in the order they were marked)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self._dirty: dict[int, ft.Control] = {}
        self._scheduled: asyncio.Handle | None = None
        self.closed = False  # the tab closed: close()
        self.sent = 0  # page.update calls made (tests and the bench read it)

    def mark(self, *controls: ft.Control) -> None:
        if self.closed:
            return
        for c in controls:
            self._dirty.setdefault(id(c), c)
        if self._scheduled is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a unit test building a view): send now
            self.flush()
            return
        self._scheduled = loop.call_soon(self.flush)

    def close(self) -> None:
        """The tab closed: nothing more goes out, and a flush already scheduled is cancelled
        (its handle would keep the page, and every control on it, alive until it ran)."""
        self.closed = True
        self._dirty.clear()
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None

    def flush(self) -> None:
        self._scheduled = None
        if not self._dirty:
            return
        controls = list(self._dirty.values())
        self._dirty.clear()
        whole = any(c is self.page for c in controls)  # the whole page covers the rest
        try:
            if whole:
                self.page.update()
            else:
                self.page.update(*controls)
            self.sent += 1
        except (RuntimeError, AssertionError) as err:  # the session went away meanwhile
            log.debug("dropping an update for a closed session: %s", err)
