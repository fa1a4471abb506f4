"""The tutorial's chat UI, grown up, as components (one per module):

- ``conversation`` (the message list, chunked so a new message costs the same whatever the
  history), ``rows`` (ChatMessage rows), ``feed`` (which rows a channel shows, older pages, jumps)
- ``channels``, ``people``, ``composer``, ``banners``, ``dialogs``, ``search``, ``trust_actions``
- ``state`` (``ChatState``: what belongs to one screen, pure), ``text`` (labels, pure)
- ``backend`` (``ChatBackend``, the one port to the conversation; ``hub_backend`` adapts a
  ``HubSession``, ``webclient/main.py`` the ``/relay``), ``updates`` (coalesced updates, the one
  layout wait), ``view`` (``ChatView``, the coordinator), ``navigation`` (channels, direct
  messages, older pages, search results), ``session_main``.
- the conversation features (issue 14): ``convo`` (their hooks in the view), ``convo_row``,
  ``convo_text`` and ``decorate`` (a row's reply quote, reactions, edits, receipts, grouping and
  day lines), ``row_menu``, ``composer_extras``, ``attention``, ``title``, ``notifier``,
  ``settings``, ``qr_join``.
"""

from __future__ import annotations

from typing import Any

from .backend import Capabilities, ChatBackend
from .conversation import CHUNK_ROWS, Chunk, Conversation, Slot
from .feed import PAGE
from .people import online_tile
from .rows import ChatMessage, MessageRow, message_control
from .search import highlight_spans
from .state import ChatState
from .text import (
    APP_TITLE,
    BLOCK_TOOLTIP,
    LATE_LABEL,
    LOAD_OLDER,
    MESSAGE_HINT,
    NAME_LABEL,
    OWN_DEVICE_PREFIX,
    PENDING_LABEL,
    SEARCH_HINT,
    TRUST_NEW_KEY,
    UNVERIFIED_LABEL,
    Status,
    channel_title,
    describe_for_screen_reader,
    format_time,
)
from .view import ChatView

__all__ = [
    "APP_TITLE",
    "BLOCK_TOOLTIP",
    "CHUNK_ROWS",
    "LATE_LABEL",
    "LOAD_OLDER",
    "MESSAGE_HINT",
    "NAME_LABEL",
    "OWN_DEVICE_PREFIX",
    "PAGE",
    "PENDING_LABEL",
    "SEARCH_HINT",
    "TRUST_NEW_KEY",
    "UNVERIFIED_LABEL",
    "Capabilities",
    "ChatBackend",
    "ChatMessage",
    "ChatState",
    "ChatView",
    "Chunk",
    "Conversation",
    "MessageRow",
    "Slot",
    "Status",
    "channel_title",
    "describe_for_screen_reader",
    "format_time",
    "highlight_spans",
    "make_session_main",
    "message_control",
    "online_tile",
]


def __getattr__(name: str) -> Any:
    """``make_session_main`` needs the hub (and its store); the static web client never asks."""
    if name == "make_session_main":
        from .session_main import make_session_main

        return make_session_main
    raise AttributeError(name)
