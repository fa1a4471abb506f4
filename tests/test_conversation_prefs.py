"""Preferences: round trip, and damaged or hostile stored values fall back per field."""

from __future__ import annotations

import pytest

from fletchat.conversation.prefs import MAX_MUTED, Alerts, Prefs, Theme


def test_round_trip_and_mute_toggle() -> None:
    p = Prefs(Theme.DARK, Alerts.NONE, send_read_receipts=False).toggle_mute("random")
    assert p.muted == {"random"}
    assert Prefs.from_json(p.to_json()) == p
    assert p.toggle_mute("random").muted == frozenset()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("not json", Prefs()),
        ("[1, 2]", Prefs()),
        (None, Prefs()),
        ('{"theme": "neon", "alerts": "all"}', Prefs(alerts=Alerts.ALL)),
        ('{"send_read_receipts": "no"}', Prefs()),
        ('{"send_read_receipts": false}', Prefs(send_read_receipts=False)),
        ('{"muted": "general"}', Prefs()),
        ('{"muted": [1]}', Prefs()),
        ('{"muted": ["' + "x" * 81 + '"]}', Prefs()),
        ('{"auto_download_mb": 100}', Prefs(auto_download_mb=100)),
        ('{"auto_download_mb": 0}', Prefs(auto_download_mb=0)),
        ('{"auto_download_mb": 7}', Prefs()),  # not one of the settings' choices
        ('{"auto_download_mb": "25"}', Prefs()),
        ('{"auto_download_mb": true}', Prefs()),
        ('{"auto_download_mb": -1}', Prefs()),
    ],
)
def test_bad_stored_values_fall_back_per_field(raw: object, expected: Prefs) -> None:
    assert Prefs.from_json(raw) == expected


def test_muted_list_is_bounded() -> None:
    big = Prefs.from_json({"muted": [f"c{i}" for i in range(MAX_MUTED + 1)]})
    assert big.muted == frozenset()
    p = Prefs(muted=frozenset(f"c{i}" for i in range(MAX_MUTED)))
    assert p.toggle_mute("one-more") is p
