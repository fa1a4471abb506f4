"""A person's preferences, remembered per device (browser: Flet's client storage; desktop and
Android: the data dir), as one validated value. Anything unreadable falls back to the default
for that field: a damaged or foreign preference never stops the app."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from ..model import MAX_CHANNEL_CHARS

MAX_MUTED = 256
AUTO_DOWNLOAD_CHOICES_MB = (0, 5, 25, 100, 1000)  # the settings' choices for other files' size
STORAGE_KEY = "fletchat.prefs"  # the client-storage key / the data dir's prefs.json content


class Theme(StrEnum):
    SYSTEM = "system"  # follow the device's light/dark setting
    LIGHT = "light"
    DARK = "dark"


class Alerts(StrEnum):
    MENTIONS_AND_DMS = "mentions"  # notify for mentions and direct messages (default)
    ALL = "all"
    NONE = "none"


@dataclass(frozen=True)
class Prefs:
    theme: Theme = Theme.SYSTEM
    alerts: Alerts = Alerts.MENTIONS_AND_DMS
    send_read_receipts: bool = True
    send_typing: bool = True
    muted: frozenset[str] = field(default_factory=frozenset)
    auto_download_mb: int | None = None  # None: the device's own setting (--auto-download)

    def toggle_mute(self, channel: str) -> Prefs:
        muted = set(self.muted) ^ {channel}
        if len(muted) > MAX_MUTED:
            return self
        return replace(self, muted=frozenset(muted))

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = asdict(self)
        data["muted"] = sorted(self.muted)
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, raw: object) -> Prefs:
        try:
            data = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
        except ValueError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        d = cls()
        muted = data.get("muted")
        ok_muted = (
            isinstance(muted, list) and len(muted) <= MAX_MUTED
            and all(isinstance(c, str) and 0 < len(c) <= MAX_CHANNEL_CHARS for c in muted)
        )
        auto = data.get("auto_download_mb")
        return cls(
            theme=_enum(Theme, data.get("theme"), d.theme),
            alerts=_enum(Alerts, data.get("alerts"), d.alerts),
            send_read_receipts=_bool(data.get("send_read_receipts"), d.send_read_receipts),
            send_typing=_bool(data.get("send_typing"), d.send_typing),
            muted=frozenset(muted) if ok_muted else d.muted,
            auto_download_mb=auto if type(auto) is int and auto in AUTO_DOWNLOAD_CHOICES_MB
            else d.auto_download_mb,
        )


def _enum(kind: type[StrEnum], value: object, default: Any) -> Any:
    try:
        return kind(value)
    except ValueError:
        return default


def _bool(value: object, default: bool) -> bool:
    return value if isinstance(value, bool) else default
