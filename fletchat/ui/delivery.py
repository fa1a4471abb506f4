"""What "delivered" means for a message written here, in every topology (issue 17).

The outbox counts a message as pending until a LAN device confirms it. On a host with nobody
else on the network (or ``--no-lan``) no device ever will, and every message used to read "not
delivered yet" forever, which looks like a failure. So: while a LAN device is connected and has
not confirmed it, a message is "waiting for a device"; with no other device, it is delivered to
the people in this host's tabs ("delivered") or, when nobody else is here, just "sent". Pure.
"""

from __future__ import annotations

from ..events import Online
from .text import STATUS_DELIVERED, STATUS_PENDING, STATUS_SENT, Status


def live_status(pending: bool, devices: list[Online], online: list[Online],
                me: str | None) -> Status:
    """The mark for one of our messages: ``pending`` (no device confirmed it), the LAN devices
    connected now, the people online now, this person's name."""
    if not pending:
        return Status(STATUS_DELIVERED)
    if devices:
        return Status(STATUS_PENDING)
    if any(p.local and p.name != me for p in online):
        return Status(STATUS_DELIVERED)
    return Status(STATUS_SENT)
