"""The name a person joined under, remembered in the browser's (or app's) client storage, so a
new session on the same device offers it instead of asking from scratch (issue 17). Flet's
``SharedPreferences`` is localStorage in a browser; a page without a client (unit tests) simply
remembers nothing. The browser's owner secret is kept there too."""

from __future__ import annotations

import logging
from collections.abc import Callable

import flet as ft

from ..aio import within
from ..model import MAX_NAME_CHARS, ValidationError
from ..owner import validate_owner_secret

log = logging.getLogger(__name__)
NAME_KEY = "fletchat.name"
OWNER_KEY = "fletchat.owner"  # the browser's owner secret (``authors``): who may edit what it wrote
ANSWER_SECONDS = 30.0  # the login does not wait for it (Login.ask: the dialog first, the name when it comes)


class NameMemory:
    def __init__(self) -> None:
        try:
            self.prefs: ft.SharedPreferences | None = ft.SharedPreferences()
        except (RuntimeError, LookupError):  # no page context: nothing to remember in
            self.prefs = None

    async def load(self) -> str:
        if self.prefs is None:
            return ""
        value = await self._get(NAME_KEY)
        return value[:MAX_NAME_CHARS] if isinstance(value, str) else ""

    async def offer(self, field: ft.TextField, still_joining: Callable[[], bool]) -> None:
        """Fill the login's ``field`` with the name this device remembers, whenever the client
        answers (a loaded phone can take seconds: waiting for it before showing the dialog
        delayed the dialog, and a 3 s limit lost the name), unless the person has typed or
        joined meanwhile."""
        name = await self.load()
        if name and not field.value and still_joining():
            field.value = name
            field.update()

    async def owner_secret(self, candidate: str) -> str:
        """This browser's owner secret (``fletchat.owner``, see ``authors``): the one it keeps,
        else ``candidate``, kept from now on (read back: of two first tabs racing, the one kept
        wins). Without client storage, ``candidate``, for this session only."""
        if self.prefs is None:
            return candidate
        try:
            kept = validate_owner_secret(await self._get(OWNER_KEY))
        except ValidationError:  # none yet (or not ours): the candidate, kept
            try:
                await within(self.prefs.set(OWNER_KEY, candidate), ANSWER_SECONDS)
                kept = validate_owner_secret(await self._get(OWNER_KEY))
            except (TimeoutError, RuntimeError, LookupError, AttributeError,
                    ValidationError) as err:
                log.debug("owner secret not kept: %s", err)
                return candidate
        return kept

    async def _get(self, key: str) -> object:
        """A value from client storage; ``None`` when the client does not answer."""
        assert self.prefs is not None
        try:
            return await within(self.prefs.get(key), ANSWER_SECONDS)
        except (TimeoutError, RuntimeError, LookupError, AttributeError) as err:
            log.debug("%s not read: %s", key, err)
            return None

    async def save(self, name: str) -> None:
        if self.prefs is None:
            return
        try:
            await within(self.prefs.set(NAME_KEY, name), ANSWER_SECONDS)
        except (TimeoutError, RuntimeError, LookupError, AttributeError) as err:
            log.debug("name not remembered: %s", err)
