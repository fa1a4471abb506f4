"""The headless peer's JSON lines say how far each message is proven and each peer's key."""

from __future__ import annotations

from fletchat.events import MessageRefused, Online, RosterChanged
from fletchat.headless import event_line
from fletchat.model import Message


def test_message_lines_carry_their_verification_status() -> None:
    msg = Message.chat("Ann", "hi", "peer-a")
    line = event_line(msg, lambda m: "verified" if m.origin == "peer-a" else "unverified")
    assert line["verified"] == "verified" and line["text"] == "hi"
    assert event_line(msg)["verified"] == "unverified"  # no identity here: nothing is proven


def test_roster_lines_carry_each_peers_fingerprint_and_refusals_are_printed() -> None:
    device = Online("peer-a", "Laptop", "desktop", 1.0, local=False, fingerprint="ABCD-EFGH")
    line = event_line(RosterChanged((), (device,)))
    assert line["peers"] == [{"id": "peer-a", "name": "Laptop", "fingerprint": "ABCD-EFGH"}]
    refused = event_line(MessageRefused("peer-b", (("m1", "clock too far ahead"),), 2.0))
    assert refused == {"event": "refused", "peer_id": "peer-b",
                       "refused": [{"id": "m1", "reason": "clock too far ahead"}], "at": 2.0}
