"""One root exception: every error Flet Chat raises on purpose derives from FletChatError."""

from __future__ import annotations

from fletchat.clock import ClockDriftError
from fletchat.hub import ReadOnlyError
from fletchat.identity import DataDirInUse
from fletchat.model import FletChatError, ValidationError
from fletchat.netinfo import PortInUse
from fletchat.protocol import ProtocolError
from fletchat.rooms import RoomError
from fletchat.store import StoreError, StoreFull
from fletchat.webbuild import BuildError


def test_every_error_of_ours_derives_from_one_root() -> None:
    ours = (ValidationError, ClockDriftError, ReadOnlyError, DataDirInUse, PortInUse,
            ProtocolError, RoomError, StoreError, StoreFull, BuildError)
    assert all(issubclass(cls, FletChatError) for cls in ours)
    # ...and keep the built-in bases callers already catch.
    assert issubclass(ValidationError, ValueError) and issubclass(StoreError, RuntimeError)
