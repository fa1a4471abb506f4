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
from ..owner import new_owner_secret, validate_owner_secret

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
        try:
            value = await within(self.prefs.get(NAME_KEY), ANSWER_SECONDS)
        except (TimeoutError, RuntimeError, LookupError, AttributeError) as err:
            log.debug("no remembered name: %s", err)
            return ""
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

    async def owner_secret(self) -> str:
        """This browser's owner secret (``fletchat.owner``, see ``authors``): the one it keeps,
        else a new one, kept from now on. Without client storage, one for this session only."""
        if self.prefs is None:
            return new_owner_secret()
        try:
            value = await within(self.prefs.get(OWNER_KEY), ANSWER_SECONDS)
        except (TimeoutError, RuntimeError, LookupError, AttributeError) as err:
            log.debug("no owner secret kept: %s", err)
            return new_owner_secret()  # not kept: the one stored may be there after all
        try:
            return validate_owner_secret(value)
        except ValidationError:  # none yet (or not ours): a new one
            pass
        secret = new_owner_secret()
        try:
            await within(self.prefs.set(OWNER_KEY, secret), ANSWER_SECONDS)
        except (TimeoutError, RuntimeError, LookupError, AttributeError) as err:
            log.debug("owner secret not kept: %s", err)
        return secret

    async def save(self, name: str) -> None:
        if self.prefs is None:
            return
        try:
            await within(self.prefs.set(NAME_KEY, name), ANSWER_SECONDS)
        except (TimeoutError, RuntimeError, LookupError, AttributeError) as err:
            log.debug("name not remembered: %s", err)
